"""One settings model per process: the environment means the same to every process, and a
process with a configuration it cannot use stops at start with one line and exit code 2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_protection.codec_server import CodecServerSettings
from runtime.process import EXIT_CONFIGURATION, configuration_message
from runtime.settings import ConfigurationError, ProcessSettings, parse_flag
from webhook_receiver.settings import ReceiverSettings
from worker import WorkerSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
FLAG_WORDS = {
    True: ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " on "],
    False: ["0", "false", "False", "no", "NO", "off", "Off"],
}


@pytest.mark.parametrize("expected", [True, False])
def test_every_process_reads_a_flag_the_same_way(expected):
    for word in FLAG_WORDS[expected]:
        assert parse_flag(word) is expected
        receiver = ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "s", "ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS": word})
        worker = WorkerSettings.load({"ONBOARDING_DELETE_DOCUMENTS_AFTER_SUBMISSION": word})
        assert receiver.adopt_unknown_customers is expected, word
        assert worker.delete_documents_after_submission is expected, word


@pytest.mark.parametrize("word", ["maybe", "2", "y", "enabled", "tru"])
def test_a_flag_that_means_nothing_is_refused_by_every_process(word):
    with pytest.raises(ConfigurationError, match="ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS.*on/off"):
        ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "s", "ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS": word})
    with pytest.raises(ConfigurationError, match="ONBOARDING_DELETE_DOCUMENTS_AFTER_SUBMISSION.*on/off"):
        WorkerSettings.load({"ONBOARDING_DELETE_DOCUMENTS_AFTER_SUBMISSION": word})
    with pytest.raises(ConfigurationError):
        parse_flag(word, "X")


def test_empty_means_unset_and_lists_are_comma_separated():
    settings = CodecServerSettings.load({"ONBOARDING_CODEC_TOKEN": "", "ONBOARDING_CODEC_NAMESPACES": " a, ,b "})
    assert settings.tokens == () and settings.namespaces == ("a", "b")
    assert ProcessSettings.load({"ONBOARDING_TASK_QUEUE": ""}).task_queue == "iron-onboarding"


def test_a_configuration_error_is_one_line_naming_the_variable_and_never_a_secret():
    secret = "k1:" + "A" * 10
    with pytest.raises(ConfigurationError) as caught:
        ReceiverSettings.load({"IRON_WEBHOOK_SECRETS": "s", "ONBOARDING_ENCRYPTION_KEYS": secret}).keyring()
    assert "\n" not in str(caught.value) and "A" * 10 not in str(caught.value)
    with pytest.raises(ConfigurationError) as short:
        CodecServerSettings.load({"ONBOARDING_CODEC_TOKEN": "tiny-token"})
    assert "ONBOARDING_CODEC_TOKEN" in str(short.value) and "tiny-token" not in str(short.value)
    assert configuration_message(short.value, "codec_server").startswith("codec_server: configuration error: ")


def _malformed_key_file(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(content)
    path.chmod(0o600)
    return path


MALFORMED_KEY_FILES = {
    "not json": "{not json",
    "short key": json.dumps({"current": "k1", "keys": {"k1": base64.b64encode(b"short").decode()}}),
    "unknown current": json.dumps({"current": "k9", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}}),
}

PROCESSES = {
    "webhook_receiver": [sys.executable, "-m", "webhook_receiver", "--port", "0"],
    "worker": [sys.executable, str(REPO_ROOT / "worker.py")],
    "codec_server": [sys.executable, "-m", "data_protection.codec_server", "--port", "0"],
}


@pytest.mark.parametrize("process", sorted(PROCESSES))
@pytest.mark.parametrize("problem", sorted(MALFORMED_KEY_FILES))
def test_a_malformed_key_file_stops_every_process_with_one_line(process, problem, tmp_path):
    """Before: the receiver started and answered 503 to every delivery; the worker printed a
    traceback."""
    key_file = _malformed_key_file(tmp_path, MALFORMED_KEY_FILES[problem])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_"))}
    env.update(
        IRON_API_KEY="k", IRON_WEBHOOK_SECRETS="s", ONBOARDING_ENCRYPTION_KEY_FILE=str(key_file),
        TEMPORAL_ADDRESS="127.0.0.1:1", LOG_LEVEL="WARNING",
    )
    try:
        done = subprocess.run(PROCESSES[process], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process} kept running with a malformed key file")
    assert done.returncode == EXIT_CONFIGURATION, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"{process}: configuration error: "), done.stderr
    assert str(key_file) in lines[0] or "key" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_the_receiver_refuses_to_start_without_a_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_"))}
    done = subprocess.run(
        [sys.executable, "-m", "webhook_receiver", "--port", "0"], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=30,
    )
    assert done.returncode == EXIT_CONFIGURATION
    assert done.stderr.strip() == "webhook_receiver: configuration error: IRON_WEBHOOK_SECRETS: no webhook secret: set it (comma-separated to accept several)"

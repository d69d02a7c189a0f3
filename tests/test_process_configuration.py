"""One settings model per process: the environment means the same to every process, and a
process with a configuration it cannot use stops at start with one line,
`configuration: <VARIABLE>: <what is wrong>`, and one exit code, the same in every process."""

from __future__ import annotations

import base64
import json
import tempfile
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codec_server.app import CodecServerSettings
import starter
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
    assert configuration_message(short.value).startswith("configuration: ONBOARDING_CODEC_TOKEN: ")


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

EVENTS_SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()

# Each process as an operator starts it; a configuration it cannot use must stop it at start.
PROCESSES = {
    "webhook_receiver": [sys.executable, "-m", "webhook_receiver", "--port", "0"],
    "worker": [sys.executable, str(REPO_ROOT / "worker.py")],
    "codec_server": [sys.executable, "-m", "codec_server", "--port", "0"],
    "starter": [sys.executable, str(REPO_ROOT / "starter.py"), "status", "cust-42"],
    "partner_backend": [sys.executable, "-m", "demo.partner_backend", "--port", "0"],
    "onboarding_api": [sys.executable, "-m", "onboarding_api", "--port", "0"],
    "iron_sandbox": [sys.executable, "-m", "iron_sandbox", "--port", "0"],
    "webhook_check": [sys.executable, "-m", "webhook_receiver", "check", "--public-url", "http://127.0.0.1:9/webhooks/iron"],
}
# The processes that read the payload keys (the sandbox stands for Iron, the check only asks Iron,
# and the partner's backend signs through the HTTP API).
READ_KEYS = sorted(set(PROCESSES) - {"iron_sandbox", "webhook_check", "partner_backend"})
# A keys file the API can use, so its other settings are what a test gets wrong.
API_KEYS_FILE = Path(tempfile.mkdtemp()) / "api-keys.json"
API_KEYS_FILE.write_text(json.dumps({"keys": [{"name": "t", "sha256": "a" * 64, "sub_partner_id": None}]}))


def run_with(process: str, **env: str) -> subprocess.CompletedProcess:
    """`process` started with a clean environment, nothing reachable, and `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_"))}
    clean.update(
        IRON_API_KEY="k", IRON_WEBHOOK_SECRETS="s", ONBOARDING_EVENTS_SECRET=EVENTS_SECRET,
        TEMPORAL_ADDRESS="127.0.0.1:1", LOG_LEVEL="WARNING", ONBOARDING_API_KEYS_FILE=str(API_KEYS_FILE),
        ONBOARDING_API_URL="http://127.0.0.1:9", ONBOARDING_API_KEY="oak_test",
    )
    clean.update(env)
    try:
        return subprocess.run(PROCESSES[process], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process} kept running with {sorted(env)} unusable")


def assert_one_configuration_line(done: subprocess.CompletedProcess, variable: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == EXIT_CONFIGURATION, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"configuration: {variable}: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


@pytest.mark.parametrize("process", READ_KEYS)
@pytest.mark.parametrize("problem", sorted(MALFORMED_KEY_FILES))
def test_a_malformed_key_file_stops_every_process_with_one_line(process, problem, tmp_path):
    """Before: the receiver started and answered 503 to every delivery; the worker printed a
    traceback; the starter exited 7 and the services 2, and neither line named the variable."""
    key_file = _malformed_key_file(tmp_path, MALFORMED_KEY_FILES[problem])
    line = assert_one_configuration_line(
        run_with(process, ONBOARDING_ENCRYPTION_KEY_FILE=str(key_file)), "ONBOARDING_ENCRYPTION_KEY_FILE"
    )
    assert str(key_file) in line or "key" in line


# (process, variable, value): a number, a URL or a secret no process can use.
UNUSABLE_SETTINGS = [
    ("worker", "ONBOARDING_ACTIVITIES_PER_SECOND", "fast"),
    ("worker", "IRON_BASE_URL", "api.iron.xyz/api"),
    ("webhook_receiver", "ONBOARDING_WEBHOOK_MAX_BYTES", "lots"),
    ("webhook_receiver", "IRON_BASE_URL", "ftp://api.iron.xyz/api"),
    ("codec_server", "ONBOARDING_CODEC_BODY_TIMEOUT_SECONDS", "soon"),
    ("starter", "IRON_TIMEOUT_SECONDS", "soon"),
    ("starter", "IRON_BASE_URL", "api.iron.xyz/api"),
    ("starter", "ONBOARDING_EVENTS_URL", "not a url"),
    ("partner_backend", "ONBOARDING_EVENTS_SECRET", "whsec_tooshort"),
    ("onboarding_api", "ONBOARDING_API_MAX_BODY_BYTES", "lots"),
    ("onboarding_api", "ONBOARDING_API_WAIT_MAX_SECONDS", "forever"),
    ("onboarding_api", "IRON_BASE_URL", "api.iron.xyz/api"),
    ("onboarding_api", "ONBOARDING_API_KEYS_FILE", "/nonexistent/api-keys.json"),
    ("iron_sandbox", "IRON_SANDBOX_PORT", "eighty"),
    ("iron_sandbox", "IRON_SANDBOX_PUBLIC_URL", "sandbox.example"),
    ("webhook_check", "IRON_TIMEOUT_SECONDS", "soon"),
]


@pytest.mark.parametrize("process,variable,value", UNUSABLE_SETTINGS, ids=[f"{p}-{v}" for p, v, _ in UNUSABLE_SETTINGS])
def test_an_unusable_number_or_url_stops_every_process_with_one_line(process, variable, value):
    """Before: the starter and the sandbox printed tracebacks or went on (exit 1, or
    refused requests later), the services exited 2 with `<program>: configuration error: ...`."""
    line = assert_one_configuration_line(run_with(process, **{variable: value}), variable)
    if "SECRET" not in variable:
        assert value in line  # what was read, so the typo is visible


def test_configuration_has_one_exit_code_of_its_own():
    """The starter's bad input (a person's typo) is 2, as is argparse's usage error in every
    process: configuration, which a deployment fixes, is another code, the same everywhere."""
    assert starter.EXIT_CONFIGURATION == EXIT_CONFIGURATION
    others = {starter.EXIT_OK, starter.EXIT_UNEXPECTED, starter.EXIT_BAD_INPUT, starter.EXIT_NOT_FOUND,
              starter.EXIT_REJECTED, starter.EXIT_UNREACHABLE, starter.EXIT_START_DATA_DIFFERS,
              starter.EXIT_WAIT_TIMED_OUT}
    assert EXIT_CONFIGURATION not in others
    from tests.readme import section

    configuration = section("Configuration", level=3)
    assert f"exit code {EXIT_CONFIGURATION}" in configuration
    assert "configuration: ONBOARDING_ENCRYPTION_KEY_FILE: " in configuration


def test_the_receiver_refuses_to_start_without_a_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_"))}
    done = subprocess.run(
        [sys.executable, "-m", "webhook_receiver", "--port", "0"], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=30,
    )
    assert done.returncode == EXIT_CONFIGURATION
    assert done.stderr.strip() == "configuration: IRON_WEBHOOK_SECRETS: no webhook secret: set it (comma-separated to accept several)"

"""`python starter.py ...` against the running pieces: a dev server, the sandbox (autopilot),
the webhook receiver and a worker, each its own process, as an operator would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from demo.stack import Stack, StackConfig
from runtime.process import EXIT_CONFIGURATION
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("stack"), autopilot_seconds=1.0)) as running:
        running.start_all()
        yield running


def starter(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "starter.py", *args], cwd=REPO_ROOT, env=stack.env(), capture_output=True, text=True, timeout=60
    )


def status(stack: Stack, external_id: str) -> dict:
    run = starter(stack, "status", external_id, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def wait_for_phase(stack: Stack, external_id: str, phase: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = status(stack, external_id)
        if state["phase"] == phase:
            return state
        time.sleep(0.5)
    raise AssertionError(f"{external_id} never reached {phase}: {state.get('phase')}")


def test_an_operator_drives_an_onboarding_with_the_cli(stack):
    external_id = f"cli-{uuid.uuid4().hex[:8]}"
    first = starter(stack, "start", external_id, "--email", f"{external_id}@example.com", "--name", "Cli User")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"started onboarding-{external_id}")
    again = starter(stack, "start", external_id, "--email", f"{external_id}@example.com", "--name", "Cli User")
    assert again.returncode == 0 and "already running with the same start data" in again.stdout

    state = wait_for_phase(stack, external_id, "AwaitingSignings")
    for field in ("phase", "customer_status", "identification_status", "iron_customer_id", "identification_id",
                  "identification_url", "required_signings", "cycle", "outcome", "needs_attention"):
        assert field in state
    assert {"id", "url", "display_name", "signed"} <= set(state["required_signings"][0])

    listing = starter(stack, "sign", external_id)
    assert listing.returncode == 0 and all(s["id"] in listing.stdout for s in state["required_signings"])
    signed = starter(stack, "sign", external_id, "--all")
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.count("signed ") == len(state["required_signings"])

    active = wait_for_phase(stack, external_id, "Active")
    assert active["outcome"] == "Active"
    # The contact came by reference: the cycle ends in the run that created the customer, and
    # the same start still attaches while another one is still told it differs.
    assert status(stack, external_id)["runs"] == 1
    same = starter(stack, "start", external_id, "--email", f"{external_id}@example.com", "--name", "Cli User")
    assert same.returncode == 0 and "same start data" in same.stdout, same.stderr
    other = starter(stack, "start", external_id, "--email", f"{external_id}@example.com", "--name", "Other User")
    assert other.returncode == 6 and "--name" in other.stderr, other.stderr
    human = starter(stack, "status", external_id)
    assert "phase            Active" in human.stdout and "recent history:" in human.stdout

    rejected = starter(stack, "restart", external_id)
    assert rejected.returncode == 4 and "nothing to restart" in rejected.stderr
    adopt = starter(stack, "adopt", active["iron_customer_id"])
    assert adopt.returncode == 0 and f"attached to onboarding-{external_id}" in adopt.stdout
    refreshed = starter(stack, "refresh", external_id)
    assert refreshed.returncode == 0 and "Active" in refreshed.stdout


def test_bad_input_gets_a_clear_error_and_starts_nothing(stack):
    missing = starter(stack, "status", f"nobody-{uuid.uuid4().hex[:6]}")
    assert missing.returncode == 3 and "no onboarding" in missing.stderr

    spaced = starter(stack, "start", "has space", "--email", "a@example.com")
    assert spaced.returncode == 2 and "EXTERNAL_ID" in spaced.stderr

    no_data = starter(stack, "start", f"p-{uuid.uuid4().hex[:6]}", "--email", "a@example.com", "--identification", "person")
    assert no_data.returncode == 2 and "--identification-file" in no_data.stderr
    assert "document_ref" not in no_data.stderr, "an internal name means nothing to the person at the terminal"

    no_token = starter(stack, "start", f"t-{uuid.uuid4().hex[:6]}", "--email", "a@example.com", "--identification", "token")
    assert no_token.returncode == 2 and "token" in no_token.stderr

    external_id = f"doc-{uuid.uuid4().hex[:6]}"
    person = starter(
        stack, "start", external_id, "--email", "p@example.com", "--identification", "person",
        "--identification-file", str(REPO_ROOT / "samples" / "person_identification.json"),
    )
    assert person.returncode == 0, person.stderr
    state = wait_for_phase(stack, external_id, "AwaitingSignings")
    assert state["identification_kind"] == "Person"


# --- bad input is refused at the door: exit 2, the flag and the rule, nothing started ---------


def _files(tmp_path):
    not_utf8 = tmp_path / "latin1.json"
    not_utf8.write_bytes('{"first_name": "Zo\xeb"}'.encode("latin-1"))
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"first_name": ')
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:  # sparse: above the limit without writing 64 MiB
        f.truncate(65 * 1024 * 1024)
    return {"not_utf8": not_utf8, "not_json": not_json, "deep": deep, "huge": huge, "missing": tmp_path / "absent.json"}


BAD_INPUT = [
    # (arguments after the command and EXTERNAL_ID, the flag named, words of the rule)
    (["start", "{id}", "--email", "not-an-email"], "--email", "not a valid email address"),
    (["start", "{id}", "--email", "a@b"], "--email", "not a valid email address"),
    (["start", "{id}", "--email", "a@example.com", "--name", "Ada\nLovelace"], "--name", "printable"),
    (["start", "{id}", "--email", "a@example.com", "--name", "A" * 201], "--name", "at most 200"),
    (["start", "{id}", "--email", "a@example.com", "--name", "   "], "--name", "must not be empty"),
    (["start", "x" * 201, "--email", "a@example.com"], "EXTERNAL_ID", "200 printable characters"),
    (["start", "{id}\u0007", "--email", "a@example.com"], "EXTERNAL_ID", "control characters"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "person"], "--identification-file", "is required with --identification person"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "business"], "--identification-file", "is required with --identification business"),
    (["start", "{id}", "--email", "a@example.com", "--identification-file", "samples/person_identification.json"], "--identification-file", "person or business only"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "token"], "--token", "is required"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "token", "--token", "t"], "--intended-use", "is required"),
    (["start", "{id}", "--email", "a@example.com", "--token", "t"], "--token", "goes with --identification token"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "token", "--token", "a b", "--intended-use", "Investing"], "--token", "spaces"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "person", "--identification-file", "{missing}"], "--identification-file", "does not exist"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "person", "--identification-file", "{not_json}"], "--identification-file", "not valid JSON"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "person", "--identification-file", "{not_utf8}"], "--identification-file", "not UTF-8"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "person", "--identification-file", "{deep}"], "--identification-file", "nests deeper than"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "person", "--identification-file", "{huge}"], "--identification-file", "above the limit"),
    (["start", "{id}", "--email", "a@example.com", "--identification", "business", "--identification-file", "samples/person_identification.json"], "--identification-file", "not Business identification data"),
    (["restart", "{id}", "--identification-file", "samples/person_identification.json"], "--identification-file", "needs --identification"),
    (["restart", "{id}", "--identification", "person"], "--identification-file", "is required"),
    (["restart", "{id}", "--reason", "why\x1b[31m"], "--reason", "printable"),
    (["amend", "{id}"], "amend", "nothing to amend"),
    (["amend", "{id}", "--email", "ada at example.com"], "--email", "not a valid email address"),
    (["sign", "{id}", "c1", "--all"], "--all", "not both"),
    (["adopt", "not-an-iron-id"], "IRON_CUSTOMER_ID", "UUID"),
]


@pytest.mark.parametrize("argv,flag,rule", BAD_INPUT, ids=[f"{a[0]}-{i}" for i, (a, _, _) in enumerate(BAD_INPUT)])
def test_bad_input_is_refused_before_anything_starts(stack, tmp_path, argv, flag, rule):
    external_id = f"bad-{uuid.uuid4().hex[:8]}"
    values = {"id": external_id, **{k: str(v) for k, v in _files(tmp_path).items()}}
    run = starter(stack, *[a.format(**values) if "{" in a else a for a in argv])
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, f"one line, not a traceback: {run.stderr}"
    assert f"{flag}:" in lines[0] and rule in lines[0], lines[0]
    assert starter(stack, "status", external_id).returncode == 3, "nothing was started"


@pytest.mark.parametrize("dots", [".", ".."])
def test_dot_segments_are_refused_as_external_ids_before_anything_connects(dots):
    """Before: `start ..` went on to Temporal (here unreachable: exit 5), and with a stack
    started an onboarding whose look-up asked Iron `GET /api/external`."""
    from demo.stack import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "IRON_", "TEMPORAL_"))}
    env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    for argv in (["start", dots, "--email", "a@example.com"], ["status", dots], ["wait", dots, "--phase", "Active"],
                 ["sign", dots, "--all"], ["restart", dots], ["refresh", dots]):
        run = subprocess.run([sys.executable, "starter.py", *argv], cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2 and len(lines) == 1, (argv, run.returncode, run.stderr)
        assert lines[0].startswith("error: EXTERNAL_ID:") and "`.` or `..`" in lines[0], lines[0]


def test_adopting_an_unknown_iron_customer_is_not_found(stack):
    run = starter(stack, "adopt", str(uuid.uuid4()))
    assert run.returncode == 3 and run.stderr.startswith("error: Iron has no customer"), run.stderr


def test_a_second_start_with_other_data_says_so_and_changes_nothing(stack):
    external_id = f"twice-{uuid.uuid4().hex[:8]}"
    first = starter(stack, "start", external_id, "--email", "ada@example.com", "--name", "Ada Lovelace")
    assert first.returncode == 0, first.stderr
    # The same data, spelled as email-validator normalises it, is the same start: attach.
    same = starter(stack, "start", external_id, "--email", "ada@EXAMPLE.com", "--name", " Ada Lovelace ")
    assert same.returncode == 0 and "already running with the same start data" in same.stdout, same.stderr
    other = starter(stack, "start", external_id, "--email", "bob@example.com", "--name", "Ada Lovelace")
    assert other.returncode == 6, (other.stdout, other.stderr)
    assert "different --email" in other.stderr and "nothing changed" in other.stderr and "amend" in other.stderr
    assert "bob@example.com" not in other.stderr and "ada@example.com" not in other.stderr
    kind = starter(stack, "start", external_id, "--email", "ada@example.com", "--name", "Ada Lovelace",
                   "--identification", "token", "--token", "share-token", "--intended-use", "Investing")
    assert kind.returncode == 6 and "different --identification" in kind.stderr, kind.stderr


def test_starting_twice_with_a_data_file_stores_it_once(stack):
    external_id = f"file-{uuid.uuid4().hex[:8]}"
    documents = Path(stack.env()["ONBOARDING_DOCUMENT_DIR"])
    before = set(documents.rglob("*.doc")) if documents.exists() else set()
    args = ["start", external_id, "--email", "p@example.com", "--identification", "person",
            "--identification-file", str(REPO_ROOT / "samples" / "person_identification.json")]
    assert starter(stack, *args).returncode == 0
    again = starter(stack, *args)
    assert again.returncode == 0 and "same start data" in again.stdout, again.stderr
    assert len(set(documents.rglob("*.doc")) - before) == 2, "the contact and the data file, by the first start alone"


async def test_every_start_tells_its_story_on_the_ui_first_tab(stack, monkeypatch):
    from temporalio.client import Client

    from contracts.start_metadata import START_DIGEST_MEMO
    from runtime.temporal import data_converter

    external_id = f"story-{uuid.uuid4().hex[:8]}"
    run = starter(stack, "start", external_id, "--email", "grace.hopper@example.com", "--name", "Grace Hopper")
    assert run.returncode == 0, run.stderr
    for key, value in stack.env().items():
        if key.startswith("ONBOARDING_ENCRYPTION"):
            monkeypatch.setenv(key, value)  # undone after the test: later tests choose their own keys
    client = await Client.connect(stack.temporal_address, data_converter=data_converter())
    description = await client.get_workflow_handle(f"onboarding-{external_id}").describe()
    summary, details = await description.static_summary(), await description.static_details()
    assert summary and external_id in summary and "Link" in summary
    assert details and f"starter.py status {external_id}" in details and "amend" in details
    memo = await description.memo()
    assert set(memo[START_DIGEST_MEMO]) >= {"email", "name", "customer_type", "identification"}
    for personal in ("grace", "Grace", "Hopper", "example.com"):
        assert personal not in summary and personal not in details and personal not in json.dumps(memo)


# --- clients that cannot work: one line, what to set, a documented exit code -----------------


def test_clients_without_the_right_configuration_get_one_line(stack, tmp_path):
    external_id = f"cfg-{uuid.uuid4().hex[:8]}"
    assert starter(stack, "start", external_id, "--email", "c@example.com").returncode == 0
    base = stack.env()

    def run(*args, **env):
        merged = {**base, **env}
        for key in [k for k, v in merged.items() if v is None]:
            del merged[key]
        return subprocess.run([sys.executable, "starter.py", *args], cwd=REPO_ROOT, env=merged,
                              capture_output=True, text=True, timeout=60)

    no_keys = run("status", external_id, ONBOARDING_ENCRYPTION_KEY_FILE=None)
    malformed = tmp_path / "keys.json"
    malformed.write_text('{"current": "k1", "keys": {"k1": "not base64!"}}')
    malformed.chmod(0o600)
    bad_file = run("status", external_id, ONBOARDING_ENCRYPTION_KEY_FILE=str(malformed))
    other = tmp_path / "other-keys.json"
    from data_protection.keys import generate_key_file

    generate_key_file(other)
    wrong_key = run("status", external_id, ONBOARDING_ENCRYPTION_KEY_FILE=str(other))
    from demo.stack import free_port

    not_utf8 = tmp_path / "latin1-keys.json"
    not_utf8.write_bytes('{"current": "k\xe9"}'.encode("latin-1"))
    deep = tmp_path / "deep-keys.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for path in (not_utf8, deep):
        path.chmod(0o600)
    unreadable = [run("status", external_id, ONBOARDING_ENCRYPTION_KEY_FILE=str(p)) for p in (not_utf8, deep)]
    unreachable = run("status", external_id, TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    namespace = run("status", external_id, TEMPORAL_NAMESPACE="no-such-namespace")
    bad_number = run("status", external_id, IRON_TIMEOUT_SECONDS="soon")
    bad_url = run("status", external_id, IRON_BASE_URL="api.iron.xyz/api")
    # A configuration error is the line every process prints, naming the variable first, and
    # the code every process exits with (before: exit 7 here, 2 in the services, and a bad key
    # file's line did not name the variable).
    configuration = EXIT_CONFIGURATION
    expected = [
        (no_keys, configuration, "configuration: ONBOARDING_ENCRYPTION_KEY_FILE: not set"),
        (bad_file, configuration, "configuration: ONBOARDING_ENCRYPTION_KEY_FILE: key "),
        (bad_file, configuration, "not valid base64"),
        (wrong_key, configuration, "configuration: ONBOARDING_ENCRYPTION_KEY_FILE: cannot decrypt"),
        (unreadable[0], configuration, "configuration: ONBOARDING_ENCRYPTION_KEY_FILE: key file"),
        (unreadable[0], configuration, "not UTF-8"),
        (unreadable[1], configuration, "nests too deep"),
        (bad_number, configuration, 'configuration: IRON_TIMEOUT_SECONDS: '),
        (bad_url, configuration, 'configuration: IRON_BASE_URL: must be an http or https URL'),
        (unreachable, 5, "TEMPORAL_ADDRESS"),
        (namespace, configuration, "configuration: TEMPORAL_NAMESPACE: "),
    ]
    for result, code, words in expected:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == code and len(lines) == 1 and words in lines[0], (code, result.returncode, result.stderr)
        assert "Traceback" not in result.stderr

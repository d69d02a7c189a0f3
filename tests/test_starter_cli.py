"""`python starter.py ...` against the running pieces: a dev server, the sandbox (autopilot),
the webhook receiver and a worker, each its own process, as an operator would run them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from demo.stack import Stack, StackConfig
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
    again = starter(stack, "start", external_id, "--email", f"{external_id}@example.com")
    assert again.returncode == 0 and "already running" in again.stdout

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
    assert spaced.returncode == 2 and "external_id" in spaced.stderr

    no_data = starter(stack, "start", f"p-{uuid.uuid4().hex[:6]}", "--email", "a@example.com", "--identification", "person")
    assert no_data.returncode == 2 and "document_ref" in no_data.stderr

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

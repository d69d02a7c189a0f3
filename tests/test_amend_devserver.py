"""`starter.py amend` on a live stack: an onboarding whose Iron customer cannot be created yet
(the sandbox refuses every create) has its email corrected, then the customer is created with
the corrected email; a start with the corrected data attaches, one with the old data is told
it differs; once the customer exists, amend is rejected.

The starter's side (the CLI, `amend_onboarding`, the `start_digest` memo) is here; the
workflow's side (the `amend` update with its validator, the corrected input used for the
create, the memo kept true with `contracts.start_metadata.amended_start_digest` and carried
through continue-as-new) comes with the workflow rewrite. Until then this test is expected to
fail, strictly: the day it passes, pytest reports XPASS as a failure, and the mark goes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import pytest

from demo.stack import Stack, StackConfig
from iron_sandbox.testing import SandboxControl
from tests.conftest import REPO_ROOT



@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("amend"), autopilot_seconds=1.0)) as running:
        running.start_all()
        yield running


def starter(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "starter.py", *args], cwd=REPO_ROOT, env=stack.env(), capture_output=True, text=True, timeout=60
    )


def state(stack: Stack, external_id: str) -> dict:
    run = starter(stack, "status", external_id, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_amend_corrects_the_start_data_before_the_customer_exists(stack):
    control = SandboxControl(stack.sandbox_root)
    external_id = f"amend-{uuid.uuid4().hex[:8]}"
    asyncio.run(control.set_faults(error_rate=1.0, error_statuses=[503], paths=["/customers"], methods=["POST"]))
    try:
        started = starter(stack, "start", external_id, "--email", "ada@exmaple.com", "--name", "Ada Lovelace")
        assert started.returncode == 0, started.stderr
        time.sleep(2)
        assert state(stack, external_id)["iron_customer_id"] is None, "Iron refuses the create for now"
        amended = starter(stack, "amend", external_id, "--email", "ada@example.com")
        assert amended.returncode == 0, amended.stderr
        assert "email" in amended.stdout
    finally:
        asyncio.run(control.clear_faults())

    deadline = time.monotonic() + 60
    while state(stack, external_id)["iron_customer_id"] is None:
        assert time.monotonic() < deadline, "the customer was never created"
        time.sleep(0.5)
    customers = [c for c in asyncio.run(control.customers()) if c.get("external_id") == external_id]
    assert len(customers) == 1 and customers[0]["email"] == "ada@example.com", customers

    corrected = starter(stack, "start", external_id, "--email", "ada@example.com", "--name", "Ada Lovelace")
    assert corrected.returncode == 0 and "same start data" in corrected.stdout, corrected.stderr
    stale = starter(stack, "start", external_id, "--email", "ada@exmaple.com", "--name", "Ada Lovelace")
    assert stale.returncode == 6 and "--email" in stale.stderr, stale.stderr

    too_late = starter(stack, "amend", external_id, "--name", "Augusta Ada King")
    assert too_late.returncode == 4, (too_late.stdout, too_late.stderr)
    assert len(too_late.stderr.strip().splitlines()) == 1

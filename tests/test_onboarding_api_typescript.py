"""A real client in another language: TypeScript types generated from the committed contract
(`openapi-typescript`), a typed `openapi-fetch` client type-checked against them (`tsc`), and a
backend written with it (`tests/typescript_client/lifecycle.ts`, run by `tsx`) that takes one
customer from start to `Active` against a live stack, each part its own process: the dev server,
the Iron sandbox in autopilot, the webhook receiver, the HTTP API and a worker that sends the
engine's signed events to the TypeScript backend. It starts with `?wait=identification_url`, reads
the customer, signs the documents the `AwaitingSignings` event names, and waits for `Active`.

The npm packages are pinned in `tests/typescript_client/package-lock.json` and installed with
`npm ci` (Node 20 and npm from the machine) into `tests/typescript_client/node_modules`, which git
ignores; the generated types go to `generated/`, ignored too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from demo.stack import Stack, StackConfig
from tests.conftest import REPO_ROOT

CLIENT_DIR = REPO_ROOT / "tests" / "typescript_client"


def npm(*arguments: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["npm", *arguments], cwd=CLIENT_DIR, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def typescript_client():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed (Node 20): the TypeScript client is part of make test")
    installed = npm("ci", "--no-audit", "--no-fund", "--prefer-offline")
    assert installed.returncode == 0, installed.stderr[-3000:]
    generated = npm("run", "-s", "generate")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    checked = npm("run", "-s", "check")  # the client's calls type-check against the contract
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return CLIENT_DIR


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("typescript"), autopilot_seconds=1.0, persistent=False)
    with Stack(config) as running:
        running.start_temporal()
        running.start_sandbox("--log-level", "warning")
        running.start_receiver()
        running.start_api()
        running.start_worker()  # delivers events to ONBOARDING_EVENTS_URL: the TypeScript backend's port
        yield running


@pytest.mark.timeout(240)
def test_a_typescript_backend_takes_a_customer_to_active_through_the_api(typescript_client, stack):
    external_id = f"ts-{uuid.uuid4().hex[:8]}"
    run = npm("run", "-s", "lifecycle", timeout=180, env={
        "API_URL": stack.api_url,
        "API_KEY": stack.secrets["api_key"],
        "EVENTS_PORT": str(stack.config.events_port),
        "EVENTS_SECRET": stack.secrets["events_secret"],
        "EXTERNAL_ID": external_id,
    })
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["started"] == 201 and seen["identification_url"].startswith("http")
    assert seen["read_phase"] in ("AwaitingIdentification", "AwaitingSignings", "Active")
    assert seen["final_phase"] == "Active"
    assert len(seen["signed"]) == 2, seen  # the sandbox's two documents, each signed on the event
    phases = [event.split(":", 1)[1] for event in seen["events"]]
    assert "AwaitingSignings" in phases, seen  # the event the documents were signed on

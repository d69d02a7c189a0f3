"""`python -m webhook_receiver check` against the real sandbox (Iron's webhooks API and its signed
pings) and a real receiver serving HTTP on loopback; and a webhook about a customer Iron has
drifted (a status its spec does not list) answered like any other, on a real dev server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from contracts import search_attributes
from contracts.messages import SIGNAL_IRON_EVENT, WORKFLOW_TYPE, IronEventSignal, OnboardingInput, workflow_id_for
from iron_client.models import WebhookEventType
from iron_client.webhooks import build_container, sign
from iron_sandbox.testing import SandboxServer, ServerThread
from runtime.temporal import data_converter
from tests.sandbox_helpers import WEBHOOK_SECRET, fast_config, new_key
from webhook_receiver import ReceiverSettings, create_app

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(fast_config(webhook_max_attempts=1)) as server:
        yield server


@pytest.fixture(scope="module")
def receiver():
    """The real receiver app on a real port; pings never need Temporal."""
    app = create_app(ReceiverSettings(webhook_secrets=(WEBHOOK_SECRET,)))
    with ServerThread(app) as server:
        yield server


def public_url(receiver: ServerThread) -> str:
    return receiver.root_url + "/webhooks/iron"


@pytest.fixture
async def webhook(sandbox: SandboxServer, receiver: ServerThread):
    """Iron's webhook for the receiver, freshly registered for each case."""
    await sandbox.control.set_webhooks(targets=[public_url(receiver)])
    async with sandbox.client() as iron:
        (registered,) = await iron.all_webhooks()
        yield registered


def run_check(sandbox: SandboxServer, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("IRON_", "ONBOARDING_"))}
    environ.update(sandbox.env())
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "webhook_receiver", "check", *args], cwd=REPO_ROOT, env=environ,
        capture_output=True, text=True, timeout=60,
    )


async def test_check_passes_when_iron_delivers_the_ping(sandbox, receiver, webhook) -> None:
    result = run_check(sandbox, env={"ONBOARDING_WEBHOOK_PUBLIC_URL": public_url(receiver)})
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("ok: ") and webhook.id in line and "confirmed Iron's ping" in line
    # The ping really went through the receiver: the sandbox's delivery log shows it answered 200.
    pings = [d for d in await sandbox.control.deliveries() if d["type"] == "ping"]
    assert pings and pings[-1]["outcome"] == "delivered" and pings[-1]["status_code"] == 200


async def test_check_fails_for_a_disabled_webhook(sandbox, receiver, webhook) -> None:
    async with sandbox.client() as iron:
        await iron.update_webhook(webhook.id, enabled=False)
    result = run_check(sandbox, "--public-url", public_url(receiver))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "disabled" in line and webhook.id in line, line


async def test_check_fails_for_a_missing_topic(sandbox, receiver, webhook) -> None:
    async with sandbox.client() as iron:
        await iron.update_webhook(
            webhook.id, topics=[WebhookEventType.CUSTOMER_STATUS, WebhookEventType.CUSTOMER_CREATED]
        )
    result = run_check(sandbox, "--public-url", public_url(receiver))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "does not subscribe to IdentificationStatus" in line, line


async def test_check_fails_for_a_wrong_url(sandbox, receiver, webhook) -> None:
    async with sandbox.client() as iron:
        await iron.update_webhook(webhook.id, url="https://old-host.example/webhooks/iron")
    result = run_check(sandbox, "--public-url", public_url(receiver))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"no Iron webhook points at {public_url(receiver)}" in line and "old-host.example" in line, line


async def test_check_fails_when_the_receiver_refuses_iron_signature(sandbox, receiver, webhook) -> None:
    await sandbox.control.set_webhooks(secret="not-the-receivers-secret")
    try:
        result = run_check(sandbox, "--public-url", public_url(receiver), "--timeout", "2")
    finally:
        await sandbox.control.set_webhooks(secret=WEBHOOK_SECRET)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "did not confirm" in line and "HTTP 401" in line, line


def test_check_usage_errors(sandbox) -> None:
    result = run_check(sandbox)
    assert result.returncode == 2 and "ONBOARDING_WEBHOOK_PUBLIC_URL" in result.stderr
    unreachable = run_check(sandbox, "--public-url", "http://127.0.0.1:9/webhooks/iron",
                            env={"IRON_BASE_URL": "http://127.0.0.1:9/api"})
    assert unreachable.returncode == 5 and "cannot list Iron's webhooks" in unreachable.stderr


async def test_receiver_remembers_only_verified_pings(receiver) -> None:
    nonce = str(uuid.uuid4())
    body = json.dumps(build_container("ping", nonce, "Ping", {"id": str(uuid.uuid4())},
                                      timestamp=datetime.now(timezone.utc).isoformat())).encode()
    async with httpx.AsyncClient(base_url=receiver.root_url) as http:
        forged = await http.post("/webhooks/iron", content=body, headers=sign("wrong-secret", body))
        assert forged.status_code == 401
        assert (await http.get(f"/webhooks/iron/pings/{nonce}")).status_code == 404
        accepted = await http.post("/webhooks/iron", content=body, headers=sign(WEBHOOK_SECRET, body))
        assert accepted.status_code == 200
        seen = await http.get(f"/webhooks/iron/pings/{nonce}")
        assert seen.status_code == 200 and seen.json()["customer_id"] == nonce


# --- a drifted customer's webhook -------------------------------------------------------------------


@workflow.defn(name=WORKFLOW_TYPE)
class RecordingOnboarding:
    """The real workflow's name and signal, recording what it receives."""

    def __init__(self) -> None:
        self._events: list[IronEventSignal] = []

    @workflow.run
    async def run(self, input: OnboardingInput) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=SIGNAL_IRON_EVENT)
    def iron_event(self, event: IronEventSignal) -> None:
        self._events.append(event)

    @workflow.query(name="events")
    def events(self) -> list[IronEventSignal]:
        return list(self._events)


async def test_a_webhook_about_a_drifted_customer_is_signalled_like_any_other(
    sandbox: SandboxServer, temporal_cli_path: str
) -> None:
    import asyncio

    external_id = f"drift-{uuid.uuid4()}"
    async with sandbox.client() as iron:
        customer = await iron.create_customer(
            customer_type="Person", email="drift@example.com", external_id=external_id, idempotency_key=new_key()
        )
    response = httpx.post(f"{sandbox.root_url}/_sim/customers/{customer.id}/drift", json={"status": "Frozen"})
    assert response.status_code == 200

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path, data_converter=data_converter(),
        search_attributes=search_attributes.ALL,
    )
    try:
        async with Worker(env.client, task_queue="drift-receiver", workflows=[RecordingOnboarding],
                          workflow_runner=UnsandboxedWorkflowRunner()):
            handle = await env.client.start_workflow(
                WORKFLOW_TYPE, OnboardingInput(external_id=external_id, email="drift@example.com"),
                id=workflow_id_for(external_id), task_queue="drift-receiver",
            )
            settings = ReceiverSettings(webhook_secrets=(WEBHOOK_SECRET,), task_queue="drift-receiver")
            async with sandbox.client() as receiver_iron:
                app = create_app(settings, env.client, receiver_iron)
                body = json.dumps(build_container(
                    "customer_status", customer.id, "CustomerStatus", {"id": customer.id, "status": "Frozen"},
                    timestamp=datetime.now(timezone.utc).isoformat(),
                )).encode()
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
                    answer = await http.post("/webhooks/iron", content=body, headers=sign(WEBHOOK_SECRET, body))
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "signalled"
            for _ in range(100):
                events = await handle.query("events", result_type=list[IronEventSignal])
                if events:
                    break
                await asyncio.sleep(0.05)
            assert [(e.type, e.status) for e in events] == [("customer_status", "Frozen")]
            await handle.terminate()
    finally:
        await env.shutdown()

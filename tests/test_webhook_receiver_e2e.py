"""The webhook receiver as operators run it: `python -m webhook_receiver` in its own process,
over real HTTP, in front of a real Temporal dev server, with the Iron sandbox both answering
customer lookups and delivering its own signed webhooks to it. The real `CustomerOnboarding`
workflow, with its activities on the sandbox, is what those webhooks drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.iron_activities import IronActivities
from data_protection.documents import FilesystemDocumentStore
from iron_client.webhooks import sign
from demo.stack import free_port
from iron_sandbox.testing import SandboxServer
from runtime.process import EXIT_CONFIGURATION
from runtime.temporal import data_converter
from starter import start_onboarding
from tests.test_webhook_receiver import (
    RecordingOnboarding,
    TcpProxy,
    delivered,
    new_customer,
    status_message,
    webhook,
)
from tests.workflow_harness import WEBHOOK_ONLY_TIMINGS
from worker import build_worker
from contracts import search_attributes
from contracts.messages import (
    QUERY_STATE,
    WORKFLOW_TYPE,
    OnboardingInput,
    OnboardingState,
    Phase,
    workflow_id_for,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO_ROOT = Path(__file__).resolve().parent.parent
RECORDING_QUEUE = "webhook-e2e-recording"
ONBOARDING_QUEUE = "webhook-e2e-onboarding"


class ReceiverProcess:
    """`python -m webhook_receiver` on a free loopback port, its log kept in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = f"{self.url}/webhooks/iron"
        self.log_path = log_path
        self._env = env
        self._proc: subprocess.Popen | None = None

    def start(self) -> "ReceiverProcess":
        # Only what the receiver is meant to read: nothing leaks in from the test's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_"))}
        env.update(self._env, PYTHONUNBUFFERED="1", LOG_FORMAT="json")
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "webhook_receiver", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"receiver exited with {self._proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"receiver did not answer /healthz within 30s:\n{self.log()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc is not None:
            self._log.close()

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events


@contextlib.contextmanager
def receiver_process(env: dict[str, str], log_path: Path) -> Iterator[ReceiverProcess]:
    process = ReceiverProcess(env, log_path).start()
    try:
        yield process
    finally:
        process.stop()


# --- fixtures ---------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def temporal(temporal_cli_path: str) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path,
        data_converter=data_converter(),
        search_attributes=search_attributes.ALL,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def workers(temporal, sandbox, tmp_path_factory) -> AsyncIterator[None]:
    """The real worker (workflow sandboxed, activities on the Iron sandbox) on the queue the
    receiver adopts onto, and the recording stand-in on a queue of its own."""
    async with sandbox.client(timeout_seconds=5) as iron:
        real = build_worker(
            temporal.client,
            IronActivities(iron, FilesystemDocumentStore(tmp_path_factory.mktemp("documents"))),
            task_queue=ONBOARDING_QUEUE,
        )
        recording = Worker(
            temporal.client,
            task_queue=RECORDING_QUEUE,
            workflows=[RecordingOnboarding],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        async with real, recording:
            yield


def receiver_env(temporal: WorkflowEnvironment, sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    return {
        **sandbox.env(),  # IRON_BASE_URL, IRON_API_KEY, IRON_WEBHOOK_SECRETS
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "ONBOARDING_TASK_QUEUE": ONBOARDING_QUEUE,
        **extra,
    }


@pytest.fixture(scope="module")
def receiver(temporal, sandbox, workers, tmp_path_factory) -> Iterator[ReceiverProcess]:
    env = receiver_env(temporal, sandbox, ONBOARDING_WEBHOOK_MAX_BYTES="4096")
    with receiver_process(env, tmp_path_factory.mktemp("receiver") / "receiver.log") as process:
        yield process
    # SIGTERM: requests in flight are answered, then a clean exit (runtime/http_server.py).
    assert process.returncode == 0, process.log()[-3000:]
    assert "Application shutdown complete" in process.log()


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def iron(sandbox):
    async with sandbox.client(timeout_seconds=5) as client:
        yield client


@contextlib.asynccontextmanager
async def sandbox_delivering_to(sandbox: SandboxServer, url: str) -> AsyncIterator[None]:
    """The sandbox sends its webhooks to `url` for the duration of the block."""
    await sandbox.control.set_webhooks(targets=[url])
    try:
        yield
    finally:
        with contextlib.suppress(TimeoutError):
            await sandbox.control.flush_webhooks(timeout=10)
        await sandbox.control.set_webhooks(targets=[])


async def creation_answered(sandbox: SandboxServer, customer_id: str, *, timeout: float = 20.0) -> None:
    """Until the receiver has answered Iron's `customer_created` for this customer (a 200: the
    onboarding that made the customer is not signalled; see the receiver's unit tests)."""
    deadline = time.monotonic() + timeout
    while True:
        answered = [d for d in await sandbox.control.deliveries()
                    if d["customer_id"] == customer_id and d["type"] == "customer_created" and d["outcome"] == "delivered"]
        if answered:
            return
        assert time.monotonic() < deadline, f"customer_created for {customer_id} never answered"
        await asyncio.sleep(0.2)


async def recording_workflow(temporal, iron) -> tuple[str, WorkflowHandle]:
    customer_id, external_id = await new_customer(iron)
    handle = await temporal.client.start_workflow(
        WORKFLOW_TYPE,
        OnboardingInput(external_id=external_id, iron_customer_id=customer_id),
        id=workflow_id_for(external_id),
        task_queue=RECORDING_QUEUE,
    )
    return customer_id, handle


async def wait_for_state(handle: WorkflowHandle, predicate, *, timeout: float = 30.0, what: str) -> OnboardingState:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await handle.query(QUERY_STATE, result_type=OnboardingState)
            if predicate(last):
                return last
        await asyncio.sleep(0.1)
    summary = last.summary() if last else None
    raise AssertionError(f"timed out waiting for {what}; last state {summary}")


# --- over real HTTP ---------------------------------------------------------------------------


async def test_signed_webhook_over_http_signals_the_workflow(receiver, http, temporal, iron, sandbox):
    customer_id, handle = await recording_workflow(temporal, iron)
    body, headers = webhook(*status_message(customer_id), secret=sandbox.config.webhook_secret, webhook_id="e2e-1")
    response = await http.post(receiver.webhook_url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "signalled"
    [event] = await delivered(handle)
    assert (event.type, event.customer_id, event.status, event.webhook_id) == (
        "customer_status", customer_id, "SigningsRequired", "e2e-1",
    )


async def test_refusals_over_http_signal_nothing(receiver, http, temporal, iron, sandbox):
    customer_id, handle = await recording_workflow(temporal, iron)
    secret = sandbox.config.webhook_secret
    body, headers = webhook(*status_message(customer_id), secret=secret)
    forged_body, forged_headers = webhook(*status_message(customer_id), secret="whsec-forged")
    stale_body, stale_headers = webhook(*status_message(customer_id), secret=secret, timestamp=int(time.time()) - 600)
    cases = [
        (401, forged_body, forged_headers),
        (401, stale_body, stale_headers),
        (401, body.replace(b"SigningsRequired", b"Active"), headers),
        (415, body, {**headers, "content-type": "text/plain"}),
        (400, b"{not json", sign(secret, b"{not json")),
        (413, b" " * 4097, sign(secret, b" " * 4097)),
    ]
    for expected, content, hdrs in cases:
        response = await http.post(receiver.webhook_url, content=content, headers=hdrs)
        assert response.status_code == expected, (expected, response.text)

    async def chunked():
        for _ in range(64):
            yield b" " * 1024

    response = await http.post(receiver.webhook_url, content=chunked(), headers=sign(secret, b"{}"))
    assert response.status_code == 413
    assert len(await delivered(handle)) == 0


async def test_health_and_readiness_over_http(receiver, http):
    assert (await http.get(f"{receiver.url}/healthz")).status_code == 200
    ready = await http.get(f"{receiver.url}/readyz")
    assert ready.status_code == 200, ready.text


async def test_log_lines_carry_the_delivery_and_never_the_secret(receiver, http, temporal, iron, sandbox):
    customer_id, _ = await recording_workflow(temporal, iron)
    webhook_id = f"e2e-log-{uuid.uuid4()}"
    secret = sandbox.config.webhook_secret
    body, headers = webhook(*status_message(customer_id), secret=secret, webhook_id=webhook_id)
    assert (await http.post(receiver.webhook_url, content=body, headers=headers)).status_code == 200
    deadline = time.monotonic() + 5
    while not (lines := [e for e in receiver.log_events() if e.get("webhook_id") == webhook_id]):
        assert time.monotonic() < deadline, "no log line for the delivery"
        await asyncio.sleep(0.05)
    [line] = lines
    assert line["event"] == "webhook"
    assert (line["outcome"], line["http_status"]) == ("signalled", 200)
    assert (line["event_type"], line["customer_id"]) == ("customer_status", customer_id)
    assert line["workflow_id"].startswith("onboarding-")
    text = receiver.log()
    assert secret not in text
    assert headers["webhook-signature"].removeprefix("v1=") not in text
    assert sandbox.api_key not in text
    assert body.decode() not in text


# --- the Iron sandbox delivering to the receiver, driving the real workflow -----------------


async def test_sandbox_webhooks_drive_the_real_workflow(receiver, temporal, sandbox):
    external_id = f"e2e-{uuid.uuid4().hex[:12]}"
    async with sandbox_delivering_to(sandbox, receiver.webhook_url):
        await start_onboarding(
            temporal.client, external_id, email=f"{external_id}@example.com",
            timings=WEBHOOK_ONLY_TIMINGS, task_queue=ONBOARDING_QUEUE,
        )
        handle = temporal.client.get_workflow_handle(workflow_id_for(external_id))
        # Let the webhooks about creating the customer and its identification land first, so
        # that what follows the approval is the approval's own webhook.
        waiting = await wait_for_state(
            handle,
            lambda s: s.phase == Phase.AWAITING_IDENTIFICATION
            and s.identification_id is not None
            and "identification_status" in {e.type for e in s.recent_events},
            what="the identification to be created and its webhook to arrive",
        )
        await creation_answered(sandbox, waiting.iron_customer_id)
        await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
        # The next poll is an hour away: only the webhook can bring the news.
        state = await wait_for_state(
            handle,
            lambda s: s.phase == Phase.AWAITING_SIGNINGS
            and ("identification_status", "Approved") in [(e.type, e.status) for e in s.recent_events],
            timeout=20,
            what="the approval's webhook and the signings step",
        )
    deliveries = [d for d in await sandbox.control.deliveries() if d["customer_id"] == state.iron_customer_id]
    assert {d["type"] for d in deliveries} >= {"customer_created", "identification_status", "customer_status"}
    assert all(d["outcome"] == "delivered" and d["status_code"] == 200 for d in deliveries), deliveries


async def test_customer_created_outside_the_engine_is_adopted(receiver, temporal, sandbox, iron):
    """A customer the partner created straight at Iron gets its onboarding from the first webhook."""
    external_id = f"e2e-adopt-{uuid.uuid4().hex[:12]}"
    async with sandbox_delivering_to(sandbox, receiver.webhook_url):
        customer_id, _ = await new_customer(iron, external_id)
        handle = temporal.client.get_workflow_handle(workflow_id_for(external_id))
        state = await wait_for_state(
            handle, lambda s: s.iron_customer_id == customer_id and s.identification_id is not None,
            what="the adopted workflow to take the customer on",
        )
    description = await handle.describe()
    assert description.task_queue == ONBOARDING_QUEUE
    assert state.external_id == external_id
    adopted = [e for e in receiver.log_events() if e.get("customer_id") == customer_id and e.get("outcome") == "adopted"]
    assert len(adopted) == 1


async def test_stale_replays_from_the_sandbox_are_refused(receiver, temporal, sandbox, iron):
    """The sandbox replays each delivery with a validly signed but hour-old timestamp."""
    customer_id, handle = await recording_workflow(temporal, iron)
    await sandbox.control.set_webhooks(replay_stale=True)
    try:
        async with sandbox_delivering_to(sandbox, receiver.webhook_url):
            await sandbox.control.set_customer_status(customer_id, "Suspended")
    finally:
        await sandbox.control.set_webhooks(replay_stale=False)
    mine = [d for d in await sandbox.control.deliveries() if d["customer_id"] == customer_id]
    assert {d["kind"]: (d["outcome"], d["status_code"]) for d in mine} == {
        "delivery": ("delivered", 200),
        "stale_replay": ("refused", 401),
    }
    assert [(e.type, e.status) for e in await delivered(handle)] == [("customer_status", "Suspended")]


# --- starting before Temporal, recovering without a restart -----------------------------------


async def test_receiver_started_before_temporal_recovers_by_itself(temporal, sandbox, workers, iron, http, tmp_path):
    customer_id, handle = await recording_workflow(temporal, iron)
    proxy = TcpProxy(free_port(), temporal.client.service_client.config.target_host)
    env = receiver_env(temporal, sandbox, TEMPORAL_ADDRESS=f"127.0.0.1:{proxy.port}")
    body, headers = webhook(*status_message(customer_id), secret=sandbox.config.webhook_secret)
    with receiver_process(env, tmp_path / "receiver.log") as process:
        response = await http.post(process.webhook_url, content=body, headers=headers)
        assert response.status_code == 503, response.text
        assert (await http.get(f"{process.url}/readyz")).status_code == 503
        await proxy.start()
        try:
            assert (await http.get(f"{process.url}/readyz")).status_code == 200
            response = await http.post(process.webhook_url, content=body, headers=headers)
            assert response.status_code == 200, response.text
        finally:
            await proxy.stop()
    assert len(await delivered(handle)) == 1


async def test_receiver_refuses_to_start_without_a_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_"))}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "webhook_receiver", "--port", str(free_port())],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == EXIT_CONFIGURATION
    assert result.stderr.startswith("configuration: IRON_WEBHOOK_SECRETS: ")

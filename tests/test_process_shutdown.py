"""SIGTERM and slow clients, on the processes as they run: the worker, the webhook receiver and
the codec server started as `demo/stack.py` starts them, against a dev server and the Iron
sandbox (tests/conftest.py's `env` and `sandbox`).

* A worker stopped while an Iron call runs exits 0, and the call's effect happens once: it
  finishes within the shutdown grace, or, past the grace, it is handed back and a second worker
  completes it.
* The receiver stops accepting connections at once, answers the delivery in flight (its signal
  reaches Temporal) and exits 0; the codec server does the same with its request.
* A request head or body that does not arrive in time frees its connection, and other requests
  are served meanwhile.

Every wait is for evidence (a pending activity's state, a history event, a refused connection,
a socket reading EOF, an exit code) with a deadline that fails naming what did not happen.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from typing import Any, Awaitable

import httpx
import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle

from contracts.activity_models import FIND_OR_CREATE_AND_IDENTIFY  # a new customer: created with its identification
from contracts.messages import workflow_id_for
from demo.stack import Process, free_port
from starter import start_onboarding
from tests.test_webhook_receiver import new_customer, status_message, webhook
from tests.workflow_harness import DEV_SERVER_TIMINGS, current_state, eventually, stack_on

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORKER_GRACE = "ONBOARDING_WORKER_SHUTDOWN_GRACE_SECONDS"
# Payloads in clear, so this test's client reads what the processes write; no fleet schedule.
# At DEBUG: the tests follow a worker through its per-request lines.
PROCESS_ENV = {"ONBOARDING_ENCRYPTION_KEY_FILE": "", "ONBOARDING_FLEET_SCHEDULE": "off", "LOG_LEVEL": "DEBUG"}
# What a loaded machine may add to a deadline before its evidence shows.
MARGIN = 5.0
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
# The connection's own body deadline comes this long after the application's (runtime/http_server.py).
BODY_DEADLINE = BODY_TIMEOUT + 1.0


@pytest.fixture(scope="module")
def stack(env, sandbox, tmp_path_factory):
    with stack_on(env, sandbox, tmp_path_factory.mktemp("stack")) as running:
        yield running


# --- evidence, with deadlines -----------------------------------------------------------------


async def exit_code(process: Process, within: float) -> int:
    try:
        return await asyncio.to_thread(process.popen.wait, within)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{process.name} still running {within:.1f}s after SIGTERM; its log ends:\n{log_tail(process)}"
        ) from None


def log_tail(process: Process, chars: int = 3000) -> str:
    return process.log_path.read_text(errors="replace")[-chars:]


def log_events(process: Process) -> list[dict[str, Any]]:
    events = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def identity_of(process: Process) -> str:
    """The prefix of the Temporal identity a process's worker reports (pid@host)."""
    return f"{process.popen.pid}@"


async def started_attempt(handle: WorkflowHandle, activity_type: str, timeout: float = 30.0):
    """The activity's pending attempt, once a worker has started it."""

    async def probe():
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if (
                pending.activity_type.name == activity_type
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            ):
                return pending
        return None

    return await eventually(f"a worker to start {activity_type}", probe, timeout)


async def completed_by(handle: WorkflowHandle, activity_type: str) -> list[str]:
    """The identity of the worker behind each completed attempt of `activity_type`, in order."""
    events = (await handle.fetch_history()).events
    types = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    return [
        e.activity_task_completed_event_attributes.identity
        for e in events
        if e.HasField("activity_task_completed_event_attributes")
        and types[e.activity_task_completed_event_attributes.scheduled_event_id] == activity_type
    ]


async def why_retried(handle: WorkflowHandle, activity_type: str) -> list[str]:
    """For each retried attempt of `activity_type` that started, the type of the failure before it."""
    events = (await handle.fetch_history()).events
    scheduled = {
        e.event_id for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }
    return [
        e.activity_task_started_event_attributes.last_failure.application_failure_info.type
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
        and e.activity_task_started_event_attributes.attempt > 1
    ]


async def customers_with_external_id(sandbox, external_id: str) -> list[dict[str, Any]]:
    return [c for c in await sandbox.control.customers() if c.get("external_id") == external_id]


async def customer_creations(sandbox) -> list[dict[str, Any]]:
    """The `POST /customers` requests the sandbox has answered (logged once answered)."""
    return [r for r in await sandbox.control.requests() if (r["method"], r["path"]) == ("POST", "/api/customers")]


async def creating_the_customer(worker: Process) -> None:
    """Until the worker has looked the customer up and goes on to create it (the request Iron holds)."""

    async def probe() -> bool:
        return any(e.get("event") == "iron_request_ok" and e.get("step") == "find_customer" for e in log_events(worker))

    await eventually(f"{worker.name} to start creating the customer", probe, 30)


async def read_to_eof(reader: asyncio.StreamReader, within: float, what: str) -> bytes:
    """Everything the server sends until it closes the connection (EOF or reset)."""
    received = bytearray()
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        raise AssertionError(f"{what}: the server kept the connection open {within:.1f}s; got {bytes(received)[:200]!r}") from None
    except ConnectionResetError:
        pass
    return bytes(received)


async def connection_refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_json(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def send_body_after_sigterm(process: Process, port: int, path: str, body: bytes, headers: dict[str, str]):
    """A request the server is reading (it asked for the body: `100 Continue`) when SIGTERM
    comes; its body follows the signal. Returns (the answer, whether a new connection was
    refused before the answer arrived)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head("POST", path, {**headers, "content-length": str(len(body)), "expect": "100-continue"}))
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    process.popen.send_signal(signal.SIGTERM)
    writer.write(body)
    await writer.drain()
    answer = asyncio.create_task(read_to_eof(reader, 30, f"{process.name}'s answer to the request in flight"))
    await eventually(f"{process.name} to refuse new connections", lambda: connection_refused(port), MARGIN)
    refused_first = not answer.done()
    response = await answer
    writer.close()
    return response, refused_first


# --- the worker -------------------------------------------------------------------------------


async def start_customer(env, queue: str, external_id: str, activity_timeout: float) -> WorkflowHandle:
    timings = DEV_SERVER_TIMINGS.model_copy(update={"activity_timeout_seconds": activity_timeout})
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=timings, task_queue=queue)
    return env.client.get_workflow_handle(workflow_id_for(external_id))


async def worker_stopped_while_creating_the_customer(
    stack, env, sandbox, name: str, queue: str, external_id: str, *, grace: float, activity_timeout: float, latency: float
) -> tuple[Process, WorkflowHandle]:
    """A worker given `grace` seconds to stop, sent SIGTERM while Iron holds its creation of the
    customer for `latency` seconds; it has exited 0 within the grace (Iron's latency cleared)."""
    await sandbox.control.clear_requests()
    await sandbox.control.set_faults(latency_ms=latency * 1000, paths=["/customers"], methods=["POST"])
    try:
        worker = stack.start_worker(name, "--task-queue", queue, env={**PROCESS_ENV, WORKER_GRACE: str(grace)})
        handle = await start_customer(env, queue, external_id, activity_timeout=activity_timeout)
        attempt = await started_attempt(handle, FIND_OR_CREATE_AND_IDENTIFY)
        assert attempt.last_worker_identity.startswith(identity_of(worker))
        await creating_the_customer(worker)
        worker.popen.send_signal(signal.SIGTERM)
        assert await exit_code(worker, within=grace + MARGIN) == 0, log_tail(worker)
    finally:
        await sandbox.control.clear_faults()
    return worker, handle


async def test_a_worker_stopped_during_an_iron_call_finishes_it_within_the_grace_and_exits_0(stack, env, sandbox):
    queue, external_id = f"drain-{uuid.uuid4().hex[:8]}", f"drain-{uuid.uuid4().hex[:12]}"
    worker, handle = await worker_stopped_while_creating_the_customer(
        stack, env, sandbox, "worker-finishing", queue, external_id, grace=20, activity_timeout=20, latency=3
    )
    # The call finished on the stopping worker, and its result is in the history.
    finished = await eventually(
        "the call's completion in the history", lambda: completed_by(handle, FIND_OR_CREATE_AND_IDENTIFY), MARGIN
    )
    assert len(finished) == 1 and finished[0].startswith(identity_of(worker)), finished
    assert len(await customers_with_external_id(sandbox, external_id)) == 1
    assert [r["status_code"] for r in await customer_creations(sandbox)] == [201]
    lines = [e for e in log_events(worker) if e.get("event") in ("worker_stopping", "worker_stopped")]
    assert [e["event"] for e in lines] == ["worker_stopping", "worker_stopped"], log_tail(worker)
    assert (lines[0]["signal"], lines[0]["grace_seconds"]) == ("SIGTERM", 20)


async def test_a_call_past_the_grace_is_handed_back_and_done_once_by_another_worker(stack, env, sandbox):
    queue, external_id = f"handback-{uuid.uuid4().hex[:8]}", f"handback-{uuid.uuid4().hex[:12]}"
    activity_timeout, latency = 6.0, 4.0
    _, handle = await worker_stopped_while_creating_the_customer(
        stack, env, sandbox, "worker-leaving", queue, external_id, grace=0.5, activity_timeout=activity_timeout, latency=latency
    )
    assert await completed_by(handle, FIND_OR_CREATE_AND_IDENTIFY) == []  # cut off, not finished
    second = stack.start_worker("worker-taking-over", "--task-queue", queue, env=PROCESS_ENV)
    finished = await eventually(
        "a second worker to complete the call",
        lambda: completed_by(handle, FIND_OR_CREATE_AND_IDENTIFY),
        activity_timeout + 30,
    )
    assert len(finished) == 1 and finished[0].startswith(identity_of(second)), finished
    # Handed back by the leaving worker, not timed out: retried at once.
    assert await why_retried(handle, FIND_OR_CREATE_AND_IDENTIFY) == ["WorkerShutdown"]
    # Both attempts' requests reached Iron (the first one's, held, is answered last), under one
    # idempotency key; one of them created the customer. (The abandoned one, its client gone,
    # is refused unread, or replays the other's result.)
    creations = await eventually(
        "both attempts' requests to be answered",
        lambda: exactly_two(customer_creations(sandbox)),
        latency + MARGIN,
    )
    assert len({r["idempotency_key"] for r in creations}) == 1, creations
    assert len([r for r in creations if r["status_code"] == 201 and not r["replayed"]]) == 1, creations
    [customer] = await customers_with_external_id(sandbox, external_id)
    assert (await current_state(handle)).iron_customer_id == customer["id"]
    second.popen.send_signal(signal.SIGTERM)
    assert await exit_code(second, within=30 + MARGIN) == 0, log_tail(second)


async def exactly_two(requests: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    found = await requests
    assert len(found) <= 2, found
    return found if len(found) == 2 else None


# --- the webhook receiver ---------------------------------------------------------------------


async def test_the_receiver_answers_the_delivery_in_flight_on_sigterm_and_exits_0(stack, env, sandbox):
    async with sandbox.client() as iron:
        customer_id, external_id = await new_customer(iron)
    port = free_port()
    receiver = stack.start_receiver("receiver-draining", port, env=PROCESS_ENV)
    body, headers = webhook(*status_message(customer_id), secret=stack.secrets["webhook_secret"])
    # Iron holds the customer lookup: the delivery is mid-way when SIGTERM comes.
    await sandbox.control.set_faults(latency_ms=3000, paths=[f"/customers/{customer_id}"], methods=["GET"])
    try:
        response, refused_first = await send_body_after_sigterm(receiver, port, "/webhooks/iron", body, headers)
    finally:
        await sandbox.control.clear_faults()
    assert refused_first, "a new connection was accepted after SIGTERM"
    status, answer = status_and_json(response)
    assert (status, answer["status"]) == (200, "adopted"), response
    assert await exit_code(receiver, within=MARGIN) == 0, log_tail(receiver)
    history = await env.client.get_workflow_handle(workflow_id_for(external_id)).fetch_history()
    assert any(e.HasField("workflow_execution_signaled_event_attributes") for e in history.events)
    stopping = [e["event"] for e in log_events(receiver) if e.get("event", "").startswith("http_server_")]
    assert stopping == ["http_server_stopping", "http_server_stopped"], log_tail(receiver)


@pytest.fixture(scope="module")
def impatient_receiver(stack):
    port = free_port()
    env = {
        **PROCESS_ENV,
        "ONBOARDING_WEBHOOK_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "ONBOARDING_WEBHOOK_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    }
    return stack.start_receiver("receiver-impatient", port, env=env)


async def test_stalled_request_heads_are_cut_off_while_others_are_served(impatient_receiver):
    port = impatient_receiver.port
    partial_heads = [b"", b"POST /webhooks/ir", b"POST /webhooks/iron HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-le"]
    opened = time.monotonic()
    connections = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(300)))
    for n, (_, writer) in enumerate(connections):
        writer.write(partial_heads[n % len(partial_heads)])
    # A kept-alive connection whose second request stalls is cut off too.
    kept_reader, kept_writer = await asyncio.open_connection("127.0.0.1", port)
    kept_writer.write(request_head("GET", "/healthz", {}))
    first = await asyncio.wait_for(kept_reader.readuntil(b'{"status":"ok"}'), 10)
    assert first.startswith(b"HTTP/1.1 200")
    kept_writer.write(b"GET /heal")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    answers = await asyncio.gather(
        *(read_to_eof(reader, HEADER_TIMEOUT + MARGIN, f"stalled head {n}") for n, (reader, _) in enumerate(connections)),
        read_to_eof(kept_reader, HEADER_TIMEOUT + MARGIN, "stalled second head"),
    )
    assert time.monotonic() - opened >= HEADER_TIMEOUT * 0.9  # by the deadline, not at once
    for n, answer in enumerate(answers[:-1]):
        assert answer.startswith(b"HTTP/1.1 408") if partial_heads[n % 3] else answer == b"", answer
    assert answers[-1].startswith(b"HTTP/1.1 408")
    for _, writer in [*connections, (None, kept_writer)]:
        writer.close()
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200


async def trickle(writer: asyncio.StreamWriter, every: float = 0.2) -> None:
    """One byte of body at a time, as a slow-loris sender does, until the server hangs up."""
    try:
        for _ in range(200):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(every)
    except ConnectionError:
        pass


@pytest.mark.parametrize(
    ("method", "path", "answered"),
    [("POST", "/webhooks/iron", b"HTTP/1.1 408"), ("GET", "/healthz", b"HTTP/1.1 200")],
    ids=["read-by-the-app", "never-read"],
)
async def test_a_slow_body_frees_its_connection(impatient_receiver, method, path, answered):
    """The webhook route answers 408 at its body timeout; a body nobody reads (the route
    answered without it) would otherwise keep the connection open for as long as it trickles."""
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient_receiver.port)
    writer.write(request_head(method, path, {"content-type": "application/json", "content-length": "1000"}))
    sending = asyncio.create_task(trickle(writer))
    started = time.monotonic()
    try:
        response = await read_to_eof(reader, BODY_DEADLINE + MARGIN, f"slow body to {path}")
    finally:
        sending.cancel()
        writer.close()
    assert response.startswith(answered), response[:200]
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9


# --- the codec server -------------------------------------------------------------------------


async def test_the_codec_server_cuts_off_a_stalled_head_and_answers_its_request_in_flight_on_sigterm(stack):
    codec = stack.start_codec_server(env={"ONBOARDING_CODEC_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)})
    port = stack.config.codec_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /decode HTTP/1.1\r\nhost: 127.0.0.1\r\n")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    assert (await read_to_eof(reader, HEADER_TIMEOUT + MARGIN, "the codec server's stalled head")).startswith(b"HTTP/1.1 408")
    writer.close()

    body = json.dumps({"payloads": []}).encode()
    response, refused_first = await send_body_after_sigterm(
        codec, port, "/decode", body, {"content-type": "application/json", "x-namespace": "default"}
    )
    assert status_and_json(response) == (200, {"payloads": []}), response
    assert await exit_code(codec, within=MARGIN) == 0, log_tail(codec)

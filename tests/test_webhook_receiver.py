"""The webhook receiver against a real Temporal dev server and the Iron sandbox over HTTP.

The receiver app is driven in-process (httpx's ASGI transport) so each case is fast; what it
talks to is real: a Temporal dev server with a worker, and the Iron sandbox for customer
lookups. Each case checks Temporal's own record (a query answered after a probe signal, or
describe) for what was or was not signalled, never the receiver's word for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import httpx
import pytest

from demo.stack import free_port
import pytest_asyncio
import structlog
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from iron_client import IronClient, IronSettings
from iron_client.webhooks import build_container, sign
from iron_sandbox.testing import SandboxServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from runtime.metrics import prometheus_runtime
from runtime.temporal import data_converter
from webhook_receiver import ReceiverSettings, SettingsError, TemporalClientProvider, create_app
from webhook_receiver.routing import routing_key
from contracts import metrics as names
from contracts import search_attributes
from contracts.messages import (
    SIGNAL_IRON_EVENT,
    WORKFLOW_TYPE,
    IronEventSignal,
    OnboardingInput,
    OnboardingState,
    workflow_id_for,
)
from contracts.outbox import Outbox
from contracts.state_view import STATE_MEMO, OnboardingStateView


# --- a stand-in workflow with the real name and messages, recording what it receives --------
# It runs without the workflow sandbox: it has no logic that could be nondeterministic, and
# re-importing this module for every run would slow each case down several times. The real
# `CustomerOnboarding` (sandboxed) receives real deliveries in test_webhook_receiver_e2e.py.


@workflow.defn(name=WORKFLOW_TYPE)
class RecordingOnboarding:
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        self._input = input
        self._events: list[IronEventSignal] = []
        self._finished = False

    @workflow.run
    async def run(self, input: OnboardingInput) -> None:
        await workflow.wait_condition(lambda: self._finished)

    @workflow.signal(name=SIGNAL_IRON_EVENT)
    def iron_event(self, event: IronEventSignal) -> None:
        self._events.append(event)

    @workflow.signal(name="finish")
    def finish(self) -> None:
        self._finished = True

    @workflow.query(name="events")
    def events(self) -> list[IronEventSignal]:
        return list(self._events)

    @workflow.query(name="started_with")
    def started_with(self) -> OnboardingInput:
        return self._input


SECRET = "whsec-test-current"
OLD_SECRET = "whsec-test-previous"


# --- plumbing shared with the end-to-end module ----------------------------------------------




class TcpProxy:
    """Forwards a local port to an upstream address: Temporal 'comes back' when it starts."""

    def __init__(self, port: int, upstream: str) -> None:
        self.port = port
        host, _, upstream_port = upstream.rpartition(":")
        self._upstream = (host, int(upstream_port))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def new_customer(
    iron: IronClient, external_id: str | None = "", *, archived: bool = False, customer_type: str = "Person"
) -> tuple[str, str | None]:
    """A customer created at Iron (the sandbox): (customer id, external id). By default with a
    fresh external id; `None` for a customer without one."""
    if external_id == "":
        external_id = f"ext-{uuid.uuid4()}"
    customer = await iron.create_customer(
        customer_type=customer_type,
        email=f"{uuid.uuid4().hex[:10]}@example.com",
        idempotency_key=str(uuid.uuid4()),
        external_id=external_id,
    )
    if archived:
        await iron.archive_customer(customer.id)
    return customer.id, external_id


async def customer_reads(sandbox: SandboxServer, customer_id: str) -> int:
    """How often the customer was read at Iron, from the sandbox's request log."""
    log = await sandbox.control.requests()
    return sum(1 for r in log if r["method"] == "GET" and r["path"] == f"/api/customers/{customer_id}")


def webhook(
    event_type: str,
    customer_id: str,
    message: dict[str, Any],
    *,
    variant: str | None = None,
    wrapped: bool = True,
    secret: str = SECRET,
    timestamp: int | None = None,
    webhook_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A body and the headers Iron would send with it."""
    variant = variant or "".join(part.title() for part in event_type.split("_"))
    container = build_container(
        event_type, customer_id, variant, message, timestamp=datetime.now(timezone.utc).isoformat(), wrapped=wrapped
    )
    body = json.dumps(container).encode()
    return body, sign(secret, body, timestamp=timestamp, webhook_id=webhook_id)


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def delivered(handle: WorkflowHandle, timeout: float = 10.0) -> list[IronEventSignal]:
    """Every `iron_event` signal Temporal accepted for the workflow so far, in order.

    A signal that arrives while a workflow task runs is held back from history until the task
    completes, so counting history events right after a 200 can come up short. Instead a probe
    signal is sent now and awaited: signals are delivered in the order Temporal accepted them,
    so once the probe is seen, everything accepted before it has been seen too.
    """
    probe = IronEventSignal(type="probe", webhook_id=str(uuid.uuid4()))
    await handle.signal(SIGNAL_IRON_EVENT, probe)
    deadline = time.monotonic() + timeout
    while True:
        events = await handle.query("events", result_type=list[IronEventSignal])
        if any(e.type == "probe" and e.webhook_id == probe.webhook_id for e in events):
            return [e for e in events if e.type != "probe"]
        if time.monotonic() > deadline:
            raise AssertionError(f"probe signal not seen by {handle.id} within {timeout}s")
        await asyncio.sleep(0.05)


# --- fixtures ---------------------------------------------------------------------------------

pytestmark = pytest.mark.asyncio(loop_scope="module")
TASK_QUEUE = "webhook-receiver-tests"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def temporal(temporal_cli_path: str) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path,
        data_converter=data_converter(),
        search_attributes=search_attributes.ALL,
    )
    try:
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=[RecordingOnboarding],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def iron(sandbox: SandboxServer) -> AsyncIterator[IronClient]:
    async with sandbox.client(timeout_seconds=5) as client:
        yield client


@pytest.fixture
def settings() -> ReceiverSettings:
    return ReceiverSettings(webhook_secrets=(SECRET,), task_queue=TASK_QUEUE, temporal_timeout_seconds=2)


@contextlib.asynccontextmanager
async def receiver(
    settings: ReceiverSettings, temporal_source: Any, iron_client: IronClient
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, temporal_source, iron_client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        yield http


@pytest_asyncio.fixture(loop_scope="module")
async def http(settings, temporal, iron) -> AsyncIterator[httpx.AsyncClient]:
    async with receiver(settings, temporal.client, iron) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def running(temporal, iron) -> tuple[str, WorkflowHandle]:
    """An Iron customer whose onboarding workflow is running: (customer id, handle)."""
    customer_id, external_id = await new_customer(iron)
    handle = await temporal.client.start_workflow(
        WORKFLOW_TYPE,
        OnboardingInput(external_id=external_id, email="p@example.com"),
        id=workflow_id_for(external_id),
        task_queue=TASK_QUEUE,
    )
    return customer_id, handle


def status_message(customer_id: str, status: str = "SigningsRequired") -> tuple[str, str, dict[str, str]]:
    """The arguments of `webhook` for a customer status change."""
    return "customer_status", customer_id, {"id": customer_id, "status": status}


# --- the happy path ---------------------------------------------------------------------------


async def test_valid_webhook_signals_the_customers_workflow(http, running, temporal):
    customer_id, handle = running
    identification_id = str(uuid.uuid4())
    body, headers = webhook(
        "identification_status", customer_id, {"id": identification_id, "status": "Approved"}, webhook_id="wh-1"
    )
    response = await http.post("/webhooks/iron", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "signalled"
    assert response.json()["workflow_id"] == handle.id
    [event] = await delivered(handle)
    assert event.type == "identification_status"
    assert event.customer_id == customer_id
    assert event.entity_id == identification_id
    assert event.status == "Approved"
    assert event.webhook_id == "wh-1"
    assert event.timestamp == json.loads(body)["timestamp"]


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrapped", "bare"])
async def test_wrapped_and_bare_message_forms_both_signal(http, running, wrapped):
    customer_id, handle = running
    body, headers = webhook(*status_message(customer_id, "Active"), wrapped=wrapped)
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    [event] = await delivered(handle)
    assert (event.type, event.entity_id, event.status) == ("customer_status", customer_id, "Active")


@pytest.mark.parametrize("event_type", ["customer_created", "Event"])
async def test_customer_created_signals(event_type, http, running):
    """As Iron sends it: a generic `Event` message of kind CustomerCreated, under the type
    `customer_created` or the variant's own name."""
    customer_id, handle = running
    body, headers = webhook(event_type, customer_id, {"id": customer_id, "kind": "CustomerCreated"}, variant="Event")
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    [event] = await delivered(handle)
    assert (event.type, event.customer_id, event.entity_id) == ("customer_created", customer_id, customer_id)


async def test_customer_created_is_no_news_to_the_onboarding_the_index_shows_owns_it(http, temporal, iron):
    """The engine created (or found) the customer itself: its `IronCustomerId` is in visibility,
    so Iron's `customer_created` is acknowledged and not signalled; a status change still is."""
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    customer_id, external_id = await new_customer(iron)
    handle = await temporal.client.start_workflow(
        WORKFLOW_TYPE, OnboardingInput(external_id=external_id, email="p@example.com", iron_customer_id=customer_id),
        id=workflow_id_for(external_id), task_queue=TASK_QUEUE,
        search_attributes=TypedSearchAttributes([SearchAttributePair(search_attributes.IRON_CUSTOMER_ID, customer_id)]),
    )
    query = f'{search_attributes.IRON_CUSTOMER_ID.name} = "{customer_id}"'
    deadline = time.monotonic() + 20
    while not [w async for w in temporal.client.list_workflows(query)]:
        assert time.monotonic() < deadline, "visibility never listed the onboarding"
        await asyncio.sleep(0.2)

    body, headers = webhook("customer_created", customer_id, {"id": customer_id, "kind": "CustomerCreated"}, variant="Event")
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored" and response.json()["workflow_id"] == handle.id
    body, headers = webhook(*status_message(customer_id, "SigningsRequired"))
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.json()["status"] == "signalled"
    [event] = await delivered(handle)
    assert event.type == "customer_status", "only the status change reached the workflow"


async def test_other_generic_events_are_ignored(http, running):
    customer_id, handle = running
    body, headers = webhook("Event", customer_id, {"id": str(uuid.uuid4()), "kind": "NewBankAccount"}, variant="Event")
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert len(await delivered(handle)) == 0


async def test_charset_in_content_type_is_accepted(http, running):
    customer_id, handle = running
    body, headers = webhook(*status_message(customer_id))
    headers["content-type"] = "application/json; charset=utf-8"
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert len(await delivered(handle)) == 1


async def test_duplicate_delivery_is_accepted_again(http, running, temporal):
    customer_id, handle = running
    body, headers = webhook(*status_message(customer_id))
    for _ in range(2):
        assert (await http.post("/webhooks/iron", content=body, headers=headers)).status_code == 200
    assert len(await delivered(handle)) == 2


async def test_secret_rotation_accepts_old_and_new(settings, temporal, iron, running):
    customer_id, handle = running
    rotated = settings.model_copy(update=dict(webhook_secrets=(OLD_SECRET, SECRET)))
    async with receiver(rotated, temporal.client, iron) as http:
        for secret in (OLD_SECRET, SECRET):
            body, headers = webhook(*status_message(customer_id), secret=secret)
            response = await http.post("/webhooks/iron", content=body, headers=headers)
            assert response.status_code == 200, (secret, response.text)
        body, headers = webhook(*status_message(customer_id), secret="whsec-retired")
        assert (await http.post("/webhooks/iron", content=body, headers=headers)).status_code == 401
    assert len(await delivered(handle)) == 2


async def test_cache_spares_iron_reads_for_a_known_customer(http, running, sandbox):
    customer_id, handle = running
    for _ in range(3):
        body, headers = webhook(*status_message(customer_id))
        assert (await http.post("/webhooks/iron", content=body, headers=headers)).status_code == 200
    assert await customer_reads(sandbox, customer_id) == 1
    assert len(await delivered(handle)) == 3


async def test_stale_cache_entry_is_looked_up_again(settings, temporal, iron, running):
    """A remembered workflow that has ended is not the end of the story: Iron is asked again
    and may name another one (here the partner changed the customer's external id)."""
    customer_id, old_handle = running
    no_adoption = settings.model_copy(update=dict(adopt_unknown_customers=False))
    async with receiver(no_adoption, temporal.client, iron) as http:
        body, headers = webhook(*status_message(customer_id))
        assert (await http.post("/webhooks/iron", content=body, headers=headers)).status_code == 200
        await old_handle.signal("finish")
        await old_handle.result()
        new_external_id = f"ext-{uuid.uuid4()}"
        await iron.update_customer(customer_id, email=f"{uuid.uuid4().hex[:10]}@example.com", external_id=new_external_id)
        new_handle = await temporal.client.start_workflow(
            WORKFLOW_TYPE,
            OnboardingInput(external_id=new_external_id, iron_customer_id=customer_id),
            id=workflow_id_for(new_external_id),
            task_queue=TASK_QUEUE,
        )
        body, headers = webhook(*status_message(customer_id, "Active"))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {**response.json(), "status": "signalled", "workflow_id": new_handle.id}
    [event] = await delivered(new_handle)
    assert event.status == "Active"


# --- refused deliveries: right answer, nothing signalled ---------------------------------------


def _tamper(body: bytes) -> bytes:
    return body.replace(b"SigningsRequired", b"Active")


REFUSALS = {
    "wrong secret": (401, lambda b, h: (b, {**webhook_headers_with_secret(b, h, "whsec-wrong")})),
    "stale timestamp": (401, lambda b, h: (b, sign(SECRET, b, timestamp=int(time.time()) - 301))),
    "future timestamp": (401, lambda b, h: (b, sign(SECRET, b, timestamp=int(time.time()) + 301))),
    "tampered body": (401, lambda b, h: (_tamper(b), h)),
    "missing signature": (401, lambda b, h: (b, _without(h, "webhook-signature"))),
    "missing timestamp": (401, lambda b, h: (b, _without(h, "webhook-timestamp"))),
    "no webhook headers": (401, lambda b, h: (b, {"content-type": "application/json"})),
    "garbled signature": (401, lambda b, h: (b, {**h, "webhook-signature": "v2=abc"})),
    "wrong content type": (415, lambda b, h: (b, {**h, "content-type": "text/plain"})),
    "no content type": (415, lambda b, h: (b, _without(h, "content-type"))),
    "non-utf-8 charset": (415, lambda b, h: (b, {**h, "content-type": "application/json; charset=latin-1"})),
    "malformed json": (400, lambda b, h: _signed(b[:-3])),
    "json but not a container": (400, lambda b, h: _signed(b'{"hello": "world"}')),
    "json array": (400, lambda b, h: _signed(b"[1, 2]")),
}


def webhook_headers_with_secret(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    return sign(secret, body, webhook_id=headers["webhook-id"])


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


def _signed(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, sign(SECRET, body)


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
async def test_refused_delivery_signals_nothing(case, http, running, sandbox):
    customer_id, handle = running
    expected, mutate = REFUSALS[case]
    body, headers = mutate(*webhook(*status_message(customer_id)))

    response = await http.post("/webhooks/iron", content=body, headers=headers)

    assert response.status_code == expected, response.text
    assert response.json()["status"] == "rejected"
    assert len(await delivered(handle)) == 0
    assert await customer_reads(sandbox, customer_id) == 0, "a refused delivery must not reach Iron"


async def test_refused_delivery_for_unknown_customer_starts_nothing(http, iron, temporal):
    """Adoption is on by default: a forged delivery must still not start a workflow."""
    customer_id, external_id = await new_customer(iron)
    body, headers = webhook(*status_message(customer_id), secret="whsec-forged")
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 401
    assert not await exists(temporal.client, workflow_id_for(external_id))


async def test_identification_event_without_customer_id_is_malformed(http, running, temporal):
    _, handle = running
    body = json.dumps(
        {"type": "identification_status", "timestamp": "2025-01-01T00:00:00Z",
         "data": {"message": {"IdentificationStatus": {"id": str(uuid.uuid4()), "status": "Approved"}}}}
    ).encode()
    response = await http.post("/webhooks/iron", content=body, headers=sign(SECRET, body))
    assert response.status_code == 400
    assert len(await delivered(handle)) == 0


# --- size limit ------------------------------------------------------------------------------


class CountingBody:
    """A request body that counts how much of it the server pulled."""

    def __init__(self, chunk: bytes, chunks: int) -> None:
        self.chunk, self.chunks, self.pulled = chunk, chunks, 0

    async def __aiter__(self):
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk


async def test_oversized_by_content_length_is_refused_unread(settings, temporal, iron, running):
    customer_id, handle = running
    small = settings.model_copy(update=dict(max_body_bytes=1024))
    body = CountingBody(b" " * 1024, 64)
    async with receiver(small, temporal.client, iron) as http:
        response = await http.post(
            "/webhooks/iron",
            content=body,
            headers={**sign(SECRET, b"{}"), "content-length": str(1024 * 64)},
        )
    assert response.status_code == 413
    assert body.pulled <= 1, "the body must not be read when Content-Length is over the limit"
    assert len(await delivered(handle)) == 0


async def test_oversized_chunked_body_is_cut_off_while_streaming(settings, temporal, iron, running):
    customer_id, handle = running
    small = settings.model_copy(update=dict(max_body_bytes=1024))
    body = CountingBody(b" " * 512, 1000)
    async with receiver(small, temporal.client, iron) as http:
        request = http.build_request("POST", "/webhooks/iron", content=body, headers=sign(SECRET, b"{}"))
        assert "content-length" not in request.headers
        response = await http.send(request)
    assert response.status_code == 413
    assert body.pulled < 10, f"read {body.pulled} chunks of 1000: the limit must stop the reading"
    assert len(await delivered(handle)) == 0


async def test_default_limit_is_64_kib_and_a_body_at_the_limit_passes(http, running, temporal):
    customer_id, handle = running
    body, _ = webhook(*status_message(customer_id))
    at_limit = body[:-1] + b" " * (64 * 1024 - len(body)) + b"}"
    assert len(at_limit) == 64 * 1024
    response = await http.post("/webhooks/iron", content=at_limit, headers=sign(SECRET, at_limit))
    assert response.status_code == 200, response.text
    over = at_limit[:-1] + b" }"
    response = await http.post("/webhooks/iron", content=over, headers=sign(SECRET, over))
    assert response.status_code == 413
    assert len(await delivered(handle)) == 1


async def test_non_numeric_content_length_is_a_bad_request(http):
    response = await http.post(
        "/webhooks/iron", content=b"{}", headers={**sign(SECRET, b"{}"), "content-length": "lots"}
    )
    assert response.status_code == 400


# --- acknowledged, nothing to do ---------------------------------------------------------------


async def test_ping_is_acknowledged(http, sandbox):
    ping_id = str(uuid.uuid4())
    customer_id = str(uuid.uuid4())
    body, headers = webhook("ping", customer_id, {"id": ping_id})
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert await customer_reads(sandbox, customer_id) == 0


async def test_types_onboarding_does_not_use_are_acknowledged_and_ignored(http, running, temporal, iron):
    customer_id, handle = running
    body, headers = webhook(
        "transaction_status", customer_id, {"id": str(uuid.uuid4()), "status": "Completed"}, variant="TransactionStatus"
    )
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert len(await delivered(handle)) == 0


async def test_customer_unknown_to_iron_is_acknowledged(http, temporal, sandbox):
    customer_id = str(uuid.uuid4())  # never added to Iron
    body, headers = webhook(*status_message(customer_id))
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert await customer_reads(sandbox, customer_id) == 1
    assert not await exists(temporal.client, workflow_id_for(customer_id))


# --- adoption --------------------------------------------------------------------------------


async def test_unknown_workflow_is_adopted_with_signal_with_start(http, iron, temporal):
    customer_id, external_id = await new_customer(iron, customer_type="Business")
    body, headers = webhook(*status_message(customer_id, "SigningsRequired"))

    response = await http.post("/webhooks/iron", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "adopted"
    handle = temporal.client.get_workflow_handle(workflow_id_for(external_id))
    description = await handle.describe()
    assert description.workflow_type == WORKFLOW_TYPE
    assert description.task_queue == TASK_QUEUE
    started_with = await handle.query("started_with", result_type=OnboardingInput)
    assert started_with.iron_customer_id == customer_id
    assert started_with.external_id == external_id
    assert started_with.customer_type == "Business"
    [event] = await delivered(handle)
    assert (event.type, event.status) == ("customer_status", "SigningsRequired")
    # The next delivery finds the workflow it started.
    body, headers = webhook(*status_message(customer_id, "Active"))
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.json()["status"] == "signalled"
    assert len(await delivered(handle)) == 2


async def scraped(port: int, name: str, **labels: str) -> float:
    """The sum of every series of `name` whose labels include `labels`, as Prometheus scrapes it."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_a_signal_with_start_tells_whether_it_started_the_workflow(temporal):
    """`started_by_signal_with_start` reads the start response the SDK keeps on the handle, a
    private attribute (`_start_workflow_response`): if the SDK moves it, this fails here rather
    than every adoption silently counting as a start."""
    from temporalio.common import WorkflowIDConflictPolicy

    from webhook_receiver.app import started_by_signal_with_start

    workflow_id = f"onboarding-sws-{uuid.uuid4().hex[:10]}"
    signal = IronEventSignal(type="customer_status", customer_id="c1", status="Active")

    async def signal_with_start() -> WorkflowHandle:
        return await temporal.client.start_workflow(
            WORKFLOW_TYPE, OnboardingInput(external_id=workflow_id.removeprefix("onboarding-"), email="p@example.com"),
            id=workflow_id, task_queue=TASK_QUEUE, start_signal=SIGNAL_IRON_EVENT, start_signal_args=[signal],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    first, second = await signal_with_start(), await signal_with_start()
    assert hasattr(first, "_start_workflow_response"), "the SDK no longer keeps the start response on the handle"
    assert (started_by_signal_with_start(first), started_by_signal_with_start(second)) == (True, False)
    await second.signal("finish")


async def test_adoptions_are_counted_once_per_customer_however_many_deliveries_race_or_retry(settings, temporal, iron):
    """Deliveries for fresh customers arrive at once (several events each, exact duplicates among
    them) and Iron retries some later: each customer's workflow is started by one of them, the
    others signal it, and the adoption counter moves by the number of customers."""
    customers = [await new_customer(iron) for _ in range(5)]
    deliveries = [webhook(*status_message(cid), webhook_id=f"wh-{cid}-{n}") for cid, _ in customers for n in range(4)]
    deliveries += deliveries[::2]
    port = free_port()
    patient = settings.model_copy(update=dict(temporal_timeout_seconds=30))
    metrics_runtime = prometheus_runtime("127.0.0.1", port)  # serves /metrics while referenced
    app = create_app(patient, temporal.client, iron, metric_meter=metrics_runtime.metric_meter)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        answers = list(await asyncio.gather(*(http.post("/webhooks/iron", content=b, headers=h) for b, h in deliveries)))
        answers += [await http.post("/webhooks/iron", content=b, headers=h) for b, h in deliveries[:3]]
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers if a.status_code != 200]
    webhooks = names.WEBHOOKS + "_total"
    deadline = time.monotonic() + 10
    while await scraped(port, webhooks) < len(answers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await scraped(port, webhooks) == len(answers)
    assert await scraped(port, webhooks, outcome="adopted") == len(customers)

    outcomes = collections.Counter(a.json()["status"] for a in answers)
    assert outcomes == {"adopted": len(customers), "signalled": len(answers) - len(customers)}, outcomes
    for customer_id, external_id in customers:  # and every 200 is one signal
        mine = sum(1 for b, _ in [*deliveries, *deliveries[:3]] if customer_id.encode() in b)
        assert len(await delivered(temporal.client.get_workflow_handle(workflow_id_for(external_id)))) == mine


async def test_customer_whose_onboarding_was_terminated_is_adopted_after_its_last_event(http, iron, temporal):
    """Its events go on from the sequence the terminated onboarding's state view shows, so the
    partner's backend neither takes them for repeats nor for older news."""
    customer_id, external_id = await new_customer(iron)
    earlier = OnboardingState(external_id=external_id, iron_customer_id=customer_id, outbox=Outbox(next_sequence=8))
    closed = await temporal.client.start_workflow(
        WORKFLOW_TYPE,
        OnboardingInput(external_id=external_id, iron_customer_id=customer_id),
        id=workflow_id_for(external_id),
        task_queue=TASK_QUEUE,
        memo={STATE_MEMO: OnboardingStateView.of(earlier).to_memo()},
    )
    await closed.terminate(reason="an operator's fresh start")

    body, headers = webhook(*status_message(customer_id))
    response = await http.post("/webhooks/iron", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "adopted"
    handle = temporal.client.get_workflow_handle(workflow_id_for(external_id))
    assert (await handle.describe()).run_id != closed.result_run_id
    started_with = await handle.query("started_with", result_type=OnboardingInput)
    assert (started_with.iron_customer_id, started_with.events_after) == (customer_id, 7)
    assert OnboardingState.first(started_with).outbox.next_sequence == 8


async def test_customer_without_external_id_is_adopted_under_its_iron_id(http, iron, temporal):
    customer_id, _ = await new_customer(iron, None)
    body, headers = webhook(*status_message(customer_id))
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    handle = temporal.client.get_workflow_handle(workflow_id_for(customer_id))
    started_with = await handle.query("started_with", result_type=OnboardingInput)
    assert (started_with.external_id, started_with.iron_customer_id) == (customer_id, customer_id)


async def test_external_id_the_workflow_would_refuse_falls_back_to_the_iron_id():
    assert routing_key("cid", "partner-42") == "partner-42"
    assert routing_key("cid", "has space") == "cid"
    assert routing_key("cid", "") == "cid"
    assert routing_key("cid", None) == "cid"


async def test_archived_customer_is_not_adopted(http, iron, temporal):
    customer_id, external_id = await new_customer(iron, archived=True)
    body, headers = webhook(*status_message(customer_id, "Archived"))
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert not await exists(temporal.client, workflow_id_for(external_id))


async def test_adoption_off_acknowledges_and_starts_nothing(settings, iron, temporal):
    customer_id, external_id = await new_customer(iron)
    async with receiver(settings.model_copy(update=dict(adopt_unknown_customers=False)), temporal.client, iron) as http:
        body, headers = webhook(*status_message(customer_id))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert not await exists(temporal.client, workflow_id_for(external_id))


async def test_adoption_off_still_signals_running_workflows(settings, iron, temporal, running):
    customer_id, handle = running
    async with receiver(settings.model_copy(update=dict(adopt_unknown_customers=False)), temporal.client, iron) as http:
        body, headers = webhook(*status_message(customer_id))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.json()["status"] == "signalled"
    assert len(await delivered(handle)) == 1


# --- Iron or Temporal unavailable: 503 so Iron retries ----------------------------------------


async def test_iron_unreachable_answers_503(settings, temporal, running):
    customer_id, handle = running
    dead_iron = IronClient(IronSettings(base_url=f"http://127.0.0.1:{free_port()}/api", api_key=SecretStr("k"), timeout_seconds=2))
    async with dead_iron, receiver(settings, temporal.client, dead_iron) as http:
        body, headers = webhook(*status_message(customer_id))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 503
    assert len(await delivered(handle)) == 0


@contextlib.asynccontextmanager
async def iron_faults(sandbox: SandboxServer, customer_id: str, **faults: Any) -> AsyncIterator[None]:
    """Faults on Iron's read of this one customer, for the duration of the block."""
    await sandbox.control.set_faults(paths=[f"/api/customers/{customer_id}"], methods=["GET"], **faults)
    try:
        yield
    finally:
        await sandbox.control.clear_faults()


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_iron_error_answers_503_and_the_retry_goes_through(status, http, sandbox, running):
    customer_id, handle = running
    body, headers = webhook(*status_message(customer_id))
    async with iron_faults(sandbox, customer_id, fail_next=1, error_statuses=[status]):
        response = await http.post("/webhooks/iron", content=body, headers=headers)
        assert response.status_code == 503
        assert response.json()["status"] == "retry"
        assert len(await delivered(handle)) == 0
        # Iron's retry of the same delivery goes through.
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert len(await delivered(handle)) == 1


async def test_iron_too_slow_answers_503(settings, temporal, iron, sandbox, running):
    customer_id, handle = running
    impatient = settings.model_copy(update=dict(iron_timeout_seconds=0.3))
    # Given Iron's settings, the receiver builds its own client with httpx's timeouts.
    async with iron_faults(sandbox, customer_id, latency_ms=1500), receiver(impatient, temporal.client, iron.settings) as http:
        body, headers = webhook(*status_message(customer_id))
        started = time.monotonic()
        response = await http.post("/webhooks/iron", content=body, headers=headers)
        assert response.status_code == 503
        assert time.monotonic() - started < 1.2
    assert len(await delivered(handle)) == 0


async def test_iron_refusing_our_api_key_answers_503(settings, temporal, sandbox, running):
    customer_id, handle = running
    async with sandbox.client(api_key="revoked") as wrong_key, receiver(settings, temporal.client, wrong_key) as http:
        body, headers = webhook(*status_message(customer_id))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 503
    assert len(await delivered(handle)) == 0


async def test_temporal_down_answers_503_and_recovers_when_it_returns(settings, temporal, iron, running):
    customer_id, handle = running
    port = free_port()
    provider = TemporalClientProvider(target_host=f"127.0.0.1:{port}")
    proxy = TcpProxy(port, temporal.client.service_client.config.target_host)
    async with receiver(settings, provider, iron) as http:
        body, headers = webhook(*status_message(customer_id))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
        assert response.status_code == 503
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200
        assert len(await delivered(handle)) == 0

        await proxy.start()
        try:
            assert (await http.get("/readyz")).status_code == 200
            response = await http.post("/webhooks/iron", content=body, headers=headers)
            assert response.status_code == 200, response.text
            assert len(await delivered(handle)) == 1

            await proxy.stop()  # Temporal goes away again after being reached
            started = time.monotonic()
            response = await http.post("/webhooks/iron", content=body, headers=headers)
            assert response.status_code == 503
            # Within the configured budget, retries included: Iron's sender does not wait forever.
            assert time.monotonic() - started < settings.temporal_timeout_seconds + 1
            assert len(await delivered(handle)) == 1

            await proxy.start()
            response = await http.post("/webhooks/iron", content=body, headers=headers)
            assert response.status_code == 200, response.text
        finally:
            await proxy.stop()
    assert len(await delivered(handle)) == 2


async def test_temporal_refusing_the_rpc_answers_503_not_ignored(settings, temporal, iron, running):
    """A namespace that does not exist is a configuration error, not an unknown workflow."""
    customer_id, handle = running
    wrong_namespace = await Client.connect(
        temporal.client.service_client.config.target_host, namespace="no-such-namespace", data_converter=data_converter()
    )
    for adopt in (False, True):
        async with receiver(settings.model_copy(update=dict(adopt_unknown_customers=adopt)), wrong_namespace, iron) as http:
            body, headers = webhook(*status_message(customer_id))
            response = await http.post("/webhooks/iron", content=body, headers=headers)
        assert response.status_code == 503, (adopt, response.text)
    assert len(await delivered(handle)) == 0


# --- health, readiness, logs, settings ---------------------------------------------------------


async def test_healthz_and_readyz(http):
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_readyz_names_iron_while_it_cannot_be_reached_and_asks_it_seldom_once_it_answers(settings, temporal, sandbox):
    """A customer not in the cache can only be routed by reading Iron: with Iron down, such a
    delivery gets 503, and so does the readiness probe, naming Iron. The probe's own Iron check
    is remembered for a few seconds, so a load balancer probing often costs Iron little."""
    proxy = TcpProxy(free_port(), sandbox.root_url.removeprefix("http://"))
    iron_behind_proxy = sandbox.settings(base_url=f"http://127.0.0.1:{proxy.port}/api")
    async with receiver(settings, temporal.client, iron_behind_proxy) as http:
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503, not_ready.text
        assert not_ready.json()["status"] == "unavailable"
        assert not_ready.json()["reason"].startswith("Iron"), not_ready.json()

        await proxy.start()
        try:
            deadline = time.monotonic() + 15
            while (ready := await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                await asyncio.sleep(0.2)
            assert ready.json() == {"status": "ready"}
            before = await iron_listings(sandbox)
            for _ in range(30):
                assert (await http.get("/readyz")).status_code == 200
            assert await iron_listings(sandbox) - before <= 1
        finally:
            await proxy.stop()


async def iron_listings(sandbox: SandboxServer) -> int:
    return sum(1 for r in await sandbox.control.requests() if r["method"] == "GET" and r["path"] == "/api/customers")


async def test_only_post_is_accepted_on_the_webhook_path(http):
    assert (await http.get("/webhooks/iron")).status_code == 405


async def test_log_line_has_the_delivery_and_never_secret_signature_or_body(http, running):
    customer_id, _ = running
    body, headers = webhook(*status_message(customer_id), webhook_id="wh-log-1")
    forged_body, forged_headers = webhook(*status_message(customer_id), secret="whsec-forged", webhook_id="wh-log-2")
    with structlog.testing.capture_logs() as logs:
        assert (await http.post("/webhooks/iron", content=body, headers=headers)).status_code == 200
        assert (await http.post("/webhooks/iron", content=forged_body, headers=forged_headers)).status_code == 401
    lines = [entry for entry in logs if entry["event"] == "webhook"]
    assert [line["webhook_id"] for line in lines] == ["wh-log-1", "wh-log-2"]
    accepted, refused = lines
    assert accepted["outcome"] == "signalled" and accepted["http_status"] == 200
    assert accepted["event_type"] == "customer_status"
    assert accepted["customer_id"] == customer_id
    assert refused["outcome"] == "rejected" and refused["http_status"] == 401
    text = json.dumps(logs, default=str)
    for secret_or_body in (
        SECRET,
        headers["webhook-signature"].removeprefix("v1="),
        forged_headers["webhook-signature"].removeprefix("v1="),
        body.decode(),
        json.loads(body)["timestamp"],
    ):
        assert secret_or_body not in text


async def test_settings_from_env():
    settings = ReceiverSettings.from_env(
        {
            "IRON_WEBHOOK_SECRETS": " new , old ,",
            "ONBOARDING_WEBHOOK_MAX_BYTES": "2048",
            "ONBOARDING_WEBHOOK_TOLERANCE_SECONDS": "60",
            "ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS": "false",
            "ONBOARDING_TASK_QUEUE": "q",
        }
    )
    assert settings.webhook_secrets == ("new", "old")
    assert (settings.max_body_bytes, settings.tolerance_seconds) == (2048, 60)
    assert settings.adopt_unknown_customers is False
    assert settings.task_queue == "q"
    assert "new" not in repr(settings) and "old" not in repr(settings)
    defaults = ReceiverSettings.from_env({"IRON_WEBHOOK_SECRETS": "s"})
    assert (defaults.max_body_bytes, defaults.tolerance_seconds) == (65536, 300)
    assert defaults.adopt_unknown_customers is True
    assert defaults.task_queue == "iron-onboarding"


@pytest.mark.parametrize(
    "env, names",
    [
        ({}, "IRON_WEBHOOK_SECRETS"),
        ({"IRON_WEBHOOK_SECRETS": " , "}, "IRON_WEBHOOK_SECRETS"),
        ({"IRON_WEBHOOK_SECRETS": "s", "ONBOARDING_WEBHOOK_MAX_BYTES": "64k"}, "ONBOARDING_WEBHOOK_MAX_BYTES"),
        ({"IRON_WEBHOOK_SECRETS": "s", "ONBOARDING_WEBHOOK_TOLERANCE_SECONDS": "0"}, "ONBOARDING_WEBHOOK_TOLERANCE_SECONDS"),
        ({"IRON_WEBHOOK_SECRETS": "s", "ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS": "maybe"}, "ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS"),
    ],
)
async def test_unusable_settings_name_the_variable(env, names):
    with pytest.raises(SettingsError, match=names):
        ReceiverSettings.from_env(env)


async def test_a_hostile_event_type_is_quoted_escaped_in_the_answer(http, running):
    """The receiver's door of the one way to quote input (contracts/quoting.py)."""
    customer_id, handle = running
    hostile = "a\x1b[31mred\nsecond\x85third\u2028"
    body, headers = webhook(hostile, customer_id, {"id": str(uuid.uuid4())}, variant="Event")
    response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "ignored", response.text
    reason = response.json()["reason"]
    assert reason == 'event type "a\\x1b[31mred\\nsecond\\x85third\\u2028" is not used by onboarding', reason
    assert reason.isprintable(), reason

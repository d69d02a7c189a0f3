"""The receiver under load and hostile input, against a real dev server and the Iron sandbox.

Bursts share one Iron read per customer and stay inside a bounded number of lookups; a pool
that wedges makes `/readyz` fail and the receiver replace its HTTP client; no header, body or
id answers 500 or reaches an Iron path unvalidated; a workflow that belongs to another Iron
customer is never signalled; slow bodies are cut off.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from typing import Any, AsyncIterator

import httpx
import pytest
import structlog
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.hypothesis_profiles import examples

from contracts import search_attributes
from contracts.messages import WORKFLOW_TYPE, OnboardingInput, OnboardingState, workflow_id_for
from data_protection.redaction import redact_processor
from iron_client.webhooks import build_container, compute_signature, sign
from tests.test_webhook_receiver import (  # noqa: F401  (module fixtures: a dev server, a sandbox)
    SECRET,
    TASK_QUEUE,
    customer_reads,
    delivered,
    exists,
    iron,
    new_customer,
    receiver,
    sandbox,
    settings,
    status_message,
    temporal,
    webhook,
)
from webhook_receiver import create_app
from webhook_receiver.app import MAX_JSON_DEPTH, json_too_deep, plain_unix_time
from webhook_receiver.routing import is_iron_id, path_segment

pytestmark = pytest.mark.asyncio(loop_scope="module")


def signed(container: Any, *, raw: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    body = raw if raw is not None else json.dumps(container).encode()
    return body, sign(SECRET, body)


async def start_owned(temporal, external_id: str, owner_customer_id: str):
    """A running workflow for `external_id` that knows its Iron customer (IronCustomerId)."""
    workflow_input = OnboardingInput(external_id=external_id, email="p@example.com", iron_customer_id=owner_customer_id)
    return await temporal.client.start_workflow(
        WORKFLOW_TYPE,
        workflow_input,
        id=workflow_id_for(external_id),
        task_queue=TASK_QUEUE,
        search_attributes=search_attributes.at_start(OnboardingState.first(workflow_input)),
    )


# --- bursts ----------------------------------------------------------------------------------


async def test_a_burst_is_answered_200_with_one_iron_read_per_customer(settings, temporal, iron, sandbox):
    """300 deliveries for 30 fresh customers at once: every one signalled; the 15 the engine
    already owns are found in Temporal's visibility with no Iron read, the 15 it never saw cost
    one Iron read each (then adoption). Before: each delivery read Iron itself (300 reads), and
    most of a burst answered 503. Temporal gets a generous budget: what is measured is the
    receiver, not the machine (`make receiver-load` measures the whole at 500 a burst)."""
    people = [await new_customer(iron) for _ in range(30)]
    for customer_id, external_id in people[::2]:
        await start_owned(temporal, external_id, customer_id)
    deliveries = [webhook(*status_message(cid)) for cid, _ in people for _ in range(10)]
    await sandbox.control.clear_requests()
    patient = settings.model_copy(update=dict(temporal_timeout_seconds=30))
    async with receiver(patient, temporal.client, iron.settings) as http:
        answers = await asyncio.gather(*(http.post("/webhooks/iron", content=b, headers=h) for b, h in deliveries))
        statuses = collections.Counter(a.status_code for a in answers)
        assert statuses == {200: 300}, statuses
        assert (await http.get("/readyz")).status_code == 200
    reads = [await customer_reads(sandbox, cid) for cid, _ in people]
    assert reads == [0, 1] * 15, "owned: none; never seen: one"
    for customer_id, external_id in people[:4]:
        handle = temporal.client.get_workflow_handle(workflow_id_for(external_id))
        assert len(await delivered(handle)) == 10


class HangingTransport(httpx.AsyncBaseTransport):
    """A connection that never answers and ignores every timeout: a wedged pool, as
    httpcore#1093 leaves one."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class PoolExhaustedTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.PoolTimeout("no connection available")


@pytest.mark.parametrize("broken", [HangingTransport, PoolExhaustedTransport])
async def test_a_wedged_pool_fails_readyz_and_the_receiver_recovers_by_itself(broken, settings, temporal, iron):
    # A customer the engine never saw: only Iron can route it (an owned one needs no Iron read).
    customer_id, external_id = await new_customer(iron)
    handle = temporal.client.get_workflow_handle(workflow_id_for(external_id))
    transports: list[httpx.AsyncBaseTransport] = []

    def transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        made = broken() if not transports else httpx.AsyncHTTPTransport(limits=limits)
        transports.append(made)
        return made

    quick = settings.model_copy(update=dict(iron_timeout_seconds=0.2))
    app = create_app(quick, temporal.client, iron.settings, iron_transport=transport)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        body, headers = webhook(*status_message(customer_id))
        started = time.monotonic()
        first = await http.post("/webhooks/iron", content=body, headers=headers)
        assert first.status_code == 503 and first.json()["status"] == "retry"
        assert time.monotonic() - started < 3
        if broken is HangingTransport:
            await asyncio.sleep(app.state.receiver.router._stuck_after() + 0.1)
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503, not_ready.text
        assert "Iron lookups" in not_ready.json()["reason"]
        # The client was replaced: ready again, and the delivery (Iron's retry) goes through.
        assert (await http.get("/readyz")).status_code == 200
        retried = await http.post("/webhooks/iron", content=body, headers=headers)
        assert retried.status_code == 200, retried.text
    assert len(transports) == 2
    assert len(await delivered(handle)) == 1


# --- hostile input at the door ---------------------------------------------------------------


async def test_a_timestamp_of_400_digits_is_401_not_500(settings, temporal, iron):
    body, headers = webhook(*status_message(str(uuid.uuid4())))
    headers["webhook-timestamp"] = "9" * 400  # past what a float holds: OverflowError before
    async with receiver(settings, temporal.client, iron) as http:
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 401


async def test_a_signed_body_nested_1000_deep_is_400_not_500(settings, temporal, iron):
    nested = "[" * 1000 + "]" * 1000
    raw = ('{"type": "customer_status", "timestamp": "t", "data": {"customer_id": "c", "message": ' + nested + "}}").encode()
    body, headers = signed(None, raw=raw)
    async with receiver(settings, temporal.client, iron) as http:
        response = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 400
    assert "nested" in response.json()["reason"]


@pytest.mark.parametrize(
    "customer_id",
    ["../../_sim/customers", "CID?page_size=1", "a\nb", "a\x00b", "a/b", "%2e%2e", "x" * 500, "a b", ".."],
)
async def test_an_id_that_is_not_an_iron_id_never_reaches_a_path(customer_id, settings, temporal, iron, sandbox):
    await sandbox.control.clear_requests()
    for container in (
        build_container("customer_status", customer_id, "CustomerStatus", {"id": customer_id, "status": "Active"}, timestamp="t"),
        build_container("identification_status", "0" * 8, "IdentificationStatus", {"id": customer_id, "status": "Approved"}, timestamp="t"),
    ):
        body, headers = signed(container)
        async with receiver(settings, temporal.client, iron) as http:
            response = await http.post("/webhooks/iron", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert "not an Iron id" in response.json()["reason"]
    assert await sandbox.control.requests() == []


async def test_path_segments_are_percent_encoded_and_ids_validated():
    assert path_segment("3f2b8c1e-0000-4000-8000-000000000001") == "3f2b8c1e-0000-4000-8000-000000000001"
    assert path_segment("a/b?c") == "a%2Fb%3Fc"
    assert is_iron_id(str(uuid.uuid4()))
    assert not any(is_iron_id(v) for v in ("", "../x", "a?b", "a\nb", "a\x00b", "x" * 129, None, 7))


async def test_bounded_parsing_helpers():
    assert plain_unix_time("1700000000") and plain_unix_time(" 1700000000 ")
    assert not any(plain_unix_time(v) for v in ("9" * 21, "1e9", "", "12 34", None, "١٢٣"))
    assert not json_too_deep(b'{"a": [{"b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}]}')
    assert json_too_deep(b"[" * (MAX_JSON_DEPTH + 1))


class SlowBody:
    """One byte every `every` seconds, as a slow-loris sender does."""

    def __init__(self, every: float) -> None:
        self.every = every

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(60):
            await asyncio.sleep(self.every)
            yield b" "


async def test_a_slow_body_is_cut_off_with_408(settings, temporal, iron):
    impatient = settings.model_copy(update=dict(body_timeout_seconds=0.5))
    headers = {"content-type": "application/json", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1=00"}
    async with receiver(impatient, temporal.client, iron) as http:
        started = time.monotonic()
        response = await http.post("/webhooks/iron", content=SlowBody(0.3), headers=headers)
    assert response.status_code == 408
    assert time.monotonic() - started < 2


# --- workflow ids that belong to someone else ------------------------------------------------


async def test_an_external_id_naming_another_customers_workflow_is_refused(settings, temporal, iron):
    """Customer A's workflow is `onboarding-X`; customer C, also with external id X, must not
    be signalled into it (before: it was, and C was never adopted)."""
    external_id = f"ext-{uuid.uuid4()}"
    owner_id = str(uuid.uuid4())  # A: whichever customer the workflow found first
    owner = await start_owned(temporal, external_id, owner_id)
    intruder_id, _ = await new_customer(iron, external_id)
    with structlog.testing.capture_logs() as logs:
        async with receiver(settings, temporal.client, iron) as http:
            body, headers = webhook(*status_message(intruder_id))
            response = await http.post("/webhooks/iron", content=body, headers=headers)
            again = await http.post("/webhooks/iron", content=body, headers=headers)
    assert response.status_code == 409 and again.status_code == 409
    assert response.json()["status"] == "refused"
    assert len(await delivered(owner)) == 0
    line = next(entry for entry in logs if entry.get("event") == "webhook")
    assert line["log_level"] == "error" and line["owner_customer_id"] == owner_id


async def test_an_external_id_equal_to_another_customers_iron_id_is_refused(settings, temporal, iron):
    """B has no external id, so its workflow is named after its Iron id; A's external id is
    B's Iron id. A webhook for B must not reach A's workflow, nor one for A reach B's."""
    b_id, _ = await new_customer(iron, None)
    a_id, _ = await new_customer(iron, b_id)
    a_workflow = await start_owned(temporal, b_id, a_id)  # A's onboarding took the name first
    async with receiver(settings, temporal.client, iron) as http:
        body, headers = webhook(*status_message(b_id))
        response = await http.post("/webhooks/iron", content=body, headers=headers)
        assert response.status_code == 409, response.text
        body, headers = webhook(*status_message(a_id))
        own = await http.post("/webhooks/iron", content=body, headers=headers)
        assert own.status_code == 200 and own.json()["status"] == "signalled"
    events = await delivered(a_workflow)
    assert [e.customer_id for e in events] == [a_id]


# --- no generated delivery gives a 5xx, a hang, or a secret or personal data in a log line ----

PERSONAL = "ottilie.brandt@example.org"
ids = st.one_of(
    st.uuids().map(str),
    st.text(max_size=40),
    st.sampled_from(["../../_sim/customers", "CID?page_size=1", "a\nb", "a\x00b", "", "x" * 300]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16) | st.just(PERSONAL),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
containers = st.builds(
    lambda event_type, customer_id, message_id, status, wrapped, extra: {
        "type": event_type,
        "timestamp": "2026-12-01T00:00:00Z",
        "data": {
            "customer_id": customer_id,
            "message": ({"CustomerStatus": {"id": message_id, "status": status, "email": PERSONAL, **extra}} if wrapped
                        else {"id": message_id, "status": status, "name": PERSONAL, **extra}),
        },
    },
    st.sampled_from(["customer_status", "identification_status", "customer_created", "ping", "event", "transaction_status", ""]),
    st.one_of(st.none(), ids, st.integers()),
    st.one_of(st.none(), ids),
    st.one_of(st.none(), st.sampled_from(["Active", "Approved", "Archived"]), st.text(max_size=20), st.just(PERSONAL)),
    st.booleans(),
    st.dictionaries(st.text(max_size=6), json_values, max_size=2),
)
bodies = st.one_of(
    containers.map(lambda c: json.dumps(c).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(min_value=30, max_value=3000).map(lambda n: b'{"type": "customer_status", "data": ' + b"[" * n + b"]" * n + b"}"),
)
timestamps = st.one_of(
    st.none(),
    st.just("now"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=30),
    st.integers(min_value=20, max_value=400).map(lambda n: "9" * n),
)


@hypothesis_settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies,
    timestamp=timestamps,
    signature=st.sampled_from(["valid", "forged", "missing", "garbage"]),
    content_type=st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain", None]),
    webhook_id=st.one_of(st.none(), st.text(max_size=300)),
)
async def test_no_generated_delivery_gives_a_5xx_a_hang_or_a_leak(
    body, timestamp, signature, content_type, webhook_id, settings, temporal, iron
):
    ts = str(int(time.time())) if timestamp in (None, "now") else timestamp
    headers: dict[str, bytes] = {}
    if signature != "missing":
        headers["webhook-timestamp"] = ts.encode()
        headers["webhook-signature"] = {
            "valid": f"v1={compute_signature(SECRET, ts, body)}",
            "forged": f"v1={compute_signature('whsec-forged', ts, body)}",
            "garbage": "v1=" + "zz" * 40,
        }[signature].encode()
    if content_type:
        headers["content-type"] = content_type.encode()
    if webhook_id is not None:
        headers["webhook-id"] = webhook_id.encode()
    quick = settings.model_copy(update=dict(temporal_timeout_seconds=5, iron_timeout_seconds=2))
    with structlog.testing.capture_logs() as logs:
        async with receiver(quick, temporal.client, iron) as http:
            response = await asyncio.wait_for(http.post("/webhooks/iron", content=body, headers=headers), 20)
    assert response.status_code < 500 or response.status_code == 503, response.text
    assert response.status_code != 503 or response.json().get("status") == "retry"
    text = json.dumps([redact_processor(None, "info", dict(entry)) for entry in logs], default=str)
    assert SECRET not in text
    assert PERSONAL not in text
    assert compute_signature(SECRET, ts, body) not in text

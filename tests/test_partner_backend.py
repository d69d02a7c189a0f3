"""The demo's partner backend over real HTTP: it verifies every event with `standardwebhooks`,
records each customer's events in order, refuses (500s, or a closed port) when told to, and
signs required documents through the starter's API when an event asks for them."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from standardwebhooks import Webhook
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.events import EVENT_DELIVERY_FAILED, EventDelivery
from contracts.events import DeliverEventInput, phase_changed, reminder_due, ReminderDue, Awaiting
from contracts.messages import OnboardingState, OnboardingTimings, Phase, SigningView, workflow_id_for
from contracts.outbox import Outbox
from demo.partner_backend import PartnerBackend, PartnerBackendThread, temporal_signer
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from runtime.temporal import data_converter
from starter import start_onboarding
from tests.workflow_harness import dev_server_env, running_worker, until, wait_for_state


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET, OLD_SECRET = new_secret(), new_secret()
AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def state(external_id: str, phase: Phase = Phase.AWAITING_IDENTIFICATION, **values) -> OnboardingState:
    return OnboardingState(external_id=external_id, phase=phase, **values)


def events_for(external_id: str, count: int) -> list:
    outbox = Outbox(max_pending=100)
    phases = [Phase.FINDING_CUSTOMER, Phase.CREATING_IDENTIFICATION, Phase.AWAITING_IDENTIFICATION, Phase.ACTIVE]
    for n in range(count):
        outbox = outbox.append(phase_changed(state(external_id, phases[n % len(phases)]), previous_phase=None, at=AT))
    return list(outbox.pending)


async def deliver(url: str, event, *secrets: str) -> str:
    activities = EventDelivery(EventsSettings(url=url, secret=",".join(secrets or (SECRET,)), timeout_seconds=3))
    try:
        result = await ActivityEnvironment().run(activities.deliver_event, DeliverEventInput.of(event))
        return result.outcome
    finally:
        await activities.aclose()


@pytest.fixture
def lines():
    return []


@pytest.fixture
def backend(lines):
    server = PartnerBackendThread(PartnerBackend([SECRET], out=lines.append, seed=7))
    with server:
        yield server


async def test_verified_events_are_recorded_in_order_per_customer_and_printed(backend, lines):
    alice, bob = events_for("alice", 3), events_for("bob", 2)
    for event in [alice[0], bob[0], alice[1], alice[2], bob[1]]:
        assert await deliver(backend.events_url, event) == "delivered"
    assert backend.backend.sequences("alice") == [1, 2, 3]
    assert backend.backend.sequences("bob") == [1, 2]
    assert lines[:2] == [
        "event onboarding.phase_changed alice FindingCustomer seq=1",
        "event onboarding.phase_changed bob FindingCustomer seq=1",
    ]
    async with httpx.AsyncClient() as http:
        snapshot = (await http.get(f"{backend.url}/_control/events")).json()
    assert [e["sequence"] for e in snapshot["customers"]["alice"]] == [1, 2, 3]
    assert snapshot["customers"]["alice"][0]["webhook_id"] == alice[0].webhook_id
    assert snapshot["counters"]["received"] == 5


async def test_a_retry_of_one_event_is_recorded_once(backend):
    [event] = events_for("carol", 1)
    await deliver(backend.events_url, event)
    await deliver(backend.events_url, event)
    assert backend.backend.sequences("carol") == [1]
    assert backend.backend.counters["duplicates"] == 1


async def test_signed_with_a_rotated_pair_verifies_with_either(lines):
    with PartnerBackendThread(PartnerBackend([OLD_SECRET], out=lines.append)) as old_only:
        [event] = events_for("dave", 1)
        assert await deliver(old_only.events_url, event, SECRET, OLD_SECRET) == "delivered"
        assert old_only.backend.sequences("dave") == [1]


async def test_forged_stale_or_unsigned_events_get_401(backend):
    [event] = events_for("erin", 1)
    body = event.body()
    now = datetime.now(timezone.utc)
    stale = datetime.fromtimestamp(now.timestamp() - 600, tz=timezone.utc)

    def headers(secret: str, at: datetime) -> dict[str, str]:
        return {
            "webhook-id": event.webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(event.webhook_id, at, body.decode()),
            "content-type": "application/json",
        }

    async with httpx.AsyncClient() as http:
        forged = await http.post(backend.events_url, content=body, headers=headers(new_secret(), now))
        too_old = await http.post(backend.events_url, content=body, headers=headers(SECRET, stale))
        unsigned = await http.post(backend.events_url, content=body, headers={"content-type": "application/json"})
        garbled = await http.post(backend.events_url, content=body,
                                  headers={**headers(SECRET, now), "webhook-signature": "v1"})
        tampered = await http.post(backend.events_url, content=body.replace(b"erin", b"eve_"),
                                   headers=headers(SECRET, now))
        good = await http.post(backend.events_url, content=body, headers=headers(SECRET, now))
    assert [r.status_code for r in (forged, too_old, unsigned, garbled, tampered)] == [401] * 5
    assert good.status_code == 200
    assert backend.backend.counters["rejected"] == 5
    assert backend.backend.sequences("erin") == [1] and backend.backend.sequences("eve_") == []


async def test_refusing_with_500_for_a_stretch_then_accepting(backend):
    first, second = events_for("frank", 2)
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{backend.url}/_control/refuse", json={"mode": "error", "status": 500})
        assert answer.status_code == 200
        with pytest.raises(ApplicationError) as failed:
            await deliver(backend.events_url, first)
        assert failed.value.type == EVENT_DELIVERY_FAILED and not failed.value.non_retryable
        assert (await http.delete(f"{backend.url}/_control/refuse")).status_code == 200
        assert await deliver(backend.events_url, first) == "delivered"
        # A timed refusal ends by itself: refused within its stretch (a long one, so a slow
        # machine is still inside it), delivered once it has run out.
        await http.post(f"{backend.url}/_control/refuse", json={"mode": "error", "seconds": 3})
        with pytest.raises(ApplicationError):
            await deliver(backend.events_url, second)
        deadline = time.monotonic() + 30
        while backend.backend.snapshot()["refusing"]:
            assert time.monotonic() < deadline, "the timed refusal never ended"
            await asyncio.sleep(0.1)
        assert await deliver(backend.events_url, second) == "delivered"
        bad = await http.post(f"{backend.url}/_control/refuse", json={"mode": "closed"})
        assert bad.status_code == 400 and "seconds" in bad.json()["error"]
    assert backend.backend.sequences("frank") == [1, 2]
    assert backend.backend.counters["refused"] == 2


async def test_closed_port_refuses_connections_then_listens_again_on_the_same_port(backend, lines):
    first, second = events_for("grace", 2)
    port = backend.port
    async with httpx.AsyncClient() as http:
        # Long enough that no machine is too slow to be refused within it; reopened below.
        assert (await http.post(f"{backend.url}/_control/refuse", json={"mode": "closed", "seconds": 120})).status_code == 200
    await until("the port closed", lambda: not backend.listening)
    with pytest.raises(ApplicationError) as failed:
        await deliver(backend.events_url, first)
    assert "ConnectError" in str(failed.value) and not failed.value.non_retryable
    backend.reopen()
    backend.wait_listening(timeout=10)
    assert backend.port == port
    assert await deliver(backend.events_url, first) == "delivered"
    assert backend.backend.sequences("grace") == [1]
    assert any(line.startswith("backend closed for") for line in lines)

    # A closed stretch also ends by itself, on the same port.
    backend.close_for(0.3)
    await until("the port closed again", lambda: not backend.listening)
    backend.wait_listening(timeout=10)
    assert backend.port == port
    assert await deliver(backend.events_url, second) == "delivered"
    outages = backend.backend.snapshot()["outages"]
    assert len(outages) == 2 and all(o["reopened_at"] >= o["closed_at"] for o in outages)


async def test_a_closed_backend_drops_the_connections_clients_kept_alive(backend):
    """A worker's HTTP client pools its connections: a backend that is down must not go on
    answering on one opened before the close, or an event meant to meet the outage is delivered."""
    async with httpx.AsyncClient() as http, httpx.AsyncClient() as driver:
        assert (await http.get(f"{backend.url}/healthz")).status_code == 200  # a connection now kept alive
        # A driver's long poll is in flight when the backend closes: its connection outlives the
        # graceful shutdown, and must not be left open either.
        poll = asyncio.ensure_future(driver.get(f"{backend.url}/_control/events/nobody?after=0&wait=30"))
        await asyncio.sleep(0.3)
        backend.close_for(120)
        await until("the port closed", lambda: not backend.listening)
        with pytest.raises(httpx.TransportError):
            await http.get(f"{backend.url}/healthz")
        with pytest.raises(httpx.TransportError):
            await poll
        with pytest.raises(httpx.TransportError):
            await driver.get(f"{backend.url}/healthz")
    backend.reopen()
    backend.wait_listening(timeout=10)


async def test_closing_on_a_customers_signings_closes_before_signing_and_records_the_outage(lines):
    """Armed for one customer, the backend closes its port once that customer's event asking for
    signings is recorded, and signs only once nobody listens: so that customer turns Active
    during the outage however fast or slow the machine is. Another customer's event does not
    close it."""
    signed_while_listening: list[tuple[str, bool]] = []
    server: PartnerBackendThread

    async def sign(external_id: str, content_id: str, request_id: str) -> None:
        signed_while_listening.append((external_id, server.listening))

    server = PartnerBackendThread(PartnerBackend([SECRET], signer=sign, out=lines.append))
    with server:
        async with httpx.AsyncClient() as http:
            armed = await http.post(f"{server.url}/_control/refuse",
                                    json={"mode": "closed", "seconds": 120, "on_signings_of": "judy"})
            assert armed.status_code == 200
        asking = {"required_signings": [{"id": "terms", "url": "https://iron.example/terms",
                                         "display_name": "Terms", "signed": False}]}
        other = phase_changed(state("ken", Phase.AWAITING_SIGNINGS, **asking), previous_phase=None, at=AT)
        assert await deliver(server.events_url, Outbox().append(other).head) == "delivered"
        await until("ken's signing", lambda: len(signed_while_listening) == 1)
        assert server.listening and signed_while_listening == [("ken", True)]

        event = phase_changed(state("judy", Phase.AWAITING_SIGNINGS, **asking), previous_phase=None, at=AT)
        assert await deliver(server.events_url, Outbox().append(event).head) == "delivered"
        await until("judy's signing", lambda: len(signed_while_listening) == 2)
        assert signed_while_listening[1] == ("judy", False)
        assert not server.listening
        server.reopen()
        server.wait_listening(timeout=10)
        outage = server.backend.snapshot()["outages"][0]
        assert outage["external_id"] == "judy" and outage["reopened_at"] >= outage["closed_at"]


async def test_a_bad_refusal_request_is_refused(backend):
    async with httpx.AsyncClient() as http:
        answers = [
            await http.post(f"{backend.url}/_control/refuse", json={"mode": "sideways"}),
            await http.post(f"{backend.url}/_control/refuse", json={"mode": "error", "status": 200}),
            await http.post(f"{backend.url}/_control/refuse", content=b"{", headers={"content-type": "application/json"}),
        ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    [event] = events_for("heidi", 1)
    assert await deliver(backend.events_url, event) == "delivered"


# --- signing on events, through the starter's API, on a real Temporal ---------------------------

DEV_TIMINGS = OnboardingTimings(
    poll_initial_seconds=0.5, poll_max_seconds=2, active_backstop_seconds=5, parked_reconcile_seconds=5,
    activity_timeout_seconds=5, activity_retry_initial_seconds=0.1, activity_retry_max_seconds=0.5,
)


async def test_backend_signs_the_documents_an_event_asks_for(temporal_cli_path, tmp_path, lines):
    """A real onboarding reaches AwaitingSignings; the event saying so reaches the backend,
    which signs each document with `starter.accept_signing`; the customer becomes Active.
    A reminder about the same signings afterwards signs nothing twice."""
    with SandboxServer() as sandbox:
        async with dev_server_env(temporal_cli_path) as env:
            target = env.client.service_client.config.target_host

            async def connect() -> Client:
                return await Client.connect(target, namespace=env.client.namespace, data_converter=data_converter())

            async with running_worker(env.client, sandbox, tmp_path) as worker:
                external_id = f"signer-{uuid.uuid4().hex[:8]}"
                await start_onboarding(env.client, external_id, email=f"{external_id}@example.com",
                                       timings=DEV_TIMINGS, task_queue=worker.task_queue)
                handle = env.client.get_workflow_handle(workflow_id_for(external_id))
                waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION,
                                               timeout=60, what="identification")
                await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
                signing = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS,
                                               timeout=60, what="signings")
                assert [s for s in signing.required_signings if not s.signed]

                with PartnerBackendThread(PartnerBackend([SECRET], signer=temporal_signer(connect), out=lines.append)) as backend:
                    outbox = Outbox().append(
                        phase_changed(signing, previous_phase=Phase.AWAITING_IDENTIFICATION, at=datetime.now(timezone.utc))
                    )
                    assert await deliver(backend.events_url, outbox.head) == "delivered"
                    active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=60, what="Active")
                    assert all(s.signed for s in active.required_signings)
                    # The same signings again (a late reminder): nothing is signed twice.
                    reminder = ReminderDue(awaiting=Awaiting.SIGNINGS, number=1, of=3,
                                           waiting_since=outbox.head.timestamp, after_seconds=86400)
                    outbox = outbox.acknowledge(1).append(reminder_due(signing, reminder=reminder, at=datetime.now(timezone.utc)))
                    assert await deliver(backend.events_url, outbox.head) == "delivered"
                    await asyncio.sleep(0.5)
                    counters = backend.backend.counters
                    assert counters["signed"] == len(signing.required_signings)
                    assert counters["sign_failures"] == 0
            signings_at_iron = [r for r in await sandbox.control.requests()
                                if r["method"] == "POST" and r["path"].endswith("/signings") and str(r["status_code"]).startswith("2")]
            assert len(signings_at_iron) == len(signing.required_signings)
    assert sum(line.startswith("signed ") for line in lines) == len(signing.required_signings)


async def test_each_try_of_one_signing_carries_that_signings_request_id():
    """The first try's answer never came (the backend's own timeout); the retry must be the same
    request, so the workflow answers it with the first try's signing. Each document has its own."""
    tries: list[tuple[str, str]] = []

    async def answer_lost_once_per_document(external_id: str, content_id: str, request_id: str) -> None:
        tries.append((content_id, request_id))
        if [c for c, _ in tries].count(content_id) == 1:
            raise asyncio.TimeoutError

    backend = PartnerBackend([SECRET], signer=answer_lost_once_per_document, out=lambda _: None)
    backend._sign_what_is_required(
        "customer-1",
        {"phase": Phase.AWAITING_SIGNINGS.value, "required_signings": [{"id": "terms", "signed": False},
                                                                       {"id": "privacy", "signed": False}]},
    )
    await backend.drain(timeout=10)

    ids = {content: {r for c, r in tries if c == content} for content in ("terms", "privacy")}
    assert len(tries) == 4 and all(len(v) == 1 for v in ids.values()), tries
    assert ids["terms"] != ids["privacy"]
    assert sorted(backend.signed["customer-1"]) == ["privacy", "terms"]
    assert backend.counters["sign_retries"] == 2 and backend.counters["sign_refused"] == 0


async def test_refusing_a_share_of_events(backend):
    """`rate` refuses that share of deliveries (the chaos suite's 30% of 500s)."""
    backend.backend.refuse("error", status=500, rate=0.3)
    outcomes = []
    for event in events_for("ivan", 20):
        while True:  # as Temporal would: retry the same event until it is accepted
            try:
                await deliver(backend.events_url, event)
                outcomes.append("ok")
                break
            except ApplicationError:
                outcomes.append("refused")
    refused = outcomes.count("refused")
    assert 2 <= refused <= 20, refused
    assert backend.backend.sequences("ivan") == list(range(1, 21))
    assert backend.backend.counters["refused"] == refused


async def test_a_driver_follows_a_customer_by_long_poll(backend):
    """`GET /_control/events/{id}?after=N&wait=S` answers as soon as an event past the first N
    arrives, and with nothing once S seconds pass: a driver follows customers without Temporal."""
    from demo.partner_backend import PartnerBackendClient

    first, second = events_for("judy", 2)
    client = PartnerBackendClient(backend.url)
    try:
        assert await deliver(backend.events_url, first) == "delivered"
        assert [e["sequence"] for e in await client.events("judy")] == [1]
        started = time.monotonic()
        assert await client.events("judy", after=1, wait=0.3) == []
        assert time.monotonic() - started >= 0.3
        waiting = asyncio.create_task(client.events("judy", after=1, wait=20))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        assert await deliver(backend.events_url, second) == "delivered"
        [event] = await asyncio.wait_for(waiting, 5)
        assert event["sequence"] == 2 and event["webhook_id"] == second.webhook_id
        assert event["data"]["external_id"] == "judy" and event["timestamp"] == second.timestamp
        assert event["received_at"] <= time.time()
    finally:
        await client.aclose()


async def test_refused_attempts_are_recorded_by_id_and_a_closed_port_reopens_on_demand(backend):
    [event] = events_for("kim", 1)
    backend.backend.refuse("error", status=503)
    with pytest.raises(ApplicationError):
        await deliver(backend.events_url, event)
    backend.backend.accept()
    assert backend.backend.refused_ids == [event.webhook_id]
    backend.close_for(60)
    deadline = time.monotonic() + 5
    while backend.listening and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not backend.listening
    backend.reopen()
    backend.wait_listening(timeout=10)
    assert await deliver(backend.events_url, event) == "delivered"
    assert backend.backend.sequences("kim") == [1]

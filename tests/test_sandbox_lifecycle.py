"""The lifecycle of FACTS.md, driven through `IronClient` (Iron's side played through `/_sim`),
with every webhook received by a real HTTP receiver and checked with `iron_client.webhooks`."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest

from iron_client import (
    Customer,
    IronBadRequest,
    IronNotFound,
    IronClient,
    IronHasPendingIdentification,
    IronUnauthorized,
)
from iron_client.webhooks import WebhookVerificationError, parse_event, verify
from iron_sandbox.testing import SandboxControlError, SandboxServer, WebhookCollector
from tests.sandbox_helpers import (  # noqa: F401  (fixtures)
    WEBHOOK_SECRET,
    business_identification,
    collector,
    collector_server,
    iron,
    new_key,
    person_identification,
    sandbox,
    sandbox_server,
    token_identification,
)


async def new_customer(iron: IronClient, **kw: Any) -> Customer:
    kw.setdefault("customer_type", "Person")
    kw.setdefault("email", "life@example.com")
    return await iron.create_customer(idempotency_key=new_key(), **kw)


def verified_events(collector: WebhookCollector) -> list[tuple[str, str | None, str | None]]:
    """(type, entity id, status) of every accepted delivery, each checked against the secret."""
    out = []
    for delivery in collector.accepted():
        verify(delivery["body"], delivery["headers"], [WEBHOOK_SECRET])
        event = parse_event(delivery["body"])
        out.append((event.type, event.entity_id, event.status))
    return out


async def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def test_the_whole_lifecycle(sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector) -> None:
    control = sandbox.control
    await control.set_webhooks(targets=[collector.url])

    customer = await new_customer(iron, external_id="life-1", name="Ada")
    assert customer.status == "IdentificationRequired" and customer.identification_status is None

    link = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    assert link.status == "Pending" and link.customer_id == customer.id
    assert link.url and link.url.startswith(sandbox.root_url + "/hosted/kyc/")
    async with httpx.AsyncClient() as http:
        assert (await http.get(link.url)).status_code == 200
    with pytest.raises(IronHasPendingIdentification):
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())

    for status in ("Processed", "PendingReview"):
        await control.set_identification_status(link.id, status)
        assert (await iron.get_identification(link.id)).status == status
        current = await iron.get_customer(customer.id)
        assert current.status == "IdentificationRequired" and current.identification_status == status

    decided = await iron.decide_sandbox_identification(link.id, approved=True, idempotency_key=new_key())
    assert decided.status == "Approved"
    assert (await iron.get_customer(customer.id)).status == "SigningsRequired"

    required = await iron.get_required_signings(customer.id)
    assert sorted(r.display_name for r in required) == ["Privacy Policy", "Terms and Conditions"]
    await iron.create_signing(customer.id, content_id=required[0].id, idempotency_key=new_key())
    assert (await iron.get_customer(customer.id)).status == "SigningsRequired"
    assert [r.id for r in await iron.get_required_signings(customer.id)] == [required[1].id]
    await iron.create_signing(customer.id, content_id=required[1].id, idempotency_key=new_key())
    assert (await iron.get_customer(customer.id)).status == "Active"
    assert await iron.get_required_signings(customer.id) == []

    # Compliance sends the customer back to identification: Iron opens a step-up flow itself.
    step = await control.set_customer_status(customer.id, "IdentificationRequired")
    reverted = await iron.get_customer(customer.id)
    assert reverted.status == "IdentificationRequired" and reverted.identification_status == "Pending"
    newest = (await iron.all_identifications(customer.id))[0]
    assert newest.id == step["identification"]["id"] != link.id
    assert newest.status == "Pending" and newest.url
    with pytest.raises(IronHasPendingIdentification):  # so the caller adopts it instead of creating one
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await control.set_identification_status(newest.id, "Approved")
    assert (await iron.get_customer(customer.id)).status == "Active"

    # And back to signings: new versions of the documents, with new content ids.
    await control.set_customer_status(customer.id, "SigningsRequired")
    again = await iron.get_required_signings(customer.id)
    assert len(again) == 2 and not {r.id for r in again} & {r.id for r in required}
    for item in again:
        await iron.create_signing(customer.id, content_id=item.id, idempotency_key=new_key())
    assert (await iron.get_customer(customer.id)).status == "Active"
    assert len((await iron.list_signings(customer.id)).items) == 4

    await control.set_customer_status(customer.id, "Suspended")
    assert (await iron.get_customer(customer.id)).status == "Suspended"
    with pytest.raises(IronUnauthorized):
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())

    archived = await iron.archive_customer(customer.id)
    assert archived.status == "Archived"
    assert {i.status for i in await iron.all_identifications(customer.id)} == {"Archived"}
    with pytest.raises(IronBadRequest):
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    with pytest.raises(SandboxControlError) as refused:
        await control.set_customer_status(customer.id, "Active")
    assert refused.value.status_code == 409

    await control.flush_webhooks(5)
    events = verified_events(collector)
    assert events[0] == ("customer_created", customer.id, None)
    assert [s for t, e, s in events if t == "customer_status"] == [
        "SigningsRequired", "Active", "IdentificationRequired", "Active", "SigningsRequired", "Active",
        "Suspended", "Archived",
    ]
    assert [s for t, e, s in events if t == "identification_status" and e == link.id] == [
        "Pending", "Processed", "PendingReview", "Approved", "Archived"
    ]
    assert [s for t, e, s in events if t == "identification_status" and e == newest.id] == [
        "Pending", "Approved", "Archived"
    ]


async def test_declined_identification(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await new_customer(iron)
    ident = await iron.create_identification(customer.id, person_identification(), idempotency_key=new_key())
    assert ident.url is None and ident.step_status.identity.result == "Pending"
    declined = await iron.decide_sandbox_identification(ident.id, approved=False, idempotency_key=new_key())
    assert declined.status == "Declined"
    assert declined.step_status.retryable_steps() == ["identity"]
    assert declined.url, "a step the customer can retry needs a url"
    assert declined.review_comment
    current = await iron.get_customer(customer.id)
    assert current.status == "IdentificationRequired" and current.identification_status == "Declined"
    requirements = await iron.get_customer_requirements(customer.id)
    assert requirements.requirements_due == ["kyc"]
    (missing,) = requirements.missing
    assert missing.code == "kyc_identity" and missing.retryable is True and missing.reject_reasons
    with pytest.raises(IronNotFound, match="No pending identification"):  # decided already
        await iron.decide_sandbox_identification(ident.id, approved=True, idempotency_key=new_key())

    # Declined is terminal: a new identification may start, and can succeed.
    retry = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await iron.decide_sandbox_identification(retry.id, approved=True, idempotency_key=new_key())
    assert (await iron.get_customer(customer.id)).status == "SigningsRequired"

    # A final decline leaves nothing the customer can fix.
    other = await new_customer(iron)
    final = await iron.create_identification(other.id, {"type": "Link"}, idempotency_key=new_key())
    await sandbox.control.set_identification_status(final.id, "Declined", retry=False, comment="Forged document")
    read = await iron.get_identification(final.id)
    assert read.step_status.retryable_steps() == [] and read.review_comment == "Forged document"
    requirements = await iron.get_customer_requirements(other.id)
    assert [i.retryable for i in requirements.issues] == [False] and not requirements.missing


async def test_expired_identification_and_the_hosted_flow(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await new_customer(iron)
    ident = await iron.create_identification(customer.id, {"type": "Link", "with_edd": True}, idempotency_key=new_key())
    assert ident.with_edd is True
    await sandbox.control.set_identification_status(ident.id, "Expired")
    current = await iron.get_customer(customer.id)
    assert current.status == "IdentificationRequired" and current.identification_status == "Expired"
    assert (await iron.get_customer_requirements(customer.id)).missing[0].code == "identification_kyc"

    token = await iron.create_identification(customer.id, token_identification(), idempotency_key=new_key())
    assert token.status == "Pending" and token.url is None
    incomplete_customer = await new_customer(iron)
    incomplete = await iron.create_identification(
        incomplete_customer.id, token_identification("incomplete-token"), idempotency_key=new_key()
    )
    assert incomplete.url and incomplete.step_status.retryable_steps() == ["questionnaire"]

    # The hosted page the url points at completes the identification like a customer would.
    async with httpx.AsyncClient() as http:
        done = await http.post(f"{sandbox.root_url}/hosted/kyc/{incomplete.id}/complete", data={"decision": "approve"})
    assert done.status_code == 200
    assert (await iron.get_identification(incomplete.id)).status == "Approved"
    assert (await iron.get_customer(incomplete_customer.id)).status == "SigningsRequired"
    (first_document, _) = await iron.get_required_signings(incomplete_customer.id)
    async with httpx.AsyncClient() as http:
        page = await http.get(first_document.url)
    assert page.status_code == 200 and first_document.display_name in page.text


async def test_business_identification_and_archiving_the_approved_one(sandbox: SandboxServer, iron: IronClient) -> None:
    business = await new_customer(iron, customer_type="Business", email="kyb@example.com")
    ident = await iron.create_identification(business.id, business_identification(documents=False),
                                             idempotency_key=new_key())
    assert ident.url and ident.step_status.retryable_steps() == ["company_documents"]
    with pytest.raises(IronBadRequest):  # a Person identification for a Business customer
        await iron.create_identification(business.id, person_identification(), idempotency_key=new_key())
    await sandbox.control.set_identification_status(ident.id, "Approved")
    assert (await iron.get_identification(ident.id)).residence_country == "DE"
    for item in await iron.get_required_signings(business.id):
        await iron.create_signing(business.id, content_id=item.id, idempotency_key=new_key())
    assert (await iron.get_customer(business.id)).status == "Active"
    assert (await iron.get_customer_requirements(business.id)).complete[0].code == "identification_kyb"

    # Archiving the identification that made the customer Active sends it back to identification.
    await iron.archive_identification(ident.id)
    current = await iron.get_customer(business.id)
    assert current.status == "IdentificationRequired" and current.identification_status == "Archived"
    assert (await iron.get_identification(ident.id)).residence_country is None


# --- webhooks --------------------------------------------------------------------------------------


async def test_webhooks_are_signed_and_refused_with_a_wrong_secret_or_stale_time(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    control = sandbox.control
    await control.set_webhooks(targets=[collector.url], replay_stale=True)
    customer = await new_customer(iron)
    await control.flush_webhooks(5)
    fresh, stale = collector.received
    assert fresh["body"] == stale["body"]
    verify(fresh["body"], fresh["headers"], ["rotated-out", WEBHOOK_SECRET])
    assert abs(int(fresh["headers"]["webhook-timestamp"]) - time.time()) < 30
    assert fresh["headers"]["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        verify(fresh["body"], fresh["headers"], ["not-the-secret"])
    with pytest.raises(WebhookVerificationError):
        verify(stale["body"], stale["headers"], [WEBHOOK_SECRET])
    verify(stale["body"], stale["headers"], [WEBHOOK_SECRET], tolerance_seconds=7200)  # signed, just old
    assert fresh["headers"]["webhook-id"] != stale["headers"]["webhook-id"]
    body = json.loads(fresh["body"])
    assert body["type"] == "customer_created" and body["data"]["customer_id"] == customer.id
    kinds = [(d["kind"], d["outcome"]) for d in await control.deliveries()]
    assert kinds == [("delivery", "delivered"), ("stale_replay", "accepted")]


async def test_failed_deliveries_are_retried_with_backoff(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    control = sandbox.control
    await control.set_webhooks(targets=[collector.url])
    collector.responses.extend([500, 503])
    await new_customer(iron)
    await control.flush_webhooks(5)
    received = collector.received
    assert [r["answered"] for r in received] == [500, 503, 200]
    assert len({r["body"] for r in received}) == 1
    assert len({r["headers"]["webhook-id"] for r in received}) == 3  # a new id per attempt
    assert received[1]["at"] - received[0]["at"] >= 0.04  # backoff, not a tight loop
    log = await control.deliveries()
    assert [(d["attempt"], d["status_code"], d["outcome"]) for d in log] == [
        (1, 500, "failed"), (2, 503, "failed"), (3, 200, "delivered")
    ]


async def test_an_unreachable_target_is_retried_then_given_up_without_blocking_the_api(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    control = sandbox.control
    with socket.socket() as silent:
        # Listening but never answering: each attempt waits for the delivery timeout.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
            await control.set_webhooks(targets=[hung, refused], timeout_seconds=1.0)
            started = time.monotonic()
            await new_customer(iron)
            assert time.monotonic() - started < 0.5, "delivery must never hold up the API answer"
            await wait_until(
                lambda: _gave_up(control, refused), timeout=5
            )
    log = [d for d in await control.deliveries() if d["target"] == refused]
    assert [d["attempt"] for d in log if d["outcome"] == "failed"] == [1, 2, 3, 4, 5]
    assert all("ConnectError" in d["error"] for d in log if d["outcome"] == "failed")
    await control.set_webhooks(targets=[])


async def _gave_up(control, target: str) -> bool:
    return any(d["target"] == target and d["outcome"] == "gave_up" for d in await control.deliveries())


async def test_dropped_duplicated_and_delayed_deliveries(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    control = sandbox.control
    await control.set_webhooks(targets=[collector.url], drop_rate=1.0)
    await new_customer(iron)
    await control.flush_webhooks(5)
    assert collector.received == []
    assert [d["outcome"] for d in await control.deliveries()] == ["dropped"]

    await control.set_webhooks(drop_rate=0.0, duplicate=2)
    customer = await new_customer(iron)
    await control.flush_webhooks(5)
    copies = collector.received
    assert len(copies) == 3 and len({c["body"] for c in copies}) == 1
    assert len({c["headers"]["webhook-id"] for c in copies}) == 3
    assert parse_event(copies[0]["body"]).customer_id == customer.id

    collector.clear()
    await control.set_webhooks(duplicate=0, delay_ms=400)
    started = time.time()
    await new_customer(iron)
    (delayed,) = await collector.wait_for(lambda r: len(r) == 1, timeout=5)
    assert delayed["at"] - started >= 0.35


async def test_reordered_and_bare_deliveries(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    control = sandbox.control
    customer = await new_customer(iron)
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await control.set_webhooks(targets=[collector.url], reorder=True, wrapped=False)
    await control.set_identification_status(ident.id, "Approved")  # emits two events at once
    await control.flush_webhooks(5)
    received = [(e.type, e.status) for e in map(parse_event, (r["body"] for r in collector.received))]
    emitted = [(e["type"], e["status"]) for e in (await control.events())[-2:]]
    assert emitted == [("identification_status", "Approved"), ("customer_status", "SigningsRequired")]
    assert received == emitted[::-1]
    assert "IdentificationStatus" not in collector.received[1]["body"].decode()  # the bare form
    for delivery in collector.received:
        verify(delivery["body"], delivery["headers"], [WEBHOOK_SECRET])


async def test_every_target_gets_every_event_in_order(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    with WebhookCollector() as second:
        await sandbox.control.set_webhooks(targets=[collector.url, second.url])
        customer = await new_customer(iron)
        ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
        for status in ("Processed", "PendingReview", "Approved"):
            await sandbox.control.set_identification_status(ident.id, status)
        await sandbox.control.flush_webhooks(5)
        expected = [(e["type"], e["status"]) for e in await sandbox.control.events()]
        for target in (collector, second):
            got = [(e.type, e.status or e.raw_message.get("kind")) for e in
                   (parse_event(r["body"]) for r in target.received)]
            assert got == expected


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_slow_receiver_gets_customers_in_parallel_and_each_customer_in_order(
    sandbox: SandboxServer, iron: IronClient, concurrency: int
) -> None:
    """Deliveries for different customers overlap up to `concurrency`; one customer's events
    still arrive one at a time, in the order they happened."""
    with WebhookCollector(answer_delay=0.25) as slow:
        await sandbox.control.set_webhooks(targets=[slow.url], concurrency=concurrency)
        customers = [await new_customer(iron) for _ in range(4)]
        for customer in customers:
            ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
            for status in ("Processed", "Approved"):
                await sandbox.control.set_identification_status(ident.id, status)
        await sandbox.control.flush_webhooks(30)
        events = await sandbox.control.events()
        assert len(slow.received) == len(events) >= 4 * 5
        if concurrency == 1:
            assert slow.most_in_flight == 1
        else:
            assert 2 <= slow.most_in_flight <= concurrency
        for customer in customers:
            expected = [(e["type"], e["status"]) for e in events if e["customer_id"] == customer.id]
            got = [(e.type, e.status or e.raw_message.get("kind")) for e in
                   (parse_event(r["body"]) for r in slow.received) if e.customer_id == customer.id]
            assert got == expected


async def test_webhook_concurrency_must_be_positive(sandbox: SandboxServer) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SandboxControlError, match="concurrency"):
            await sandbox.control.set_webhooks(concurrency=bad)


# --- autopilot -------------------------------------------------------------------------------------


async def _status(iron: IronClient, customer_id: str, wanted: str):
    customer = await iron.get_customer(customer_id)
    return customer if customer.status == wanted else None


async def test_autopilot_completes_hosted_kyc_and_step_ups(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    await control.set_autopilot(enabled=True, complete_after_seconds=0.1, step_gap_seconds=0.05)
    customer = await new_customer(iron, external_id="auto-1")
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await wait_until(lambda: _status(iron, customer.id, "SigningsRequired"))
    statuses = [e["status"] for e in await control.events() if e["entity_id"] == ident.id]
    assert statuses == ["Pending", "Processed", "PendingReview", "Approved"]
    for item in await iron.get_required_signings(customer.id):
        await iron.create_signing(customer.id, content_id=item.id, idempotency_key=new_key())
    await control.set_customer_status(customer.id, "IdentificationRequired")
    await wait_until(lambda: _status(iron, customer.id, "Active"))

    declined = await new_customer(iron, external_id="auto-decline-2")
    ident = await iron.create_identification(declined.id, {"type": "Link"}, idempotency_key=new_key())
    await wait_until(lambda: _identification_status(iron, ident.id, "Declined"))

    await control.set_autopilot(decision="expire")
    expiring = await new_customer(iron)
    ident = await iron.create_identification(expiring.id, {"type": "Link"}, idempotency_key=new_key())
    await wait_until(lambda: _identification_status(iron, ident.id, "Expired"))


async def _identification_status(iron: IronClient, identification_id: str, wanted: str) -> bool:
    return (await iron.get_identification(identification_id)).status == wanted


async def test_autopilot_steps_aside_when_someone_else_decides(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    await control.set_autopilot(enabled=True, complete_after_seconds=0.2, step_gap_seconds=0.02)
    customer = await new_customer(iron)
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await iron.decide_sandbox_identification(ident.id, approved=False, idempotency_key=new_key())
    await asyncio.sleep(0.5)
    statuses = [e["status"] for e in await control.events() if e["entity_id"] == ident.id]
    assert statuses == ["Pending", "Declined"]
    await control.set_autopilot(enabled=False)
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await asyncio.sleep(0.4)
    assert (await iron.get_identification(ident.id)).status == "Pending"

"""The sandbox's `/_sim` control surface refuses what it cannot apply, and can make Iron drift:
put a value on a customer or an identification that Iron's spec does not list yet."""

from __future__ import annotations

import httpx
import pytest

from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)


def _sim(sb: SandboxServer, method: str, path: str, *, content: bytes | None = None, json=None) -> httpx.Response:
    headers = {"Content-Type": "application/json"} if content is not None else None
    return httpx.request(method, sb.root_url + "/_sim" + path, content=content, json=json, headers=headers, timeout=10)


async def _create_works(iron: IronClient) -> None:
    customer = await iron.create_customer(customer_type="Person", email="c@example.com", idempotency_key=new_key())
    assert customer.status == "IdentificationRequired"


@pytest.mark.parametrize(
    "body",
    [b'{"advance_seconds": 1e308}', b'{"advance_seconds": NaN}', b'{"advance_seconds": Infinity}',
     b'{"advance_seconds": -Infinity}', b'{"advance_seconds": -1}', b'{"advance_seconds": 1e12}',
     b'{"advance_seconds": "60"}', b'{"advance_seconds": true}', b'{}'],
)
async def test_clock_refuses_what_it_cannot_apply(sandbox: SandboxServer, iron: IronClient, body: bytes) -> None:
    before = _sim(sandbox, "GET", "/clock").json()
    response = _sim(sandbox, "POST", "/clock", content=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "advance_seconds" in error or "not a number" in error, error
    assert _sim(sandbox, "GET", "/clock").json()["offset_seconds"] == before["offset_seconds"]
    await _create_works(iron)  # nothing was applied: the API still answers


async def test_clock_moves_by_a_sensible_amount(sandbox: SandboxServer, iron: IronClient) -> None:
    moved = _sim(sandbox, "POST", "/clock", json={"advance_seconds": 365 * 24 * 3600})
    assert moved.status_code == 200 and moved.json()["offset_seconds"] == 365 * 24 * 3600
    await _create_works(iron)


@pytest.mark.parametrize("path", ["/faults", "/webhooks", "/autopilot", "/webhooks/flush"])
async def test_non_finite_numbers_are_refused_everywhere(sandbox: SandboxServer, path: str) -> None:
    field = {"/faults": "latency_ms", "/webhooks": "delay_ms", "/autopilot": "complete_after_seconds",
             "/webhooks/flush": "timeout"}[path]
    response = _sim(sandbox, "POST", path, content=b'{"%s": NaN}' % field.encode())
    assert response.status_code == 400, response.text


# --- schema drift ------------------------------------------------------------------------------------


async def test_drift_puts_unknown_values_on_a_customer_and_an_identification(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    from iron_client.models import wire

    customer = await iron.create_customer(customer_type="Person", email="d@example.com", idempotency_key=new_key())
    identification = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())

    frozen = _sim(sandbox, "POST", f"/customers/{customer.id}/drift", json={"status": "Frozen",
                                                                             "requirement_code": "kyc_liveness"})
    assert frozen.status_code == 200, frozen.text
    read = await iron.get_customer(customer.id)
    assert wire(read.status) == "Frozen" and read.unknown_values() == [("status", "Frozen")]
    requirements = await iron.get_customer_requirements(customer.id)
    assert "kyc_liveness" in [wire(item.code) for item in requirements.missing]

    held = _sim(sandbox, "POST", f"/identifications/{identification.id}/drift",
                json={"status": "OnHold", "step": "liveness", "step_result": "Reconsidering", "retry": True})
    assert held.status_code == 200, held.text
    read_identification = await iron.get_identification(identification.id)
    assert wire(read_identification.status) == "OnHold"
    assert read_identification.step_status.retryable_steps() == ["liveness"]
    assert ("step_status.step", "liveness") in read_identification.unknown_values()
    assert wire((await iron.get_customer(customer.id)).identification_status) == "OnHold"

    # Iron returns to known values: everything reads as before.
    assert _sim(sandbox, "POST", f"/identifications/{identification.id}/status", json={"status": "Approved"}).status_code == 200
    assert _sim(sandbox, "POST", f"/customers/{customer.id}/drift", json={"requirement_code": None}).status_code == 200
    recovered = await iron.get_customer(customer.id)
    assert recovered.status == "SigningsRequired" and recovered.unknown_values() == []
    assert (await iron.get_customer_requirements(customer.id)).unknown_values() == []


async def test_drift_emits_the_webhook_as_iron_would(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await iron.create_customer(customer_type="Person", email="d@example.com", idempotency_key=new_key())
    drifted = await sandbox.control.drift_customer(customer.id, status="Frozen")
    assert drifted["customer"]["status"] == "Frozen"
    events = await sandbox.control.events()
    assert (events[-1]["type"], events[-1]["status"]) == ("customer_status", "Frozen")


@pytest.mark.parametrize(
    "path_kind, body",
    [("customer", {"status": "Active"}), ("customer", {"requirement_code": "kyc_selfie"}), ("customer", {}),
     ("customer", {"status": ""}), ("customer", {"status": "x" * 65}), ("customer", {"colour": "red"}),
     ("customer", {"requirement_code": "kyc_new", "bucket": "elsewhere"}),
     ("identification", {"status": "Approved"}), ("identification", {"step": "selfie"}),
     ("identification", {"step": "liveness", "retry": "yes"}), ("identification", {})],
)
async def test_drift_refuses_known_or_malformed_values(
    sandbox: SandboxServer, iron: IronClient, path_kind: str, body: dict
) -> None:
    customer = await iron.create_customer(customer_type="Person", email="d@example.com", idempotency_key=new_key())
    identification = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    path = f"/customers/{customer.id}/drift" if path_kind == "customer" else f"/identifications/{identification.id}/drift"
    response = _sim(sandbox, "POST", path, json=body)
    assert response.status_code == 400, response.text
    assert (await iron.get_customer(customer.id)).unknown_values() == []


# --- many customers at once -------------------------------------------------------------------------


async def test_many_customers_are_made_in_one_call_and_listed_like_any_other(sandbox: SandboxServer, iron: IronClient) -> None:
    added = await sandbox.control.add_customers(250, prefix="fleet")
    assert added["created"] == 250
    listed = [c async for c in iron.iter_customers(page_size=100)]
    assert len(listed) == 250 and {c.external_id for c in listed} == {f"fleet-{n}" for n in range(250)}
    assert {listed[0].id, listed[-1].id} == {added["first"], added["last"]}
    assert {c.status for c in listed} == {"IdentificationRequired"}
    scope = "00000000-0000-4000-8000-0000000000bb"
    await sandbox.control.add_customers(3, customer_type="Business", sub_partner_id=scope)
    async with sandbox.client(sub_partner_id=scope) as scoped:
        assert [c.customer_type async for c in scoped.iter_customers()] == ["Business"] * 3


@pytest.mark.parametrize(
    "body",
    [{}, {"count": 0}, {"count": 1_000_001}, {"count": "5"}, {"count": True}, {"count": 1, "customer_type": "Robot"},
     {"count": 1, "sub_partner_id": "not-a-uuid"}, {"count": 1, "colour": "red"}],
)
async def test_many_customers_refuses_what_it_cannot_make(sandbox: SandboxServer, body: dict) -> None:
    response = _sim(sandbox, "POST", "/customers", json=body)
    assert response.status_code == 400, response.text
    assert _sim(sandbox, "GET", "/customers").json() == []

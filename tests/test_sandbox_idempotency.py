"""Idempotency keys behave as FACTS.md says: one resource per key whether the create is repeated,
raced, or retried after its response was lost; a reused key with another body is a conflict;
after 24 hours a key no longer protects."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from iron_client import IronClient, IronHasPendingIdentification, IronIdempotencyConflict, IronServerError, IronUnavailable
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import API_KEY, iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)


async def create_person(iron: IronClient, key: str, **kw: Any):
    return await iron.create_customer(customer_type="Person", email="idem@example.com", idempotency_key=key, **kw)


async def approved_customer(sandbox: SandboxServer, iron: IronClient):
    customer = await create_person(iron, new_key())
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await sandbox.control.set_identification_status(ident.id, "Approved")
    return customer, await iron.get_required_signings(customer.id)


def creates(log: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    return [e for e in log if e["method"] == "POST" and e["path"].endswith(suffix)]


async def test_a_repeated_create_returns_the_stored_customer(sandbox: SandboxServer, iron: IronClient) -> None:
    key = new_key()
    first = await create_person(iron, key, external_id="repeat-1")
    again = [await create_person(iron, key, external_id="repeat-1") for _ in range(3)]
    assert {c.id for c in again} == {first.id}
    assert again[0].model_dump() == first.model_dump()
    assert len(await sandbox.control.customers()) == 1
    log = creates(await sandbox.control.requests(), "/customers")
    assert [(e["status_code"], e["replayed"]) for e in log] == [(201, False)] + [(201, True)] * 3
    assert {e["idempotency_key"] for e in log} == {key}


async def test_the_same_body_in_another_spelling_is_the_same_request(sandbox: SandboxServer) -> None:
    key = new_key()
    headers = {"X-API-Key": API_KEY, "IDEMPOTENCY-KEY": key, "Content-Type": "application/json"}
    bodies = [b'{"customer_type":"Person","email":"s@example.com"}',
              b'{ "email" : "s@example.com",\n  "customer_type" : "Person" }']
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        answers = [await http.post("/customers", content=body, headers=headers) for body in bodies]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].content == answers[1].content
    assert answers[1].headers.get("idempotent-replayed") == "true"


async def test_concurrent_creates_with_one_key_make_one_customer(sandbox: SandboxServer, iron: IronClient) -> None:
    key = new_key()
    results = await asyncio.gather(*(create_person(iron, key, external_id="race-1") for _ in range(10)))
    assert len({c.id for c in results}) == 1
    customers = await sandbox.control.customers()
    assert [c["external_id"] for c in customers] == ["race-1"]
    log = creates(await sandbox.control.requests(), "/customers")
    assert sorted(e["replayed"] for e in log) == [False] + [True] * 9
    assert all(e["status_code"] == 201 for e in log)


async def test_concurrent_identification_creates_with_one_key_make_one(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await create_person(iron, new_key())
    key = new_key()
    results = await asyncio.gather(
        *(iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key) for _ in range(10))
    )
    assert len({i.id for i in results}) == 1
    (dumped,) = await sandbox.control.customers()
    assert len(dumped["identifications"]) == 1


async def test_concurrent_identification_creates_with_different_keys_make_one(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    """Without a shared key the second create meets the pending one: exactly one wins."""
    customer = await create_person(iron, new_key())
    outcomes = await asyncio.gather(
        *(iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key()) for _ in range(10)),
        return_exceptions=True,
    )
    created = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, IronHasPendingIdentification)]
    assert len(created) == 1 and len(refused) == 9
    (dumped,) = await sandbox.control.customers()
    assert [i["id"] for i in dumped["identifications"]] == [created[0].id]


async def test_concurrent_signings_with_one_key_make_one(sandbox: SandboxServer, iron: IronClient) -> None:
    customer, required = await approved_customer(sandbox, iron)
    key = new_key()
    results = await asyncio.gather(
        *(iron.create_signing(customer.id, content_id=required[0].id, idempotency_key=key) for _ in range(10))
    )
    assert len({s.id for s in results}) == 1
    assert len((await iron.list_signings(customer.id)).items) == 1
    assert (await iron.get_customer(customer.id)).status == "SigningsRequired"


async def test_a_lost_response_took_effect_and_the_retry_returns_it(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    await control.set_faults(lose_response_next=1, lose_response_methods=["POST"])
    key = new_key()
    with pytest.raises(IronUnavailable):
        await create_person(iron, key, external_id="lost-1")
    customers = await control.customers()
    assert [c["external_id"] for c in customers] == ["lost-1"], "the lost request must have taken effect"
    retried = await create_person(iron, key, external_id="lost-1")
    assert retried.id == customers[0]["id"]
    assert len(await control.customers()) == 1
    log = creates(await control.requests(), "/customers")
    assert [(e["lost_response"], e["replayed"], e["status_code"]) for e in log] == [(True, False, 201), (False, True, 201)]


async def test_every_response_lost_still_makes_one_of_each(sandbox: SandboxServer, iron: IronClient) -> None:
    """Identifications and signings too: each retry is lost again, and still nothing doubles."""
    control = sandbox.control
    customer = await create_person(iron, new_key())
    await control.set_faults(lose_response_rate=1.0, lose_response_methods=["POST"], paths=["/identifications/v2"])
    key = new_key()
    for _ in range(3):
        with pytest.raises(IronUnavailable):
            await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    await control.clear_faults()
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    (dumped,) = await control.customers()
    assert [i["id"] for i in dumped["identifications"]] == [ident.id]

    await control.set_identification_status(ident.id, "Approved")
    required = await iron.get_required_signings(customer.id)
    await control.set_faults(lose_response_next=2, paths=["/signings"])
    key = new_key()
    for _ in range(2):
        with pytest.raises(IronUnavailable):
            await iron.create_signing(customer.id, content_id=required[0].id, idempotency_key=key)
    signing = await iron.create_signing(customer.id, content_id=required[0].id, idempotency_key=key)
    assert [s.id for s in (await iron.list_signings(customer.id)).items] == [signing.id]


async def test_injected_errors_take_no_effect(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    await control.set_faults(fail_next=2, error_statuses=[500, 503])
    key = new_key()
    for status in (500, 503):
        with pytest.raises(IronServerError) as error:
            await create_person(iron, key)
        assert error.value.status_code == status and error.value.trace_id
    assert await control.customers() == []
    customer = await create_person(iron, key)
    assert [c["id"] for c in await control.customers()] == [customer.id]
    log = creates(await control.requests(), "/customers")
    assert [(e["status_code"], e["fault"]) for e in log] == [(500, "error"), (503, "error"), (201, None)]


async def test_a_reused_key_with_another_body_is_a_conflict(sandbox: SandboxServer, iron: IronClient) -> None:
    key = new_key()
    await create_person(iron, key, external_id="conflict-1")
    with pytest.raises(IronIdempotencyConflict) as error:
        await create_person(iron, key, external_id="conflict-2")
    assert error.value.status_code == 409
    assert error.value.message == "Idempotency key reused with a different request body"
    assert len(await sandbox.control.customers()) == 1

    customer, required = await approved_customer(sandbox, iron)
    key = new_key()
    await iron.create_signing(customer.id, content_id=required[0].id, idempotency_key=key)
    with pytest.raises(IronIdempotencyConflict):
        await iron.create_signing(customer.id, content_id=required[1].id, idempotency_key=key)


async def test_keys_are_scoped_to_their_path(sandbox: SandboxServer, iron: IronClient) -> None:
    key = new_key()
    customer = await create_person(iron, key)
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    assert ident.customer_id == customer.id


async def test_a_replay_answers_the_stored_result_even_after_the_resource_moved(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    customer = await create_person(iron, new_key())
    key = new_key()
    created = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    await sandbox.control.set_identification_status(created.id, "Approved")
    replayed = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    assert replayed.id == created.id and replayed.status == "Pending"
    assert (await iron.get_identification(created.id)).status == "Approved"


async def test_errors_are_not_stored_so_a_retry_runs_again(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await create_person(iron, new_key())
    first = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    key = new_key()
    with pytest.raises(IronHasPendingIdentification):
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    await sandbox.control.set_identification_status(first.id, "Expired")
    second = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=key)
    assert second.id != first.id and second.status == "Pending"


async def test_after_24_hours_a_key_no_longer_protects(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    key = new_key()
    first = await create_person(iron, key, external_id="aged-1")
    await control.advance_clock(24 * 3600 - 60)
    assert (await create_person(iron, key, external_id="aged-1")).id == first.id
    await control.advance_clock(61)
    second = await create_person(iron, key, external_id="aged-1")
    assert second.id != first.id
    assert second.created_at.timestamp() - first.created_at.timestamp() >= 24 * 3600
    customers = await control.customers()
    assert [c["external_id"] for c in customers] == ["aged-1", "aged-1"]
    # Which is why a caller looks up before it creates: the lookup finds the first one.
    assert (await iron.get_customer_by_external_id("aged-1")).id == first.id


async def test_missing_or_empty_key_is_refused_before_anything_happens(sandbox: SandboxServer) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        for headers in ({}, {"IDEMPOTENCY-KEY": ""}):
            response = await http.post(
                "/customers", json={"customer_type": "Person", "email": "k@example.com"},
                headers={"X-API-Key": API_KEY, **headers},
            )
            assert response.status_code == 400
            assert "IDEMPOTENCY-KEY" in json.loads(response.content)
    assert await sandbox.control.customers() == []

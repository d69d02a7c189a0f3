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

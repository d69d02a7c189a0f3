"""Schema drift through the activities: a value Iron's spec does not list yet reaches the
workflow as the string Iron sent, and each read that carries one logs a warning naming it.
Real HTTP to the sandbox, which drifts through `/_sim/.../drift`."""

from __future__ import annotations

import httpx
import structlog
from temporalio.testing import ActivityEnvironment

from activities.iron_activities import IronActivities
from contracts.activity_models import CustomerRef, FindOrCreateCustomerInput, IdentificationRef
from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)


def _drift(sb: SandboxServer, path: str, body: dict) -> None:
    response = httpx.post(sb.root_url + "/_sim" + path, json=body, timeout=10)
    assert response.status_code == 200, response.text


def _unknown_value_lines(logs: list[dict]) -> list[tuple[str, str]]:
    return [(e["field"], e["value"]) for e in logs if e["event"] == "iron_unknown_value"]


async def test_unknown_statuses_and_steps_pass_through_as_strings_and_are_logged(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    customer = await iron.create_customer(
        customer_type="Person", email="drift@example.com", name="Dora Drift", external_id="drift-1",
        idempotency_key=new_key(),
    )
    identification = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    _drift(sandbox, f"/customers/{customer.id}/drift", {"status": "Frozen"})
    _drift(sandbox, f"/identifications/{identification.id}/drift",
           {"status": "OnHold", "step": "liveness", "step_result": "Pending", "retry": True})

    activities = IronActivities(iron)
    env = ActivityEnvironment()
    with structlog.testing.capture_logs() as logs:
        snapshot = await env.run(activities.get_customer, CustomerRef(customer_id=customer.id))
        found = await env.run(
            activities.find_or_create_customer,
            FindOrCreateCustomerInput(external_id="drift-1", email="drift@example.com", customer_type="Person",
                                      idempotency_key=new_key()),
        )
        read = await env.run(activities.get_identification, IdentificationRef(identification_id=identification.id))
        latest = await env.run(activities.latest_identification, CustomerRef(customer_id=customer.id))

    assert (snapshot.status, snapshot.identification_status) == ("Frozen", "OnHold")
    assert type(snapshot.status) is str and type(snapshot.identification_status) is str
    assert (found.id, found.status, found.created) == (customer.id, "Frozen", False)
    assert (read.status, read.retry_steps) == ("OnHold", ["liveness"])
    assert latest.identification is not None and latest.identification.status == "OnHold"

    lines = _unknown_value_lines(logs)
    assert lines.count(("status", "Frozen")) == 2  # get_customer and find_or_create_customer
    assert lines.count(("identification_status", "OnHold")) == 2
    assert lines.count(("status", "OnHold")) == 2 and lines.count(("step_status.step", "liveness")) == 2
    warning = next(e for e in logs if e["event"] == "iron_unknown_value")
    assert warning["log_level"] == "warning" and warning["resource_id"] == customer.id
    text = repr([e for e in logs if e["event"] == "iron_unknown_value"])
    assert "drift@example.com" not in text and "Dora" not in text  # ids and enum values only


async def test_known_values_log_nothing(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await iron.create_customer(customer_type="Person", email="k@example.com", idempotency_key=new_key())
    with structlog.testing.capture_logs() as logs:
        snapshot = await ActivityEnvironment().run(IronActivities(iron).get_customer, CustomerRef(customer_id=customer.id))
    assert snapshot.status == "IdentificationRequired" and type(snapshot.status) is str
    assert _unknown_value_lines(logs) == []

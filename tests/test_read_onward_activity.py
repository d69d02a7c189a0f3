"""`read_onward`: the reads a pass makes in a row, in one activity, each only when the one before
asks for it (the conditions are the workflow's). Real HTTP to the sandbox; its request log says
which reads went out."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from activities.iron_activities import IronActivities
from contracts.activity_models import ReadOnwardInput
from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)

ON_APPROVAL = dict(customer_if_identification=["Approved"], signings_if_customer=["SigningsRequired"])


async def reads(sandbox: SandboxServer) -> list[str]:
    """The GETs Iron received since the log was last cleared, as `GET <path>`; clears it."""
    logged = await sandbox.control.requests(clear=True)
    return [f"GET {r['path'].removeprefix('/api')}" for r in logged if r["method"] == "GET"]


async def test_reading_on_stops_where_the_rules_say_and_reads_in_order(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await iron.create_customer(
        customer_type="Person", email="onward@example.com", name="Olga Onward", external_id="onward-1",
        idempotency_key=new_key(),
    )
    identification = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    env, activities = ActivityEnvironment(), IronActivities(iron)
    request = ReadOnwardInput(customer_id=customer.id, identification_id=identification.id, **ON_APPROVAL)
    await sandbox.control.clear_requests()

    pending = await env.run(activities.read_onward, request)
    assert pending.identification.status == "Pending" and pending.customer is None and pending.signings is None
    assert await reads(sandbox) == [f"GET /identifications/{identification.id}"], "pending: the customer is not read"

    await iron.decide_sandbox_identification(identification.id, approved=True, idempotency_key=new_key())
    await sandbox.control.clear_requests()
    approved = await env.run(activities.read_onward, request)
    assert approved.identification.status == "Approved"
    assert approved.customer is not None and approved.customer.status == "SigningsRequired"
    assert approved.signings and all(s.url for s in approved.signings)
    assert await reads(sandbox) == [
        f"GET /identifications/{identification.id}",
        f"GET /customers/{customer.id}",
        f"GET /customers/{customer.id}/required-signings",
    ]

    # From a customer read: its signings only while it needs them.
    customer_only = ReadOnwardInput(customer_id=customer.id, signings_if_customer=["SigningsRequired"])
    read = await env.run(activities.read_onward, customer_only)
    assert read.identification is None and read.customer.status == "SigningsRequired" and read.signings
    for signing in approved.signings:
        await iron.create_signing(customer.id, content_id=signing.id, idempotency_key=new_key())
    await sandbox.control.clear_requests()
    active = await env.run(activities.read_onward, customer_only)
    assert active.customer.status == "Active" and active.signings is None
    assert await reads(sandbox) == [f"GET /customers/{customer.id}"], "Active: no signings read"


async def test_a_refused_read_names_itself_not_the_activity(sandbox: SandboxServer, iron: IronClient) -> None:
    import uuid

    import pytest
    from temporalio.exceptions import ApplicationError

    missing = str(uuid.uuid4())
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            IronActivities(iron).read_onward, ReadOnwardInput(customer_id=missing, signings_if_customer=["SigningsRequired"])
        )
    assert refused.value.non_retryable
    assert refused.value.details[0]["step"] == "get_customer" and refused.value.details[0]["status_code"] == 404

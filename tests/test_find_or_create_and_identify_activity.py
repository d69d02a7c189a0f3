"""`find_or_create_and_identify`: a new onboarding's customer and its first identification in
one activity, the identification only where the workflow's rules ask for it. Real HTTP to the
sandbox; its request log says what reached Iron."""

from __future__ import annotations

import uuid

from temporalio.testing import ActivityEnvironment

from activities.iron_activities import IronActivities
from contracts.activity_models import FindOrCreateAndIdentifyInput
from contracts.messages import IdentificationKind, IdentificationRequest
from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)


def request(external_id: str, identification: IdentificationRequest | None = None, **overrides) -> FindOrCreateAndIdentifyInput:
    values = dict(
        external_id=external_id, email=f"{external_id}@example.com", customer_type="Person", name="Ida Identify",
        idempotency_key=new_key(), identification=identification or IdentificationRequest(),
        identification_key=new_key(), identify_if_customer=["IdentificationRequired"],
    )
    return FindOrCreateAndIdentifyInput(**{**values, **overrides})


async def posts(sandbox: SandboxServer) -> list[str]:
    """The POSTs Iron received since the log was last cleared; clears it."""
    logged = await sandbox.control.requests(clear=True)
    return [r["path"].removeprefix("/api") for r in logged if r["method"] == "POST"]


async def test_a_new_customer_and_its_identification_in_one_activity_and_a_retry_makes_neither_again(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    activities, req = IronActivities(iron), request("identify-1")
    await sandbox.control.clear_requests()
    first = await ActivityEnvironment().run(activities.find_or_create_and_identify, req)
    assert first.customer.created and first.customer.status == "IdentificationRequired"
    assert first.identification is not None and first.identification.identification.status == "Pending"
    assert first.identification.identification.url
    assert await posts(sandbox) == ["/customers", f"/customers/{first.customer.id}/identifications/v2"]

    # The same call again, as a retry after a lost answer: the customer now shows the
    # identification, which the workflow adopts; nothing is created twice.
    again = await ActivityEnvironment().run(activities.find_or_create_and_identify, req)
    assert again.customer.id == first.customer.id and not again.customer.created
    assert again.customer.identification_ids == [first.identification.identification.id]
    assert again.identification is None
    assert await posts(sandbox) == []


async def test_a_customer_whose_status_does_not_ask_gets_no_identification(sandbox: SandboxServer, iron: IronClient) -> None:
    await sandbox.control.clear_requests()
    result = await ActivityEnvironment().run(
        IronActivities(iron).find_or_create_and_identify, request("identify-2", identify_if_customer=["SigningsRequired"])
    )
    assert result.customer.created and result.identification is None
    assert await posts(sandbox) == ["/customers"]


async def test_an_identification_refused_for_good_leaves_the_customer_returned_alone(
    sandbox: SandboxServer, iron: IronClient
) -> None:
    # Person data by reference with no document store: `create_identification` refuses it for
    # good, and the workflow's own step meets that refusal next.
    person = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref=f"fs:{uuid.uuid4()}")
    await sandbox.control.clear_requests()
    result = await ActivityEnvironment().run(IronActivities(iron).find_or_create_and_identify, request("identify-3", person))
    assert result.customer.created and result.identification is None
    assert await posts(sandbox) == ["/customers"]

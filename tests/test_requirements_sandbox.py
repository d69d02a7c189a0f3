"""Iron's requirements over real HTTP: the sandbox serves buckets that agree with its
identification and step states, and the `get_requirements` activity keeps their codes, never
Iron's free text; a customer Iron does not know is a final refusal the workflow treats as
"unavailable"."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.iron_activities import IronActivities
from contracts.activity_models import CustomerRef
from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import (  # noqa: F401  (fixtures)
    business_identification,
    iron,
    new_key,
    person_identification,
    sandbox,
    sandbox_server,
    token_identification,
)

STEP_CODES = {
    "identity": "kyc_identity", "proof_of_residence": "kyc_proof_of_residence", "selfie": "kyc_selfie",
    "company_beneficiaries": "kyb_company_beneficiaries", "company_data": "kyb_company_data",
    "company_documents": "kyb_company_documents",
}


async def customer_with(iron: IronClient, kind: str = "Person") -> str:
    customer = await iron.create_customer(customer_type=kind, email="req@example.com", idempotency_key=new_key())
    return customer.id


def code_of(step: str, category: str) -> str:
    return f"{category}_questionnaire" if step == "questionnaire" else STEP_CODES.get(step, f"{category}_{step}")


async def check_consistent(sandbox: SandboxServer, iron: IronClient, customer_id: str) -> dict[str, list[str]]:
    """The requirements follow from the newest identification's status and steps, as Iron's
    spec describes each bucket; returns the codes per bucket."""
    customer = await iron.get_customer(customer_id)
    requirements = await iron.get_customer_requirements(customer_id)
    category = "kyc" if customer.customer_type == "Person" else "kyb"
    buckets = {b: [str(i.code.value if hasattr(i.code, "value") else i.code) for i in getattr(requirements, b)]
               for b in ("complete", "pending", "missing", "issues")}
    every = [code for codes in buckets.values() for code in codes]
    assert len(every) == len(set(every)), f"a code in two buckets: {buckets}"
    outstanding = buckets["pending"] or buckets["missing"] or buckets["issues"]
    assert [str(c.value) for c in requirements.requirements_due] == ([category] if outstanding else [])
    newest_id = customer.identification_ids[-1] if customer.identification_ids else None
    for bucket in ("complete", "pending", "missing", "issues"):
        for item in getattr(requirements, bucket):
            assert item.identification_id == newest_id
            assert (item.retryable is True) == (bucket == "missing"), (bucket, item)
    if newest_id is None:
        assert buckets["missing"] == [f"identification_{category}"]
        return buckets
    newest = await iron.get_identification(newest_id)
    status = str(newest.status.value)
    steps = newest.step_status.steps() if newest.step_status else {}
    retry = set(newest.step_status.retryable_steps()) if newest.step_status else set()
    if status == "Approved":
        assert not outstanding and f"identification_{category}" in buckets["complete"]
        assert set(buckets["complete"]) >= {code_of(s, category) for s in steps}
    elif status in ("Processed", "PendingReview"):
        assert not buckets["missing"] and not buckets["issues"]
        assert set(buckets["pending"]) == {f"identification_{category}"} | {code_of(s, category) for s in steps}
    elif status == "Pending":
        assert set(buckets["missing"]) == ({code_of(s, category) for s in retry} or {f"identification_{category}"})
        assert set(buckets["pending"]) == {code_of(s, category) for s in steps if s not in retry}
    elif status == "Declined":
        declined = {s for s, step in steps.items() if str(step.result.value) == "Declined"}
        assert set(buckets["missing"]) == {code_of(s, category) for s in declined & retry}
        assert set(buckets["issues"]) == {code_of(s, category) for s in declined - retry}
        for item in requirements.missing + requirements.issues:
            assert item.reject_labels and [r.code for r in item.reject_reasons] == item.reject_labels
    return buckets


async def test_requirements_follow_every_identification_state(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    seen: dict[str, dict[str, list[str]]] = {}

    fresh = await customer_with(iron)
    seen["no identification"] = await check_consistent(sandbox, iron, fresh)

    link = await customer_with(iron)
    ident = await iron.create_identification(link, {"type": "Link"}, idempotency_key=new_key())
    seen["link pending"] = await check_consistent(sandbox, iron, link)
    for status in ("Processed", "PendingReview", "Approved"):
        await control.set_identification_status(ident.id, status)
        seen[f"link {status}"] = await check_consistent(sandbox, iron, link)

    token = await customer_with(iron)
    await iron.create_identification(token, token_identification("incomplete-token"), idempotency_key=new_key())
    seen["token missing data"] = await check_consistent(sandbox, iron, token)

    person = await customer_with(iron)
    submitted = await iron.create_identification(person, person_identification(), idempotency_key=new_key())
    seen["person submitted"] = await check_consistent(sandbox, iron, person)
    await control.set_identification_status(submitted.id, "Declined", retry=True)
    seen["declined, retry"] = await check_consistent(sandbox, iron, person)
    await control.set_identification_status(submitted.id, "Pending")  # Iron reopens the step to redo
    seen["reopened"] = await check_consistent(sandbox, iron, person)

    final = await customer_with(iron)
    other = await iron.create_identification(final, {"type": "Link"}, idempotency_key=new_key())
    await control.set_identification_status(other.id, "Declined", retry=False)
    seen["declined, final"] = await check_consistent(sandbox, iron, final)

    business = await customer_with(iron, "Business")
    await iron.create_identification(business, business_identification(documents=False), idempotency_key=new_key())
    seen["business missing documents"] = await check_consistent(sandbox, iron, business)

    # A step-up: Iron reverts an Active customer and opens a hosted identification.
    await control.set_identification_status(ident.id, "Approved")
    for item in await iron.get_required_signings(link):
        await iron.create_signing(link, content_id=item.id, idempotency_key=new_key())
    await control.set_customer_status(link, "IdentificationRequired")
    seen["step-up"] = await check_consistent(sandbox, iron, link)

    # The buckets say what changed, state by state (the rules above could pass on empty ones).
    assert seen["link pending"]["missing"] == ["identification_kyc"]
    assert seen["link Approved"]["complete"][0] == "identification_kyc"
    assert seen["token missing data"]["missing"] == ["kyc_questionnaire"]
    assert "kyc_identity" in seen["token missing data"]["pending"]
    assert sorted(seen["person submitted"]["pending"]) == ["kyc_identity", "kyc_proof_of_residence", "kyc_questionnaire", "kyc_selfie"]
    assert seen["declined, retry"]["missing"] == ["kyc_identity"]
    assert seen["reopened"]["missing"] == ["kyc_identity"]
    assert seen["declined, final"]["issues"] == ["kyc_identity"]
    assert seen["business missing documents"]["missing"] == ["kyb_company_documents"]
    assert seen["step-up"]["missing"] == ["identification_kyc"]


async def test_an_unknown_step_gets_a_code_of_its_own(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await customer_with(iron)
    ident = await iron.create_identification(customer, {"type": "Link"}, idempotency_key=new_key())
    await sandbox.control.drift_identification(ident.id, step="liveness", step_result="Pending", retry=True)
    buckets = await check_consistent(sandbox, iron, customer)
    assert buckets["missing"] == ["kyc_liveness"], "never another step's code"


async def test_the_activity_keeps_codes_and_drops_irons_text(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await customer_with(iron)
    ident = await iron.create_identification(customer, token_identification("incomplete-token"), idempotency_key=new_key())
    await sandbox.control.set_identification_status(ident.id, "Declined", retry=True, comment="Ottilie's passport is blurred")
    result = await ActivityEnvironment().run(IronActivities(iron).get_requirements, CustomerRef(customer_id=customer))
    view = result.requirements
    assert view.requirements_due == ["kyc"]
    (missing,) = view.missing
    assert (missing.code, missing.retryable, missing.identification_id) == ("kyc_identity", True, ident.id)
    assert missing.reject_labels == ["UNSATISFACTORY_PHOTOS"]
    assert {x.code for x in view.complete} >= {"kyc_selfie", "kyc_proof_of_residence"}
    dumped = result.model_dump_json()
    assert "Ottilie" not in dumped and "passport" not in dumped and "description" not in dumped
    assert view.brief() == "missing kyc_identity (UNSATISFACTORY_PHOTOS)"


async def test_a_customer_iron_does_not_know_is_a_final_refusal(sandbox: SandboxServer, iron: IronClient) -> None:
    unknown = "01900000-0000-7000-8000-000000000000"
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(IronActivities(iron).get_requirements, CustomerRef(customer_id=unknown))
    assert refused.value.non_retryable and refused.value.details[0]["status_code"] == 404

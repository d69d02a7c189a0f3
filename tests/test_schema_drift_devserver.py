"""Iron drifts: a status this code does not know shows in the state within one read, parks the
customer visibly, creates or signs nothing, `refresh` answers at once, and the customer goes on
as soon as Iron is back to a known status. On a real dev server, with the sandbox drifting."""

from __future__ import annotations

import uuid

import pytest

from contracts.messages import Phase, workflow_id_for
from starter import refresh, sign_all, start_onboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, requests_matching, wait_for_state

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Polls every second or two: no webhooks are delivered here, the reads find the drift.
TIMINGS = DEV_SERVER_TIMINGS.model_copy(update={"poll_max_seconds": 1, "parked_reconcile_seconds": 1})


async def test_an_unknown_identification_status_parks_and_the_customer_recovers(env, worker, sandbox):
    external_id = f"drift-ident-{uuid.uuid4().hex[:8]}"
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=TIMINGS, task_queue=worker.task_queue)
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")

    await sandbox.control.drift_identification(waiting.identification_id, status="OnHold")
    parked = await wait_for_state(handle, lambda s: s.phase == Phase.UNKNOWN_IRON_STATUS, timeout=30, what="unknown status")
    assert parked.identification_status == "OnHold", "Iron's value, as Iron sent it"
    refreshed = await refresh(env.client, external_id)
    assert refreshed.phase == Phase.UNKNOWN_IRON_STATUS and refreshed.identification_status == "OnHold"
    assert "OnHold" in refreshed.waiting_for

    posts = requests_matching(await sandbox.control.requests(), "POST", f"/customers/{waiting.iron_customer_id}/identifications")
    assert len(posts) == 1, "an unknown status never renews the identification"

    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=30, what="signings after Iron recovered")
    await sign_all(env.client, external_id)
    active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=30, what="Active")
    assert active.identification_id == waiting.identification_id


async def test_an_unknown_customer_status_parks_and_the_customer_recovers(env, worker, sandbox):
    external_id = f"drift-cust-{uuid.uuid4().hex[:8]}"
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=TIMINGS, task_queue=worker.task_queue)
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=30, what="signings")
    await sign_all(env.client, external_id)
    active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=30, what="Active")

    await sandbox.control.drift_customer(active.iron_customer_id, status="Frozen")
    refreshed = await refresh(env.client, external_id)
    assert refreshed.customer_status == "Frozen" and refreshed.phase == Phase.UNKNOWN_IRON_STATUS
    assert "'Frozen'" in refreshed.waiting_for
    description = await handle.describe()
    attributes = {pair.key.name: pair.value for pair in description.typed_search_attributes}
    assert attributes["OnboardingPhase"] == "UnknownIronStatus"
    assert attributes["IronCustomerStatus"] == "Frozen"

    await sandbox.control.set_customer_status(active.iron_customer_id, "Active")
    back = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=30, what="Active again")
    assert back.cycle == active.cycle, "a drift is not a new onboarding cycle"
    posts = requests_matching(await sandbox.control.requests(), "POST", f"/customers/{active.iron_customer_id}/")
    assert len([r for r in posts if "/identifications" in r["path"]]) == 1

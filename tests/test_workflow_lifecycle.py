"""Every branch and timer of `CustomerOnboarding` on the time-skipping test server, with the
production activities talking real HTTP to the Iron sandbox.

Webhooks are played by the test (it signals what the receiver would), so each test decides
which webhooks arrive and which are lost; the sandbox's request log says what reached Iron.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle

from data_protection.documents import FilesystemDocumentStore
from iron_client.models import IdentificationKind, IntendedUse
from starter import start_onboarding
from workflows.idempotency import customer_key, identification_key, signing_key
from contracts.messages import (
    UPDATE_ACCEPT_SIGNING,
    AcceptSigningRequest,
    AcceptSigningResult,
    IdentificationRequest,
    OnboardingState,
    Phase,
    RestartIdentificationRequest,
    RestartIdentificationResult,
    UPDATE_RESTART_IDENTIFICATION,
    UPDATE_REFRESH,
    RefreshRequest,
    workflow_id_for,
)
from tests.workflow_harness import (
    FAST_TIMINGS,
    current_state,
    save_histories,
    requests_matching,
    running_worker,
    signal_event,
    skip,
    time_skipping_env,
    wait_for_phase,
    wait_for_state,
)

FIRST_RUNS: dict[str, tuple] = {}
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
async def env(temporal_test_server_path):
    async with time_skipping_env(temporal_test_server_path) as environment:
        yield environment


@pytest.fixture
def documents_dir(tmp_path) -> Path:
    return tmp_path / "documents"


@pytest.fixture
async def worker(env, sandbox, documents_dir):
    async with running_worker(env.client, sandbox, documents_dir) as w:
        yield w


def new_external_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def start(env, worker, external_id: str, **kwargs) -> WorkflowHandle:
    kwargs.setdefault("timings", FAST_TIMINGS)
    result = await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", task_queue=worker.task_queue, **kwargs
    )
    FIRST_RUNS[result.workflow_id] = (env.client, result.run_id)
    return env.client.get_workflow_handle(workflow_id_for(external_id))


async def record_history(handle: WorkflowHandle, name: str) -> None:
    client, first_run_id = FIRST_RUNS[handle.id]
    await save_histories(client, handle.id, first_run_id, f"lifecycle/{name}")


async def decide_identification(sandbox, handle: WorkflowHandle, state: OnboardingState, status: str, *, webhook: bool = True):
    await sandbox.control.set_identification_status(state.identification_id, status)
    if webhook:
        await signal_event(
            handle,
            "identification_status",
            customer_id=state.iron_customer_id,
            entity_id=state.identification_id,
            status=status,
        )


async def compliance_action(sandbox, handle: WorkflowHandle, state: OnboardingState, status: str, *, webhook: bool = True):
    await sandbox.control.set_customer_status(state.iron_customer_id, status)
    if webhook:
        await signal_event(
            handle, "customer_status", customer_id=state.iron_customer_id, entity_id=state.iron_customer_id, status=status
        )


async def sign_everything(handle: WorkflowHandle) -> list[AcceptSigningResult]:
    state = await wait_for_phase(handle, Phase.AWAITING_SIGNINGS)
    assert state.required_signings, "SigningsRequired without required signings"
    results = []
    for signing in state.required_signings:
        results.append(
            await handle.execute_update(
                UPDATE_ACCEPT_SIGNING, AcceptSigningRequest(content_id=signing.id), result_type=AcceptSigningResult
            )
        )
    return results


async def onboard_to_active(sandbox, handle: WorkflowHandle, *, cycle: int = 1) -> OnboardingState:
    state = await wait_for_state(
        handle,
        lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.cycle == cycle,
        what=f"awaiting identification in cycle {cycle}",
    )
    await decide_identification(sandbox, handle, state, "Approved")
    await sign_everything(handle)
    return await wait_for_phase(handle, Phase.ACTIVE, cycle=cycle)


async def iron_requests(sandbox) -> list[dict]:
    return await sandbox.control.requests()


# --- happy paths -------------------------------------------------------------------------------


async def test_link_customer_reaches_active_with_one_call_of_each_kind(env, worker, sandbox):
    external_id = new_external_id("link")
    handle = await start(env, worker, external_id)

    waiting = await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)
    assert waiting.identification_url, "the hosted KYC url is exposed as soon as it exists"
    assert waiting.identification_kind == "Link"
    assert waiting.customer_status == "IdentificationRequired"

    await decide_identification(sandbox, handle, waiting, "Approved")
    signed = await sign_everything(handle)
    assert signed[-1].remaining == []
    active = await wait_for_phase(handle, Phase.ACTIVE)

    assert active.outcome == "Active"
    assert active.cycle == 1
    assert all(s.signed for s in active.required_signings)
    assert active.needs_attention is None
    assert [e.phase for e in active.audit if e.cause.startswith("identification") or e.phase == Phase.ACTIVE][-1] == Phase.ACTIVE

    workflow_id = workflow_id_for(external_id)
    log = await iron_requests(sandbox)
    customer_posts = [r for r in requests_matching(log, "POST", "/api/customers") if r["path"] == "/api/customers"]
    ours = [r for r in customer_posts if r["idempotency_key"] == customer_key(workflow_id)]
    assert len(ours) == 1 and 200 <= ours[0]["status_code"] < 300
    ident_posts = requests_matching(log, "POST", f"/customers/{active.iron_customer_id}/identifications")
    assert [r["idempotency_key"] for r in ident_posts] == [identification_key(workflow_id, 1, 1)]
    signing_posts = requests_matching(log, "POST", f"/customers/{active.iron_customer_id}/signings")
    assert sorted(r["idempotency_key"] for r in signing_posts) == sorted(
        signing_key(workflow_id, 1, s.id) for s in active.required_signings
    )

    description = await handle.describe()
    attributes = {pair.key.name: pair.value for pair in description.typed_search_attributes}
    assert attributes["OnboardingPhase"] == "Active"
    assert attributes["IronCustomerStatus"] == "Active"
    assert attributes["IronCustomerId"] == active.iron_customer_id
    assert attributes["OnboardingCycle"] == 1
    assert all("@" not in str(v) for v in attributes.values()), "no PII in search attributes"
    await record_history(handle, "link_happy_path")


@pytest.mark.parametrize("kind", ["Token", "Person", "Business"])
async def test_each_identification_kind_reaches_active(env, worker, sandbox, documents_dir, kind):
    external_id = new_external_id(kind.lower())
    customer_type = "Business" if kind == "Business" else "Person"
    if kind == "Token":
        request = IdentificationRequest(kind=IdentificationKind.TOKEN, token="sumsub-share-token", intended_use=IntendedUse.INVESTING)
    else:
        data = (SAMPLES / f"{kind.lower()}_identification.json").read_bytes()
        ref = await FilesystemDocumentStore(documents_dir).put(data)
        request = IdentificationRequest(kind=IdentificationKind(kind), document_ref=ref)
    handle = await start(env, worker, external_id, customer_type=customer_type, identification=request)

    active = await onboard_to_active(sandbox, handle)
    assert active.identification_kind == kind
    assert active.outcome == "Active"
    if kind in ("Person", "Business"):
        history = json.dumps((await handle.fetch_history()).to_json_dict())
        assert "Lovelace" not in history and "Babbage" not in history, "identification data stays out of history"


# --- webhooks lost, late, duplicated ----------------------------------------------------------


async def test_lost_webhook_is_recovered_by_polling(env, worker, sandbox):
    handle = await start(env, worker, new_external_id("lost"))
    waiting = await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)

    await decide_identification(sandbox, handle, waiting, "Approved", webhook=False)
    await skip(env, FAST_TIMINGS.poll_initial_seconds * 4)

    state = await wait_for_phase(handle, Phase.AWAITING_SIGNINGS)
    assert state.identification_status == "Approved"
    assert not any(e for e in state.recent_events), "no webhook was delivered"
    await record_history(handle, "lost_webhook_polling")


async def test_stale_and_duplicate_webhooks_cannot_move_backwards(env, worker, sandbox):
    handle = await start(env, worker, new_external_id("stale"))
    active = await onboard_to_active(sandbox, handle)
    reads_before = len(requests_matching(await iron_requests(sandbox), "GET", f"/customers/{active.iron_customer_id}"))

    # Old news and forged-looking news: Iron still says Active.
    for status in ("IdentificationRequired", "SigningsRequired"):
        await signal_event(handle, "customer_status", customer_id=active.iron_customer_id, entity_id=active.iron_customer_id, status=status)
    await signal_event(handle, "identification_status", customer_id=active.iron_customer_id, entity_id=active.identification_id, status="Pending")
    duplicate_of = None
    await wait_for_state(handle, lambda s: len(s.recent_events) >= 3, what="events recorded")
    state = await handle.execute_update(UPDATE_REFRESH, RefreshRequest(), result_type=OnboardingState)
    assert state.phase == Phase.ACTIVE and state.cycle == 1, "Iron is the truth"
    duplicate_of = state.recent_events[-1]
    reads_after = len(requests_matching(await iron_requests(sandbox), "GET", f"/customers/{active.iron_customer_id}"))
    assert reads_after > reads_before, "each webhook made the workflow read Iron"

    if duplicate_of is not None:
        await handle.signal(
            "iron_event",
            {
                "type": duplicate_of.type,
                "timestamp": duplicate_of.timestamp,
                "customer_id": active.iron_customer_id,
                "entity_id": duplicate_of.entity_id,
                "status": duplicate_of.status,
            },
        )
        state = await wait_for_state(handle, lambda s: s.recent_events[-1].duplicate, what="duplicate noticed")
        assert state.phase == Phase.ACTIVE


# --- identification outcomes -------------------------------------------------------------------


async def test_expired_identification_is_renewed_then_bounded(env, worker, sandbox):
    timings = FAST_TIMINGS.model_copy(update={"max_expired_renewals": 1})
    external_id = new_external_id("expired")
    handle = await start(env, worker, external_id, timings=timings)
    first = await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)

    await decide_identification(sandbox, handle, first, "Expired")
    second = await wait_for_state(
        handle,
        lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id != first.identification_id,
        what="a new identification",
    )
    assert second.expired_count == 1
    assert second.identification_url

    await decide_identification(sandbox, handle, second, "Expired")
    parked = await wait_for_phase(handle, Phase.NEEDS_ATTENTION)
    assert parked.needs_attention is not None
    assert "expired" in parked.needs_attention.reason
    assert parked.outcome == "NeedsAttention"

    workflow_id = workflow_id_for(external_id)
    posts = requests_matching(await iron_requests(sandbox), "POST", f"/customers/{first.iron_customer_id}/identifications")
    assert [r["idempotency_key"] for r in posts] == [identification_key(workflow_id, 1, n) for n in (1, 2)]

    result = await handle.execute_update(
        UPDATE_RESTART_IDENTIFICATION,
        RestartIdentificationRequest(reason="customer asked for a new link"),
        result_type=RestartIdentificationResult,
    )
    assert result.accepted
    third = await wait_for_state(
        handle,
        lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id not in (first.identification_id, second.identification_id),
        what="identification after restart",
    )
    assert third.needs_attention is None
    await record_history(handle, "expired_renewed_and_bounded")


async def test_declined_waits_for_an_operator_then_restarts(env, worker, sandbox):
    handle = await start(env, worker, new_external_id("declined"))
    waiting = await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)

    await decide_identification(sandbox, handle, waiting, "Declined")
    declined = await wait_for_phase(handle, Phase.DECLINED)
    assert declined.outcome == "Declined"

    await skip(env, 3 * 24 * 3600)  # days pass: it never retries on its own
    still = await current_state(handle)
    assert still.phase == Phase.DECLINED
    posts = requests_matching(await iron_requests(sandbox), "POST", f"/customers/{waiting.iron_customer_id}/identifications")
    assert len(posts) == 1

    await handle.execute_update(
        UPDATE_RESTART_IDENTIFICATION,
        RestartIdentificationRequest(reason="documents re-checked"),
        result_type=RestartIdentificationResult,
    )
    renewed = await wait_for_state(
        handle,
        lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id != waiting.identification_id,
        what="new identification after restart",
    )
    assert renewed.outcome is None
    await decide_identification(sandbox, handle, renewed, "Approved")
    await sign_everything(handle)
    await wait_for_phase(handle, Phase.ACTIVE)
    await record_history(handle, "declined_then_restart")


async def test_pending_review_for_days_keeps_waiting_with_bounded_polling(env, worker, sandbox):
    timings = FAST_TIMINGS.model_copy(update={"poll_max_seconds": 4 * 3600})
    handle = await start(env, worker, new_external_id("review"), timings=timings)
    waiting = await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)
    await decide_identification(sandbox, handle, waiting, "Processed")
    await decide_identification(sandbox, handle, waiting, "PendingReview")
    await wait_for_state(handle, lambda s: s.identification_status == "PendingReview", what="PendingReview")

    await skip(env, 3 * 24 * 3600)
    state = await current_state(handle)
    assert state.phase == Phase.AWAITING_IDENTIFICATION
    assert state.identification_status == "PendingReview"
    polls = requests_matching(await iron_requests(sandbox), "GET", f"/identifications/{waiting.identification_id}")
    # Backoff from 30 s to 4 h: about 26 reads over three days, not thousands.
    assert 5 <= len(polls) <= 60, len(polls)

    await decide_identification(sandbox, handle, waiting, "Approved")
    await wait_for_phase(handle, Phase.AWAITING_SIGNINGS)


# --- life after Active -------------------------------------------------------------------------


async def test_reverted_to_identification_required_adopts_iron_step_up(env, worker, sandbox):
    external_id = new_external_id("stepup")
    handle = await start(env, worker, external_id)
    first = await onboard_to_active(sandbox, handle)

    await compliance_action(sandbox, handle, first, "IdentificationRequired")
    stepup = await wait_for_state(
        handle,
        lambda s: s.cycle == 2 and s.phase == Phase.AWAITING_IDENTIFICATION,
        what="step-up identification adopted in cycle 2",
    )
    assert stepup.identification_id != first.identification_id
    assert stepup.identification_url, "the step-up url is exposed"

    posts = requests_matching(await iron_requests(sandbox), "POST", f"/customers/{first.iron_customer_id}/identifications")
    assert len(posts) == 1, "the step-up Iron created is adopted, not duplicated"

    # A step-up returns the customer to Active once approved: no new signings (FACTS.md).
    await decide_identification(sandbox, handle, stepup, "Approved")
    second = await wait_for_phase(handle, Phase.ACTIVE, cycle=2)
    assert second.runs >= 2, "continue-as-new at the end of each cycle"
    assert any("reverted" in e.cause for e in second.audit)
    await record_history(handle, "reverted_identification_required")


async def test_reverted_to_signings_required_signs_new_documents(env, worker, sandbox):
    handle = await start(env, worker, new_external_id("resign"))
    first = await onboard_to_active(sandbox, handle)
    first_ids = {s.id for s in first.required_signings}

    await compliance_action(sandbox, handle, first, "SigningsRequired")
    waiting = await wait_for_state(
        handle, lambda s: s.cycle == 2 and s.phase == Phase.AWAITING_SIGNINGS, what="new signings in cycle 2"
    )
    assert {s.id for s in waiting.required_signings if not s.signed}.isdisjoint(first_ids)
    await sign_everything(handle)
    active = await wait_for_phase(handle, Phase.ACTIVE, cycle=2)
    assert active.identification_id == first.identification_id
    await record_history(handle, "reverted_signings_required")


async def test_suspended_waits_visibly_and_archived_ends(env, worker, sandbox):
    handle = await start(env, worker, new_external_id("suspend"))
    active = await onboard_to_active(sandbox, handle)

    await compliance_action(sandbox, handle, active, "Suspended")
    suspended = await wait_for_phase(handle, Phase.SUSPENDED)
    assert suspended.outcome == "Suspended"

    await compliance_action(sandbox, handle, active, "Active")
    restored = await wait_for_phase(handle, Phase.ACTIVE)
    assert restored.cycle == 1, "a lifted suspension is not a new onboarding cycle"

    await compliance_action(sandbox, handle, active, "Archived")
    final = await handle.result()
    final_state = OnboardingState.model_validate(final) if isinstance(final, dict) else final
    assert final_state.phase == Phase.ARCHIVED
    assert final_state.outcome == "Archived"
    await record_history(handle, "suspended_then_archived")


async def test_reconciliation_notices_a_change_without_any_webhook(env, worker, sandbox):
    handle = await start(env, worker, new_external_id("reconcile"))
    active = await onboard_to_active(sandbox, handle)
    await compliance_action(sandbox, handle, active, "Suspended", webhook=False)
    # Runs started today read Iron while Active on the backstop (the fleet pass is not running here).
    await skip(env, FAST_TIMINGS.active_backstop_seconds + 60)
    await wait_for_phase(handle, Phase.SUSPENDED)


# --- failures that need a person --------------------------------------------------------------


async def test_final_iron_rejection_parks_in_needs_attention(env, worker, sandbox, documents_dir):
    # A Person identification whose data is missing from the document store: no retry fixes it.
    request = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref="fs:" + uuid.uuid4().hex)
    handle = await start(env, worker, new_external_id("attention"), identification=request)
    parked = await wait_for_phase(handle, Phase.NEEDS_ATTENTION)
    assert parked.needs_attention is not None
    assert parked.needs_attention.step == "create_identification"
    assert "not found" in parked.needs_attention.reason

    # The operator supplies the data and restarts.
    ref = await FilesystemDocumentStore(documents_dir).put((SAMPLES / "person_identification.json").read_bytes())
    await handle.execute_update(
        UPDATE_RESTART_IDENTIFICATION,
        RestartIdentificationRequest(
            reason="data uploaded", identification=IdentificationRequest(kind=IdentificationKind.PERSON, document_ref=ref)
        ),
        result_type=RestartIdentificationResult,
    )
    await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)


async def test_iron_4xx_on_unknown_adopted_customer_needs_attention(env, worker, sandbox):
    external_id = new_external_id("ghost")
    await start_onboarding(
        env.client, external_id, iron_customer_id=str(uuid.uuid4()), timings=FAST_TIMINGS, task_queue=worker.task_queue
    )
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    parked = await wait_for_phase(handle, Phase.NEEDS_ATTENTION)
    assert parked.needs_attention.status_code == 404
    assert parked.needs_attention.step == "get_customer"
    description = await handle.describe()
    assert description.status.name == "RUNNING", "a business problem is a state, not a workflow failure"


# --- starting ------------------------------------------------------------------------------


async def test_starting_twice_attaches_to_the_running_onboarding(env, worker, sandbox):
    external_id = new_external_id("twice")
    first = await start_onboarding(env.client, external_id, email="x@example.com", timings=FAST_TIMINGS, task_queue=worker.task_queue)
    second = await start_onboarding(env.client, external_id, email="x@example.com", timings=FAST_TIMINGS, task_queue=worker.task_queue)
    assert first.started and not second.started
    assert first.run_id == second.run_id
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    await wait_for_phase(handle, Phase.AWAITING_IDENTIFICATION)
    customers = [c for c in await sandbox.control.customers() if c.get("external_id") == external_id]
    assert len(customers) == 1

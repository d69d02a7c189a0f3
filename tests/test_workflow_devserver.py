"""`CustomerOnboarding` on a real `temporal server start-dev` (search attributes registered),
activities talking real HTTP to the Iron sandbox while it fails requests and loses responses.
Iron's side is then checked through the sandbox's own state and request log."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage

from data_protection.documents import FilesystemDocumentStore
from iron_client.models import IdentificationKind
from starter import accept_signing, get_state, refresh, restart_identification, sign_all, start_onboarding
from workflows.idempotency import customer_key, identification_key
from contracts.messages import (
    UPDATE_ACCEPT_SIGNING,
    AcceptSigningRequest,
    AcceptSigningResult,
    IdentificationRequest,
    IronEventSignal,
    Phase,
    workflow_id_for,
)
from tests.workflow_harness import DEV_SERVER_TIMINGS, requests_matching, running_worker, wait_for_state

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEV_TIMINGS = DEV_SERVER_TIMINGS


@pytest.fixture(scope="module")
def documents_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("documents")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(env, sandbox, documents_dir):
    async with running_worker(env.client, sandbox, documents_dir) as w:
        yield w


async def start(env, worker, prefix: str):
    external_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=DEV_TIMINGS, task_queue=worker.task_queue
    )
    return external_id, env.client.get_workflow_handle(workflow_id_for(external_id))


async def onboard(env, sandbox, external_id, handle, *, cycle: int, signings: bool = True):
    waiting = await wait_for_state(
        handle,
        lambda s: s.cycle == cycle and s.phase == Phase.AWAITING_IDENTIFICATION,
        timeout=60,
        what=f"identification in cycle {cycle}",
    )
    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    if signings:
        await wait_for_state(
            handle, lambda s: s.cycle == cycle and s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings"
        )
        await sign_all(env.client, external_id)
    return await wait_for_state(
        handle, lambda s: s.cycle == cycle and s.phase == Phase.ACTIVE, timeout=60, what=f"Active in cycle {cycle}"
    )


async def test_lifecycle_with_reversion_under_iron_faults_creates_nothing_twice(env, worker, sandbox):
    # The first two requests fail and the first two POSTs that succeed (creating the customer and
    # the identification) lose their answer, for certain; the rates add random faults after that.
    await sandbox.control.set_faults(
        error_rate=0.3,
        error_statuses=[500, 503, 429],
        fail_next=2,
        lose_response_rate=0.5,
        lose_response_next=2,
        lose_response_methods=["POST"],
    )
    try:
        external_id, handle = await start(env, worker, "faulty")
        first = await onboard(env, sandbox, external_id, handle, cycle=1)
        await sandbox.control.set_customer_status(first.iron_customer_id, "IdentificationRequired")
        # The step-up Iron created: once approved the customer is Active again, no new signings.
        second = await onboard(env, sandbox, external_id, handle, cycle=2, signings=False)
    finally:
        await sandbox.control.clear_faults()

    assert second.phase == Phase.ACTIVE and second.cycle == 2
    customers = [c for c in await sandbox.control.customers() if c.get("external_id") == external_id]
    assert len(customers) == 1, "exactly one Iron customer"
    customer = customers[0]
    identifications = customer["identifications"]
    # Cycle 1: the one the workflow created; cycle 2: the step-up Iron created, adopted.
    assert len(identifications) == 2
    signed_content = [s["content_id"] for s in customer["signings"]]
    assert len(signed_content) == len(set(signed_content)) == 2, "one signing per content id"

    log = await sandbox.control.requests()
    customer_posts = [r for r in log if r["method"] == "POST" and r["path"] == "/api/customers"]
    assert {r["idempotency_key"] for r in customer_posts if r["idempotency_key"] == customer_key(workflow_id_for(external_id))}
    ident_posts = requests_matching(log, "POST", f"/customers/{first.iron_customer_id}/identifications")
    assert len({r["idempotency_key"] for r in ident_posts}) == 1, "retries reused one key"
    lost = [r for r in log if r.get("lost_response")]
    assert any(r["path"] == "/api/customers" for r in lost), "the customer's creation lost its answer"
    assert any(int(r["status_code"] or 0) >= 500 for r in log), "the sandbox did fail requests"

    description = await handle.describe()
    attributes = {pair.key.name: pair.value for pair in description.typed_search_attributes}
    assert attributes["OnboardingCycle"] == 2
    assert attributes["OnboardingPhase"] == "Active"


async def test_updates_validate_before_touching_iron(env, worker, sandbox):
    external_id, handle = await start(env, worker, "validate")
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")

    with pytest.raises(WorkflowUpdateFailedError) as not_yet:
        await accept_signing(env.client, external_id, str(uuid.uuid4()))
    assert "no signing is awaited" in str(not_yet.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as nothing_to_restart:
        await restart_identification(env.client, external_id)
    assert "nothing to restart" in str(nothing_to_restart.value.cause)

    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    signing_state = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
    before = len([r for r in await sandbox.control.requests() if r["method"] == "POST" and "/signings" in r["path"]])
    with pytest.raises(WorkflowUpdateFailedError) as unknown:
        await accept_signing(env.client, external_id, str(uuid.uuid4()))
    assert "unknown content id" in str(unknown.value.cause)
    first = signing_state.required_signings[0]
    result = await accept_signing(env.client, external_id, first.id)
    assert result.content_id == first.id and first.id not in result.remaining
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await accept_signing(env.client, external_id, first.id)
    assert "already signed" in str(again.value.cause)
    after = len([r for r in await sandbox.control.requests() if r["method"] == "POST" and "/signings" in r["path"]])
    assert after - before == 1, "rejected updates never reached Iron"

    refreshed = await refresh(env.client, external_id)
    assert refreshed.customer_status == "SigningsRequired"
    state = await get_state(env.client, external_id)
    assert [s.signed for s in state.required_signings].count(True) == 1


async def test_a_signing_retried_under_its_request_id_gets_the_first_signings_answer(env, worker, sandbox):
    """A backend lost the answer to its signing (a timeout while Iron was slow) and tries again.
    A fresh update is refused while the first is in flight; one under the first's request id
    waits for it and answers with its signing, and answers the same once it is done. Iron is
    asked once."""
    external_id, handle = await start(env, worker, "resign")
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    state = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
    content_id = state.required_signings[0].id
    request_id = f"sign-{content_id}-{uuid.uuid4()}"
    signings_path = f"/customers/{state.iron_customer_id}/signings"
    await sandbox.control.set_faults(latency_ms=2000, methods=["POST"], paths=[signings_path])
    try:
        # The first try reached the workflow; its caller never saw the answer.
        await handle.start_update(
            UPDATE_ACCEPT_SIGNING,
            AcceptSigningRequest(content_id=content_id),
            id=request_id,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=AcceptSigningResult,
        )
        with pytest.raises(WorkflowUpdateFailedError) as fresh:
            await accept_signing(env.client, external_id, content_id)
        assert "being signed right now" in str(fresh.value.cause)
        retried = await accept_signing(env.client, external_id, content_id, request_id=request_id)
    finally:
        await sandbox.control.clear_faults()
    assert retried.content_id == content_id and content_id not in retried.remaining
    assert await accept_signing(env.client, external_id, content_id, request_id=request_id) == retried
    with pytest.raises(WorkflowUpdateFailedError) as after:
        await accept_signing(env.client, external_id, content_id)
    assert "already signed" in str(after.value.cause)
    posts = requests_matching(await sandbox.control.requests(), "POST", signings_path)
    assert len(posts) == 1, "one signing reached Iron"


async def test_continue_as_new_on_long_history_keeps_state_and_idempotency_keys(env, worker, sandbox):
    timings = DEV_TIMINGS.model_copy(update={"continue_as_new_after_events": 40, "poll_max_seconds": 0.5})
    external_id = f"long-{uuid.uuid4().hex[:10]}"
    await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=timings, task_queue=worker.task_queue
    )
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")

    # Polling alone grows the history past the limit: the run continues as new, mid-wait.
    state = await wait_for_state(handle, lambda s: s.runs >= 3, timeout=60, what="continue-as-new while waiting")
    assert state.identification_id == waiting.identification_id
    assert state.iron_customer_id == waiting.iron_customer_id
    assert any("continuing as new" in e.cause for e in state.audit)

    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
    await sign_all(env.client, external_id)
    active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=60, what="Active")
    assert active.cycle == 1

    log = await sandbox.control.requests()
    posts = requests_matching(log, "POST", f"/customers/{waiting.iron_customer_id}/identifications")
    assert [r["idempotency_key"] for r in posts] == [identification_key(workflow_id_for(external_id), 1, 1)]
    customers = requests_matching(log, "POST", "/api/customers")
    assert len([r for r in customers if r["path"] == "/api/customers" and r["idempotency_key"] == customer_key(workflow_id_for(external_id))]) == 1


async def test_a_run_continued_as_new_shows_the_summary_and_details_the_onboarding_was_started_with(env, worker, sandbox):
    """Continue-as-new cannot give the new run the start's static summary and details (neither
    the command nor the server carries a start's user metadata), so the Web UI's Summary and
    Details of every later run are empty; its Current Details, which the UI shows beside them,
    carry both."""
    timings = DEV_TIMINGS.model_copy(update={"continue_as_new_after_events": 40, "poll_max_seconds": 0.5})
    external_id = f"story-{uuid.uuid4().hex[:10]}"
    started = await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=timings, task_queue=worker.task_queue
    )
    first = await env.client.get_workflow_handle(workflow_id_for(external_id), run_id=started.run_id).describe()
    summary, details = await first.static_summary(), await first.static_details()
    assert summary and details and "(starter)" in summary

    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    await wait_for_state(handle, lambda s: s.runs >= 2, timeout=60, what="continue-as-new while waiting")
    latest = await handle.describe()
    assert latest.run_id != started.run_id
    shown = await env.client.get_workflow_handle(handle.id, run_id=latest.run_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    assert shown.current_details.startswith(f"{Phase.AWAITING_IDENTIFICATION.value}: waiting for ")
    assert summary in shown.current_details and details in shown.current_details


async def test_a_restart_consumed_just_before_continue_as_new_is_not_forgotten(env, worker, sandbox, documents_dir):
    """Declined, then a restart whose identification Iron refuses (NeedsAttention), then a restart
    with good data: the run continues as new right after taking that restart, and the next run
    must still create the new identification instead of going back to the declined one."""
    # Every wake past 20 events continues as new: the restart is taken right before one.
    timings = DEV_TIMINGS.model_copy(update={"continue_as_new_after_events": 20, "parked_reconcile_seconds": 3600})
    external_id = f"restart-can-{uuid.uuid4().hex[:10]}"
    await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=timings, task_queue=worker.task_queue
    )
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
    await sandbox.control.set_identification_status(waiting.identification_id, "Declined")
    await wait_for_state(handle, lambda s: s.phase == Phase.DECLINED, timeout=60, what="Declined")

    missing = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref="fs:" + uuid.uuid4().hex)
    await restart_identification(env.client, external_id, reason="new documents", identification=missing)
    parked = await wait_for_state(
        handle,
        lambda s: s.phase == Phase.NEEDS_ATTENTION and "continuing as new" in s.audit[-1].cause,
        timeout=60,
        what="NeedsAttention, in a run of its own",
    )
    assert parked.needs_attention.step == "create_identification"
    # Events that wake nothing (about another customer) grow the parked run's history, so the
    # run is past its limit by the time the restart is taken.
    for n in range(8):
        await handle.signal(
            "iron_event",
            IronEventSignal(type="customer_status", timestamp=f"other-{n}", customer_id=str(uuid.uuid4()), status="Active"),
        )
        await wait_for_state(handle, lambda s, n=n: s.recent_events and s.recent_events[-1].timestamp == f"other-{n}", what="event recorded")

    samples = Path(__file__).resolve().parent.parent / "samples" / "person_identification.json"
    good_ref = await FilesystemDocumentStore(documents_dir).put(samples.read_bytes())
    good = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref=good_ref)
    await restart_identification(env.client, external_id, reason="documents uploaded", identification=good)
    renewed = await wait_for_state(
        handle,
        lambda s: s.phase == Phase.DECLINED
        or (s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id != waiting.identification_id),
        timeout=60,
        what="a new identification after the restart",
    )
    assert renewed.phase == Phase.AWAITING_IDENTIFICATION, "the restart was forgotten: back to the declined identification"
    assert renewed.identification_kind == "Person"

"""Quiet waits, on the time-skipping server against the sandbox over real HTTP: a customer parked
in each kind of wait reads Iron during its first window only, then not once in weeks, and still
moves at once on what wakes it: a webhook, a signing, an operator's restart, the fleet pass's hint.
A customer left a month in one wait is flagged idle, and reads nothing for it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from contracts.messages import OnboardingState, Phase
from iron_sandbox.testing import SandboxServer
from starter import restart_identification, sign_all, start_onboarding
from contracts.workflow_ids import workflow_id_for
from tests.workflow_harness import FAST_TIMINGS, running_worker, signal_event, time_skipping_env, wait_for_state

# Production's quiet waits (an hour's window, a 60-day backstop, idle at 30 days) on fast retries.
TIMINGS = FAST_TIMINGS.model_copy(update={"poll_initial_seconds": 60, "poll_max_seconds": 3600})


def about(state: OnboardingState, log: list[dict]) -> list[dict]:
    """The requests Iron received about this customer (its customer or identification paths)."""
    ids = {state.iron_customer_id, state.identification_id} - {None}
    return [r for r in log if any(i in r["path"] for i in ids)]


async def test_parked_customers_read_iron_only_in_their_first_window_and_move_at_once_on_a_wake(
    temporal_test_server_path, tmp_path
):
    run = uuid.uuid4().hex[:6]
    kinds = ("kyc", "signings", "suspended", "declined")
    names = {kind: f"quiet-{kind}-{run}" for kind in kinds}
    with SandboxServer() as sandbox:
        control = sandbox.control
        async with time_skipping_env(temporal_test_server_path) as env:
            client = env.client
            async with running_worker(client, sandbox, tmp_path / "documents", task_queue="quiet"):
                for name in names.values():
                    await start_onboarding(client, name, email=f"{name}@example.com", timings=TIMINGS, task_queue="quiet")
                handles = {kind: client.get_workflow_handle(workflow_id_for(name)) for kind, name in names.items()}
                waiting = {k: await wait_for_state(h, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, what=f"{k}: link")
                           for k, h in handles.items()}
                for kind in ("signings", "suspended"):
                    await control.set_identification_status(waiting[kind].identification_id, "Approved")
                    await signal_event(handles[kind], "identification_status", customer_id=waiting[kind].iron_customer_id,
                                       entity_id=waiting[kind].identification_id, status="Approved")
                await control.set_identification_status(waiting["declined"].identification_id, "Declined")
                await signal_event(handles["declined"], "identification_status", customer_id=waiting["declined"].iron_customer_id,
                                   entity_id=waiting["declined"].identification_id, status="Declined")
                await wait_for_state(handles["signings"], lambda s: s.phase == Phase.AWAITING_SIGNINGS, what="signings")
                await wait_for_state(handles["suspended"], lambda s: s.phase == Phase.AWAITING_SIGNINGS, what="suspended: signings")
                await sign_all(client, names["suspended"])
                await wait_for_state(handles["suspended"], lambda s: s.phase == Phase.ACTIVE, what="suspended: Active")
                await control.set_customer_status(waiting["suspended"].iron_customer_id, "Suspended")
                await signal_event(handles["suspended"], "customer_status", customer_id=waiting["suspended"].iron_customer_id,
                                   entity_id=waiting["suspended"].iron_customer_id, status="Suspended")
                await wait_for_state(handles["suspended"], lambda s: s.phase == Phase.SUSPENDED, what="Suspended")
                await wait_for_state(handles["declined"], lambda s: s.phase == Phase.DECLINED, what="Declined")

                # The first window: polls on the backoff, an hourly read while held.
                await env.sleep(timedelta(hours=3))
                states = {k: await wait_for_state(h, lambda s: True, what=k) for k, h in handles.items()}
                first_window = await control.requests(clear=True)
                assert about(states["kyc"], first_window), "the first window polls Iron"
                assert all(s.deadlines.keys() & {"backstop"} for s in states.values()), {k: s.deadlines for k, s in states.items()}
                assert not any(s.deadlines.keys() & {"poll", "reconcile"} for s in states.values())

                # Then weeks of nothing: the SLAs come due and read nothing; then a month: idle.
                await env.sleep(timedelta(days=31))
                states = {k: await wait_for_state(h, lambda s: s.idle is not None, what=f"{k}: idle") for k, h in handles.items()}
                quiet = await control.requests(clear=True)
                for kind, state in states.items():
                    assert about(state, quiet) == [], f"{kind} read Iron while parked: {about(state, quiet)}"
                    assert state.idle.phase == state.phase, kind
                    assert (state.sla_breached is not None) == (kind != "suspended"), f"{kind}: its SLA came due (Iron's hold has none)"

                # Each moves at once on its wake.
                await control.set_identification_status(waiting["kyc"].identification_id, "Approved")
                await signal_event(handles["kyc"], "identification_status", customer_id=waiting["kyc"].iron_customer_id,
                                   entity_id=waiting["kyc"].identification_id, status="Approved")
                await wait_for_state(handles["kyc"], lambda s: s.phase == Phase.AWAITING_SIGNINGS and s.idle is None, what="kyc: webhook")
                await sign_all(client, names["signings"])
                await wait_for_state(handles["signings"], lambda s: s.phase == Phase.ACTIVE and s.idle is None, what="signings: signed")
                await control.set_customer_status(waiting["suspended"].iron_customer_id, "Active")
                # What the fleet pass sends when it finds Iron's status differs (its webhook lost).
                await signal_event(handles["suspended"], "fleet_reconciliation", customer_id=waiting["suspended"].iron_customer_id,
                                   entity_id=waiting["suspended"].iron_customer_id, status="Active")
                await wait_for_state(handles["suspended"], lambda s: s.phase == Phase.ACTIVE, what="suspended: fleet pass")
                await restart_identification(client, names["declined"], reason="the customer called")
                await wait_for_state(handles["declined"], lambda s: s.phase == Phase.AWAITING_IDENTIFICATION
                                     and s.identification_id != waiting["declined"].identification_id, what="declined: restart")

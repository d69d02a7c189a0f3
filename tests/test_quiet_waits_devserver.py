"""Quiet waits on a real dev server, in real time, with windows of a second: a customer parked on
its identification, on its signings and on an operator (declined) reads Iron no more once its
window has passed (the sandbox's request log shows none), and still moves at once on a webhook's
signal, on a signing and on an operator's update. The fleet pass that finds a lost webhook is in
tests/test_fleet_reconciliation_devserver.py; the same waits over a month, with time skipping,
in tests/test_quiet_waits_time_skipping.py."""

from __future__ import annotations

import asyncio
import uuid

from contracts.messages import SIGNAL_IRON_EVENT, IronEventSignal, OnboardingState, Phase, workflow_id_for
from iron_sandbox.testing import SandboxServer
from operations.onboardings import refresh, restart_identification
from starter import sign_all, start_onboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, dev_server_env, running_worker, wait_for_state

# Polls every 0.5 to 2 s while a wait is younger than a second; then only the backstop, an hour away.
QUIET = DEV_SERVER_TIMINGS.model_copy(update={
    "quiet_after_seconds": 1, "review_quiet_after_seconds": 1, "parked_reconcile_seconds": 0.5,
    "parked_backstop_seconds": 3600,
})
# Long enough for several polls of the first window's backoff to have gone out, were it polling.
QUIET_SPELL = 4.0


async def iron_requests_about(sandbox: SandboxServer, *ids: str) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in await sandbox.control.requests() if any(i and i in r["path"] for i in ids)]


async def stays_quiet(sandbox: SandboxServer, state: OnboardingState) -> None:
    """Once the wait is on its backstop: no request about this customer for a spell."""
    assert "backstop" in state.deadlines and "poll" not in state.deadlines and "reconcile" not in state.deadlines
    await sandbox.control.clear_requests()
    await asyncio.sleep(QUIET_SPELL)
    assert await iron_requests_about(sandbox, state.iron_customer_id, state.identification_id) == []


async def test_parked_customers_read_nothing_after_their_window_and_move_at_once_on_a_wake(temporal_cli_path, tmp_path):
    run = uuid.uuid4().hex[:6]
    signs, declines = f"quiet-signs-{run}", f"quiet-declined-{run}"
    with SandboxServer() as sandbox:
        async with dev_server_env(temporal_cli_path) as env, running_worker(
            env.client, sandbox, tmp_path / "documents", task_queue=f"quiet-{run}"
        ) as worker:
            client = env.client
            for external_id in (signs, declines):
                await start_onboarding(client, external_id, email=f"{external_id}@example.com", timings=QUIET,
                                       task_queue=worker.task_queue)
            customer = client.get_workflow_handle(workflow_id_for(signs))
            operator = client.get_workflow_handle(workflow_id_for(declines))

            # Waiting on the customer's identification: quiet, then a webhook moves it at once.
            parked = await wait_for_state(customer, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and "backstop" in s.deadlines,
                                          timeout=60, what="a quiet wait on the identification")
            await stays_quiet(sandbox, parked)
            await sandbox.control.set_identification_status(parked.identification_id, "Approved")  # its webhook is lost...
            await asyncio.sleep(QUIET_SPELL)
            assert (await wait_for_state(customer, lambda s: True)).phase == Phase.AWAITING_IDENTIFICATION, "...and nothing polls"
            await customer.signal(SIGNAL_IRON_EVENT, IronEventSignal(  # ...until the next webhook's signal
                type="identification_status", customer_id=parked.iron_customer_id, entity_id=parked.identification_id,
                status="Approved", webhook_id=str(uuid.uuid4()),
            ))
            signing = await wait_for_state(customer, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=10, what="signings, at once")

            # Waiting on the customer's signatures: quiet, then a signing moves it at once.
            signing = await wait_for_state(customer, lambda s: "backstop" in s.deadlines, timeout=10, what="a quiet wait on signings")
            await stays_quiet(sandbox, signing)
            await sign_all(client, signs)
            await wait_for_state(customer, lambda s: s.phase == Phase.ACTIVE, timeout=10, what="Active, at once")

            # Declined, waiting on an operator: quiet, then the operator's update moves it at once.
            waiting = await wait_for_state(operator, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
            await sandbox.control.set_identification_status(waiting.identification_id, "Declined")
            await refresh(client, declines)  # an operator's look: reads Iron now
            declined = await wait_for_state(operator, lambda s: s.phase == Phase.DECLINED and "backstop" in s.deadlines,
                                            timeout=10, what="a quiet wait on an operator")
            await stays_quiet(sandbox, declined)
            restarted = await restart_identification(client, declines, reason="customer asked to try again")
            assert restarted.accepted
            renewed = await wait_for_state(
                operator, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id != declined.identification_id,
                timeout=10, what="a new identification, at once",
            )
            assert renewed.identification_status == "Pending"

"""The partner's backend learns every change from signed events, without polling.

On a real dev server, a backend endpoint verifying with the `standardwebhooks` library receives
the phase events of a Link lifecycle with a reversion, in order, with consecutive sequences;
refusing for a stretch (500s, then a closed port) only delays them: each arrives later, in
order, under the id it was first sent with, and the customer reached Active meanwhile."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid

from bench.benchmark import history_all_runs
from contracts.events import event_id
from contracts.messages import IRON_CALLS_QUEUE_SUFFIX, Phase, workflow_id_for
from demo.partner_backend import PartnerBackend, PartnerBackendThread, Refusal
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from operations.state_access import last_event_sequence
from starter import sign_all, start_onboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, dev_server_env, onboarding_with_events, save_histories, until, wait_for_state

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
TIMINGS = DEV_SERVER_TIMINGS.model_copy(update={"poll_max_seconds": 1})


async def pending_delivery_failure(handle, contains: str, *, timeout: float = 30.0) -> str:
    """The last failure of the pending `deliver_event` activity, once it mentions `contains`
    (read through describe, as an operator would)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == "deliver_event" and pending.HasField("last_failure"):
                seen = pending.last_failure.message
                if contains in seen:
                    return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"no pending delivery failed with {contains!r} in {timeout:g}s (last: {seen!r})")


async def test_phase_events_arrive_in_order_through_a_backend_outage(temporal_cli_path, tmp_path):
    lines: list[str] = []
    external_id = f"events-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lines.append)) as backend:
        async with dev_server_env(temporal_cli_path) as env:
            events = EventsSettings(url=backend.events_url, secret=SECRET, timeout_seconds=2)
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="events", timings=TIMINGS
            ) as handle:
                waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
                # The state moves before its event is delivered: down only once both got through.
                await until("the AwaitingIdentification event at the backend",
                            lambda: backend.backend.sequences(external_id) == [1], timeout=60)
                # The backend goes down: 500s first, then nothing listening at all.
                backend.backend.refusal = Refusal(mode="error", status=500)
                await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
                await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
                assert "backend answered 500" in await pending_delivery_failure(handle, "500")
                backend.close_for(120)
                assert "ConnectError" in await pending_delivery_failure(handle, "ConnectError")
                await sign_all(env.client, external_id)
                active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=60, what="Active while the backend is down")
                assert active.outbox.pending, "events wait in the state while the backend is down"
                assert backend.backend.sequences(external_id) == [1], "nothing got through the outage"
                backend.backend.refusal = None
                backend.reopen()
                await sandbox.control.set_customer_status(active.iron_customer_id, "IdentificationRequired")
                stepup = await wait_for_state(handle, lambda s: s.cycle == 2 and s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="step-up")
                await sandbox.control.set_identification_status(stepup.identification_id, "Approved")
                final = await wait_for_state(
                    handle,
                    lambda s: s.cycle == 2 and s.phase == Phase.ACTIVE and not s.outbox.pending,
                    timeout=90,
                    what="Active in cycle 2 with every event delivered",
                )
                queues = await scheduled_queues(env.client, handle.id)

    received = backend.backend.events_for(external_id)
    sequences = [e.sequence for e in received]
    assert sequences == list(range(1, len(received) + 1)), f"consecutive and in order: {sequences}"
    assert final.outbox.last_sequence == len(received) and final.outbox.dropped == 0
    phases = [e.phase for e in received]
    # A new customer's identification is created with it: from FindingCustomer straight to its wait.
    assert phases == ["AwaitingIdentification", "AwaitingSignings", "Active", "AwaitingIdentification", "Active"], phases
    workflow_id = workflow_id_for(external_id)
    ids = [e.webhook_id for e in received]
    assert ids == [event_id(workflow_id, n) for n in sequences] and len(set(ids)) == len(ids), "one id per event"
    # Every attempt the backend refused with 500 was a try of an event that arrived later under
    # that same id: the AwaitingSignings event first of all, refused before it got through.
    refused = backend.backend.refused_ids
    assert refused and set(refused) <= set(ids), (refused, ids)
    assert ids[1] in refused, "the AwaitingSignings event was refused, then delivered under the same id"
    assert backend.backend.counters["duplicates"] == 0
    assert any(line.startswith("backend closed for") for line in lines)
    # Events on the onboarding's own queue (eager, no rate limit); Iron's calls on theirs.
    assert queues.pop("deliver_event") == {"events"}
    assert queues and all(q == {"events" + IRON_CALLS_QUEUE_SUFFIX} for q in queues.values()), queues


async def scheduled_queues(client, workflow_id: str) -> dict[str, set[str]]:
    """Activity type -> the task queues it was scheduled on, over every run of the workflow."""
    queues: dict[str, set[str]] = {}
    for e in await history_all_runs(client, workflow_id):
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            queues.setdefault(a.activity_type.name, set()).add(a.task_queue.name)
    return queues


async def test_a_cycle_continues_as_new_once_its_last_event_is_delivered(temporal_cli_path, tmp_path):
    """The cycle's last event (Active) goes out from the run that reached it: the next run starts
    with an empty outbox, so the backend gets one POST per event and no second try of the head."""
    external_id = f"events-once-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lambda _: None)) as backend:
        async with dev_server_env(temporal_cli_path) as env:
            events = EventsSettings(url=backend.events_url, secret=SECRET, timeout_seconds=2)
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="events-once", timings=TIMINGS
            ) as handle:
                first_run_id = (await handle.describe()).run_id
                waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
                await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
                await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
                await sign_all(env.client, external_id)
                await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE and s.runs == 2, timeout=60, what="the next run, Active")
                # For tests/test_replay.py (RECORD_HISTORIES=1), before the checks below.
                await save_histories(env.client, handle.id, first_run_id, "events/lifecycle_to_active")
                next_run = (await handle.fetch_history()).events
                first_run = (await env.client.get_workflow_handle(handle.id, run_id=first_run_id).fetch_history()).events

    delivered = [e for e in first_run if e.HasField("activity_task_completed_event_attributes")]
    scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in first_run if e.HasField("activity_task_scheduled_event_attributes")}
    deliveries = [e for e in delivered if scheduled[e.activity_task_completed_event_attributes.scheduled_event_id] == "deliver_event"]
    assert len(deliveries) == 3 and sum(1 for name in scheduled.values() if name == "deliver_event") == 3, scheduled
    assert first_run[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in next_run), "nothing left to send"
    phases = [e.phase for e in backend.backend.events_for(external_id)]
    assert phases == ["AwaitingIdentification", "AwaitingSignings", "Active"], phases
    assert backend.backend.counters["duplicates"] == 0 and backend.backend.counters["received"] == 3


async def test_a_customer_onboarded_again_after_termination_goes_on_with_its_sequence(temporal_cli_path, tmp_path):
    """An operator terminates an onboarding and the customer is started again under the same
    workflow id: the new onboarding numbers its events after the last one the closed onboarding
    made, so a backend that keeps the highest sequence (the README's snippet) and dedupes on
    `webhook-id` takes every one of them."""
    external_id = f"events-again-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lambda _: None)) as backend:
        async with dev_server_env(temporal_cli_path) as env:
            events = EventsSettings(url=backend.events_url, secret=SECRET, timeout_seconds=2)
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="events-again", timings=TIMINGS
            ) as handle:
                first = await wait_for_state(
                    handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and not s.outbox.pending, timeout=60,
                    what="identification, its events delivered",
                )
                await handle.terminate(reason="an operator's fresh start")
                assert await last_event_sequence(env.client, handle.id) == first.outbox.last_sequence > 0
                again = await start_onboarding(
                    env.client, external_id, email=f"{external_id}@example.com", timings=TIMINGS, task_queue="events-again",
                    deliver_events=True,
                )
                assert again.started
                second_handle = env.client.get_workflow_handle(handle.id)
                await sandbox.control.set_identification_status(first.identification_id, "Approved")
                second = await wait_for_state(
                    second_handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS and not s.outbox.pending, timeout=60,
                    what="the new onboarding at signings, its events delivered",
                )

    received = backend.backend.events_for(external_id)
    sequences = [e.sequence for e in received]
    assert sequences == list(range(1, len(received) + 1)), f"one sequence, on from the first onboarding: {sequences}"
    assert second.outbox.last_sequence == len(received) > first.outbox.last_sequence
    ids = [e.webhook_id for e in received]
    assert len(set(ids)) == len(ids) and backend.backend.counters["duplicates"] == 0, ids
    assert received[-1].phase == "AwaitingSignings"

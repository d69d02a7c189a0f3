"""What a backend outage costs, on the time-skipping server with real deliveries: a backend that
answers 503 for six hours gets each pending event on the production schedule (5 s, 5 min, 30 min,
then hourly), not every two minutes; once its refusals outlast the window the customer is flagged
(state, details line, `OnboardingEventsFailingSince`, the state view's `events_pending`), and once
it answers again the backlog arrives within the hour, in order, none lost, and the flag goes."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client

from contracts import search_attributes as sa
from contracts.messages import Phase
from contracts.state_view import STATE_MEMO, OnboardingStateView
from workflows.decide import current_details
from demo.partner_backend import PartnerBackend, PartnerBackendThread
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from tests.workflow_harness import (
    FAST_TIMINGS,
    onboarding_with_events,
    save_histories,
    time_skipping_env,
    until,
    wait_for_state,
)

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OUTAGE = timedelta(hours=6)
# The bound on what one pending event may cost during a six-hour outage (each attempt is
# a billable action).
MOST_ATTEMPTS_IN_OUTAGE = 15


async def flag_and_view(client: Client, workflow_id: str) -> tuple[str | None, OnboardingStateView]:
    """`OnboardingEventsFailingSince` and the state view, from a raw describe: the time-skipping
    server keeps a removed attribute as null, which the client's typed describe cannot read (the
    dev server drops it)."""
    raw = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id))
    )
    info = raw.workflow_execution_info
    field = info.search_attributes.indexed_fields.get(sa.ONBOARDING_EVENTS_FAILING_SINCE.name)
    value = json.loads(field.data) if field is not None and field.data else None
    [memo] = await client.data_converter.decode([info.memo.fields[STATE_MEMO]], [dict])
    return (value or None), OnboardingStateView.model_validate(memo)


def attempts_on_schedule(settings: EventsSettings, within: timedelta) -> int:
    """Attempts the schedule makes within `within` of the first (which counts)."""
    attempts, elapsed = 1, settings.retry_delay(1)
    while elapsed <= within.total_seconds():
        attempts += 1
        elapsed += settings.retry_delay(attempts)
    return attempts


def test_the_production_schedule_keeps_a_six_hour_outage_within_its_bound():
    settings = EventsSettings(url="http://backend.example/events", secret=SECRET)
    assert [settings.retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [5, 300, 1800, 3600, 3600, 3600]
    assert attempts_on_schedule(settings, OUTAGE) == 9 <= MOST_ATTEMPTS_IN_OUTAGE


async def test_a_six_hour_outage_costs_each_pending_event_its_schedule_and_loses_nothing(temporal_test_server_path, tmp_path):
    external_id = f"outage-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lambda line: None)) as server:
        backend = server.backend
        backend.refuse("error", status=503)
        async with time_skipping_env(temporal_test_server_path) as env:
            events = EventsSettings(url=server.events_url, secret=SECRET, timeout_seconds=5)  # production's schedule
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="outage", timings=FAST_TIMINGS
            ) as handle:
                first_run_id = (await handle.describe()).run_id
                await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, what="link")
                await until("the first refusal", lambda: bool(backend.refused_ids))
                head = backend.refused_ids[0]
                await env.sleep(OUTAGE)
                attempts = backend.refused_ids.count(head)
                assert set(backend.refused_ids) == {head}, "one event at a time: the head, never the next"

                failing = await wait_for_state(handle, lambda s: s.outbox.failing_since is not None, what="the backend flagged")
                assert failing.outbox.failing_since == failing.outbox.head.timestamp
                failing_since, view = await flag_and_view(env.client, handle.id)
                assert failing_since is not None
                assert view.events_failing_since == failing.outbox.failing_since
                assert view.events_pending == len(failing.outbox.pending) >= 1
                assert f"the backend has refused them since {failing.outbox.failing_since}" in current_details(failing)

                backend.accept()
                await env.sleep(timedelta(hours=1))
                state = await wait_for_state(handle, lambda s: s.outbox.head is None, what="the backlog delivered")
                received = backend.sequences(external_id)
                assert received == list(range(1, state.outbox.last_sequence + 1)), "in order, none lost"
                assert backend.events_for(external_id)[0].webhook_id == head
                assert state.outbox.failing_since is None
                failing_since, view = await flag_and_view(env.client, handle.id)
                assert failing_since is None, "the attribute is removed"
                assert view.events_failing_since is None and view.events_pending == 0, "delivered events are not pending"
                # For tests/test_replay.py (RECORD_HISTORIES=1).
                await save_histories(env.client, handle.id, first_run_id, "events/backend_failing_then_back")
                history = (await handle.fetch_history()).events

    # What the outage cost the head: its attempts, and the flag raised and cleared (one
    # search-attribute upsert each; the memo write beside it is not billed, `bench/actions.py`).
    # Within the bound, and measured.
    flag_upserts = [
        e for e in history
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        and sa.ONBOARDING_EVENTS_FAILING_SINCE.name in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert len(flag_upserts) == 2, "raised once, cleared once"
    assert attempts_on_schedule(events, OUTAGE) - 1 <= attempts
    assert attempts + len(flag_upserts) <= MOST_ATTEMPTS_IN_OUTAGE, (attempts, len(flag_upserts))

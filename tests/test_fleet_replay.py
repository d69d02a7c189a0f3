"""Runs that know of the fleet-wide reconciliation (engine version 3), recorded on a dev server
by `tests/test_fleet_reconciliation_devserver.py` (RECORD_HISTORIES=1): they replay (with every
other history, in `tests/test_replay.py`), write no patch marker, and wait on the long backstop
while Active, woken by the fleet pass's hint. The pass itself replays too: one recorded before
its pages moved to Iron's calls queue (no patch marker, pages on its own queue) and one after."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.temporal import data_converter
from contracts.messages import IRON_CALLS_QUEUE_SUFFIX, SINCE_FLEET_RECONCILIATION
from contracts.fleet import ACTIVITY_RECONCILE_PAGE
from workflows.fleet import PAGES_UNDER_IRON_RATE_LIMIT, FleetReconciliation
from workflows.onboarding import CustomerOnboarding

RECORDED = Path(__file__).resolve().parent / "histories" / "fleet-reconciliation"


def load(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (RECORDED / name).read_text())


def markers(history: WorkflowHistory) -> list[str]:
    return [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data.decode()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]


async def test_a_lifecycle_woken_by_the_fleet_pass_replays():
    replayer = Replayer(workflows=[CustomerOnboarding], data_converter=data_converter())
    for name in ("fleet_reconciled_lost_webhook.run1.json", "fleet_reconciled_lost_webhook.run2.json"):
        assert (await replayer.replay_workflow(load(name))).replay_failure is None


def test_the_engine_version_answers_with_no_marker_and_the_active_run_waits_on_the_backstop():
    first, active = load("fleet_reconciled_lost_webhook.run1.json"), load("fleet_reconciled_lost_webhook.run2.json")
    assert markers(first) == [] and markers(active) == []
    carried = json.loads(active.events[0].workflow_execution_started_event_attributes.input.payloads[0].data)
    assert carried["engine_version"] >= SINCE_FLEET_RECONCILIATION
    assert carried["carried"]["fleet_reconciled"] is True
    timers = [e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds() for e in active.events
              if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert timers[0] > 3000 and carried["timings"]["active_reconcile_seconds"] == 1, "the backstop, not the 1 s read"
    signal = next(e for e in active.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    hint = json.loads(signal.workflow_execution_signaled_event_attributes.input.payloads[0].data)
    assert hint["type"] == "fleet_reconciliation" and hint["status"] == "Suspended"


def page_queues(history: WorkflowHistory) -> set[str]:
    return {
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_RECONCILE_PAGE
    }


async def test_fleet_passes_from_before_and_after_pages_went_under_the_iron_rate_limit_replay():
    replayer = Replayer(workflows=[FleetReconciliation], data_converter=data_converter())
    for recorded, patched in (("fleet_pass_before_iron_calls_queue", False), ("fleet_pass", True)):
        for run in (1, 2):
            history = load(f"{recorded}.run{run}.json")
            queue = history.events[0].workflow_execution_started_event_attributes.task_queue.name
            assert (await replayer.replay_workflow(history)).replay_failure is None, (recorded, run)
            assert [json.loads(m)["id"] for m in markers(history)] == ([PAGES_UNDER_IRON_RATE_LIMIT] if patched else [])
            assert page_queues(history) == ({queue + IRON_CALLS_QUEUE_SUFFIX} if patched else {queue})

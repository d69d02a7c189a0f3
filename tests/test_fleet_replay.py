"""The fleet pass and a customer it woke, as the latest release recorded them on a dev server
(`tests/test_fleet_reconciliation_devserver.py`, RECORD_HISTORIES=1): both replay (with every
other history, in `tests/test_replay.py`), the Active run waits on the long backstop until the
pass's hint wakes it, and the pass's pages run on Iron's calls queue, under its rate limit."""

from __future__ import annotations

import json

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from contracts.fleet import ACTIVITY_RECONCILE_PAGE
from contracts.messages import IRON_CALLS_QUEUE_SUFFIX
from runtime.temporal import data_converter
from runtime.workflow_sandbox import sandboxed_runner
from tests.test_replay import LATEST_RELEASE
from workflows.fleet import FleetReconciliation
from workflows.onboarding import CustomerOnboarding

RECORDED = LATEST_RELEASE / "fleet-reconciliation"


def load(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (RECORDED / name).read_text())


async def test_a_lifecycle_woken_by_the_fleet_pass_replays():
    replayer = Replayer(workflows=[CustomerOnboarding], data_converter=data_converter(), workflow_runner=sandboxed_runner())
    for name in ("fleet_reconciled_lost_webhook.run1.json", "fleet_reconciled_lost_webhook.run2.json"):
        assert (await replayer.replay_workflow(load(name))).replay_failure is None


def test_the_active_run_waits_on_the_backstop_until_the_pass_wakes_it():
    active = load("fleet_reconciled_lost_webhook.run2.json")
    carried = json.loads(active.events[0].workflow_execution_started_event_attributes.input.payloads[0].data)
    timers = [e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds() for e in active.events
              if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    backstop = carried["timings"]["active_backstop_seconds"]
    assert backstop > 3000 and abs(timers[0] - backstop) <= 1, "the backstop, not a poll"
    signal = next(e for e in active.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    hint = json.loads(signal.workflow_execution_signaled_event_attributes.input.payloads[0].data)
    assert hint["type"] == "fleet_reconciliation" and hint["status"] == "Suspended"


async def test_a_pass_replays_and_pages_on_iron_s_calls_queue():
    replayer = Replayer(workflows=[FleetReconciliation], data_converter=data_converter(), workflow_runner=sandboxed_runner())
    for run in (1, 2):
        history = load(f"fleet_pass.run{run}.json")
        queue = history.events[0].workflow_execution_started_event_attributes.task_queue.name
        assert (await replayer.replay_workflow(history)).replay_failure is None, run
        pages = {
            e.activity_task_scheduled_event_attributes.task_queue.name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_RECONCILE_PAGE
        }
        assert pages == {queue + IRON_CALLS_QUEUE_SUFFIX}, run

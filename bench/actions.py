"""Temporal Cloud billable actions, counted from a workflow's event history.

Temporal Cloud bills actions, not workflow tasks. The rules are Temporal's published list,
https://docs.temporal.io/cloud/actions ("Temporal Cloud Actions", its Workflow, Activity, Timer,
Signal, Query, Update and Schedule sections). What a history shows of them, one event each unless
said:

| event | actions |
|---|---|
| WorkflowExecutionStarted (a client start, continue-as-new, a child's start) | 1 |
| TimerStarted | 1 |
| UpsertWorkflowSearchAttributes (one command, however many attributes; `TemporalChangeVersion` alone is free) | 1 |
| WorkflowPropertiesModified (a memo upsert) | 0, counted apart as `memo_upserts` (see below) |
| WorkflowExecutionSignaled | 1 |
| WorkflowExecutionUpdateAccepted | 1 |
| ActivityTaskStarted | its attempt number: every start and retry is one |
| MarkerRecorded of local activities and side effects | 1 per workflow task that records any |
| MarkerRecorded of a patch (`core_patch`) | 0 (versioning is exempt) |
| SignalExternalWorkflowExecutionInitiated | 1 |
| StartChildWorkflowExecutionInitiated | 2 |
| WorkflowExecutionOptionsUpdated | 1 |

Memo upserts are not billed. The Workflow section lists what a workflow is billed for: its start
(client start, continue-as-new, child start), a reset, each `UpsertSearchAttributes` command
("Search Attributes specified during Workflow start are excluded"), an options update, a child's
start and a start via multi-operation; neither `UpsertWorkflowProperties` (the memo command) nor
its `WORKFLOW_PROPERTIES_MODIFIED` event is on that list or any other. So `billable_actions` leaves
them out and `memo_upserts` counts them beside it, for what they cost the server (a history
event and a persistence write each), not the bill.

Workflow tasks, activity completions, timer firings and the ContinuedAsNew event itself are free.
Not in any history, so counted by the caller where they happen: queries (1 each; the engine
sends none, people do), rejected updates, activity heartbeats (the engine sends none), and a
schedule's 2 actions for each start it makes (`SCHEDULE_ACTIONS_PER_START`, beside the
started workflow's own 1).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

SCHEDULE_ACTIONS_PER_START = 2
PATCH_MARKER = "core_patch"
CHANGE_VERSION_ATTRIBUTE = "TemporalChangeVersion"

E = EventType
_ONE = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "workflow_started",
    E.EVENT_TYPE_TIMER_STARTED: "timers",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "signals_sent",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED: "options_updates",
}


def billable_actions(events: Iterable[HistoryEvent]) -> Counter:
    """Actions by kind for the given events (one run or several runs' events in a row)."""
    counts: Counter = Counter()
    marker_task: int | None = None  # the workflow task whose markers were already counted
    for event in events:
        kind = event.event_type
        if kind in _ONE:
            counts[_ONE[kind]] += 1
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            counts["activities"] += max(1, event.activity_task_started_event_attributes.attempt)
        elif kind == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = set(event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
            if fields - {CHANGE_VERSION_ATTRIBUTE}:
                counts["search_attribute_upserts"] += 1
        elif kind == E.EVENT_TYPE_MARKER_RECORDED:
            attributes = event.marker_recorded_event_attributes
            task = attributes.workflow_task_completed_event_id
            if attributes.marker_name != PATCH_MARKER and task != marker_task:
                counts["markers"] += 1
                marker_task = task
        elif kind == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            counts["child_workflows"] += 2
    return counts


def total(counts: Counter) -> int:
    return sum(counts.values())


def memo_upserts(events: Iterable[HistoryEvent]) -> int:
    """Memo upserts in the given events: not billed (see the module's docstring), but a write each."""
    return sum(1 for event in events if event.event_type == E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED)


def activity_types(events: Iterable[HistoryEvent]) -> Counter:
    """Activities scheduled, by type: each Iron activity is one Iron call (the customer's
    find-or-create is one or two: a look-up by external id, then the create if absent)."""
    return Counter(
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events
        if event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )

"""The billable-action counter the benchmark's cost rows use, on committed histories and on
hand-made events for the rules a lifecycle history does not exercise."""

from __future__ import annotations


from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
    UpsertWorkflowSearchAttributesEventAttributes,
)
from temporalio.client import WorkflowHistory

from bench.actions import activity_types, billable_actions, memo_upserts, total

from tests.test_replay import LATEST_RELEASE


def events(name: str) -> list[HistoryEvent]:
    return list(WorkflowHistory.from_json(name, (LATEST_RELEASE / name).read_text()).events)


def test_a_committed_lifecycle_counts_starts_timers_upserts_messages_and_activities_but_no_workflow_task():
    run1, run2 = events("lifecycle/link_happy_path.run1.json"), events("lifecycle/link_happy_path.run2.json")
    counts = billable_actions(run1 + run2)
    # run 1: its start, 8 Iron activities (each on its first attempt), 3 search-attribute
    # upserts, 1 poll timer, 1 webhook signal, 2 signing updates; run 2 (after continue-as-new):
    # its start and the Active backstop timer. The workflow tasks of the 86 events cost nothing,
    # and so do the 4 memo upserts (the state view): Temporal Cloud does not bill them.
    assert counts == {
        "workflow_started": 2,
        "activities": 8,
        "search_attribute_upserts": 3,
        "timers": 2,
        "signals": 1,
        "updates": 2,
    }
    assert total(counts) == 18
    assert memo_upserts(run1 + run2) == 4
    assert sum(activity_types(run1).values()) == 8 and activity_types(run1)["get_customer"] >= 1


def _event(kind: EventType.ValueType, **attributes) -> HistoryEvent:
    return HistoryEvent(event_type=kind, **attributes)


def test_retries_local_activity_markers_and_change_version_upserts():
    retried = _event(
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(attempt=3),
    )
    local = [
        _event(
            EventType.EVENT_TYPE_MARKER_RECORDED,
            marker_recorded_event_attributes=MarkerRecordedEventAttributes(marker_name="core_local_activity", workflow_task_completed_event_id=task),
        )
        for task in (4, 4, 9)
    ]
    version_only = _event(
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        upsert_workflow_search_attributes_event_attributes=UpsertWorkflowSearchAttributesEventAttributes(
            search_attributes=SearchAttributes(indexed_fields={"TemporalChangeVersion": Payload(data=b"[]")})
        ),
    )
    task = _event(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    counts = billable_actions([retried, *local, version_only, task])
    assert counts == {"activities": 3, "markers": 2}, "an attempt each; local activities once per workflow task"

"""Domain metrics recorded from activities, through `activity.metric_meter()`.

The SDK adds `namespace`, `task_queue` and `activity_type` to each; the labels here are bounded
(operation names, status classes, event types, outcomes), never an id. Outside an activity (the
Iron client used by a CLI, say) nothing is recorded. With no metrics configured the meter is
the SDK's no-op one.
"""

from __future__ import annotations

from temporalio import activity

from contracts import metrics as names


def iron_status_class(status_code: int | None, timed_out: bool) -> str:
    if status_code is None:
        return names.STATUS_TIMEOUT if timed_out else names.STATUS_UNREACHABLE
    return names.status_class(status_code)


def record_iron_request(operation: str, status_code: int | None, timed_out: bool) -> None:
    """An `IronClient` response observer: one count per Iron request, by operation and outcome."""
    if not activity.in_activity():
        return
    activity.metric_meter().create_counter(
        names.IRON_REQUESTS, "Iron API requests by operation and HTTP status class"
    ).add(1, {"operation": operation, "status_class": iron_status_class(status_code, timed_out)})


def record_event_delivery(event_type: str, outcome: str) -> None:
    """One count per delivery attempt of an event to the partner's backend."""
    if not activity.in_activity():
        return
    activity.metric_meter().create_counter(
        names.EVENT_DELIVERIES, "Event delivery attempts to the partner's backend by outcome"
    ).add(1, {"event_type": event_type, "outcome": outcome})

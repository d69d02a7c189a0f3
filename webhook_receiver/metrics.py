"""The receiver's metrics: every delivery by outcome, its duration, and the receiver's own Iron
customer lookups, recorded on the Temporal runtime's meter.

The receiver records on the same Temporal runtime its client is connected with, rather than
through prometheus_client: one exporter then serves both these and the SDK's client metrics
(`temporal_request_total`, `temporal_request_failure_total`, `temporal_request_latency_seconds`:
the signals and starts behind every 503), under the same naming rules as the worker, with no
second metrics library and no second port. With metrics off the meter is the SDK's no-op one.

Labels are bounded: the outcome word the answer carries (`signalled`, `adopted`, `ignored`,
`rejected`, `refused`, `retry`, `error`), the HTTP status, Iron's operation and status class.
Never a customer, webhook or workflow id.
"""

from __future__ import annotations

from temporalio.common import MetricMeter

from contracts import metrics as names


class ReceiverMetrics:
    def __init__(self, meter: MetricMeter | None = None) -> None:
        meter = meter or MetricMeter.noop
        self._webhooks = meter.create_counter(names.WEBHOOKS, "Iron webhook deliveries by outcome and HTTP answer")
        self._duration = meter.create_histogram_float(
            names.WEBHOOK_DURATION, "Time from a delivery's arrival to the receiver's answer"
        )
        self._iron = meter.create_counter(names.IRON_REQUESTS, "Iron API requests by operation and HTTP status class")

    def webhook(self, outcome: str, http_status: int, seconds: float) -> None:
        self._webhooks.add(1, {"outcome": outcome, "http_status": str(http_status)})
        self._duration.record(max(seconds, 0.0), {"outcome": outcome})

    def iron_request(self, operation: str, status_code: int | None, timed_out: bool) -> None:
        if status_code is None:
            status = names.STATUS_TIMEOUT if timed_out else names.STATUS_UNREACHABLE
        else:
            status = names.status_class(status_code)
        self._iron.add(1, {"operation": operation, "status_class": status})

"""The metrics the engine exports, by the names a Prometheus scrape shows them.

The worker and the webhook receiver export through Temporal's runtime (`runtime/metrics.py`),
configured so the names follow Prometheus' conventions: counters end in `_total`, durations are
seconds and say so (`..._seconds`). The SDK's own metrics carry the `temporal_` prefix; these
domain metrics do not (the runtime prefixes only its own), so the names below are exactly what a
scrape shows and what `dashboards/onboarding.json` queries.

Labels are bounded sets (phases, operation names, outcomes, status classes, the partner's few
sub-partners), never a customer, workflow or Iron customer id: every series here exists once per
worker and sub-partner, however many customers it runs.
The SDK adds `namespace`, `task_queue` and `workflow_type` / `activity_type` to what is recorded
from workflows and activities, and `service_name` to everything.
"""

from __future__ import annotations

# Names as created on the meter; the scrape adds `_total` to counters.
PHASE_TRANSITIONS = "onboarding_phase_transitions"  # labels: from_phase, to_phase, sub_partner
TIME_IN_PHASE = "onboarding_time_in_phase_seconds"  # histogram; labels: phase (the phase left), sub_partner
IRON_REQUESTS = "onboarding_iron_requests"  # labels: operation, status_class
EVENT_DELIVERIES = "onboarding_event_deliveries"  # labels: event_type, outcome
WEBHOOKS = "onboarding_webhooks"  # receiver; labels: outcome, http_status
WEBHOOK_DURATION = "onboarding_webhook_duration_seconds"  # receiver histogram; label: outcome
API_REQUESTS = "onboarding_api_requests"  # HTTP API; labels: operation, http_status
API_REQUEST_DURATION = "onboarding_api_request_duration_seconds"  # HTTP API histogram; label: operation

# Customers found past an SLA, labels `phase`, `deadline` (the SLA's name) and `sub_partner`.
# Recorded by `workflows.publishing.Publisher.sla_breached`; it appears at the first breach, so
# the dashboard has no panel for it (every panel must query a metric a scrape shows).
SLA_BREACHES = "onboarding_sla_breaches"
# Customers whose head event the partner's backend refused past the window
# (`OnboardingTimings.events_failing_after_seconds`), once per outage; label `sub_partner`.
# Recorded by the workflow, so a backend failing for long shows as a step, not as a retry rate.
EVENTS_BACKEND_FAILING = "onboarding_events_backend_failing"

# The phase metrics' `sub_partner` label: the customer's Iron sub-partner, or this for the
# customers onboarded without one.
SUB_PARTNER_LABEL = "sub_partner"
DEFAULT_SCOPE = "default"

# `from_phase` of the transition a new onboarding makes into its first phase: the funnel's top.
STARTED = "Started"

# Iron request outcomes: the HTTP status class, or what happened instead of an answer.
STATUS_TIMEOUT = "timeout"
STATUS_UNREACHABLE = "unreachable"

# Event delivery outcomes (`activities/events.py`).
EVENT_DELIVERED, EVENT_GONE, EVENT_FAILED = "delivered", "gone", "failed"

# Buckets of the time a customer spends in a phase: from seconds (the engine's own steps) to
# weeks (a customer who never comes back). The runtime's defaults stop at 10 s.
TIME_IN_PHASE_BUCKETS = (
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0,
    86400.0, 2 * 86400.0, 3 * 86400.0, 7 * 86400.0, 14 * 86400.0, 30 * 86400.0, 90 * 86400.0,
)
WEBHOOK_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# An API request may wait for the workflow (a start's identification url, `/wait`): up to minutes.
API_REQUEST_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def status_class(status_code: int) -> str:
    """`2xx`, `4xx`, ...: a bounded label for an HTTP status."""
    return f"{status_code // 100}xx" if 100 <= status_code < 600 else "other"

"""Activity `deliver_event`: one event POSTed to the partner's backend, signed per Standard Webhooks.

Headers `webhook-id` (the event's own id, the same on every retry), `webhook-timestamp` (the
time of this attempt, which verifiers hold to a few minutes) and `webhook-signature`: one
`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` per configured secret, space-separated,
made by the `standardwebhooks` library itself so a backend using it (or Svix's) verifies it.

What the answer means:
    2xx        delivered
    410 Gone   the backend refuses this event for good (for example a customer it deleted):
               recorded as `gone`, logged as a warning, not retried
    429, 503   retried, after the backend's Retry-After when it gives one
    any other  (3xx included: a signed body is not re-posted elsewhere), a timeout or a refused
               connection: a retryable error, retried for ever on the settings' schedule
               (`ONBOARDING_EVENTS_RETRY_SCHEDULE`: 5 s, 5 min, 30 min, then hourly)
With no `ONBOARDING_EVENTS_URL` the activity sends nothing and answers `disabled`.

Logs name the event (webhook id, type, sequence, workflow id, status); never the body's values,
a signature or a secret.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone

import httpx
import structlog
from standardwebhooks import Webhook
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import record_event_delivery
from contracts import metrics as metric_names
from contracts.events import ACTIVITY_DELIVER_EVENT, DeliverEventInput, DeliverEventResult
from runtime.events_settings import EventsSettings, secret_bytes

log = structlog.get_logger("activities.events")

EVENT_DELIVERY_FAILED = "EventDeliveryFailed"
USER_AGENT = "iron-onboarding-events/1"


def signature_header(secrets: list[str], webhook_id: str, at: datetime, body: bytes) -> str:
    """One `v1,<base64>` signature per secret, space-separated as the specification says (the
    library's `Webhook` signs with one secret at a time)."""
    text = body.decode()
    return " ".join(Webhook(secret_bytes(s)).sign(webhook_id, at, text) for s in secrets)


def _retry_after(response: httpx.Response) -> timedelta | None:
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return timedelta(seconds=min(max(seconds, 0.0), 3600.0))


class EventDelivery:
    """Constructed once per worker with the events settings the worker loaded at start
    (`runtime.events_settings`) and an HTTP client (the worker's own, so connections are pooled
    across customers)."""

    def __init__(self, settings: EventsSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.secrets = settings.secrets
        self.http = http or httpx.AsyncClient(timeout=settings.timeout_seconds, follow_redirects=False)

    async def aclose(self) -> None:
        await self.http.aclose()

    @activity.defn(name=ACTIVITY_DELIVER_EVENT)
    async def deliver_event(self, req: DeliverEventInput) -> DeliverEventResult:
        info = activity.info()
        event = req.event
        logger = log.bind(
            webhook_id=req.webhook_id,
            event_type=event.type.value,
            phase=getattr(event.data.phase, "value", event.data.phase),  # which event failed, for a person
            sequence=event.sequence,
            workflow_id=info.workflow_id,
            attempt=info.attempt,
        )
        if not self.settings.enabled:
            logger.debug("event_not_sent_no_url")
            return DeliverEventResult(
                webhook_id=req.webhook_id, sequence=event.sequence, outcome="disabled", attempt=info.attempt
            )

        body = event.body()
        now = datetime.now(timezone.utc)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": req.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(self.secrets, req.webhook_id, now, body),
        }
        try:
            response = await self.http.post(
                str(self.settings.url), content=body, headers=headers, timeout=self.settings.timeout_seconds
            )
        except httpx.HTTPError as exc:
            # The exception's text can hold the url, never the body; its type says enough.
            reason = type(exc).__name__
            logger.warning("event_delivery_failed", error=reason)
            record_event_delivery(event.type.value, metric_names.EVENT_FAILED)
            raise ApplicationError(
                f"backend unreachable ({reason})", {"webhook_id": req.webhook_id}, type=EVENT_DELIVERY_FAILED,
                next_retry_delay=timedelta(seconds=self.settings.retry_delay(info.attempt, failing=req.failing)),
            ) from None

        status = response.status_code
        if 200 <= status < 300:
            logger.debug("event_delivered", http_status=status)  # counted by onboarding_event_deliveries_total
            record_event_delivery(event.type.value, metric_names.EVENT_DELIVERED)
            return DeliverEventResult(
                webhook_id=req.webhook_id, sequence=event.sequence, outcome="delivered", status_code=status,
                attempt=info.attempt,
            )
        if status == 410:
            logger.warning("event_refused_gone", http_status=status)
            record_event_delivery(event.type.value, metric_names.EVENT_GONE)
            return DeliverEventResult(
                webhook_id=req.webhook_id, sequence=event.sequence, outcome="gone", status_code=status,
                attempt=info.attempt,
            )
        delay = (_retry_after(response) if status in (429, 503) else None) or timedelta(seconds=self.settings.retry_delay(info.attempt, failing=req.failing))
        logger.warning("event_delivery_failed", http_status=status)
        record_event_delivery(event.type.value, metric_names.EVENT_FAILED)
        raise ApplicationError(
            f"backend answered {status}",
            {"webhook_id": req.webhook_id, "status_code": status},
            type=EVENT_DELIVERY_FAILED,
            next_retry_delay=delay,
        )

    def all(self) -> list:
        """Every activity, for the worker."""
        return [self.deliver_event]

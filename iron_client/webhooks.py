"""Iron's webhooks: signature scheme and typed events.

Signature (Standard Webhooks style, as Iron documents it): HMAC-SHA256 with the webhook secret
over the `webhook-timestamp` string immediately followed by the raw body, hex-encoded, sent as
`webhook-signature: v1=<hex>`. Several secrets may be valid at once so a secret can be rotated
without dropping deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

SIGNATURE_HEADER = "webhook-signature"
TIMESTAMP_HEADER = "webhook-timestamp"
ID_HEADER = "webhook-id"
DEFAULT_TOLERANCE_SECONDS = 300

# Wrapped message variant key -> webhook `type`, for the onboarding events and ping.
_VARIANT_TO_TYPE = {
    "CustomerStatus": "customer_status",
    "IdentificationStatus": "identification_status",
    "Event": "event",
    "Ping": "ping",
    "FiatAddressStatus": "fiat_address_status",
    "AutorampStatus": "autoramp_status",
    "TransactionStatus": "transaction_status",
}


class WebhookVerificationError(Exception):
    """The delivery is not from Iron, or too old to trust. Answer 401."""


class WebhookFormatError(Exception):
    """The delivery is signed but its body is not an Iron webhook. Answer 400."""


def parse_secrets(value: str | Iterable[str] | None) -> list[str]:
    """`IRON_WEBHOOK_SECRETS` is comma-separated; blanks are ignored."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if p and p.strip()]


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None, webhook_id: str | None = None) -> dict[str, str]:
    """The headers Iron would send with `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        ID_HEADER: webhook_id or str(uuid.uuid4()),
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: f"v1={compute_signature(secret, ts, body)}",
        "content-type": "application/json",
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Iterable[str],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise `WebhookVerificationError` unless one of `secrets` signed `body` recently.

    Every candidate is compared in constant time, and every secret is tried, so timing tells
    nothing about which secret or how much of the signature matched.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    secret_list = [s for s in secrets if s]
    if not secret_list:
        raise WebhookVerificationError("no webhook secret configured")
    timestamp = lowered.get(TIMESTAMP_HEADER)
    header = lowered.get(SIGNATURE_HEADER)
    if not timestamp or not header:
        raise WebhookVerificationError("missing webhook-timestamp or webhook-signature header")
    try:
        ts_value = int(timestamp.strip())
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    current = time.time() if now is None else now
    if abs(current - ts_value) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp outside the tolerance window")
    # A header may carry several space-separated signatures; only v1 is defined.
    candidates = [part[3:] for part in header.split() if part.startswith("v1=")]
    if not candidates:
        raise WebhookVerificationError("no v1 signature in webhook-signature")
    matched = False
    for secret in secret_list:
        expected = compute_signature(secret, timestamp.strip(), body)
        for candidate in candidates:
            if hmac.compare_digest(expected.encode(), candidate.strip().lower().encode()):
                matched = True
    if not matched:
        raise WebhookVerificationError("signature does not match")


class WebhookEvent(BaseModel):
    """One Iron webhook, flattened: what kind, when, for which customer, about which entity."""

    model_config = ConfigDict(frozen=True)

    type: str
    timestamp: str
    customer_id: str | None
    entity_id: str | None
    status: str | None
    variant: str | None = None
    raw_message: dict[str, Any] | None = None

    @property
    def is_onboarding(self) -> bool:
        return self.type in ("customer_status", "identification_status", "customer_created")


@dataclass(frozen=True)
class _Unwrapped:
    variant: str | None
    message: dict[str, Any]


def _unwrap(message: Any) -> _Unwrapped:
    if not isinstance(message, dict):
        raise WebhookFormatError("data.message must be an object")
    # Wrapped form: exactly one key naming the variant, holding an object.
    if len(message) == 1:
        (key, inner), = message.items()
        if isinstance(inner, dict) and key[:1].isupper():
            return _Unwrapped(key, inner)
    return _Unwrapped(None, message)


def parse_event(body: bytes | str | Mapping[str, Any]) -> WebhookEvent:
    """Parse Iron's webhook container, in the wrapped or the bare message form."""
    if isinstance(body, (bytes, str)):
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookFormatError("body is not JSON") from None
    else:
        payload = dict(body)
    if not isinstance(payload, dict):
        raise WebhookFormatError("body must be a JSON object")
    event_type = payload.get("type")
    timestamp = payload.get("timestamp")
    data = payload.get("data")
    if not isinstance(event_type, str) or not event_type:
        raise WebhookFormatError("missing 'type'")
    if not isinstance(timestamp, str) or not timestamp:
        raise WebhookFormatError("missing 'timestamp'")
    if not isinstance(data, dict):
        raise WebhookFormatError("missing 'data'")
    customer_id = data.get("customer_id")
    if customer_id is not None and not isinstance(customer_id, str):
        raise WebhookFormatError("'data.customer_id' must be a string")
    unwrapped = _unwrap(data.get("message", {}))
    entity_id = unwrapped.message.get("id")
    status = unwrapped.message.get("status")
    if entity_id is not None and not isinstance(entity_id, str):
        raise WebhookFormatError("'message.id' must be a string")
    if status is not None and not isinstance(status, str):
        raise WebhookFormatError("'message.status' must be a string")
    normalised_type = event_type
    if unwrapped.variant and unwrapped.variant in _VARIANT_TO_TYPE and event_type.lower() == unwrapped.variant.lower():
        normalised_type = _VARIANT_TO_TYPE[unwrapped.variant]
    try:
        return WebhookEvent(
            type=normalised_type,
            timestamp=timestamp,
            customer_id=customer_id,
            entity_id=entity_id,
            status=status,
            variant=unwrapped.variant,
            raw_message=unwrapped.message,
        )
    except ValidationError as exc:  # pragma: no cover - guarded above
        raise WebhookFormatError(str(exc)) from None


def build_container(
    event_type: str, customer_id: str, variant: str, message: dict[str, Any], *, timestamp: str, wrapped: bool = True
) -> dict[str, Any]:
    """The JSON Iron sends: `{type, timestamp, data: {customer_id, message}}`."""
    return {
        "type": event_type,
        "timestamp": timestamp,
        "data": {"customer_id": customer_id, "message": {variant: message} if wrapped else message},
    }

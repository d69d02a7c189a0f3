"""The receiver's settings: one pydantic-settings model, read from the environment at start.

A value that cannot be used stops the process at start with one line naming the variable,
rather than surfacing later as a stream of refused deliveries. The encryption keys are part of
it: `ReceiverSettings.load().data_converter()` reads and checks them before the first request.
`ONBOARDING_EVENTS_URL` comes with `ProcessSettings` (`events_url`): set, the onboardings the
receiver adopts send events too.
"""

from __future__ import annotations

from typing import Mapping

from pydantic import Field, field_validator

from iron_client.webhooks import DEFAULT_TOLERANCE_SECONDS, parse_secrets
from contracts.messages import canonical_sub_partner_id
from runtime.http_server import DEFAULT_HEADER_TIMEOUT_SECONDS, DEFAULT_SHUTDOWN_GRACE_SECONDS
from runtime.metrics import MetricsSettings
from runtime.settings import CommaList, ConfigurationError, Flag

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_MAX_BODY_BYTES = 64 * 1024

ENV_SECRETS = "IRON_WEBHOOK_SECRETS"
ENV_MAX_BYTES = "ONBOARDING_WEBHOOK_MAX_BYTES"
ENV_TOLERANCE = "ONBOARDING_WEBHOOK_TOLERANCE_SECONDS"
ENV_ADOPT = "ONBOARDING_ADOPT_UNKNOWN_CUSTOMERS"
ENV_CACHE_SIZE = "ONBOARDING_WEBHOOK_CACHE_SIZE"
ENV_CACHE_TTL = "ONBOARDING_WEBHOOK_CACHE_TTL_SECONDS"
ENV_TEMPORAL_TIMEOUT = "ONBOARDING_WEBHOOK_TEMPORAL_TIMEOUT_SECONDS"
ENV_IRON_TIMEOUT = "ONBOARDING_WEBHOOK_IRON_TIMEOUT_SECONDS"
ENV_READY_TIMEOUT = "ONBOARDING_WEBHOOK_READY_TIMEOUT_SECONDS"
ENV_IRON_CONCURRENCY = "ONBOARDING_WEBHOOK_IRON_CONCURRENCY"
ENV_TEMPORAL_CONCURRENCY = "ONBOARDING_WEBHOOK_TEMPORAL_CONCURRENCY"
ENV_BODY_TIMEOUT = "ONBOARDING_WEBHOOK_BODY_TIMEOUT_SECONDS"
ENV_HEADER_TIMEOUT = "ONBOARDING_WEBHOOK_HEADER_TIMEOUT_SECONDS"
ENV_SHUTDOWN_GRACE = "ONBOARDING_WEBHOOK_SHUTDOWN_GRACE_SECONDS"
ENV_SUB_PARTNERS = "IRON_SUB_PARTNER_IDS"

# Connections the receiver's own Iron client may open. Lookups are bounded below it, so a
# burst queues in the receiver (where a slow lookup times out cleanly) and never in the pool.
IRON_POOL_SIZE = 40

# The receiver's historical name for a configuration error; the same class every process uses.
SettingsError = ConfigurationError


class ReceiverSettings(MetricsSettings):
    """Everything the receiver needs besides its Temporal and Iron connections.

    `webhook_secrets` holds every secret currently accepted: during a rotation both the old
    and the new one, so deliveries signed with either pass. Keyword arguments by field name
    override the environment: `ReceiverSettings(webhook_secrets=("s",))`.
    """

    webhook_secrets: CommaList = Field((), repr=False, validation_alias=ENV_SECRETS)
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, validation_alias=ENV_MAX_BYTES)
    tolerance_seconds: int = Field(DEFAULT_TOLERANCE_SECONDS, ge=1, validation_alias=ENV_TOLERANCE)
    adopt_unknown_customers: Flag = Field(True, validation_alias=ENV_ADOPT)
    cache_size: int = Field(10_000, ge=0, validation_alias=ENV_CACHE_SIZE)
    cache_ttl_seconds: float = Field(3600.0, ge=0, allow_inf_nan=False, validation_alias=ENV_CACHE_TTL)
    # Time budgets within one delivery, kept well under the time a webhook sender waits.
    temporal_timeout_seconds: float = Field(10.0, ge=0.1, le=60, allow_inf_nan=False, validation_alias=ENV_TEMPORAL_TIMEOUT)
    iron_timeout_seconds: float = Field(5.0, ge=0.1, le=60, allow_inf_nan=False, validation_alias=ENV_IRON_TIMEOUT)
    ready_timeout_seconds: float = Field(2.0, ge=0.1, le=60, allow_inf_nan=False, validation_alias=ENV_READY_TIMEOUT)
    # Iron lookups in flight at once (different customers; one customer shares one lookup).
    iron_max_concurrent_lookups: int = Field(16, ge=1, lt=IRON_POOL_SIZE, validation_alias=ENV_IRON_CONCURRENCY)
    # Temporal calls in flight at once; more deliveries wait for a slot within their budget.
    temporal_max_concurrent_calls: int = Field(64, ge=1, le=10_000, validation_alias=ENV_TEMPORAL_CONCURRENCY)
    # A sender gets this long to deliver the whole body (slow-body clients are cut off with 408).
    body_timeout_seconds: float = Field(10.0, ge=0.1, le=120, allow_inf_nan=False, validation_alias=ENV_BODY_TIMEOUT)
    # A connection that has not sent a whole request head within this is answered 408 and closed.
    header_timeout_seconds: float = Field(
        DEFAULT_HEADER_TIMEOUT_SECONDS, ge=0.1, le=120, allow_inf_nan=False, validation_alias=ENV_HEADER_TIMEOUT
    )
    # On SIGTERM, deliveries in flight get this long to be answered (one is bounded by the body,
    # Iron and Temporal budgets above); within the pod's grace after its preStop.
    shutdown_grace_seconds: float = Field(
        DEFAULT_SHUTDOWN_GRACE_SECONDS, ge=0, le=600, allow_inf_nan=False, validation_alias=ENV_SHUTDOWN_GRACE
    )
    # The sub-partners whose customers this receiver routes: a webhook names only the Iron
    # customer, and Iron shows a sub-partner's customer only in that sub-partner's scope, so a
    # customer the default scope does not know is looked up in each of these, in order.
    sub_partner_ids: CommaList = Field((), validation_alias=ENV_SUB_PARTNERS)

    @field_validator("sub_partner_ids")
    @classmethod
    def _sub_partners_are_uuids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(canonical_sub_partner_id(v) for v in value))

    def lookup_scopes(self) -> tuple[str, ...]:
        """The sub-partner scopes a customer is looked up in after the default one (which is
        `IRON_SUB_PARTNER_ID`, so naming it here again would only repeat that lookup)."""
        return tuple(s for s in self.sub_partner_ids if s != self.iron_sub_partner_id)

    @field_validator("webhook_secrets")
    @classmethod
    def _at_least_one_secret(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        secrets = tuple(parse_secrets(value))
        if not secrets:
            raise ValueError("no webhook secret: set it (comma-separated to accept several)")
        return secrets

    def __str__(self) -> str:  # the secrets stay out of logs
        return (
            f"ReceiverSettings(secrets={len(self.webhook_secrets)}, max_body_bytes={self.max_body_bytes}, "
            f"tolerance_seconds={self.tolerance_seconds}, adopt_unknown_customers={self.adopt_unknown_customers}, "
            f"task_queue={self.task_queue!r}, iron_max_concurrent_lookups={self.iron_max_concurrent_lookups}, "
            f"sub_partners={len(self.sub_partner_ids)})"
        )

    __repr__ = __str__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ReceiverSettings":
        """`load`, under the receiver's historical name. Raises `SettingsError`."""
        return cls.load(environ)

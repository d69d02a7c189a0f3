"""The receiver's settings, read from the environment with the names operators set.

A value that cannot be used stops the process at start with a message naming the variable,
rather than surfacing later as a stream of refused deliveries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from iron_client.webhooks import DEFAULT_TOLERANCE_SECONDS, parse_secrets
from runtime.settings import task_queue as default_task_queue
from contracts.messages import DEFAULT_TASK_QUEUE

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

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting is missing or unusable; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class ReceiverSettings:
    """Everything the receiver needs besides its Temporal and Iron connections.

    `webhook_secrets` holds every secret currently accepted: during a rotation both the old
    and the new one, so deliveries signed with either pass.
    """

    webhook_secrets: tuple[str, ...]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    adopt_unknown_customers: bool = True
    task_queue: str = field(default_factory=default_task_queue)
    cache_size: int = 10_000
    cache_ttl_seconds: float = 3600.0
    # Time budgets within one delivery, kept well under the time a webhook sender waits.
    temporal_timeout_seconds: float = 5.0
    iron_timeout_seconds: float = 5.0
    ready_timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        secrets = tuple(parse_secrets(self.webhook_secrets))
        if not secrets:
            raise SettingsError(f"no webhook secret: set {ENV_SECRETS} (comma-separated to accept several)")
        object.__setattr__(self, "webhook_secrets", secrets)
        if self.max_body_bytes < 1:
            raise SettingsError("max_body_bytes must be positive")
        if self.tolerance_seconds < 1:
            raise SettingsError("tolerance_seconds must be positive")
        if not self.task_queue:
            raise SettingsError("task_queue must not be empty")

    def __repr__(self) -> str:  # the secrets stay out of reprs and logs
        return (
            f"ReceiverSettings(secrets={len(self.webhook_secrets)}, max_body_bytes={self.max_body_bytes}, "
            f"tolerance_seconds={self.tolerance_seconds}, adopt_unknown_customers={self.adopt_unknown_customers}, "
            f"task_queue={self.task_queue!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ReceiverSettings":
        env = os.environ if environ is None else environ
        return cls(
            webhook_secrets=tuple(parse_secrets(env.get(ENV_SECRETS))),
            max_body_bytes=_int(env, ENV_MAX_BYTES, DEFAULT_MAX_BODY_BYTES, minimum=1),
            tolerance_seconds=_int(env, ENV_TOLERANCE, DEFAULT_TOLERANCE_SECONDS, minimum=1),
            adopt_unknown_customers=_bool(env, ENV_ADOPT, True),
            task_queue=env.get("ONBOARDING_TASK_QUEUE") or DEFAULT_TASK_QUEUE,
            cache_size=_int(env, ENV_CACHE_SIZE, 10_000, minimum=0),
            cache_ttl_seconds=_float(env, ENV_CACHE_TTL, 3600.0, minimum=0.0),
            temporal_timeout_seconds=_float(env, ENV_TEMPORAL_TIMEOUT, 5.0, minimum=0.1),
            iron_timeout_seconds=_float(env, ENV_IRON_TIMEOUT, 5.0, minimum=0.1),
            ready_timeout_seconds=_float(env, ENV_READY_TIMEOUT, 2.0, minimum=0.1),
        )

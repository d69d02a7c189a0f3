"""Where events go and what signs them: `ONBOARDING_EVENTS_URL`, `ONBOARDING_EVENTS_SECRET`.

Read once at start; a value that cannot be used stops the process with one line that names the
variable and never shows a secret. Without `ONBOARDING_EVENTS_URL` events are not sent.

Secrets are Standard Webhooks secrets, `whsec_` followed by the base64 of 24 to 64 random
bytes (the range the specification asks for); several, comma-separated, during a rotation:
every event is then signed with each, so a backend verifying with either accepts it.
"""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar, Mapping

from pydantic import Field, SecretStr, field_validator, model_validator

from contracts.configuration import ConfigurationError
from runtime.settings import EnvironmentSettings, optional_http_url

ENV_URL = "ONBOARDING_EVENTS_URL"
ENV_SECRET = "ONBOARDING_EVENTS_SECRET"
ENV_TIMEOUT = "ONBOARDING_EVENTS_TIMEOUT_SECONDS"
ENV_RETRY_SCHEDULE = "ONBOARDING_EVENTS_RETRY_SCHEDULE"
# Seconds before each retry of a delivery the backend refused, the last repeated for as long as
# it refuses: seconds, minutes, then hourly, as Standard Webhooks senders do. A 6-hour outage
# costs a pending event 9 attempts (each a billable action), and the backlog moves within an
# hour of the backend's return. A backend's Retry-After (429, 503) comes first.
DEFAULT_RETRY_SCHEDULE = "5,300,1800,3600"

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class EventsSettingsError(ConfigurationError):
    """An events setting is unusable; the message is one line naming the variable."""


def secret_bytes(secret: str) -> bytes:
    """The key inside a `whsec_<base64>` secret, strictly decoded (the `standardwebhooks`
    library decodes leniently, skipping any character that is not base64, so a mistyped
    secret would otherwise sign with a different key than the backend's)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not {SECRET_PREFIX}<base64>") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, holds {len(key)}")
    return key


def split_secrets(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class EventsSettings(EnvironmentSettings):
    """What the worker's event delivery reads. Every other process reads only the URL, with
    the same check, as `ProcessSettings.events_url`; the worker passes the URL it read there
    (`load(url=...)`), so the variable is parsed once per process."""

    configuration_error: ClassVar[type[ConfigurationError]] = EventsSettingsError

    url: str | None = Field(None, validation_alias=ENV_URL)
    # All secrets, comma-separated; kept secret so they never show in a repr or a log.
    secret: SecretStr | None = Field(None, repr=False, validation_alias=ENV_SECRET)
    # An attempt must end inside the delivery activity's 30 s start-to-close, or every one times out.
    timeout_seconds: float = Field(default=10.0, gt=0, le=25, validation_alias=ENV_TIMEOUT)
    retry_schedule: str = Field(default=DEFAULT_RETRY_SCHEDULE, validation_alias=ENV_RETRY_SCHEDULE)

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError(f"{ENV_RETRY_SCHEDULE}: {value!r} is not seconds, comma-separated (such as {DEFAULT_RETRY_SCHEDULE})") from None
        if not delays or any(not 0 < d <= 86400 for d in delays):
            raise ValueError(f"{ENV_RETRY_SCHEDULE}: each delay must be more than 0 and at most 86400 seconds")
        return value

    def retry_delay(self, attempt: int, *, failing: bool = False) -> float:
        """Seconds before the attempt after `attempt` (1 for the first) failed; on a backend
        already known to be failing, the schedule's last step."""
        delays = [float(part) for part in self.retry_schedule.split(",")]
        return delays[-1] if failing else delays[min(max(attempt, 1), len(delays)) - 1]

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return optional_http_url(value)

    @model_validator(mode="after")
    def _secrets_usable(self) -> "EventsSettings":
        secrets = split_secrets(self.secret.get_secret_value() if self.secret else None)
        if self.url is not None and not secrets:
            raise ValueError(f"{ENV_SECRET}: empty while {ENV_URL} is set: give one whsec_ secret or several, comma-separated")
        for position, secret in enumerate(secrets, start=1):
            try:
                secret_bytes(secret)
            except ValueError as exc:
                raise ValueError(f"{ENV_SECRET}: secret {position} of {len(secrets)} {exc}") from None
        return self

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def secrets(self) -> list[str]:
        """Every signing secret, in the order given (the new one first, by convention)."""
        return split_secrets(self.secret.get_secret_value() if self.secret else None)


def load_events_settings(environ: Mapping[str, str] | None = None) -> EventsSettings:
    """`EventsSettings.load(environ)`: `EventsSettingsError` with one line, and no secret in
    it, when a value is unusable."""
    return EventsSettings.load(environ)

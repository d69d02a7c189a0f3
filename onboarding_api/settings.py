"""The HTTP API's settings: one pydantic-settings model, read from the environment once at start.

Like every process's (`runtime/settings.py`): a value that cannot be used stops the start with
one line naming the variable and `EXIT_CONFIGURATION`. The API reads what the starter reads
(Iron, the encryption keys, the document store it writes identification data to, whether
onboardings send events), the metrics exporter's settings, and its own: the file of API keys,
the body limit, the read deadlines, how long a request may wait for the workflow.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from operations.onboardings import IDENTIFICATION_FILE_MAX_BYTES
from runtime.http_server import DEFAULT_HEADER_TIMEOUT_SECONDS, DEFAULT_SHUTDOWN_GRACE_SECONDS
from runtime.metrics import MetricsSettings
from runtime.settings import DocumentStoreSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8082

ENV_KEYS_FILE = "ONBOARDING_API_KEYS_FILE"
ENV_MAX_BODY_BYTES = "ONBOARDING_API_MAX_BODY_BYTES"
ENV_BODY_TIMEOUT = "ONBOARDING_API_BODY_TIMEOUT_SECONDS"
ENV_HEADER_TIMEOUT = "ONBOARDING_API_HEADER_TIMEOUT_SECONDS"
ENV_SHUTDOWN_GRACE = "ONBOARDING_API_SHUTDOWN_GRACE_SECONDS"
ENV_WAIT_MAX = "ONBOARDING_API_WAIT_MAX_SECONDS"
ENV_READY_TIMEOUT = "ONBOARDING_API_READY_TIMEOUT_SECONDS"

# Identification data arrives inline: a file the starter would take, plus the request around it.
DEFAULT_MAX_BODY_BYTES = IDENTIFICATION_FILE_MAX_BYTES + 64 * 1024


class ApiSettings(DocumentStoreSettings, MetricsSettings):
    """Everything the HTTP API reads besides its Temporal connection (Temporal's own
    environment configuration). Keyword arguments by field name override the environment."""

    keys_file: str | None = Field(None, validate_default=True, validation_alias=ENV_KEYS_FILE)
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024, validation_alias=ENV_MAX_BODY_BYTES)
    body_timeout_seconds: float = Field(30.0, ge=0.1, le=600, allow_inf_nan=False, validation_alias=ENV_BODY_TIMEOUT)
    header_timeout_seconds: float = Field(
        DEFAULT_HEADER_TIMEOUT_SECONDS, ge=0.1, le=120, allow_inf_nan=False, validation_alias=ENV_HEADER_TIMEOUT
    )
    # On SIGTERM, requests in flight (a wait among them) get this long to be answered.
    shutdown_grace_seconds: float = Field(
        DEFAULT_SHUTDOWN_GRACE_SECONDS, ge=0, le=600, allow_inf_nan=False, validation_alias=ENV_SHUTDOWN_GRACE
    )
    # The longest a request waits for the workflow (`/wait`, a start's `?wait=`): proxies and
    # load balancers close idle requests after a few minutes.
    wait_max_seconds: float = Field(300.0, gt=0, le=3600, allow_inf_nan=False, validation_alias=ENV_WAIT_MAX)
    ready_timeout_seconds: float = Field(2.0, ge=0.1, le=60, allow_inf_nan=False, validation_alias=ENV_READY_TIMEOUT)

    @field_validator("keys_file")
    @classmethod
    def _keys_file_is_named(cls, value: str | None) -> str:
        # No key, nobody may call: better one line at start than every request answered 401.
        if value is None or not value.strip():
            raise ValueError("not set: name the JSON file of the API keys' hashes (python -m onboarding_api new-key makes a key)")
        return value.strip()

"""How a sandbox is configured: from code (`SandboxConfig(...)`), from the command line or env."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Mapping

from contracts.configuration import ConfigurationError
from contracts.quoting import quoted
from iron_client.webhooks import parse_secrets

from iron_sandbox.clock import Clock

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_API_KEY = "sandbox-key"
DEFAULT_WEBHOOK_SECRET = "sandbox-webhook-secret"
# Every customer created without a sub-partner belongs to this partner.
DEFAULT_PARTNER_ID = "5b0ad8a2-3f7e-4c1d-9a41-6f0c2d8e7b13"
SUPPORTED_API_VERSIONS = ("2025-03-13", "2026-07-01")


@dataclass
class SandboxConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)
    webhook_urls: list[str] = field(default_factory=list)
    webhook_secret: str = field(default=DEFAULT_WEBHOOK_SECRET, repr=False)
    # Wrapped webhook messages (`{"CustomerStatus": {...}}`) as Iron sends them; False sends the bare form.
    webhook_wrapped: bool = True
    webhook_max_attempts: int = 10
    webhook_initial_backoff_seconds: float = 0.2
    webhook_max_backoff_seconds: float = 10.0
    webhook_timeout_seconds: float = 5.0
    # Deliveries in flight at once per target (one customer's events still go one at a time).
    webhook_concurrency: int = 8
    autopilot: bool = False
    autopilot_after_seconds: float = 2.0
    autopilot_step_gap_seconds: float = 0.2
    autopilot_decision: str = "approve"
    # Base of the hosted KYC and document urls; defaults to the address a request came in on.
    public_url: str | None = None
    partner_id: str = DEFAULT_PARTNER_ID
    # Largest accepted request body (identifications carry several base64 documents of up to 10 MB).
    max_body_bytes: int = 64 * 1024 * 1024
    # Seed for the random parts (fault injection, webhook faults) so a run can be repeated.
    seed: int | None = None
    clock: Clock = field(default_factory=Clock, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SandboxConfig":
        """The settings the environment gives; SandboxConfigurationError, naming the variable,
        for a value the sandbox cannot use."""
        env = os.environ if environ is None else environ
        secret = env.get("IRON_WEBHOOK_SECRET") or next(iter(parse_secrets(env.get("IRON_WEBHOOK_SECRETS"))), None)
        public_url = (env.get("IRON_SANDBOX_PUBLIC_URL") or "").strip()
        return cls(
            host=env.get("IRON_SANDBOX_HOST") or DEFAULT_HOST,
            port=_port(env, "IRON_SANDBOX_PORT"),
            api_key=env.get("IRON_API_KEY") or DEFAULT_API_KEY,
            webhook_urls=[
                _http_url(u.strip(), "IRON_SANDBOX_WEBHOOK_URLS")
                for u in (env.get("IRON_SANDBOX_WEBHOOK_URLS") or "").split(",") if u.strip()
            ],
            webhook_secret=secret or DEFAULT_WEBHOOK_SECRET,
            autopilot=_flag(env, "IRON_SANDBOX_AUTOPILOT"),
            public_url=_http_url(public_url, "IRON_SANDBOX_PUBLIC_URL") if public_url else None,
        )


class SandboxConfigurationError(ConfigurationError):
    """A variable the sandbox cannot use. The message is one line, `<VARIABLE>: <what is wrong>`."""


# The words every process of the project reads as a flag (runtime.settings), empty being unset.
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("", "0", "false", "no", "off")


def _port(env: Mapping[str, str], name: str) -> int:
    text = (env.get(name) or "").strip()
    if not text:
        return DEFAULT_PORT
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise SandboxConfigurationError(f"{name}: must be a port number from 0 to 65535, got {quoted(text, limit=40)}")
    return int(text)


def _http_url(value: str, name: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SandboxConfigurationError(f"{name}: must be an http or https URL with a host, got {quoted(value, limit=80)}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    given = env.get(name) or ""
    text = given.strip().lower()
    if text not in _TRUE_WORDS + _FALSE_WORDS:
        raise SandboxConfigurationError(f"{name}: must be one of on/off, true/false, 1/0, yes/no, got {quoted(given, limit=40)}")
    return text in _TRUE_WORDS

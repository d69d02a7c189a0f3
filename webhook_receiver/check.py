"""`python -m webhook_receiver check`: is Iron really sending this receiver its webhooks?

Iron keeps no delivery log a partner can read, so a webhook that was disabled, lost a topic or
still points at an old URL silently turns the engine into a polling-only one. The check asks
Iron, through its webhooks API, and then proves the path end to end:

1. a webhook exists whose url is the receiver's public URL (`--public-url`, or
   `ONBOARDING_WEBHOOK_PUBLIC_URL`: the full URL Iron posts to, `https://host/webhooks/iron`);
2. it is enabled;
3. it subscribes to every topic onboarding needs (CustomerStatus, IdentificationStatus,
   CustomerCreated);
4. Iron pings it, naming a fresh random id as the ping's customer, and the receiver confirms it
   verified that very ping (`GET <receiver>/pings/{id}`; `--receiver-url` says where the
   receiver's webhook path is reachable from here when it is not the public URL, e.g. one
   replica's internal address: a ping lands on one replica, and only that one remembers it).

Prints one line and exits 0 when all hold, 1 with the reason when one does not, 2 for bad
usage, 5 when Iron or the receiver cannot be asked (the exit codes of every process,
docs/configuration.md). Its settings (`WebhookCheckSettings`: Iron's `IRON_*` and
`ONBOARDING_WEBHOOK_PUBLIC_URL`) are read once at start as every process reads them: an unusable
one is `configuration: <VARIABLE>: ...` and exit code 7.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import httpx
from pydantic import Field, field_validator

from contracts.configuration import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNREACHABLE
from iron_client import IronClient
from iron_client.errors import IronError
from iron_client.models import ONBOARDING_TOPICS, Webhook, wire
from runtime.settings import ProcessSettings, http_url, optional_http_url

ENV_PUBLIC_URL = "ONBOARDING_WEBHOOK_PUBLIC_URL"
DEFAULT_TIMEOUT_SECONDS = 15.0

OK, FAILED, USAGE, UNREACHABLE = EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE


class WebhookCheckSettings(ProcessSettings):
    """The check's settings: Iron's, and the URL Iron posts to when `--public-url` is not given."""

    public_url: str | None = Field(None, validation_alias=ENV_PUBLIC_URL)

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        return optional_http_url(value)


@dataclass(frozen=True)
class CheckResult:
    exit_code: int
    message: str
    webhook_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == OK


def normalise_url(url: str) -> str:
    """URLs compare equal when they differ only in case of scheme and host or a trailing slash."""
    parts = urllib.parse.urlsplit(url.strip())
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


def _topics(webhook: Webhook) -> str:
    return ", ".join(wire(t) or "" for t in webhook.topics) or "none"


async def check_webhook(
    iron: IronClient,
    public_url: str,
    *,
    receiver_url: str | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    http: httpx.AsyncClient | None = None,
) -> CheckResult:
    """Run the four checks; the result's message is the one line to print."""
    wanted = normalise_url(public_url)
    try:
        webhooks = await iron.all_webhooks()
    except IronError as exc:
        return CheckResult(UNREACHABLE, f"cannot list Iron's webhooks: {exc}")
    matching = [w for w in webhooks if normalise_url(w.url) == wanted]
    if not matching:
        known = ", ".join(sorted({w.url for w in webhooks})) or "none"
        return CheckResult(FAILED, f"no Iron webhook points at {public_url} (Iron's webhooks point at: {known})")
    enabled = [w for w in matching if w.enabled]
    if not enabled:
        return CheckResult(FAILED, f"Iron's webhook {matching[0].id} for {public_url} is disabled", matching[0].id)
    webhook = enabled[0]
    missing = [t.value for t in ONBOARDING_TOPICS if t not in webhook.topics]
    if missing:
        return CheckResult(
            FAILED,
            f"Iron's webhook {webhook.id} for {public_url} does not subscribe to {', '.join(missing)}"
            f" (it subscribes to: {_topics(webhook)})",
            webhook.id,
        )

    nonce = str(uuid.uuid4())
    started = time.monotonic()
    try:
        await iron.ping_webhook(webhook.id, customer_id=nonce, idempotency_key=str(uuid.uuid4()))
    except IronError as exc:
        return CheckResult(UNREACHABLE, f"Iron refused to ping webhook {webhook.id}: {exc}", webhook.id)

    confirm_url = f"{(receiver_url or public_url).rstrip('/')}/pings/{nonce}"
    owns_http = http is None
    http = http or httpx.AsyncClient(timeout=5.0)
    last_error: str | None = None
    try:
        while True:
            try:
                response = await http.get(confirm_url)
                if response.status_code == 200:
                    elapsed = time.monotonic() - started
                    return CheckResult(
                        OK,
                        f"ok: Iron's webhook {webhook.id} -> {webhook.url} is enabled, subscribes to "
                        f"{_topics(webhook)}, and the receiver confirmed Iron's ping in {elapsed:.1f}s",
                        webhook.id,
                    )
                last_error = None if response.status_code == 404 else f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}"
            if time.monotonic() - started > timeout_seconds:
                break
            await asyncio.sleep(0.2)
    finally:
        if owns_http:
            await http.aclose()

    if last_error is not None:
        return CheckResult(UNREACHABLE, f"cannot ask the receiver at {confirm_url}: {last_error}", webhook.id)
    hint = ""
    try:
        after = next((w for w in await iron.all_webhooks() if w.id == webhook.id), None)
        if after is not None and after.last_failure_reason:
            hint = f"; Iron's last failure for this webhook: {after.last_failure_reason}"
    except IronError:
        pass
    return CheckResult(
        FAILED,
        f"Iron accepted the ping for webhook {webhook.id}, but the receiver did not confirm it within "
        f"{timeout_seconds:g}s (check IRON_WEBHOOK_SECRETS and that Iron reaches {webhook.url}){hint}",
        webhook.id,
    )


def _is_http_url(value: str) -> bool:
    try:
        http_url(value)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m webhook_receiver check",
        description="Check at Iron that a webhook for this receiver exists, is enabled, has the onboarding "
                    "topics, and that its ping reaches the receiver.",
    )
    parser.add_argument("--public-url", default=None,
                        help=f"the URL Iron posts to, e.g. https://host/webhooks/iron (default: {ENV_PUBLIC_URL})")
    parser.add_argument("--receiver-url", default=None,
                        help="where the receiver's webhook path is reachable from here (default: the public URL)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                        help=f"seconds to wait for the receiver to confirm the ping (default {DEFAULT_TIMEOUT_SECONDS:g})")
    args = parser.parse_args(argv)

    from runtime.process import EXIT_CONFIGURATION, configuration_errors, configuration_message

    try:
        settings = WebhookCheckSettings.load()
    except configuration_errors() as exc:
        print(configuration_message(exc), file=sys.stderr)
        return EXIT_CONFIGURATION
    public_url = args.public_url or settings.public_url
    if not public_url:
        print(f"webhook check: give --public-url or set {ENV_PUBLIC_URL}", file=sys.stderr)
        return USAGE
    if not _is_http_url(public_url) or args.timeout <= 0:
        print("webhook check: --public-url must be an http(s) URL and --timeout positive", file=sys.stderr)
        return USAGE
    iron_settings = settings.iron_settings()

    async def run() -> CheckResult:
        async with IronClient(iron_settings) as iron:
            return await check_webhook(
                iron, public_url, receiver_url=args.receiver_url, timeout_seconds=args.timeout
            )

    result = asyncio.run(run())
    if result.ok:
        print(result.message)
    else:
        print(f"webhook check failed: {result.message}", file=sys.stderr)
    return result.exit_code


__all__ = ["CheckResult", "WebhookCheckSettings", "check_webhook", "main", "normalise_url", "ENV_PUBLIC_URL"]

"""A small partner backend: receives the onboarding's events, verifies and prints them, and signs
documents when an event says signings are required, instead of polling.

    python -m demo.partner_backend [--host 127.0.0.1] [--port 8095] [--api-url URL] [--no-sign] [--sign-prefix P ...]

Secrets from `ONBOARDING_EVENTS_SECRET` (the engine's, comma-separated during rotation). It signs
through the onboarding HTTP API, as a backend in any language would: `POST
/v1/onboardings/{external_id}/signings/{content_id}` at `--api-url` (or `ONBOARDING_API_URL`)
with the key in `ONBOARDING_API_KEY`. (`temporal_signer` signs through the Python library
instead, for tests that run no API.)

    POST /events             an event: 401 unless a secret verifies it (`standardwebhooks`),
                             200 once recorded (a repeated webhook-id is counted, not re-recorded)
    GET  /healthz
    GET  /_control/events    what arrived, in order, per customer, and counters
    GET  /_control/events/{external_id}?after=N&wait=S
                             that customer's events after the first N, waiting up to S seconds
                             (at most 60) for one to arrive: how a driver follows a customer
                             without asking Temporal
    POST /_control/refuse    {"mode": "error" | "closed", "seconds": S, "status": 500, "rate": 1.0,
                              "on_signings_of": EXTERNAL_ID}
                             `error`: answer `status` to a share `rate` of events (for S seconds,
                             or until accepted again); `closed`: stop listening for S seconds
                             (connections are refused), then listen again on the same port;
                             with `on_signings_of`, only once the event asking that customer
                             to sign has been recorded, and before signing (so the customer
                             becomes Active while nobody listens)
    DELETE /_control/refuse  accept every event again

SIGUSR1 listens again at once, before a closed stretch ends: the control routes share the port,
so a closed backend cannot be reopened over HTTP.

Every event prints one line: `event <type> <external id> <phase> seq=<n>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtime.events_settings import EventsSettingsError, secret_bytes, split_secrets

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8095
EVENTS_PATH = "/events"
MAX_BODY_BYTES = 1024 * 1024
AWAITING_SIGNINGS = "AwaitingSignings"

Signer = Callable[[str, str, str], Awaitable[Any]]  # (external_id, content_id, request_id) -> anything


class SigningRefused(Exception):
    """The onboarding refused the signing (already signed, no longer required): nothing to do."""


class NoSuchOnboarding(LookupError):
    """No onboarding of that external id: the next event that asks tries again."""


@dataclass
class ReceivedEvent:
    webhook_id: str
    type: str
    sequence: int
    phase: str | None
    received_at: float  # Unix time this backend first accepted it
    timestamp: str = ""  # the body's: when the engine made the change
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id, "type": self.type, "sequence": self.sequence, "phase": self.phase,
            "received_at": self.received_at, "timestamp": self.timestamp, "data": self.data,
        }


@dataclass
class Refusal:
    mode: str  # "error" or "closed"
    status: int = 500
    rate: float = 1.0
    until: float | None = None  # monotonic time; None: until accepted again


@dataclass
class PartnerBackend:
    """The backend's state and its ASGI app. `signer` signs one document for one customer;
    None turns signing off."""

    secrets: list[str]
    signer: Signer | None = None
    out: Callable[[str], None] = print
    seed: int | None = None
    customers: dict[str, list[ReceivedEvent]] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=lambda: {
        "received": 0, "duplicates": 0, "rejected": 0, "refused": 0,
        "signed": 0, "sign_retries": 0, "sign_refused": 0, "sign_failures": 0,
    })
    refusal: Refusal | None = None
    # The webhook-id of every POST refused on purpose: each must come back later as a
    # delivered event under the same id.
    refused_ids: list[str] = field(default_factory=list)
    # How long a document's signing is retried while Temporal or a worker is away.
    sign_retry_seconds: float = 300.0
    # Sign only for external ids starting with one of these (empty: every customer), so a
    # person driving their own onboardings beside the demo's samples signs them by hand.
    sign_prefixes: tuple[str, ...] = ()
    # What this backend signed, per customer (content ids), in order.
    signed: dict[str, list[str]] = field(default_factory=dict)
    # Every closed stretch: the customer whose signings closed it (if any), and Unix times.
    outages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.secrets:
            raise EventsSettingsError("ONBOARDING_EVENTS_SECRET: no secret to verify events with")
        self._verifiers = []
        for position, secret in enumerate(self.secrets, start=1):
            try:
                self._verifiers.append(Webhook(secret_bytes(secret)))
            except ValueError as exc:
                raise EventsSettingsError(
                    f"ONBOARDING_EVENTS_SECRET: secret {position} of {len(self.secrets)} {exc}"
                ) from None
        self._random = random.Random(self.seed)
        self._signing: set[tuple[str, str]] = set()  # in flight or done
        self._tasks: set[asyncio.Task] = set()
        self._arrival: asyncio.Event | None = None  # set, and replaced, on every new event
        # Set by the server runner: asked to stop listening for this many seconds.
        self.close_requested: Callable[[float], None] | None = None
        # Set by the server runner while its port is really closed (no listener, no connection).
        self.port_closed = asyncio.Event()
        self._close_on_signings: tuple[str, float] | None = None  # (external id, seconds)
        self.app = Starlette(routes=[
            Route(EVENTS_PATH, self.receive, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/_control/events", self.control_events, methods=["GET"]),
            Route("/_control/events/{external_id}", self.control_customer_events, methods=["GET"]),
            Route("/_control/refuse", self.control_refuse, methods=["POST", "DELETE"]),
        ])

    # --- what arrived --------------------------------------------------------------------------

    def events_for(self, external_id: str) -> list[ReceivedEvent]:
        return list(self.customers.get(external_id, []))

    def sequences(self, external_id: str) -> list[int]:
        return [e.sequence for e in self.customers.get(external_id, [])]

    def snapshot(self) -> dict[str, Any]:
        return {
            "customers": {k: [e.as_json() for e in v] for k, v in self.customers.items()},
            "counters": dict(self.counters),
            "refused_ids": list(self.refused_ids),
            "signed": {k: list(v) for k, v in self.signed.items()},
            "refusing": self.refusal.mode if self._refusing() else None,
            "outages": [dict(o) for o in self.outages],
        }

    async def wait_for_events(self, external_id: str, after: int, wait: float) -> list[ReceivedEvent]:
        """The customer's events after the first `after`, waiting up to `wait` seconds for one."""
        deadline = time.monotonic() + wait
        while len(self.customers.get(external_id, ())) <= after:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._arrival is None:
                self._arrival = asyncio.Event()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                return []
        return self.customers[external_id][after:]

    # --- refusing ------------------------------------------------------------------------------

    def refuse(self, mode: str = "error", *, seconds: float | None = None, status: int = 500, rate: float = 1.0,
               on_signings_of: str | None = None) -> None:
        if mode not in ("error", "closed"):
            raise ValueError("mode must be 'error' or 'closed'")
        if mode == "closed":
            if seconds is None or seconds <= 0:
                raise ValueError("a closed port needs 'seconds' (it cannot be reopened over HTTP)")
            if self.close_requested is None:
                raise ValueError("this backend is not running under a server that can close its port")
            if on_signings_of is not None:
                self._close_on_signings = (str(on_signings_of), seconds)
                return
            self.close(seconds, None)
            return
        if not 400 <= status <= 599:
            raise ValueError("status must be 4xx or 5xx")
        until = time.monotonic() + seconds if seconds else None
        self.refusal = Refusal(mode=mode, status=status, rate=min(max(rate, 0.0), 1.0), until=until)

    def accept(self) -> None:
        self.refusal = None

    def close(self, seconds: float, external_id: str | None = None) -> None:
        """Stop listening for `seconds`, recorded as an outage (on the server's loop)."""
        assert self.close_requested is not None
        self.outages.append({"external_id": external_id, "closed_at": time.time(), "reopened_at": None})
        self.close_requested(seconds)

    def listening_again(self) -> None:
        """Called by the server runner once it listens again after a closed stretch."""
        self.port_closed.clear()
        if self.outages and self.outages[-1]["reopened_at"] is None:
            self.outages[-1]["reopened_at"] = time.time()

    def _refusing(self) -> bool:
        if self.refusal is None:
            return False
        if self.refusal.until is not None and time.monotonic() >= self.refusal.until:
            self.refusal = None
            return False
        return True

    # --- HTTP ----------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def control_events(self, request: Request) -> JSONResponse:
        return JSONResponse(self.snapshot())

    async def control_customer_events(self, request: Request) -> JSONResponse:
        try:
            after = max(int(request.query_params.get("after", 0)), 0)
            wait = min(max(float(request.query_params.get("wait", 0)), 0.0), 60.0)
        except ValueError:
            return JSONResponse({"error": "after and wait must be numbers"}, status_code=400)
        events = await self.wait_for_events(request.path_params["external_id"], after, wait)
        return JSONResponse({"events": [e.as_json() for e in events]})

    async def control_refuse(self, request: Request) -> JSONResponse:
        if request.method == "DELETE":
            self.accept()
            return JSONResponse({"refusing": None})
        try:
            body = await request.json()
            self.refuse(
                str(body.get("mode", "error")),
                seconds=float(body["seconds"]) if body.get("seconds") is not None else None,
                status=int(body.get("status", 500)),
                rate=float(body.get("rate", 1.0)),
                on_signings_of=str(body["on_signings_of"]) if body.get("on_signings_of") is not None else None,
            )
        except (ValueError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"refusing": str(body.get("mode", "error"))})

    async def receive(self, request: Request) -> JSONResponse:
        if self._refusing() and self._random.random() < self.refusal.rate:
            self.counters["refused"] += 1
            self.refused_ids.append(request.headers.get("webhook-id", ""))
            return JSONResponse({"error": "refusing for now"}, status_code=self.refusal.status)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "too large"}, status_code=413)
        headers = dict(request.headers)
        payload = None
        for verifier in self._verifiers:
            try:
                payload = verifier.verify(body, headers)
                break
            except WebhookVerificationError:
                continue
            except ValueError:  # a malformed signature header
                break
        if payload is None:
            self.counters["rejected"] += 1
            return JSONResponse({"error": "signature"}, status_code=401)
        try:
            data = payload["data"]
            event = ReceivedEvent(
                webhook_id=headers["webhook-id"],
                type=str(payload["type"]),
                sequence=int(data["sequence"]),
                phase=data.get("phase"),
                received_at=time.time(),
                timestamp=str(payload.get("timestamp", "")),
                data=dict(data),
            )
            external_id = str(data["external_id"])
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"error": "not an onboarding event"}, status_code=400)

        if event.webhook_id in self.seen_ids:
            self.counters["duplicates"] += 1
            return JSONResponse({"status": "duplicate"})
        self.seen_ids.add(event.webhook_id)
        self.counters["received"] += 1
        history = self.customers.setdefault(external_id, [])
        newest = max((e.sequence for e in history), default=0)
        history.append(event)
        if self._arrival is not None:
            self._arrival.set()
            self._arrival = None
        self.out(f"event {event.type} {external_id} {event.phase} seq={event.sequence}")
        # Act only on the newest state: a late event never undoes a newer one.
        if event.sequence > newest:
            self._sign_what_is_required(external_id, data)
        return JSONResponse({"status": "ok"})

    # --- signing -------------------------------------------------------------------------------

    def _sign_what_is_required(self, external_id: str, data: dict[str, Any]) -> None:
        if self.signer is None or data.get("phase") != AWAITING_SIGNINGS:
            return
        if self.sign_prefixes and not external_id.startswith(self.sign_prefixes):
            return
        to_sign = [
            (external_id, str(s.get("id"))) for s in data.get("required_signings") or []
            if not s.get("signed") and (external_id, str(s.get("id"))) not in self._signing
        ]
        after_close = False
        if to_sign and self._close_on_signings is not None and self._close_on_signings[0] == external_id:
            # Closed first, signed once nobody listens: the Active event that follows is made
            # during the outage, whatever the machine's speed.
            self.close(self._close_on_signings[1], external_id)
            self._close_on_signings = None
            after_close = True
        for key in to_sign:
            self._signing.add(key)
            # After the answer, not before it: a backend acknowledges an event promptly.
            task = asyncio.get_running_loop().create_task(self._sign(*key, after_close=after_close))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sign(self, external_id: str, content_id: str, *, after_close: bool = False) -> None:
        """Signs one document, retrying while Temporal or the worker is away (an event that
        asked is delivered once; nothing else would ask again before a reminder). Every try
        carries the same request id, so a try after one whose answer was lost waits for that
        signing instead of being refused as in flight. A refusal by the workflow (already
        signed, no longer required) ends it: there is nothing to do."""
        from temporalio.client import WorkflowUpdateFailedError

        if after_close:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.port_closed.wait(), 15)
        request_id = f"sign-{content_id}-{uuid.uuid4()}"
        give_up_at = time.monotonic() + self.sign_retry_seconds
        pause = 0.5
        while True:
            try:
                await asyncio.wait_for(self.signer(external_id, content_id, request_id), 30)
                break
            except (WorkflowUpdateFailedError, SigningRefused) as exc:
                self.counters["sign_refused"] += 1
                self.out(f"sign {external_id} {content_id} refused by the workflow: {exc.cause or exc}")
                return
            except Exception as exc:  # noqa: BLE001 - retried until give_up_at, then reported
                if time.monotonic() + pause > give_up_at or isinstance(exc, NoSuchOnboarding) \
                        or type(exc).__name__ == "OnboardingNotFound":
                    self._signing.discard((external_id, content_id))  # the next event that asks tries again
                    self.counters["sign_failures"] += 1
                    self.out(f"sign {external_id} {content_id} failed: {type(exc).__name__}: {exc}")
                    return
                self.counters["sign_retries"] += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
        self.counters["signed"] += 1
        self.signed.setdefault(external_id, []).append(content_id)
        self.out(f"signed {external_id} {content_id}")

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the signings in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def temporal_signer(connect: Callable[[], Awaitable[Any]] | None = None) -> Signer:
    """Signs through the starter's public API with one Temporal client, connected on first use."""
    import starter

    client: Any = None
    lock = asyncio.Lock()

    async def sign(external_id: str, content_id: str, request_id: str) -> Any:
        nonlocal client
        async with lock:
            if client is None:
                if connect is None:
                    from runtime.temporal import connect as temporal_connect

                    client = await temporal_connect()
                else:
                    client = await connect()
        return await starter.accept_signing(client, external_id, content_id, request_id=request_id)

    return sign


def api_signer(api_url: str, api_key: str, *, timeout: float = 30.0) -> Signer:
    """Signs through the onboarding HTTP API. Each try of one document carries that document's
    request id as `Idempotency-Key`: a retry after a lost answer gets the first try's answer."""
    from urllib.parse import quote

    http = httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout,
                             headers={"Authorization": f"Bearer {api_key}"})

    async def sign(external_id: str, content_id: str, request_id: str) -> Any:
        answer = await http.post(f"/v1/onboardings/{quote(external_id, safe='')}/signings/{quote(content_id, safe='')}",
                                 headers={"Idempotency-Key": request_id})
        if answer.status_code == 200:
            return answer.json()
        detail = answer.json().get("detail", answer.text) if answer.headers.get("content-type", "").endswith("json") else answer.text
        if answer.status_code in (409, 422):
            raise SigningRefused(detail)
        if answer.status_code == 404:
            raise NoSuchOnboarding(detail)
        raise RuntimeError(f"the API answered {answer.status_code}: {detail}")  # retried

    return sign


class PartnerBackendServer:
    """Serves a `PartnerBackend` on one port, and can stop listening on it for a while (a
    backend that is down: connections refused) and listen again on the same port."""

    def __init__(self, backend: PartnerBackend, *, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.backend = backend
        self.host = host
        self.port = port or _free_port(host)
        self._reopen_at: float | None = None
        self._server: uvicorn.Server | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        backend.close_requested = self._request_close

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    def _request_close(self, seconds: float) -> None:
        self._reopen_at = time.monotonic() + seconds
        if self._server is not None:
            self._server.should_exit = True

    def close_for(self, seconds: float) -> None:
        """Stop listening for `seconds` (thread-safe)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.backend.close, seconds)

    def reopen(self) -> None:
        """Listen again now, before a `close_for` stretch ends (thread-safe)."""
        def now() -> None:
            if self._reopen_at is not None:
                self._reopen_at = time.monotonic()

        if self._loop is not None:
            self._loop.call_soon_threadsafe(now)

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            reopen_at = self._reopen_at
            if reopen_at is not None:
                self.backend.port_closed.set()
                self.backend.out(f"backend closed for {max(reopen_at - time.monotonic(), 0):.1f}s")
                # Read each time round: `reopen` may bring the time forward.
                while time.monotonic() < (self._reopen_at or 0.0) and not self._stopping:
                    await asyncio.sleep(0.05)
                self._reopen_at = None
                if self._stopping:
                    break
                self.backend.out("backend listening again")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            config = uvicorn.Config(
                self.backend.app, lifespan="off", log_level="warning", access_log=False,
                timeout_graceful_shutdown=1, log_config=None,
            )
            self._server = uvicorn.Server(config)
            if reopen_at is not None:
                self.backend.listening_again()  # before listening: whatever arrives now came after the outage
            try:
                await self._server.serve(sockets=[sock])
            finally:
                # A backend that is down answers nobody: a connection an HTTP client kept alive
                # from before the close (a worker's pool) is dropped, not served on.
                for connection in list(self._server.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    if transport is not None:
                        transport.abort()
                sock.close()
                self._server = None
            if self._reopen_at is None:
                break  # asked to stop, not to close for a while
        await self.backend.drain(timeout=5)

    def stop(self) -> None:
        self._stopping = True
        self._reopen_at = None
        if self._server is not None:
            self._server.should_exit = True

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.started


class PartnerBackendThread(PartnerBackendServer):
    """The same, on a background thread with its own event loop: for tests and in-process use."""

    def start(self, timeout: float = 15.0) -> "PartnerBackendThread":
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), daemon=True, name="partner-backend")
        self._thread.start()
        self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.listening:
                return
            time.sleep(0.02)
        raise TimeoutError(f"partner backend not listening on {self.url} after {timeout}s")

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(super().stop)
        else:
            super().stop()
        self._thread.join(timeout=10)

    def __enter__(self) -> "PartnerBackendThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PartnerBackendClient:
    """What a driver (the demo, the chaos suite, the benchmark) asks a running backend: the
    events a customer received, by long poll, and the refusal switches."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def events(self, external_id: str, *, after: int = 0, wait: float = 0.0) -> list[dict[str, Any]]:
        """The customer's events after the first `after`, waiting up to `wait` seconds for one."""
        from urllib.parse import quote

        response = await self._http.get(
            f"{self.url}/_control/events/{quote(external_id, safe='')}",
            params={"after": after, "wait": wait},
            timeout=wait + 10,
        )
        response.raise_for_status()
        return response.json()["events"]

    async def snapshot(self) -> dict[str, Any]:
        response = await self._http.get(f"{self.url}/_control/events", timeout=60)
        response.raise_for_status()
        return response.json()

    async def refuse(self, mode: str = "error", *, seconds: float | None = None, status: int = 500, rate: float = 1.0,
                     on_signings_of: str | None = None) -> None:
        body: dict[str, Any] = {"mode": mode, "status": status, "rate": rate}
        if seconds is not None:
            body["seconds"] = seconds
        if on_signings_of is not None:
            body["on_signings_of"] = on_signings_of
        response = await self._http.post(f"{self.url}/_control/refuse", json=body)
        response.raise_for_status()

    async def accept(self) -> None:
        (await self._http.delete(f"{self.url}/_control/refuse")).raise_for_status()


def _free_port(host: str) -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m demo.partner_backend", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--no-sign", action="store_true", help="only receive events; never sign documents")
    parser.add_argument("--api-url", default=None, help="the onboarding HTTP API it signs through (default: $ONBOARDING_API_URL)")
    parser.add_argument("--sign-prefix", action="append", default=[], metavar="PREFIX",
                        help="sign only for external ids starting with PREFIX (repeatable; default: every customer)")
    args = parser.parse_args(argv)
    from runtime.process import EXIT_CONFIGURATION, configuration_errors, configuration_message

    try:
        secrets = split_secrets(os.environ.get("ONBOARDING_EVENTS_SECRET"))
        PartnerBackend(secrets)  # the secrets are checked first: the variable named is theirs
        signer = None
        if not args.no_sign:
            api_url = args.api_url or os.environ.get("ONBOARDING_API_URL")
            api_key = os.environ.get("ONBOARDING_API_KEY")
            if not api_url:
                raise EventsSettingsError("ONBOARDING_API_URL: not set: the onboarding HTTP API to sign through (or --no-sign)")
            if not api_key:
                raise EventsSettingsError("ONBOARDING_API_KEY: not set: the HTTP API's key to sign with (or --no-sign)")
            signer = api_signer(api_url, api_key)
        backend = PartnerBackend(
            secrets,
            signer=signer,
            out=lambda line: print(line, flush=True),
            sign_prefixes=tuple(args.sign_prefix),
        )
    except configuration_errors() as exc:
        print(configuration_message(exc), file=sys.stderr)
        return EXIT_CONFIGURATION
    server = PartnerBackendServer(backend, host=args.host, port=args.port)
    print(f"partner backend listening on {server.events_url}", flush=True)

    async def serve() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, server.reopen)
        await server.serve()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

"""Running the sandbox (and a webhook collector) inside tests, over real HTTP.

    with SandboxServer() as sb:                 # or: async with SandboxServer() as sb:
        async with sb.client() as iron:         # an IronClient for this sandbox
            customer = await iron.create_customer(...)
        await sb.control.set_identification_status(identification_id, "Approved")

`SandboxServer` runs uvicorn on 127.0.0.1 (a free port unless one is given) in a background
thread with its own event loop, and returns from `start()` only once the port answers.
`sb.base_url` is what `IRON_BASE_URL` should be. `SandboxControl` drives `/_sim`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from typing import Any, Callable

import httpx
import uvicorn

from iron_client import IronClient, IronSettings
from pydantic import SecretStr

from iron_sandbox.app import Sandbox, create_app
from iron_sandbox.config import SandboxConfig

__all__ = ["ServerThread", "SandboxServer", "SandboxControl", "SandboxControlError", "WebhookCollector"]


class ServerThread:
    """Any ASGI app served by uvicorn on 127.0.0.1 from a background thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 15.0) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self.startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def root_url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        if self._thread is not None:
            return self
        # proto=IPPROTO_TCP matters: asyncio turns on TCP_NODELAY only for sockets that say they are
        # TCP, and without it every small response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=2,
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start: {self._error!r}")
            if self._server.started and _port_answers(self.host, self.port):
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"server on port {self.port} did not start within {self.startup_timeout}s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout=5)
        self._thread = None
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self):
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class SandboxControlError(Exception):
    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"/_sim answered {status_code}: {body[:500]}")
        self.status_code = status_code
        self.body = body


_ssl_context: ssl.SSLContext | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle is most of the cost of a new httpx client: do it once."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class SandboxControl:
    """An async client for the sandbox's `/_sim` control surface. Each call opens its own
    connection, so one instance can be used from any event loop."""

    def __init__(self, root_url: str, *, timeout: float = 30.0) -> None:
        self.root_url = root_url.rstrip("/")
        self.timeout = timeout

    async def _call(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        async with httpx.AsyncClient(
            base_url=self.root_url, timeout=timeout or self.timeout, verify=_shared_ssl_context()
        ) as http:
            response = await http.request(method, "/_sim" + path, json=body)
        if response.status_code >= 400:
            raise SandboxControlError(response.status_code, response.text)
        return response.json()

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "/health")

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def set_customer_status(self, customer_id: str, status: str, **options: Any) -> dict[str, Any]:
        """A compliance action. Returns `{customer, identification (a step-up one, or None), required_signings}`."""
        return await self._call("POST", f"/customers/{customer_id}/status", {"status": status, **options})

    async def set_identification_status(self, identification_id: str, status: str, **options: Any) -> dict[str, Any]:
        """Moves an identification (options: `retry`, `comment`). Returns `{identification, customer}`."""
        return await self._call("POST", f"/identifications/{identification_id}/status", {"status": status, **options})

    async def drift_customer(self, customer_id: str, **values: Any) -> dict[str, Any]:
        """Schema drift: `status=` a customer status the spec does not list, and/or
        `requirement_code=` (with `bucket=`) an unlisted requirement code. Returns `{customer, requirements}`."""
        return await self._call("POST", f"/customers/{customer_id}/drift", values)

    async def drift_identification(self, identification_id: str, **values: Any) -> dict[str, Any]:
        """Schema drift: `status=` an identification status the spec does not list, and/or `step=`
        (with `step_result=`, `retry=`) a step it does not name. Returns `{identification, customer}`."""
        return await self._call("POST", f"/identifications/{identification_id}/drift", values)

    async def customers(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/customers")

    async def add_customers(self, count: int, *, timeout: float = 300.0, **options: Any) -> dict[str, Any]:
        """`count` new customers in one call (options: `customer_type`, `sub_partner_id`,
        `prefix` of their external ids). Returns `{created, first, last}`."""
        return await self._call("POST", "/customers", {"count": count, **options}, timeout=timeout)

    async def requests(self, clear: bool = False) -> list[dict[str, Any]]:
        return await self._call("GET", "/requests" + ("?clear=true" if clear else ""))

    async def clear_requests(self) -> None:
        await self._call("DELETE", "/requests")

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replaces the fault configuration (see `iron_sandbox.faults.FaultConfig`)."""
        return await self._call("POST", "/faults", faults)

    async def faults(self) -> dict[str, Any]:
        return await self._call("GET", "/faults")

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def set_webhooks(self, **settings: Any) -> dict[str, Any]:
        """Changes the given webhook settings (targets, secret, drop_rate, duplicate, ...)."""
        return await self._call("POST", "/webhooks", settings)

    async def webhooks(self) -> dict[str, Any]:
        return await self._call("GET", "/webhooks")

    async def deliveries(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/webhooks/deliveries")

    async def events(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/webhooks/events")

    async def flush_webhooks(self, timeout: float = 10.0) -> None:
        """Wait until no webhook delivery is queued or being retried; TimeoutError if some still are."""
        result = await self._call("POST", "/webhooks/flush", {"timeout": timeout}, timeout=timeout + 10)
        if result["pending"]:
            raise TimeoutError(f"{result['pending']} webhook deliveries still pending after {timeout}s")

    async def set_autopilot(self, **settings: Any) -> dict[str, Any]:
        """Changes the given autopilot settings (enabled, complete_after_seconds, step_gap_seconds, decision)."""
        return await self._call("POST", "/autopilot", settings)

    async def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Moves the sandbox clock forward (idempotency keys age with it)."""
        return await self._call("POST", "/clock", {"advance_seconds": seconds})


class SandboxServer(ServerThread):
    """The Iron sandbox on 127.0.0.1, for tests and local runs."""

    def __init__(self, config: SandboxConfig | None = None, *, port: int = 0) -> None:
        self.config = config or SandboxConfig()
        app = create_app(self.config)
        super().__init__(app, port=port)
        self.sandbox: Sandbox = app.state.sandbox

    def start(self) -> "SandboxServer":
        super().start()
        if not self.config.public_url:
            # Hosted urls made before any API request (an autopilot step) still point here.
            self.sandbox.remember_base_url(self.root_url)
        return self

    @property
    def base_url(self) -> str:
        """`IRON_BASE_URL` for this sandbox."""
        return f"{self.root_url}/api"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def control(self) -> SandboxControl:
        return SandboxControl(self.root_url)

    def settings(self, **overrides: Any) -> IronSettings:
        values: dict[str, Any] = {"base_url": self.base_url, "api_key": SecretStr(self.api_key), "timeout_seconds": 10.0}
        values.update(overrides)
        if isinstance(values["api_key"], str):
            values["api_key"] = SecretStr(values["api_key"])
        return IronSettings(**values)

    def client(self, **overrides: Any) -> IronClient:
        """An `IronClient` pointed at this sandbox (overrides: sub_partner_id, api_version, api_key, ...)."""
        return IronClient(self.settings(**overrides))

    def env(self) -> dict[str, str]:
        """The `IRON_*` variables a process needs to talk to this sandbox."""
        return {"IRON_BASE_URL": self.base_url, "IRON_API_KEY": self.api_key,
                "IRON_WEBHOOK_SECRETS": self.config.webhook_secret}


class WebhookCollector(ServerThread):
    """A tiny webhook receiver that records every delivery (raw body and headers).

    `responses` scripts the answers: each delivery pops the next status (default 200 after that),
    so `responses=[500, 500]` makes the first two deliveries fail. `answer_delay` (seconds) makes
    it a slow receiver; `most_in_flight` is the most deliveries it held open at once.
    """

    def __init__(
        self, *, responses: list[int] | None = None, path: str = "/webhooks/iron", answer_delay: float = 0.0
    ) -> None:
        self.path = path
        self.responses: list[int] = list(responses or [])
        self.answer_delay = answer_delay
        self.most_in_flight = 0
        self._in_flight = 0
        self._received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(self._app)

    @property
    def url(self) -> str:
        return self.root_url + self.path

    async def _app(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            status = self.responses.pop(0) if self.responses else 200
            self._received.append(
                {"path": scope["path"], "method": scope["method"], "headers": headers, "body": body,
                 "answered": status, "at": time.time()}
            )
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            if self.answer_delay:
                await asyncio.sleep(self.answer_delay)
        finally:
            with self._lock:
                self._in_flight -= 1
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"no"})

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[dict[str, Any]]:
        """Deliveries answered 2xx, with the parsed body under `json`."""
        return [dict(r, json=json.loads(r["body"])) for r in self.received if 200 <= r["answered"] < 300]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `predicate(received)` holds; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.received
            if predicate(received):
                return received
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhook condition not met within {timeout}s ({len(received)} received)")
            await asyncio.sleep(0.02)

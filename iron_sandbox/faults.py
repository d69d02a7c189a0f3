"""Switchable faults and the request log, as one ASGI middleware in front of `/api`.

A fault plan is drawn for each API request:
- latency: the request waits `latency_ms` first (and then runs normally);
- an injected error: the request never reaches the API, so it has no effect; 5xx bodies are
  Iron's `{message, trace_id}`, 4xx bodies a JSON string; `Retry-After` when configured;
- a lost response: the request takes full effect (its idempotent result is stored), then the
  connection is closed halfway through the response body, so the client sees a transport error
  (httpx raises `RemoteProtocolError`), never an HTTP status.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from iron_sandbox.clock import iso

MIN_STATUS, MAX_STATUS = 400, 599
_REASONS = {429: "Creation Rate Limit Exceeded", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class FaultConfig:
    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [500])
    fail_next: int = 0
    latency_ms: float = 0.0
    lose_response_rate: float = 0.0
    lose_response_next: int = 0
    lose_response_methods: list[str] | None = None
    retry_after_seconds: float | None = None
    retry_after: str | None = None
    paths: list[str] | None = None
    methods: list[str] | None = None
    seed: int | None = None

    @classmethod
    def parse(cls, payload: Any) -> "FaultConfig":
        """Validate a control-surface body; raises ValueError with a readable reason."""
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(payload) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}; known: {sorted(known)}")
        config = cls()
        for name in ("error_rate", "lose_response_rate"):
            if name in payload:
                value = payload[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise ValueError(f"{name} must be a number between 0 and 1")
                setattr(config, name, float(value))
        for name in ("fail_next", "lose_response_next"):
            if name in payload:
                value = payload[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer")
                setattr(config, name, value)
        if "latency_ms" in payload:
            value = payload["latency_ms"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("latency_ms must be a non-negative number")
            config.latency_ms = float(value)
        if "error_statuses" in payload:
            statuses = payload["error_statuses"]
            if isinstance(statuses, int) and not isinstance(statuses, bool):
                statuses = [statuses]
            if (
                not isinstance(statuses, list)
                or not statuses
                or not all(isinstance(s, int) and not isinstance(s, bool) and MIN_STATUS <= s <= MAX_STATUS for s in statuses)
            ):
                raise ValueError("error_statuses must be a non-empty list of HTTP statuses between 400 and 599")
            config.error_statuses = list(statuses)
        if payload.get("retry_after_seconds") is not None:
            value = payload["retry_after_seconds"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("retry_after_seconds must be a non-negative number")
            config.retry_after_seconds = value
        if payload.get("retry_after") is not None:
            if not isinstance(payload["retry_after"], str):
                raise ValueError("retry_after must be a string (seconds or an HTTP date)")
            config.retry_after = payload["retry_after"]
        for name in ("paths", "methods", "lose_response_methods"):
            value = payload.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{name} must be a string or a list of strings")
            if name != "paths":
                value = [v.upper() for v in value]
            setattr(config, name, value)
        if payload.get("seed") is not None:
            if isinstance(payload["seed"], bool) or not isinstance(payload["seed"], int):
                raise ValueError("seed must be an integer")
            config.seed = payload["seed"]
        return config

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    latency_s: float = 0.0
    error_status: int | None = None
    lose_response: bool = False


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random(seed)
        self._served = 0

    def set(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._served = 0
            if config.seed is not None:
                self._rng = random.Random(config.seed)

    def clear(self) -> None:
        self.set(FaultConfig())

    def plan(self, method: str, path: str) -> Plan:
        with self._lock:
            c = self.config
            if c.paths and not any(p in path for p in c.paths):
                return Plan()
            method_ok = c.methods is None or method in c.methods
            latency = c.latency_ms / 1000.0 if method_ok else 0.0
            status = None
            if method_ok:
                if c.fail_next > 0:
                    c.fail_next -= 1
                    status = c.error_statuses[self._served % len(c.error_statuses)]
                    self._served += 1
                elif c.error_rate > 0 and self._rng.random() < c.error_rate:
                    status = self._rng.choice(c.error_statuses)
            lose = False
            if status is None and (c.lose_response_methods is None or method in c.lose_response_methods):
                if c.lose_response_next > 0:
                    c.lose_response_next -= 1
                    lose = True
                elif c.lose_response_rate > 0 and self._rng.random() < c.lose_response_rate:
                    lose = True
            return Plan(latency, status, lose)

    def error_response(self, status: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        reason = _REASONS.get(status, "Injected fault")
        if status >= 500:
            body = json.dumps({"message": f"{reason} (injected fault)", "trace_id": uuid.uuid4().hex}).encode()
        else:
            body = json.dumps(reason).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        with self._lock:
            retry_after = self.config.retry_after
            if retry_after is None and self.config.retry_after_seconds is not None:
                seconds = self.config.retry_after_seconds
                retry_after = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
        if retry_after is not None and (status == 429 or status >= 500):
            headers.append((b"retry-after", retry_after.encode("latin-1", "replace")))
        return body, headers


class RequestLog:
    """What reached `/api`: method, path, idempotency key, status, and whether it was replayed or lost."""

    def __init__(self, maxlen: int = 50_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def list(self, *, clear: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            out = list(self._entries)
            if clear:
                self._entries.clear()
            return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class FaultMiddleware:
    """Applies the fault plan to `/api` requests and records every one of them in the request log."""

    def __init__(self, app: Any, faults: Faults, log: RequestLog, prefix: str = "/api") -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.prefix = prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not (scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        note: dict[str, Any] = {"replayed": False}
        scope["sandbox.note"] = note
        entry: dict[str, Any] = {
            "at": iso(datetime.now(timezone.utc)),
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "idempotency_key": _header(scope, b"idempotency-key"),
            "sub_partner_id": _header(scope, b"x-sub-partner-id"),
            "api_version": _header(scope, b"x-api-version"),
            "status_code": None,
            "replayed": False,
            "lost_response": False,
            "fault": None,
        }
        plan = self.faults.plan(method, path)
        try:
            if plan.latency_s > 0:
                await asyncio.sleep(plan.latency_s)
            if plan.error_status is not None:
                body, headers = self.faults.error_response(plan.error_status)
                entry["fault"] = "error"
                entry["status_code"] = plan.error_status
                await send({"type": "http.response.start", "status": plan.error_status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            if plan.lose_response:
                entry["lost_response"] = True
                entry["fault"] = "lose_response"
                await self._run_and_lose(scope, receive, send, entry)
                return
            status_holder: dict[str, int] = {}

            async def recording_send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status_holder["status"] = message["status"]
                await send(message)

            await self.app(scope, receive, recording_send)
            entry["status_code"] = status_holder.get("status")
        finally:
            entry["replayed"] = bool(note.get("replayed"))
            entry["authorized"] = note.get("authorized")
            self.log.add(entry)

    async def _run_and_lose(self, scope: dict[str, Any], receive: Any, send: Any, entry: dict[str, Any]) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        entry["status_code"] = start.get("status")
        body = b"".join(chunks)
        # Declare the whole body, send half of it, then end: the server closes the connection
        # mid-response. A body-less answer is declared with one byte it never gets.
        declared = max(len(body), 1)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(declared).encode()))
        status = start.get("status", 200)
        if status in (204, 304):
            status = 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})

"""Idempotency keys, as Iron documents them.

A result is keyed by (API key, method, path, IDEMPOTENCY-KEY). The first result for a key is
stored; the same key with the same request answers the stored result (same status, same body);
the same key with a different request answers 409. Keys are kept for 24 hours, measured on the
sandbox clock so tests can age them.

Only 2xx results are stored. An error (a 4xx such as "Has Pending Identification", or a 5xx)
changed nothing, so a retry with the same key runs again and can succeed once the cause is
gone; storing it would pin the error to the key for a day. Iron does not publish which results
it stores; this is the choice that never hides a state change from a retry.

Requests with the same key are serialised by a per-key lock, so concurrent duplicates make one
resource: the first runs, the others wait and then replay its stored result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from iron_sandbox.clock import Clock

TTL_SECONDS = 24 * 60 * 60
CONFLICT_MESSAGE = "Idempotency key reused with a different request body"
JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: bytes
    media_type: str
    stored_at: float


@dataclass(frozen=True)
class Outcome:
    status: int
    body: bytes
    media_type: str
    replayed: bool = False
    conflict: bool = False


def fingerprint(body: bytes, *, scope: str | None = None) -> str:
    """Equal for the same request: JSON bodies compare by content, not by spacing or key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = body
    digest = hashlib.sha256(canonical)
    digest.update(b"\x00" + (scope or "").encode())
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, clock: Clock, ttl_seconds: float = TTL_SECONDS) -> None:
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self._entries: dict[tuple[str, str, str, str], StoredResponse] = {}
        self._locks: dict[tuple[str, str, str, str], tuple[asyncio.Lock, int]] = {}
        self._guard = threading.Lock()
        self._runs = 0

    def _fresh(self, key: tuple[str, str, str, str]) -> StoredResponse | None:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock.now() - entry.stored_at >= self.ttl_seconds:
                del self._entries[key]
                return None
            return entry

    def _acquire_lock(self, key: tuple[str, str, str, str]) -> asyncio.Lock:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = asyncio.Lock()
            self._locks[key] = (lock, users + 1)
            return lock

    def _release_lock(self, key: tuple[str, str, str, str]) -> None:
        with self._guard:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def run(
        self,
        key: tuple[str, str, str, str],
        request_fingerprint: str,
        execute: Callable[[], Awaitable[Outcome]],
    ) -> Outcome:
        self._runs += 1
        if self._runs % 1000 == 0:  # keep a long-running sandbox's memory bounded
            self.purge_expired()
        lock = self._acquire_lock(key)
        try:
            async with lock:
                stored = self._fresh(key)
                if stored is not None:
                    if stored.fingerprint != request_fingerprint:
                        return Outcome(409, json.dumps(CONFLICT_MESSAGE).encode(), JSON_TYPE, conflict=True)
                    return Outcome(stored.status, stored.body, stored.media_type, replayed=True)
                outcome = await execute()
                if 200 <= outcome.status < 300:
                    with self._guard:
                        self._entries[key] = StoredResponse(
                            request_fingerprint, outcome.status, outcome.body, outcome.media_type, self.clock.now()
                        )
                return outcome
        finally:
            self._release_lock(key)

    def purge_expired(self) -> int:
        now = self.clock.now()
        with self._guard:
            old = [k for k, v in self._entries.items() if now - v.stored_at >= self.ttl_seconds]
            for k in old:
                del self._entries[k]
            return len(old)

    def clear(self, api_key: str | None = None) -> None:
        with self._guard:
            if api_key is None:
                self._entries.clear()
            else:
                for k in [k for k in self._entries if k[0] == api_key]:
                    del self._entries[k]

    def __len__(self) -> int:
        with self._guard:
            return len(self._entries)

"""The receiver's Temporal connection: made on first use, never at start.

The receiver must come up and answer (503, so Iron retries) while Temporal is down, and must
recover by itself when Temporal returns. A lazy client does exactly that: it opens its channel
on the first call and reconnects on later calls after a failure. Building the client is retried
on the next request if it fails (a bad TLS file, say), so nothing needs a restart.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from temporalio.client import Client

from runtime.temporal import connect

ClientProvider = Callable[[], Awaitable[Client]]


class TemporalClientProvider:
    """An async callable returning the shared `Client`, connecting lazily on first call.

    `overrides` go to `runtime.temporal.connect` (for example `target_host` or `namespace`);
    otherwise Temporal's own environment configuration decides where to connect.
    """

    def __init__(self, **overrides: Any) -> None:
        self._overrides = overrides
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = await connect(**{"lazy": True, **self._overrides})
            return self._client


def as_provider(source: Client | ClientProvider | None) -> ClientProvider:
    """Accept a ready `Client`, any async callable returning one, or None (environment)."""
    if source is None:
        return TemporalClientProvider()
    if isinstance(source, Client):
        client = source

        async def fixed() -> Client:
            return client

        return fixed
    if not callable(source):
        raise TypeError("temporal_client_provider must be a Client or an async callable returning one")
    return source

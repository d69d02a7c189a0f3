"""Connecting to Temporal the same way everywhere.

The connection comes from Temporal's own environment configuration (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_PROFILE` and the TOML
config file), which the Temporal SDK reads itself when a process connects, so the same worker
runs against the local dev server, a self-hosted cluster or Temporal Cloud. Every process passes
the data converter of the settings it loaded (`runtime/converter.py`), so what one writes the
others read.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig

from runtime.converter import OneLineEncodedFailures, converter_with_codec, failure_summary  # noqa: F401 - importable from here too

DEFAULT_ADDRESS = "127.0.0.1:7233"


def data_converter() -> DataConverter:
    """The converter for the keys the environment configures, read through the settings every
    process loads (`ProcessSettings.load().data_converter()`): for tests, tools and a backend
    that brings no converter of its own. A process passes its own settings' converter instead."""
    from runtime.settings import ProcessSettings

    return ProcessSettings.load().data_converter()


def connect_config(profile: str | None = None) -> dict[str, Any]:
    """Temporal's env config for `profile` (None: the SDK's choice, `TEMPORAL_PROFILE` or the
    default profile), with the local dev server's address when it names none."""
    config = dict(ClientConfig.load_client_connect_config(profile=profile))
    if not config.get("target_host"):
        config["target_host"] = DEFAULT_ADDRESS
    return config


async def connect(profile: str | None = None, **overrides: Any) -> Client:
    """A client from Temporal's env config. `data_converter=`: the process's converter; a
    backend that gives none gets `data_converter()`."""
    config = connect_config(profile)
    config.update(overrides)
    config["data_converter"] = overrides.get("data_converter") or data_converter()
    return await Client.connect(**config)


# --- a connection made on first use ------------------------------------------------------------

ClientProvider = Callable[[], Awaitable[Client]]


class TemporalClientProvider:
    """An async callable returning one shared `Client`, connected lazily on first call: a
    service (the webhook receiver, the HTTP API) comes up and answers 503 while Temporal is
    down, and recovers by itself when it returns. A lazy client opens its channel on the first
    call and reconnects after a failure; building it is retried on the next call if it fails
    (a bad TLS file, say), so nothing needs a restart. `overrides` go to `connect`."""

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
    """Accept a ready `Client`, any async callable returning one, or None (the environment)."""
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

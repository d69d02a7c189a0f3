"""The query-task guard reaches into a private attribute of temporalio's `Worker`: these tests
fail when a release moves it, on the worker every process builds, against a scripted frontend."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import AsyncIterator

import pytest
import temporalio.bridge.worker
from temporalio.client import Client

from activities.iron_activities import IronActivities
from data_protection.documents import FilesystemDocumentStore
from iron_client import IronClient, IronSettings
from runtime.query_task_guard import EvictionHandleMissing, QueryTaskGuard
from tests.scripted_frontend import ScriptedFrontend, scripted_frontend
from worker import build_worker


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[tuple[ScriptedFrontend, Client]]:
    async with scripted_frontend() as (frontend, address):
        yield frontend, await Client.connect(address, namespace=frontend.namespace)


# The private handle the guard needs, on the worker every process builds.


def iron_activities(tmp_path: Path) -> IronActivities:
    from pydantic import SecretStr

    iron = IronClient(IronSettings(base_url="http://127.0.0.1:9", api_key=SecretStr("unused"), timeout_seconds=1))
    return IronActivities(iron, FilesystemDocumentStore(tmp_path))


async def test_build_worker_wires_the_guard_to_the_workers_eviction_handle(tmp_path: Path):
    async with connected() as (_, client):
        worker = build_worker(client, iron_activities(tmp_path), task_queue="handle")
        # Where temporalio 1.35 keeps it; a release that moves it fails here first.
        bridge = getattr(worker, "_bridge_worker", None)
        assert isinstance(bridge, temporalio.bridge.worker.Worker)
        assert callable(getattr(bridge, "request_workflow_eviction", None))
        guard = worker.config()["workflow_runner"]
        assert isinstance(guard, QueryTaskGuard)
        assert guard.attached


async def test_build_worker_refuses_to_build_a_worker_it_cannot_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delattr(temporalio.bridge.worker.Worker, "request_workflow_eviction")
    async with connected() as (_, client):
        with pytest.raises(EvictionHandleMissing, match=r"Worker\._bridge_worker\.request_workflow_eviction"):
            build_worker(client, iron_activities(tmp_path), task_queue="handle")

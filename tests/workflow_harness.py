"""Plumbing for the workflow tests: real Temporal servers, the real Iron sandbox over HTTP,
and the production worker with its activities pointed at the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from activities.events import EventDelivery
from activities.iron_activities import IronActivities
from data_protection.documents import FilesystemDocumentStore
from iron_client import IronClient, IronSettings
from runtime.events_settings import EventsSettings
from runtime.temporal import data_converter
from contracts import search_attributes as sa
from contracts.messages import (
    QUERY_STATE,
    SIGNAL_IRON_EVENT,
    IronEventSignal,
    OnboardingState,
    OnboardingTimings,
    Phase,
    workflow_id_for,
)
from starter import start_onboarding
from worker import OnboardingWorker, build_worker

# Seconds of workflow time: short enough for tests, long enough that a webhook beats the poll.
FAST_TIMINGS = OnboardingTimings(
    poll_initial_seconds=30,
    poll_max_seconds=600,
    parked_reconcile_seconds=3600,
    activity_timeout_seconds=10,
    activity_retry_initial_seconds=0.1,
    activity_retry_max_seconds=0.5,
)

# Real time on a dev server: short polls stand in for webhooks, which those tests do not deliver.
DEV_SERVER_TIMINGS = OnboardingTimings(
    poll_initial_seconds=0.5,
    poll_max_seconds=2,
    active_backstop_seconds=1,  # no fleet pass runs in these tests: Active customers read Iron
    parked_reconcile_seconds=2,
    activity_timeout_seconds=5,
    activity_retry_initial_seconds=0.1,
    activity_retry_max_seconds=0.5,
)

# Polls an hour apart: whatever moves a workflow within seconds came through a webhook.
WEBHOOK_ONLY_TIMINGS = OnboardingTimings(
    poll_initial_seconds=3600,
    poll_max_seconds=3600,
    activity_timeout_seconds=5,
    activity_retry_initial_seconds=0.1,
    activity_retry_max_seconds=0.5,
)

_INDEXED = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={key.name: _INDEXED[key.indexed_value_type] for key in sa.ALL},
        )
    )


@contextlib.asynccontextmanager
async def time_skipping_env(test_server_path: str) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path, data_converter=data_converter()
    )
    async with env:
        await register_search_attributes(env.client)
        yield env


@contextlib.asynccontextmanager
async def dev_server_env(cli_path: str, **kwargs: Any) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=cli_path,
        data_converter=data_converter(),
        search_attributes=list(sa.ALL),
        ui=False,
        **kwargs,
    )
    async with env:
        yield env


def iron_settings_for(sandbox) -> IronSettings:
    from pydantic import SecretStr

    return IronSettings(base_url=sandbox.base_url, api_key=SecretStr(sandbox.api_key), timeout_seconds=5)


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, sandbox, documents_dir: Path, *, task_queue: str | None = None, events: EventsSettings | None = None
) -> AsyncIterator[OnboardingWorker]:
    """The worker every process builds, on the sandbox, delivering events as `events` says."""
    delivery = EventDelivery(events) if events is not None else None
    try:
        async with IronClient(iron_settings_for(sandbox)) as iron:
            worker = build_worker(
                client,
                IronActivities(iron, FilesystemDocumentStore(documents_dir)),
                events=delivery,
                task_queue=task_queue or f"tq-{uuid.uuid4()}",
            )
            async with worker:
                yield worker
    finally:
        if delivery is not None:
            await delivery.aclose()


@contextlib.asynccontextmanager
async def onboarding_with_events(
    client: Client, sandbox, documents_dir: Path, external_id: str, *, events: EventsSettings, task_queue: str,
    timings: OnboardingTimings,
) -> AsyncIterator[WorkflowHandle]:
    """`running_worker` delivering `events`, and `external_id` started on it with events on:
    its workflow's handle, while the worker runs."""
    async with running_worker(client, sandbox, documents_dir, task_queue=task_queue, events=events):
        await start_onboarding(
            client, external_id, email=f"{external_id}@example.com", timings=timings, task_queue=task_queue, deliver_events=True,
        )
        yield client.get_workflow_handle(workflow_id_for(external_id))


async def until(what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until `predicate()` holds (checked every 0.1 s), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# How long one `state` query may take before it is asked again. The time-skipping server loses
# a query that reaches a run just as it continues as new (the worker's answer finds the run
# closed: "Task not found when completing ... workflow execution already completed"), and the
# lost query would hold the caller until the server's own deadline, past any wait's. The next
# query reaches the new run.
QUERY_ATTEMPT_TIMEOUT = timedelta(seconds=5)


async def current_state(handle: WorkflowHandle) -> OnboardingState:
    return await handle.query(QUERY_STATE, result_type=OnboardingState, rpc_timeout=QUERY_ATTEMPT_TIMEOUT)


async def wait_for_state(
    handle: WorkflowHandle,
    predicate: Callable[[OnboardingState], bool],
    *,
    timeout: float = 30.0,
    what: str = "condition",
) -> OnboardingState:
    """Poll the `state` query (in real time) until `predicate` holds."""
    deadline = time.monotonic() + timeout
    last: OnboardingState | None = None
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last, error = await current_state(handle), None
        except Exception as exc:  # the workflow may not have started its first task yet
            error = exc
        if last is not None and predicate(last):
            return last
        await asyncio.sleep(0.1)
    summary = last.model_dump(include={"phase", "customer_status", "identification_status", "cycle", "needs_attention"}) if last else None
    raise AssertionError(f"timed out waiting for {what}; last state: {summary}; last query error: {error!r}")


async def wait_for_phase(handle: WorkflowHandle, phase: Phase, *, timeout: float = 30.0, cycle: int | None = None) -> OnboardingState:
    return await wait_for_state(
        handle,
        lambda s: s.phase == phase and (cycle is None or s.cycle == cycle),
        timeout=timeout,
        what=f"phase {phase.value}" + (f" in cycle {cycle}" if cycle else ""),
    )


async def signal_event(handle: WorkflowHandle, type_: str, *, customer_id: str, entity_id: str, status: str) -> None:
    """What the webhook receiver sends for one Iron webhook."""
    await handle.signal(
        SIGNAL_IRON_EVENT,
        IronEventSignal(
            type=type_,
            timestamp=f"{time.time():.6f}",
            customer_id=customer_id,
            entity_id=entity_id,
            status=status,
            webhook_id=str(uuid.uuid4()),
        ),
    )


def requests_matching(log: list[dict], method: str, path_part: str, *, status_ok: bool | None = None) -> list[dict]:
    found = [r for r in log if r["method"] == method and path_part in r["path"]]
    if status_ok is not None:
        found = [r for r in found if (200 <= int(r["status_code"] or 0) < 300) == status_ok]
    return found


HISTORIES_DIR = Path(__file__).resolve().parent / "histories"
# Where RECORD_HISTORIES=1 writes: `unreleased/` (today's code, `make histories`), or a release's
# own folder, written once when it is cut (`make histories RELEASE=1.0.0`) and never again.
RECORDING_DIR = HISTORIES_DIR / (os.environ.get("HISTORIES_RELEASE") or "unreleased")


async def save_histories(client: Client, workflow_id: str, first_run_id: str | None, name: str) -> list[Path]:
    """With RECORD_HISTORIES=1 (`make histories`), save every run of a workflow, following
    continue-as-new from the first run, as JSON for the replay tests."""
    if os.environ.get("RECORD_HISTORIES") != "1" or not first_run_id:
        return []
    saved: list[Path] = []
    run_id: str | None = first_run_id
    index = 1
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        history = await handle.fetch_history()
        # A run that continued-as-new a moment ago may not have had its first task yet; a
        # history without a completed task has nothing to replay.
        for _ in range(50):
            if any(e.HasField("workflow_task_completed_event_attributes") for e in history.events):
                break
            await asyncio.sleep(0.1)
            history = await handle.fetch_history()
        else:
            break
        path = RECORDING_DIR / f"{name}.run{index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(history.to_json())
        saved.append(path)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
        index += 1
    return saved


def skip(env: WorkflowEnvironment, seconds: float):
    return env.sleep(timedelta(seconds=seconds))


T = TypeVar("T")


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float, *, every: float = 0.1) -> T:
    """`probe()`'s first truthy answer (asked every `every` seconds), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(every)


@contextlib.contextmanager
def stack_on(env: WorkflowEnvironment, sandbox, directory: Path, **config: Any) -> Iterator[Any]:
    """The stack's processes (`demo.stack`), pointed at this dev server and sandbox."""
    from demo.stack import Stack, StackConfig

    temporal_port = int(env.client.service_client.config.target_host.rpartition(":")[2])
    settings = StackConfig.ephemeral(
        directory, temporal_port=temporal_port, sandbox_port=sandbox.port, api_key=sandbox.api_key,
        events=False, autopilot=False, **config,
    )
    with Stack(settings) as running:
        yield running

"""Keeps a query task from leaving commands behind for the next workflow task.

Temporal may hand a worker a query as a task of its own (a "legacy query"). Usually the
workflow has no new events then. But the server decides to send a query straight to the worker
while the workflow is idle, and may deliver it later: after a Temporal restart the new matching
service does not know the worker's sticky queue yet, the query falls back to the normal queue,
and by the time it is polled the history has moved on (an activity completed, a workflow task is
scheduled). The SDK's core applies those new events while answering the query and keeps the
commands the workflow produced in answer to them, to send with the next real workflow task. When
that task brings an update (a backend that has just read `state` reports a signing), it completes
with the commands of two activations in an order no replay produces: a replay hands the workflow
the events and the update together. Every later replay of that workflow task then fails with a
nondeterminism error, and the customer stops until an operator resets it.

A workflow task tells the core the history's size; a query task does not. So an activation that
did new work (not replaying, a longer history) at an unchanged history size came from a query
task. The guard waits for that task's query activation, then asks the core to evict the run: the
pending commands are dropped (the server never saw them) and the next workflow task replays the
whole history, grouping events as every later replay will.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

from temporalio import __version__ as temporalio_version
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from runtime.logging import get_logger

log = get_logger("query_task_guard")

# The id the core gives the query of a query task (a query riding a workflow task has its own).
LEGACY_QUERY_ID = "legacy_query"


class EvictionHandleMissing(RuntimeError):
    """The installed temporalio has no `Worker._bridge_worker.request_workflow_eviction`."""


def eviction_handle(worker: Worker) -> Callable[[str], None]:
    """The worker's request to its core to evict a run: `Worker._bridge_worker.request_workflow_eviction`.

    Private to temporalio; `tests/test_query_task_guard_worker.py` fails when a release moves it,
    and pyproject.toml pins temporalio to the minor release it is proven on."""
    request = getattr(getattr(worker, "_bridge_worker", None), "request_workflow_eviction", None)
    if not callable(request):
        raise EvictionHandleMissing(
            f"temporalio {temporalio_version} has no Worker._bridge_worker.request_workflow_eviction, "
            "which the query-task guard (runtime/query_task_guard.py) needs to evict a workflow whose "
            "query task did workflow work; install the temporalio release pyproject.toml pins, or port "
            "the guard to this release and prove it with tests/test_query_task_guard_worker.py"
        )
    return request


class QueryTaskGuard(WorkflowRunner):
    """A workflow runner (the sandboxed one inside) whose instances notice a query task that
    did workflow work and evict their run once its query is answered."""

    def __init__(self, inner: WorkflowRunner | None = None) -> None:
        self._inner = inner or SandboxedWorkflowRunner()
        self._evict: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self.evictions = 0

    def attach(self, worker: Worker) -> None:
        """Give the guard the worker whose core it asks for evictions.

        Raises `EvictionHandleMissing` when this temporalio release has no such handle: a worker
        without the guard would run into the defect it exists for, so it must not start."""
        self.attach_evictor(eviction_handle(worker))

    @property
    def attached(self) -> bool:
        return self._evict is not None

    def attach_evictor(self, request_eviction: Callable[[str], None]) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None

        def evict(run_id: str) -> None:
            # Activations run on a thread pool; the core is asked from the worker's event loop.
            if loop is not None and loop.is_running():
                loop.call_soon_threadsafe(request_eviction, run_id)
            else:
                request_eviction(run_id)

        self._evict = evict

    def evict(self, run_id: str, history_length: int) -> None:
        with self._lock:
            self.evictions += 1
        log.warning("query_task_did_work_evicting", run_id=run_id, history_length=history_length)
        if self._evict is not None:
            self._evict(run_id)

    # WorkflowRunner
    def prepare_workflow(self, defn: Any) -> None:
        self._inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return GuardedInstance(self._inner.create_instance(det), self)

    def set_worker_level_failure_exception_types(self, types: Any) -> None:
        self._inner.set_worker_level_failure_exception_types(types)


class GuardedInstance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance, guard: QueryTaskGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._last: tuple[int, int] | None = None  # history length and size of the last work
        self._query_task_work_at: int | None = None

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        kinds = [job.WhichOneof("variant") for job in act.jobs]
        if "query_workflow" not in kinds and "remove_from_cache" not in kinds:
            if (
                not act.is_replaying
                and self._last is not None
                and act.history_size_bytes > 0
                and act.history_length > self._last[0]
                and act.history_size_bytes == self._last[1]
            ):
                self._query_task_work_at = act.history_length
            self._last = (act.history_length, act.history_size_bytes)
        completion = self._inner.activate(act)
        if kinds == ["query_workflow"] and act.jobs[0].query_workflow.query_id == LEGACY_QUERY_ID:
            if self._query_task_work_at == act.history_length:
                self._guard.evict(act.run_id, act.history_length)
            self._query_task_work_at = None
        return completion

    def get_serialization_context(self, command_info: Any) -> Any:
        return self._inner.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._inner.get_external_store_context(command_info)

    def get_info(self) -> Any:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()

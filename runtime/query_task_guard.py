"""Keeps a query task from leaving commands behind for the next workflow task.

Temporal may hand a worker a query as a task of its own (a "legacy query"). Usually the
workflow has no new events then. But the server decides to send a query straight to the worker
while the workflow is idle, and may deliver it later: after a Temporal restart the new matching
service does not know the worker's sticky queue yet, the query falls back to the normal queue,
and by the time it is polled the history has moved on (an activity completed, a workflow task is
scheduled). The SDK's core applies those new events while answering the query and keeps the
commands the workflow produced in answer to them, to send with the next real workflow task
(sdk-core's known defect, temporalio/sdk-rust#390). When that task brings an update (a backend
that has just read `state` reports a signing), it completes with the commands of two activations
in an order no replay produces: a replay hands the workflow the events and the update together.
Every later replay of that workflow task then fails with a nondeterminism error, and the customer
stops until an operator resets it.

How the guard notices: a workflow task tells the core the history's size; a query task does not.
So an activation that did new work (not replaying, a longer history) at an unchanged history size
came from a query task. This holds for a run the worker had cached and for one it never saw (a
restarted worker replays up to the last workflow task, then applies the new events the same way).

What it does: it fails that query task's query activation, through the `WorkflowInstance`
interface every workflow runner implements. For a failed activation of a query task the core
evicts the run and answers the query with the failure, so the pending commands are dropped (the
server never saw them) and the next workflow task replays the whole history, grouping events as
every later replay will. The price is that one query: its caller gets `WorkflowQueryFailedError`
with `QUERY_TASK_DID_WORK`'s message and asks again; by then the workflow task that carries the
new events is on its way, and a query waits for it and is answered as usual.

Why this way, not another:
- Asking the core to evict the run after answering the query keeps the query answered, but the
  only way to ask is a private handle of `Worker` that a release may move; a workflow runner's
  failed activation is the SDK's public contract.
- Failing the activation that did the work, rather than the query's, makes the core answer the
  one query task twice: the failure, then the query anyway, on the workflow as it was.
- Failing the next workflow task instead would keep the query answered, but writes a failed
  workflow task into the history for operators to read as a fault, and makes the update in it
  wait for the task's retry.
- A worker that caches no workflows (`max_cached_workflows=0`) never keeps the commands, but
  replays every history on every task.

What the guard relies on in the core (the id of a query task's query, what a query task reports
as the history size, that a failed query activation evicts) is proven on a real `Worker` by
`tests/test_query_task_guard_worker.py`; pyproject.toml pins temporalio to the minor release that
test passes on.
"""

from __future__ import annotations

import threading
from typing import Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

from contracts.messages import QUERY_TASK_DID_WORK, QUERY_TASK_DID_WORK_TYPE
from runtime.logging import get_logger
from runtime.workflow_sandbox import sandboxed_runner

log = get_logger("query_task_guard")

# The id the core gives the query of a query task (a query riding a workflow task has its own).
LEGACY_QUERY_ID = "legacy_query"
# The failure the caller of such a query receives (its message is QUERY_TASK_DID_WORK).
FAILURE_TYPE = QUERY_TASK_DID_WORK_TYPE


class QueryTaskGuard(WorkflowRunner):
    """A workflow runner (the sandboxed one of `runtime/workflow_sandbox.py` inside) whose
    instances notice a query task that did workflow work and fail its query, so that the core
    evicts the run."""

    def __init__(self, inner: WorkflowRunner | None = None) -> None:
        self._inner = inner or sandboxed_runner()
        self._lock = threading.Lock()  # instances activate on the worker's thread pool
        self.evictions = 0

    def evicting(self, run_id: str, history_length: int) -> None:
        with self._lock:
            self.evictions += 1
        log.warning("query_task_did_work_evicting", run_id=run_id, history_length=history_length)

    # WorkflowRunner
    def prepare_workflow(self, defn: Any) -> None:
        self._inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return GuardedInstance(self._inner.create_instance(det), self)

    def set_worker_level_failure_exception_types(self, types: Any) -> None:
        self._inner.set_worker_level_failure_exception_types(types)


def failed_query_task(run_id: str) -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id=run_id)
    completion.failed.failure.message = QUERY_TASK_DID_WORK
    completion.failed.failure.application_failure_info.type = FAILURE_TYPE
    return completion


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
        if kinds == ["query_workflow"] and act.jobs[0].query_workflow.query_id == LEGACY_QUERY_ID:
            did_work, self._query_task_work_at = self._query_task_work_at == act.history_length, None
            if did_work:
                self._guard.evicting(act.run_id, act.history_length)
                return failed_query_task(act.run_id)
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> Any:
        return self._inner.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._inner.get_external_store_context(command_info)

    def get_info(self) -> Any:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()

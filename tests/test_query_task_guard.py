"""The query-task guard fails a query task's query (so the core evicts the run) only when that
query task did workflow work.

The activations are the ones the SDK's core produced in the `temporal-restart` chaos scenario
(history lengths and sizes as logged there); the workflow instance inside is a recorder, so what
is under test is the guard's reading of activations, not the workflow.
"""

from __future__ import annotations

from typing import Any

from temporalio.bridge.proto.workflow_activation import (
    InitializeWorkflow,
    QueryWorkflow,
    ResolveActivity,
    SignalWorkflow,
    WorkflowActivation,
    WorkflowActivationJob,
)
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance

from runtime.query_task_guard import FAILURE_TYPE, LEGACY_QUERY_ID, QUERY_TASK_DID_WORK, GuardedInstance, QueryTaskGuard

RUN = "01a22e25-4d07-775e-9087-bbed5f7dbafe"


class RecordingInstance(WorkflowInstance):
    def __init__(self) -> None:
        self.seen: list[WorkflowActivation] = []

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        self.seen.append(act)
        completion = WorkflowActivationCompletion(run_id=act.run_id)
        completion.successful.SetInParent()
        return completion

    def get_serialization_context(self, command_info: Any) -> Any:
        return None

    def get_external_store_context(self, command_info: Any) -> Any:
        return None

    def get_info(self) -> Any:
        return None


def activation(length: int, size: int, *jobs: WorkflowActivationJob, replaying: bool = False) -> WorkflowActivation:
    return WorkflowActivation(
        run_id=RUN, is_replaying=replaying, history_length=length, history_size_bytes=size, jobs=list(jobs)
    )


def start() -> WorkflowActivationJob:
    return WorkflowActivationJob(initialize_workflow=InitializeWorkflow(workflow_id="onboarding-x"))


def resolved(seq: int) -> WorkflowActivationJob:
    return WorkflowActivationJob(resolve_activity=ResolveActivity(seq=seq))


def signal() -> WorkflowActivationJob:
    return WorkflowActivationJob(signal_workflow=SignalWorkflow(signal_name="iron_event"))


def query(query_id: str = LEGACY_QUERY_ID) -> WorkflowActivationJob:
    return WorkflowActivationJob(query_workflow=QueryWorkflow(query_id=query_id, query_type="state"))


class Guarded:
    """A guarded recorder, and the runs whose query it failed."""

    def __init__(self) -> None:
        self.guard = QueryTaskGuard()
        self.inner = RecordingInstance()
        self.instance = GuardedInstance(self.inner, self.guard)
        self.failed_queries: list[str] = []

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        completion = self.instance.activate(act)
        if completion.HasField("failed"):
            assert completion.failed.failure.message == QUERY_TASK_DID_WORK
            assert completion.failed.failure.application_failure_info.type == FAILURE_TYPE
            self.failed_queries.append(completion.run_id)
        return completion


def test_query_task_that_resolved_an_activity_fails_its_query_so_the_core_evicts_the_run():
    g = Guarded()
    g.activate(activation(3, 1174, start()))
    g.activate(activation(62, 14_100, resolved(6)))
    # The query task's history ran on past the last workflow task: the core resolves activity 7
    # with no new workflow task, so the size it reports has not moved.
    g.activate(activation(67, 14_100, resolved(7)))
    assert g.failed_queries == []  # the work itself goes through
    g.activate(activation(67, 14_100, query(), replaying=True))
    assert g.failed_queries == [RUN]
    assert g.guard.evictions == 1
    assert len(g.inner.seen) == 3, "the failed query never reached the workflow"


def test_workflow_tasks_and_plain_query_tasks_keep_the_run_cached():
    g = Guarded()
    g.activate(activation(3, 1174, start()))
    g.activate(activation(3, 1174, query(), replaying=True))  # a query task, nothing new
    g.activate(activation(10, 2900, signal(), resolved(1)))  # a workflow task: size grew
    g.activate(activation(10, 2900, query(), replaying=True))
    g.activate(activation(18, 4931, resolved(2)))
    g.activate(activation(18, 4931, query("6b1fdaee-f744-4ac4-9992-ecc8865cbc8b")))  # rides a task
    assert g.failed_queries == [] and g.guard.evictions == 0
    assert len(g.inner.seen) == 6


def test_replay_and_servers_that_report_no_size_never_evict():
    g = Guarded()
    for length in (3, 9, 15):
        g.activate(activation(length, 2442, resolved(length), replaying=True))
    g.activate(activation(15, 2442, query(), replaying=True))
    g.activate(activation(21, 0, resolved(30)))
    g.activate(activation(27, 0, resolved(31)))
    g.activate(activation(27, 0, query(), replaying=True))
    assert g.failed_queries == []


def test_query_task_work_is_forgotten_once_a_query_was_failed():
    g = Guarded()
    g.activate(activation(9, 2000, resolved(1)))
    g.activate(activation(15, 2000, resolved(2)))
    g.activate(activation(15, 2000, query(), replaying=True))
    g.activate(activation(15, 2000, query(), replaying=True))  # a second query task
    assert g.failed_queries == [RUN]

"""The query-task guard evicts a cached workflow only when a query task did workflow work.

The activations are the ones the SDK's core produced in the `temporal-restart` chaos scenario
(history lengths and sizes as logged there); the workflow instance inside is a recorder, so what
is under test is the guard's reading of activations, not the workflow.
"""

from __future__ import annotations

from typing import Any

import pytest

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

from runtime.query_task_guard import LEGACY_QUERY_ID, EvictionHandleMissing, GuardedInstance, QueryTaskGuard

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


def guarded() -> tuple[QueryTaskGuard, GuardedInstance, RecordingInstance, list[str]]:
    evicted: list[str] = []
    guard = QueryTaskGuard()
    guard.attach_evictor(evicted.append)
    inner = RecordingInstance()
    return guard, GuardedInstance(inner, guard), inner, evicted


def test_query_task_that_resolved_an_activity_evicts_the_run_after_answering():
    guard, instance, inner, evicted = guarded()
    instance.activate(activation(3, 1174, start()))
    instance.activate(activation(62, 14_100, resolved(6)))
    # The query task's history ran on past the last workflow task: the core resolves activity 7
    # with no new workflow task, so the size it reports has not moved.
    instance.activate(activation(67, 14_100, resolved(7)))
    assert evicted == []  # not before the query is answered
    instance.activate(activation(67, 14_100, query(), replaying=True))
    assert evicted == [RUN]
    assert guard.evictions == 1
    assert len(inner.seen) == 4, "every activation still reaches the workflow"


def test_workflow_tasks_and_plain_query_tasks_keep_the_run_cached():
    guard, instance, _, evicted = guarded()
    instance.activate(activation(3, 1174, start()))
    instance.activate(activation(3, 1174, query(), replaying=True))  # a query task, nothing new
    instance.activate(activation(10, 2900, signal(), resolved(1)))  # a workflow task: size grew
    instance.activate(activation(10, 2900, query(), replaying=True))
    instance.activate(activation(18, 4931, resolved(2)))
    instance.activate(activation(18, 4931, query("6b1fdaee-f744-4ac4-9992-ecc8865cbc8b")))  # rides a task
    assert evicted == [] and guard.evictions == 0


def test_replay_and_servers_that_report_no_size_never_evict():
    _, instance, _, evicted = guarded()
    for length in (3, 9, 15):
        instance.activate(activation(length, 2442, resolved(length), replaying=True))
    instance.activate(activation(15, 2442, query(), replaying=True))
    instance.activate(activation(21, 0, resolved(30)))
    instance.activate(activation(27, 0, resolved(31)))
    instance.activate(activation(27, 0, query(), replaying=True))
    assert evicted == []


def test_query_task_work_is_forgotten_once_a_query_was_answered():
    _, instance, _, evicted = guarded()
    instance.activate(activation(9, 2000, resolved(1)))
    instance.activate(activation(15, 2000, resolved(2)))
    instance.activate(activation(15, 2000, query(), replaying=True))
    instance.activate(activation(15, 2000, query(), replaying=True))  # a second query task
    assert evicted == [RUN]


def test_a_worker_without_an_eviction_handle_cannot_be_guarded():
    guard = QueryTaskGuard()
    with pytest.raises(EvictionHandleMissing, match="request_workflow_eviction"):
        guard.attach(object())  # type: ignore[arg-type]
    assert not guard.attached

"""The query-task guard on a real `temporalio.worker.Worker`, against a scripted frontend.

The script is the sequence that stopped customers after a Temporal restart: (1) a workflow task
ends with an activity scheduled; (2) a query arrives as a task of its own, and by then the history
has the activity's completion; (3) a workflow task brings a signing update. What the worker answers
to (3) is written into the history as a server would write it, and that history is replayed: the
first test shows the defect without the guard (a nondeterminism error on replay), the next ones
that the guard's worker fails that one query, the core evicts the run, and the signing task is
answered with what a replay produces.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import CommandType, QueryResultType
from temporalio.api.workflowservice.v1 import RespondQueryTaskCompletedRequest, RespondWorkflowTaskCompletedRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import default as default_converter
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

from activities.iron_activities import IronActivities
from data_protection.documents import FilesystemDocumentStore
from iron_client import IronClient, IronSettings
from runtime.query_task_guard import QUERY_TASK_DID_WORK, QueryTaskGuard
from tests.query_task_workflow import SigningWorkflow
from tests.scripted_frontend import STICKY, ScriptedFrontend, ScriptedRun, is_answered_query, scripted_frontend
from contracts.messages import IRON_CALLS_QUEUE_SUFFIX
from worker import build_worker

# The update's commands first, then the main loop's timer: the order a replay hands them out
# (the workflow gets the activity's result and the update in one activation, updates first).
REPLAY_ORDER = [
    CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE,  # accept_signing accepted
    CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,  # record_signing
    CommandType.COMMAND_TYPE_START_TIMER,  # the wait after create_customer
]


def payloads(*values: object) -> Payloads:
    return Payloads(payloads=default_converter().payload_converter.to_payloads(list(values)))


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[tuple[ScriptedFrontend, Client]]:
    async with scripted_frontend() as (frontend, address):
        yield frontend, await Client.connect(address, namespace=frontend.namespace)


def signing_worker(client: Client, task_queue: str, *, guarded: bool) -> tuple[Worker, QueryTaskGuard | None]:
    """A worker for the test workflow, with the guard as `build_worker` installs it."""
    guard = QueryTaskGuard() if guarded else None
    runner = {"workflow_runner": guard} if guard else {}
    return Worker(client, task_queue=task_queue, workflows=[SigningWorkflow], max_cached_workflows=10, **runner), guard


def failed_by_the_guard(query: RespondQueryTaskCompletedRequest) -> bool:
    return query.completed_type == QueryResultType.QUERY_RESULT_TYPE_FAILED and query.error_message == QUERY_TASK_DID_WORK


async def complete_first_task(frontend: ScriptedFrontend, run: ScriptedRun) -> int:
    """(1): the workflow starts and schedules `create_customer`; returns that event's id."""
    run.start()
    reply = await frontend.serve(run.workflow_task())
    assert isinstance(reply, RespondWorkflowTaskCompletedRequest)
    (scheduled,) = run.complete_workflow_task(reply)[1:]
    assert scheduled.activity_task_scheduled_event_attributes.activity_type.name == "create_customer"
    return scheduled.event_id


async def query_then_sign(frontend: ScriptedFrontend, run: ScriptedRun, *, sticky: bool) -> tuple[RespondQueryTaskCompletedRequest, list[int]]:
    """(2) and (3): a query task, then the workflow task with the signing update. Returns the
    query's answer and the command types the worker completed (3) with."""
    query = await frontend.serve(run.query_task("state"))
    assert isinstance(query, RespondQueryTaskCompletedRequest)
    signing = await frontend.serve(
        run.workflow_task(sticky=sticky, updates=[("signing-1", "accept_signing", None)]), queue=STICKY if sticky else "normal"
    )
    assert isinstance(signing, RespondWorkflowTaskCompletedRequest), signing
    run.complete_workflow_task(signing)
    return query, [command.command_type for command in signing.commands]


async def replay(run: ScriptedRun) -> None:
    await Replayer(workflows=[SigningWorkflow]).replay_workflow(WorkflowHistory(run.workflow_id, run.events))


async def script_on_one_worker(*, guarded: bool) -> tuple[ScriptedFrontend, ScriptedRun, QueryTaskGuard | None, RespondQueryTaskCompletedRequest, list[int]]:
    """The workflow stays cached on one worker; the query task comes through the normal queue
    (whole history), the signing through the worker's sticky queue (new events only)."""
    async with connected() as (frontend, client):
        task_queue = f"tq-{uuid.uuid4()}"
        run = ScriptedRun(workflow_id="onboarding-signing", workflow_type="SigningWorkflow", task_queue=task_queue)
        frontend.add_run(run)
        worker, guard = signing_worker(client, task_queue, guarded=guarded)
        async with worker:
            activity = await complete_first_task(frontend, run)
            run.complete_activity(activity, payloads("cust-1"))
            query, commands = await query_then_sign(frontend, run, sticky=True)
        return frontend, run, guard, query, commands


async def test_without_the_guard_a_query_task_that_did_work_leaves_a_task_no_replay_produces():
    # The control: the defect the guard exists for, on today's temporalio. Should a release fix
    # it, this test fails and says the guard may go.
    _, run, _, query, commands = await script_on_one_worker(guarded=False)
    assert is_answered_query(query)
    assert commands == [REPLAY_ORDER[2], REPLAY_ORDER[0], REPLAY_ORDER[1]], "the timer went out first"
    with pytest.raises(NondeterminismError, match="Update machine does not handle this event"):
        await replay(run)


async def test_the_guard_fails_that_query_and_the_signing_task_replays_clean():
    frontend, run, guard, query, commands = await script_on_one_worker(guarded=True)
    assert failed_by_the_guard(query), query
    assert commands == REPLAY_ORDER
    await replay(run)
    assert guard is not None and guard.evictions == 1
    assert frontend.history_fetches == [run.run_id], "the signing task found no cached run and replayed it all"


@pytest.mark.parametrize("guarded", [False, True], ids=["unguarded", "guarded"])
async def test_after_a_worker_restart_the_guard_catches_the_query_task_on_an_uncached_run(guarded: bool):
    # A fresh worker gets the query task for a run it never saw: it replays the history up to
    # the last workflow task, then applies the new events, as a cached run would.
    async with connected() as (frontend, client):
        task_queue = f"tq-{uuid.uuid4()}"
        run = ScriptedRun(workflow_id="onboarding-restart", workflow_type="SigningWorkflow", task_queue=task_queue)
        frontend.add_run(run)
        first, _ = signing_worker(client, task_queue, guarded=guarded)
        async with first:
            activity = await complete_first_task(frontend, run)
        run.complete_activity(activity, payloads("cust-1"))
        restarted, guard = signing_worker(client, task_queue, guarded=guarded)
        async with restarted:
            query, commands = await query_then_sign(frontend, run, sticky=False)
    if not guarded:
        assert is_answered_query(query)
        with pytest.raises(NondeterminismError, match="Update machine does not handle this event"):
            await replay(run)
        return
    assert failed_by_the_guard(query), query
    assert commands == REPLAY_ORDER
    await replay(run)
    assert guard is not None and guard.evictions == 1


async def test_a_query_task_with_nothing_new_keeps_the_run_cached():
    async with connected() as (frontend, client):
        task_queue = f"tq-{uuid.uuid4()}"
        run = ScriptedRun(workflow_id="onboarding-idle", workflow_type="SigningWorkflow", task_queue=task_queue)
        frontend.add_run(run)
        worker, guard = signing_worker(client, task_queue, guarded=True)
        async with worker:
            activity = await complete_first_task(frontend, run)
            query = await frontend.serve(run.query_task("state"))  # before the activity completes
            run.complete_activity(activity, payloads("cust-1"))
            reply = await frontend.serve(run.workflow_task(sticky=True), queue=STICKY)
            assert isinstance(reply, RespondWorkflowTaskCompletedRequest)
            run.complete_workflow_task(reply)
    assert is_answered_query(query)
    assert default_converter().payload_converter.from_payloads(query.query_result.payloads) == ["creating"]
    assert guard is not None and guard.evictions == 0
    assert frontend.history_fetches == [], "the run stayed cached"
    await replay(run)


# The worker every process builds carries the guard.


def iron_activities(tmp_path: Path) -> IronActivities:
    from pydantic import SecretStr

    iron = IronClient(IronSettings(base_url="http://127.0.0.1:9", api_key=SecretStr("unused"), timeout_seconds=1))
    return IronActivities(iron, FilesystemDocumentStore(tmp_path))


async def test_build_worker_runs_workflows_behind_the_guard(tmp_path: Path):
    async with connected() as (_, client):
        worker = build_worker(client, iron_activities(tmp_path), task_queue="guarded")
        assert isinstance(worker.config()["workflow_runner"], QueryTaskGuard)


async def test_build_worker_rate_limits_the_iron_calls_queue_alone(tmp_path: Path):
    """Iron's calls are polled on a queue of their own, under the task-queue-wide limit; the
    workflows and the events to the partner's backend stay on the onboarding's queue, which has
    no limit and so keeps eager activity dispatch. Iron's calls of older runs are served there too."""
    async with connected() as (_, client):
        worker = build_worker(client, iron_activities(tmp_path), task_queue="onboard", max_iron_calls_per_second=25)
        main, iron = worker.main.config(), worker.iron_calls.config()
    assert (worker.task_queue, worker.iron_calls_queue) == ("onboard", "onboard" + IRON_CALLS_QUEUE_SUFFIX)
    assert iron["max_task_queue_activities_per_second"] == 25 and not iron.get("workflows")
    assert main.get("max_task_queue_activities_per_second") is None
    assert not main.get("disable_eager_activity_execution")
    iron_names = {activity.__name__ for activity in iron["activities"]}
    assert iron_names and iron_names <= {activity.__name__ for activity in main["activities"]}

"""A fleet pass whose worker is killed midway resumes from its heartbeated cursor.

A real worker process (`worker.py`, started as `demo/stack.py` starts it) runs one pass of
`FleetReconciliation` over 200 sandbox customers, five a page: 40 pages, one activity. Iron's list
answers slowly while it runs, so the pass is still paging when the activity's heartbeat shows a
cursor past the first page (read from the pending activity with describe); then the worker is
killed with SIGKILL. The dead attempt's heartbeat timeout is shortened, as an operator would, so
the server gives up on it at once instead of after the workflow's two minutes; once the retry is
scheduled the activity's own options are restored and a second worker process starts. The pass
completes with every customer counted once, and the sandbox's request log shows the pages up to
the heartbeated cursor requested once, by the first worker, and the second worker's first request
asking for the page after that cursor.

Every wait is for evidence (a heartbeat, a pending attempt's state, the pass's result) with a
deadline that fails naming what did not happen.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import parse_qs

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import UpdateActivityOptionsRequest
from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import Client, WorkflowHandle

from contracts.fleet import (
    ACTIVITY_RECONCILE_PAGE,
    FLEET_WORKFLOW_TYPE,
    FleetPageResult,
    FleetReconciliationInput,
    FleetReconciliationResult,
)
from demo.stack import Process
from iron_client import IronClient
from iron_sandbox.clock import iso
from tests.workflow_harness import eventually as shared_eventually, iron_settings_for, stack_on

pytestmark = pytest.mark.asyncio(loop_scope="module")

CUSTOMERS, PAGE_SIZE = 200, 5
PAGES = CUSTOMERS // PAGE_SIZE
# While the first worker pages, each list answer waits this long: the pass takes some 12 s, far
# more than seeing its first heartbeat and killing the worker does.
PAGE_LATENCY_MS = 300
# Payloads in clear, so this test's client reads what the processes write; no fleet schedule.
PROCESS_ENV = {"ONBOARDING_ENCRYPTION_KEY_FILE": "", "ONBOARDING_FLEET_SCHEDULE": "off"}
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack(env, sandbox, tmp_path_factory):
    with stack_on(env, sandbox, tmp_path_factory.mktemp("stack"), task_queue=f"fleet-resume-{uuid.uuid4().hex[:8]}") as running:
        yield running


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    return await shared_eventually(what, probe, timeout, every=0.05)


async def pending_page_activity(handle: WorkflowHandle):
    description = await handle.describe()
    return next((p for p in description.raw_description.pending_activities
                 if p.activity_type.name == ACTIVITY_RECONCILE_PAGE), None)


async def update_options(client: Client, handle: WorkflowHandle, activity_id: str, **request: Any) -> None:
    await client.workflow_service.update_activity_options(UpdateActivityOptionsRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id), id=activity_id,
        identity="test_fleet_resume_devserver", **request,
    ))


def identity_of(process: Process) -> str:
    """The prefix of the Temporal identity a process's worker reports (pid@host)."""
    return f"{process.popen.pid}@"


async def page_cursors(sandbox) -> list[str | None]:
    """The cursor each page of the pass is asked with, in order: None for the first page, then
    the id of the last customer of the page before."""
    cursors: list[str | None] = [None]
    async with IronClient(iron_settings_for(sandbox)) as iron:
        while True:
            page = await iron.list_customers(cursor=cursors[-1], page_size=PAGE_SIZE)
            if not (page.items and page.cursor):
                return cursors
            cursors.append(page.cursor)


def listed_with(requests: list[dict[str, Any]]) -> list[str | None]:
    """The cursor of each `GET /api/customers` in the request log, in the order they arrived."""
    lists = sorted((r for r in requests if r["method"] == "GET" and r["path"] == "/api/customers"), key=lambda r: r["at"])
    return [parse_qs(r["query"]).get("cursor", [None])[0] for r in lists]


async def test_a_pass_whose_worker_is_killed_midway_resumes_from_its_heartbeated_cursor(env, sandbox, stack):
    await sandbox.control.reset()
    await sandbox.control.add_customers(CUSTOMERS, prefix=f"resume-{uuid.uuid4().hex[:8]}")
    cursors = await page_cursors(sandbox)
    assert len(cursors) == PAGES
    await sandbox.control.set_faults(latency_ms=PAGE_LATENCY_MS, paths=["/api/customers"], methods=["GET"])
    await sandbox.control.clear_requests()

    first = stack.start_worker("worker-1", env=PROCESS_ENV)
    handle = await env.client.start_workflow(
        FLEET_WORKFLOW_TYPE, FleetReconciliationInput(page_size=PAGE_SIZE, grace_seconds=0),
        id=f"fleet-resume-{uuid.uuid4().hex[:8]}", task_queue=stack.config.task_queue,
        result_type=FleetReconciliationResult,
    )

    async def heartbeat_past_the_first_page():
        pending = await pending_page_activity(handle)
        if pending is None or not pending.heartbeat_details.payloads:
            return None
        [details] = await env.client.data_converter.decode(pending.heartbeat_details.payloads)
        beat = FleetPageResult.model_validate(details)
        return (pending, beat) if beat.next_cursor and beat.counts.pages >= 1 else None

    pending, beat = await eventually("a heartbeat with a cursor past the first page", heartbeat_past_the_first_page, 60)
    first.kill()  # SIGKILL: no shutdown, no last heartbeat, the attempt left to time out
    heartbeated_pages = beat.counts.pages
    assert beat.next_cursor == cursors[heartbeated_pages], "the heartbeat names the cursor after the pages it counts"
    assert heartbeated_pages < PAGES - 5, f"killed midway, not at the end: {beat}"
    killed_at = await pending_page_activity(handle)
    assert killed_at is not None and killed_at.attempt == 1, "the pass was still on its first attempt when killed"
    assert killed_at.last_worker_identity.startswith(identity_of(first))

    # Iron answers at full speed again; the dead attempt's heartbeat timeout (two minutes in the
    # workflow) shortened to one second, so the server gives up on it now.
    await sandbox.control.clear_faults()
    own_heartbeat_timeout = killed_at.activity_options.heartbeat_timeout
    assert own_heartbeat_timeout.seconds >= 60, own_heartbeat_timeout
    await update_options(env.client, handle, pending.activity_id,
                         activity_options=ActivityOptions(heartbeat_timeout=Duration(seconds=1)),
                         update_mask=FieldMask(paths=["heartbeat_timeout"]))

    async def retry_scheduled():
        p = await pending_page_activity(handle)
        return p if p is not None and p.attempt == 2 and p.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED else None

    retry = await eventually("the dead attempt to time out and its retry to be scheduled", retry_scheduled, 30)
    assert retry.last_failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT, retry.last_failure
    # The retry runs with the workflow's own options: a one-second heartbeat timeout would cut it short.
    await update_options(env.client, handle, pending.activity_id, restore_original=True)

    async def own_options_back():
        p = await pending_page_activity(handle)
        return p is not None and p.activity_options.heartbeat_timeout == own_heartbeat_timeout

    await eventually("the activity's own options restored", own_options_back, 10)

    second_started_at = iso(datetime.now(timezone.utc))
    second = stack.start_worker("worker-2", env=PROCESS_ENV)
    result = await asyncio.wait_for(handle.result(), timeout=60)

    # Every customer counted once: the heartbeat's counts plus the pages after its cursor.
    assert (result.counts.pages, result.counts.customers, result.counts.without_workflow) == (PAGES, CUSTOMERS, CUSTOMERS)
    events = (await handle.fetch_history()).events
    started = [e.activity_task_started_event_attributes.attempt for e in events if e.HasField("activity_task_started_event_attributes")]
    completed = [e.activity_task_completed_event_attributes.identity for e in events
                 if e.HasField("activity_task_completed_event_attributes")]
    assert started == [2], f"one activity, completed on its second attempt: {started}"
    assert len(completed) == 1 and completed[0].startswith(identity_of(second)), completed

    requests = await sandbox.control.requests()
    before = listed_with([r for r in requests if r["at"] < second_started_at])
    after = listed_with([r for r in requests if r["at"] >= second_started_at])
    # The first worker asked for every page up to the heartbeated cursor (and perhaps a little
    # past it); the second began at that cursor and went on to the end, each page once.
    assert before[: heartbeated_pages + 1] == cursors[: heartbeated_pages + 1], before
    assert after == cursors[heartbeated_pages:], after
    # The pages before the heartbeated cursor were requested once in all.
    for cursor in cursors[:heartbeated_pages]:
        assert (before + after).count(cursor) == 1, (cursor, before, after)

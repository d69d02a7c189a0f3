"""The fleet-wide reconciliation catches a lost webhook: on a real dev server, with no webhook
receiver running (every delivery lost), Iron's compliance suspends an Active customer; the
customer's own read waits on its long backstop, so it stays Active until one pass of
`FleetReconciliation` pages Iron's customers, finds the status its `IronCustomerStatus` search
attribute does not show, and wakes that onboarding alone, which then reads Iron and moves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import ScheduleOverlapPolicy

from activities.fleet import FleetActivities
from bench.benchmark import history_all_runs
from activities.iron_activities import IronActivities
from contracts.fleet import FLEET_HINT_TYPE, FLEET_WORKFLOW_TYPE, FleetReconciliationInput, fleet_schedule_id
from contracts.messages import Phase, iron_calls_queue, workflow_id_for
from data_protection.documents import FilesystemDocumentStore
from operations.fleet_schedule import DEFAULT_EVERY_HOURS, manual_workflow_id, reconcile_now
from iron_client import IronClient
from starter import sign_all, start_onboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, iron_settings_for, save_histories, wait_for_state
from runtime.settings import ConfigurationError
from tests.conftest import REPO_ROOT
from worker import WorkerSettings, build_worker, ensure_fleet_schedule

pytestmark = pytest.mark.asyncio(loop_scope="module")

FIRST_RUNS: dict[str, str | None] = {}

# Polls get the customers to Active without webhooks; once Active, only the backstop reads Iron.
TIMINGS = DEV_SERVER_TIMINGS.model_copy(update={"active_backstop_seconds": 3600})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(env, sandbox, tmp_path_factory):
    async with IronClient(iron_settings_for(sandbox)) as iron:
        w = build_worker(
            env.client,
            IronActivities(iron, FilesystemDocumentStore(tmp_path_factory.mktemp("documents"))),
            fleet=FleetActivities(env.client, iron),
            task_queue=f"tq-{uuid.uuid4()}",
            max_iron_calls_per_second=200,
        )
        async with w:
            yield w


async def active_customer(env, worker, sandbox, external_id: str):
    started = await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=TIMINGS, task_queue=worker.task_queue
    )
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    FIRST_RUNS[handle.id] = started.run_id
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
    await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=30, what="signings")
    await sign_all(env.client, external_id)
    active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=30, what="Active")
    return handle, active


async def published_status(handle) -> str | None:
    description = await handle.describe()
    return {pair.key.name: pair.value for pair in description.typed_search_attributes}.get("IronCustomerStatus")


async def until_listed(env, customer_ids: list[str], timeout: float = 20.0) -> None:
    """Visibility is eventually consistent: wait until every onboarding lists as Active."""
    activities = FleetActivities(env.client, None)  # type: ignore[arg-type] - only the query is used
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await activities.published_statuses(customer_ids)
        if all(found.get(cid) and found[cid][0][1] == "Active" for cid in customer_ids):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"onboardings not listed as Active: {found}")


async def fleet_hints(handle) -> int:
    count = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            count += 1
    return count


async def test_a_lost_webhook_is_caught_by_the_fleet_pass_and_only_that_customer_is_woken(env, worker, sandbox):
    suffix = uuid.uuid4().hex[:8]
    customers = [await active_customer(env, worker, sandbox, f"fleet-{n}-{suffix}") for n in range(3)]
    (lost_handle, lost), others = customers[0], customers[1:]
    await until_listed(env, [state.iron_customer_id for _, state in customers])

    # Compliance suspends the customer at Iron; no receiver runs, so its webhook is lost.
    await sandbox.control.set_customer_status(lost.iron_customer_id, "Suspended")
    await asyncio.sleep(3)
    still = await wait_for_state(lost_handle, lambda s: True, what="state")
    assert still.phase == Phase.ACTIVE, "no per-customer read while Active: only the backstop, an hour away"
    assert still.deadlines["reconcile"] - datetime.now(timezone.utc) > timedelta(minutes=50)

    # Two customers a page, one page a run: the pass pages on through continue-as-new.
    result = await reconcile_now(
        env.client, worker.task_queue, FleetReconciliationInput(page_size=2, pages_per_run=1, grace_seconds=0)
    )
    assert result.counts.customers == 3 and result.counts.pages == 2 and result.runs == 2
    assert (result.counts.woken, result.counts.matching, result.counts.without_workflow) == (1, 2, 0)
    # Each page is an Iron call under the rate limit: it runs on Iron's calls queue.
    pass_events = await history_all_runs(env.client, manual_workflow_id(worker.task_queue))
    pages = [e.activity_task_scheduled_event_attributes for e in pass_events if e.HasField("activity_task_scheduled_event_attributes")]
    assert len(pages) == 2 and {a.task_queue.name for a in pages} == {iron_calls_queue(worker.task_queue)}
    # For tests/test_fleet_replay.py (RECORD_HISTORIES=1): the pass, both runs.
    first_pass_run = pass_events[0].workflow_execution_started_event_attributes.first_execution_run_id
    await save_histories(env.client, manual_workflow_id(worker.task_queue), first_pass_run, "fleet-reconciliation/fleet_pass")

    moved = await wait_for_state(lost_handle, lambda s: s.phase == Phase.SUSPENDED, timeout=30, what="Suspended")
    assert moved.customer_status == "Suspended"
    assert [e.type for e in moved.recent_events][-1] == FLEET_HINT_TYPE
    # `make histories`-style recording (RECORD_HISTORIES=1) of a run woken by a pass.
    await save_histories(env.client, lost_handle.id, FIRST_RUNS[lost_handle.id], "fleet-reconciliation/fleet_reconciled_lost_webhook")
    for handle, _ in others:
        assert await fleet_hints(handle) == 0, "a customer whose status matches is not woken"
        assert (await wait_for_state(handle, lambda s: True, what="state")).phase == Phase.ACTIVE

    # The next pass finds nothing to wake: the onboarding published what Iron says.
    deadline = time.monotonic() + 20
    while await published_status(lost_handle) != "Suspended" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    again = await reconcile_now(env.client, worker.task_queue, FleetReconciliationInput(grace_seconds=0))
    assert (again.counts.woken, again.counts.matching) == (0, 3)


# Quiet at once: after a second in a wait, only the backstop (an hour away) reads Iron.
QUIET = DEV_SERVER_TIMINGS.model_copy(update={"quiet_after_seconds": 1, "review_quiet_after_seconds": 1, "parked_backstop_seconds": 3600})


async def test_a_pass_pages_every_scope_the_engine_has_customers_in_and_catches_a_lost_identification_webhook(env, worker, sandbox):
    """A sub-partner's customer, parked quietly on its identification, whose decline's webhook
    was lost: no list of sub-partners anywhere, yet the pass finds the scope from the engine's
    own onboardings, pages Iron in it, sees the identification status differ and wakes it."""
    sub_partner = str(uuid.uuid4())
    external_id = f"fleet-scope-{uuid.uuid4().hex[:8]}"
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=QUIET,
                           task_queue=worker.task_queue, sub_partner_id=sub_partner)
    handle = env.client.get_workflow_handle(workflow_id_for(external_id, sub_partner))
    waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and "backstop" in s.deadlines,
                                   timeout=60, what="a quiet wait on the identification")
    await sandbox.control.set_identification_status(waiting.identification_id, "Declined")  # no receiver: lost
    await asyncio.sleep(3)
    quiet = await wait_for_state(handle, lambda s: True, what="state")
    assert quiet.phase == Phase.AWAITING_IDENTIFICATION, "quiet: no poll finds it"

    await sandbox.control.clear_requests()
    result = await reconcile_now(env.client, worker.task_queue, FleetReconciliationInput(grace_seconds=0))
    assert result.counts.woken >= 1
    moved = await wait_for_state(handle, lambda s: s.phase == Phase.DECLINED, timeout=30, what="Declined, from the pass")
    assert any(e.type == FLEET_HINT_TYPE for e in moved.recent_events)
    listed_in = {r["sub_partner_id"] for r in await sandbox.control.requests() if r["method"] == "GET" and r["path"] == "/api/customers"}
    assert {None, sub_partner} <= listed_in, "the default scope, then the sub-partner's found from the engine's own data"


async def test_a_full_page_of_customer_ids_is_one_visibility_query(env):
    ids = [str(uuid.uuid4()) for _ in range(100)]
    assert await FleetActivities(env.client, None).published_statuses(ids) == {}  # type: ignore[arg-type]
    assert await FleetActivities(env.client, None).published_statuses(['bad"id', "x\\y"]) == {}  # type: ignore[arg-type]


async def test_a_change_within_the_grace_period_is_left_to_its_webhook(env, worker, sandbox):
    handle, active = await active_customer(env, worker, sandbox, f"fleet-grace-{uuid.uuid4().hex[:8]}")
    await until_listed(env, [active.iron_customer_id])
    await sandbox.control.set_customer_status(active.iron_customer_id, "Suspended")
    result = await reconcile_now(
        env.client, worker.task_queue, FleetReconciliationInput(statuses=["Suspended"], grace_seconds=600)
    )
    assert result.counts.recently_changed >= 1 and result.counts.woken == 0
    assert await fleet_hints(handle) == 0


def _starter(env, task_queue: str, *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ONBOARDING_"))}
    environ |= {"TEMPORAL_ADDRESS": env.client.service_client.config.target_host, "ONBOARDING_TASK_QUEUE": task_queue}
    return subprocess.run(
        [sys.executable, "starter.py", "fleet-reconcile", *args],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )


async def test_the_schedule_is_created_once_and_updated_after_and_a_pass_runs_from_the_command_line(env, worker):
    schedule_id = fleet_schedule_id(worker.task_queue)
    first = await asyncio.to_thread(_starter, env, worker.task_queue, "--schedule")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"schedule {schedule_id} created: a pass every 24 h")
    again = await asyncio.to_thread(_starter, env, worker.task_queue, "--schedule", "--every-hours", "12")
    assert again.returncode == 0 and "updated: a pass every 12 h" in again.stdout, again.stderr

    described = await env.client.get_schedule_handle(schedule_id).describe()
    schedule = described.schedule
    assert schedule.spec.intervals[0].every == timedelta(hours=12)
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP, "passes never overlap"
    assert schedule.action.workflow == FLEET_WORKFLOW_TYPE and schedule.action.task_queue == worker.task_queue
    ids = [s.id async for s in await env.client.list_schedules()]
    assert ids.count(schedule_id) == 1

    # A pass the schedule starts runs on the worker like any other.
    await env.client.get_schedule_handle(schedule_id).trigger()
    deadline = time.monotonic() + 30
    while not (await env.client.get_schedule_handle(schedule_id).describe()).info.recent_actions:
        assert time.monotonic() < deadline, "the schedule never started its pass"
        await asyncio.sleep(0.2)
    action = (await env.client.get_schedule_handle(schedule_id).describe()).info.recent_actions[0]
    scheduled = env.client.get_workflow_handle(action.action.workflow_id, run_id=action.action.first_execution_run_id)
    assert (await scheduled.result())["counts"]["customers"] >= 1

    by_hand = await asyncio.to_thread(_starter, env, worker.task_queue, "--json")
    assert by_hand.returncode == 0, by_hand.stderr
    counts = json.loads(by_hand.stdout)
    assert counts["customers"] >= 1 and counts["pages"] >= 1


async def test_a_worker_start_creates_a_missing_schedule_and_keeps_the_interval_an_operator_chose(env):
    task_queue = f"tq-{uuid.uuid4()}"
    schedule = env.client.get_schedule_handle(fleet_schedule_id(task_queue))
    # What every worker start runs, with the worker's default of 24 h.
    await ensure_fleet_schedule(env.client, task_queue, DEFAULT_EVERY_HOURS)
    assert (await schedule.describe()).schedule.spec.intervals[0].every == timedelta(hours=24)

    chosen = await asyncio.to_thread(_starter, env, task_queue, "--schedule", "--every-hours", "12")
    assert chosen.returncode == 0 and "updated: a pass every 12 h" in chosen.stdout, chosen.stderr
    # A worker (re)starts, say after a deployment: the operator's 12 h stand.
    await ensure_fleet_schedule(env.client, task_queue, DEFAULT_EVERY_HOURS)
    described = (await schedule.describe()).schedule
    assert described.spec.intervals[0].every == timedelta(hours=12)
    assert described.action.workflow == FLEET_WORKFLOW_TYPE and described.action.task_queue == task_queue


async def test_the_activity_rate_is_a_worker_setting_checked_at_start():
    assert WorkerSettings.load({}).activities_per_second == 50.0
    assert WorkerSettings.load({"ONBOARDING_ACTIVITIES_PER_SECOND": "12.5"}).activities_per_second == 12.5
    with pytest.raises(ConfigurationError, match="ONBOARDING_ACTIVITIES_PER_SECOND"):
        WorkerSettings.load({"ONBOARDING_ACTIVITIES_PER_SECOND": "0"})
    with pytest.raises(ConfigurationError, match="ONBOARDING_FLEET_SCHEDULE"):
        WorkerSettings.load({"ONBOARDING_FLEET_SCHEDULE": "maybe"})

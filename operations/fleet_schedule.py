"""The fleet-wide reconciliation's schedule, and one pass on demand.

    python starter.py fleet-reconcile --schedule [--every-hours 24]   # create or update the schedule
    python starter.py fleet-reconcile [--status S ...] [--json]       # one pass now, wait, print counts

The worker creates the schedule at start when it is missing (`ONBOARDING_FLEET_SCHEDULE`, on
by default), so a deployment needs nothing else, and leaves an existing one as it is: an
operator's `--every-hours` outlives every worker restart. The command creates the schedule or
brings it to its definition. The schedule has one id per task queue
(`fleet-reconciliation-iron-onboarding`). Passes never overlap (a pass still running when the
next is due makes the schedule skip that one).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDConflictPolicy

from contracts.fleet import FLEET_WORKFLOW_TYPE, FleetReconciliationInput, FleetReconciliationResult, fleet_schedule_id
from contracts.quoting import quoted

DEFAULT_EVERY_HOURS = 24.0


def manual_workflow_id(task_queue: str) -> str:
    return f"{fleet_schedule_id(task_queue)}-now"


def fleet_schedule(task_queue: str, *, every_hours: float = DEFAULT_EVERY_HOURS, input: FleetReconciliationInput | None = None) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            FLEET_WORKFLOW_TYPE,
            input or FleetReconciliationInput(),
            id=fleet_schedule_id(task_queue),  # the schedule appends each pass's start time
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=every_hours))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def create_schedule_if_missing(client: Client, task_queue: str, *, every_hours: float = DEFAULT_EVERY_HOURS) -> str:
    """Create the schedule unless one exists, which is left untouched: its interval may be an
    operator's choice (`fleet-reconcile --schedule --every-hours`), and a worker's start must
    not undo it. Returns what was done: `created` or `kept`."""
    try:
        await client.create_schedule(fleet_schedule_id(task_queue), fleet_schedule(task_queue, every_hours=every_hours))
    except ScheduleAlreadyRunningError:
        return "kept"
    return "created"


async def ensure_schedule(client: Client, task_queue: str, *, every_hours: float = DEFAULT_EVERY_HOURS) -> str:
    """Create the schedule, or bring an existing one to this definition. Returns what was done."""
    schedule = fleet_schedule(task_queue, every_hours=every_hours)
    try:
        await client.create_schedule(fleet_schedule_id(task_queue), schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(fleet_schedule_id(task_queue)).update(update)
    return "updated"


async def reconcile_now(client: Client, task_queue: str, input: FleetReconciliationInput | None = None) -> FleetReconciliationResult:
    """One pass now, waited for; a pass started this way and still running is joined, not doubled."""
    handle = await client.start_workflow(
        FLEET_WORKFLOW_TYPE,
        input or FleetReconciliationInput(),
        id=manual_workflow_id(task_queue),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=FleetReconciliationResult,
    )
    return await handle.result()


# --- the starter's `fleet-reconcile` command -----------------------------------------------------


def _positive_hours(text: str) -> float:
    import argparse
    import math

    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours: {quoted(text, limit=40)}") from None
    if not math.isfinite(hours) or hours < 1 / 60:
        raise argparse.ArgumentTypeError("must be at least one minute (1/60 hour)")
    return hours


def add_command(sub) -> None:
    """`starter.py fleet-reconcile`: the parser entry."""
    from iron_client.models import CustomerStatus

    cmd = sub.add_parser("fleet-reconcile", help="compare every Iron customer with its onboarding and wake those that differ")
    cmd.add_argument("--schedule", action="store_true", help="create or update the daily schedule instead of a pass now")
    cmd.add_argument("--every-hours", type=_positive_hours, default=DEFAULT_EVERY_HOURS, help="with --schedule: hours between passes")
    cmd.add_argument("--status", action="append", default=[], choices=[s.value for s in CustomerStatus],
                     help="only Iron customers in this status (repeatable; default every customer)")
    cmd.add_argument("--json", action="store_true", help="print the pass's counts as JSON")


async def run_command(client: Client, args, task_queue: str, out) -> None:
    if args.schedule:
        done = await ensure_schedule(client, task_queue, every_hours=args.every_hours)
        print(f"schedule {fleet_schedule_id(task_queue)} {done}: a pass every {args.every_hours:g} h", file=out)
        return
    result = await reconcile_now(client, task_queue, FleetReconciliationInput(statuses=args.status))
    if args.json:
        print(result.counts.model_dump_json(), file=out)
        return
    c = result.counts
    print(
        f"{c.customers} Iron customers in {c.pages} pages: {c.matching} match their onboarding, {c.woken} woken, "
        f"{c.recently_changed} changed in the last minutes (left to their webhook), {c.without_workflow} without an onboarding",
        file=out,
    )

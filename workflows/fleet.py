"""`FleetReconciliation`: one pass over Iron's customer list, page by page.

Each page is one activity (`reconcile_fleet_page`): one Iron list call, one visibility query
for the onboardings of that page's customers, a signal to each onboarding whose published
`IronCustomerStatus` differs from Iron's status. Pages run on Iron's calls queue, so each counts
against its rate limit like any other Iron call. The cursor lives in the input, so a pass
survives worker crashes and continues as new every `pages_per_run` pages with where it was.
A schedule (`operations/fleet_schedule.py`) starts one pass a day; an onboarding then reads Iron by
itself only on its long backstop, and a lost webhook is caught within a day.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.fleet import FleetActivities
    from contracts.messages import iron_calls_queue
    from contracts.fleet import (
        FLEET_WORKFLOW_TYPE,
        FleetPageInput,
        FleetReconciliationInput,
        FleetReconciliationResult,
    )


@workflow.defn(name=FLEET_WORKFLOW_TYPE)
class FleetReconciliation:
    def __init__(self) -> None:
        self._input: FleetReconciliationInput | None = None

    @workflow.run
    async def run(self, input: FleetReconciliationInput) -> FleetReconciliationResult:
        self._input = progress = input
        queue = iron_calls_queue(workflow.info().task_queue)
        for _ in range(input.pages_per_run):
            page = await workflow.execute_activity_method(
                FleetActivities.reconcile_fleet_page,
                FleetPageInput(
                    cursor=progress.cursor,
                    statuses=progress.statuses,
                    page_size=progress.page_size,
                    grace_seconds=progress.grace_seconds,
                ),
                task_queue=queue,
                summary=f"reconcile page {progress.counts.pages + 1}",
                start_to_close_timeout=timedelta(minutes=2),
                # An Iron or Temporal outage delays the pass, never ends it.
                retry_policy=RetryPolicy(backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)),
            )
            self._input = progress = progress.model_copy(
                update={"cursor": page.next_cursor, "counts": progress.counts.plus(page.counts)}
            )
            if page.next_cursor is None:
                workflow.logger.info("fleet reconciliation done: %s", progress.counts.model_dump())
                return FleetReconciliationResult(counts=progress.counts, runs=progress.runs)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(progress.model_copy(update={"runs": progress.runs + 1}))

    @workflow.query(name="progress")
    def progress(self) -> FleetReconciliationInput | None:
        return self._input

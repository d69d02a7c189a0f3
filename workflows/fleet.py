"""`FleetReconciliation`: one pass over Iron's customer list, scope by scope, page by page.

Each activity (`reconcile_fleet_page`) reconciles up to `pages_per_activity` pages: per page one
Iron list call, one visibility query for the onboardings of that page's customers, a signal to
each onboarding whose published status (or, while it waits on an identification, identification
status) differs from Iron's. It heartbeats its cursor, so a worker lost midway costs a retry that
resumes there. Activities run on Iron's calls queue, so each page counts against its rate limit
like any other Iron call. The pass's first activity also names the sub-partner scopes the engine
has onboardings in; the default scope is paged first, then each of them. Where the pass is lives
in the input, so it survives worker crashes and continues as new every `pages_per_run` pages.
A schedule (`operations/fleet_schedule.py`) starts one pass a day; a quiet onboarding reads Iron
by itself only on its long backstop, and a lost webhook that changed what the pass compares is
caught within a day.
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
        pages_this_run = 0
        while pages_this_run < input.pages_per_run:
            page = await workflow.execute_activity_method(
                FleetActivities.reconcile_fleet_page,
                FleetPageInput(
                    cursor=progress.cursor,
                    statuses=progress.statuses,
                    page_size=progress.page_size,
                    grace_seconds=progress.grace_seconds,
                    max_pages=min(progress.pages_per_activity, input.pages_per_run - pages_this_run),
                    sub_partner_id=progress.sub_partner_id,
                    find_scopes=progress.scopes_left is None,
                ),
                task_queue=queue,
                summary=f"reconcile from page {progress.counts.pages + 1}" + (f" of {progress.sub_partner_id}" if progress.sub_partner_id else ""),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                # An Iron or Temporal outage delays the pass, never ends it.
                retry_policy=RetryPolicy(backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)),
            )
            pages_this_run += max(page.counts.pages, 1)
            scopes_left = page.scopes if progress.scopes_left is None else progress.scopes_left
            update = {"cursor": page.next_cursor, "counts": progress.counts.plus(page.counts), "scopes_left": scopes_left}
            if page.next_cursor is None and scopes_left:  # this scope is done: the next one
                update.update(sub_partner_id=scopes_left[0], scopes_left=scopes_left[1:])
            elif page.next_cursor is None:
                self._input = progress.model_copy(update=update)
                workflow.logger.info("fleet reconciliation done: %s", self._input.counts.model_dump())
                return FleetReconciliationResult(counts=self._input.counts, runs=progress.runs)
            self._input = progress = progress.model_copy(update=update)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(progress.model_copy(update={"runs": progress.runs + 1}))

    @workflow.query(name="progress")
    def progress(self) -> FleetReconciliationInput | None:
        return self._input

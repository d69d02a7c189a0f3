"""Messages of `FleetReconciliation`: the scheduled pass that compares every Iron customer's
status with what its onboarding last published (`IronCustomerStatus`) and wakes only the
onboardings that differ. Pure data, safe to import from workflow code.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

FLEET_WORKFLOW_TYPE = "FleetReconciliation"
FLEET_ID_PREFIX = "fleet-reconciliation"
ACTIVITY_RECONCILE_PAGE = "reconcile_fleet_page"
# The `iron_event` type the pass signals with: a hint like a webhook, read by the onboarding.
FLEET_HINT_TYPE = "fleet_reconciliation"


def fleet_schedule_id(task_queue: str) -> str:
    """One schedule per task queue: workers of another queue in the namespace keep their own."""
    return f"{FLEET_ID_PREFIX}-{task_queue}"


class FleetMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FleetCounts(FleetMessage):
    """What a pass (or one page of it) found."""

    pages: int = 0
    customers: int = 0
    matching: int = 0
    woken: int = 0
    # Changed at Iron within the grace period: a webhook is probably on its way.
    recently_changed: int = 0
    # No running onboarding holds this Iron customer (`adopt --all` brings them in).
    without_workflow: int = 0

    def plus(self, other: "FleetCounts") -> "FleetCounts":
        return FleetCounts(**{name: getattr(self, name) + getattr(other, name) for name in FleetCounts.model_fields})


class FleetReconciliationInput(FleetMessage):
    """One pass over Iron's customer list, in the default scope and then in every sub-partner
    scope the engine has running onboardings in. `statuses` narrows it (Iron's `status[]`
    filter); empty pages every customer, statuses this code does not know included."""

    statuses: list[str] = Field(default_factory=list)
    page_size: int = Field(default=100, ge=1, le=100)
    grace_seconds: float = Field(default=300.0, ge=0)
    # Continue as new after this many pages: a million customers is 10,000 pages.
    pages_per_run: int = Field(default=500, ge=1)
    # Pages one activity reconciles, heartbeating its cursor after each: a million customers
    # is 200 activities (each a billable action), not 10,000.
    pages_per_activity: int = Field(default=50, ge=1, le=1000)
    # Carried across continue-as-new: where the pass is, and what it found so far.
    cursor: str | None = None
    counts: FleetCounts = Field(default_factory=FleetCounts)
    runs: int = 1
    # The scope being paged (None: the default scope), and those still to page, found from the
    # engine's own onboardings at the pass's first page (None: not looked for yet).
    sub_partner_id: str | None = None
    scopes_left: list[str] | None = None


class FleetPageInput(FleetMessage):
    cursor: str | None = None
    statuses: list[str] = Field(default_factory=list)
    page_size: int = 100
    grace_seconds: float = 300.0
    max_pages: int = 1
    sub_partner_id: str | None = None
    # Also name the sub-partner scopes the engine has running onboardings in (a pass's first page).
    find_scopes: bool = False


class FleetPageResult(FleetMessage):
    counts: FleetCounts
    next_cursor: str | None = None
    scopes: list[str] = Field(default_factory=list)


class FleetReconciliationResult(FleetMessage):
    counts: FleetCounts
    runs: int

"""What a customer costs: Temporal Cloud billable actions and Iron calls per onboarded customer
and per Active customer-year, today's design (every Active customer reads Iron every 6 hours)
against the fleet-wide reconciliation (a daily `FleetReconciliation` pass, and a 90-day
backstop read per customer). Every figure is counted from real histories on the dev server
(`bench/actions.py`):

* a lifecycle: every run of the sampled product lifecycles of the throughput phase;
* an Active day, scaled: customers taken to Active with their Active read every `WAKE_SECONDS`
  standing for 6 hours (the commands of a wake do not depend on its interval), watched for
  four wakes, so one measured scaled day is one day of today's design; beside them, customers
  on the production timings, watched for the same time (the new design's day: nothing);
* a fleet pass over every customer the sandbox holds, in small pages with a continue-as-new
  every few pages, so the costs of a page and of a run are both measured.

A year is computed from those: today, 365 days of 4 wakes; the fleet design, 365/90 backstop
wakes plus 365 daily passes, each 2 schedule actions plus one workflow start per
`pages_per_run` pages plus a page's cost per 100 customers, at a million customers.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.actions import SCHEDULE_ACTIONS_PER_START, activity_types, billable_actions, total
from contracts.activity_models import GET_CUSTOMER
from contracts.fleet import FleetReconciliationInput
from contracts.messages import OnboardingTimings, Phase, workflow_id_for
from contracts.search_attributes import ONBOARDING_PHASE

PHASE_ATTRIBUTE = ONBOARDING_PHASE.name

TARGETS = {"actions_per_active_customer_year_max": 60, "iron_calls_per_active_customer_year_max": 15}
DAY = 86400.0
WAKE_SECONDS = 2.0  # stands for 6 hours
TODAY_INTERVAL = 6 * 3600.0
FLEET_AT = 1_000_000  # customers, for the per-customer share of a pass
PAGE_SIZE = 100


def _mean(values: list[float]) -> float:
    return round(statistics.mean(values), 3) if values else 0.0


async def lifecycle_actions(b, workflow_ids: list[str]) -> dict[str, Any]:
    from bench.benchmark import history_all_runs

    per = [billable_actions(await history_all_runs(b.client, wid)) for wid in workflow_ids]
    kinds = sorted({k for c in per for k in c})
    return {
        "lifecycles": len(per),
        "actions": _mean([total(c) for c in per]),
        "by_kind": {k: _mean([c[k] for c in per]) for k in kinds},
    }


async def _active_run_events(b, workflow_id: str) -> list[Any]:
    """The run that watches the Active customer: the one that reached it, or the one it continued
    as new into at the end of the cycle."""
    history = await b.client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events)


def _became_active(event: Any) -> bool:
    if not event.HasField("upsert_workflow_search_attributes_event_attributes"):
        return False
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    return PHASE_ATTRIBUTE in fields and json.loads(fields[PHASE_ATTRIBUTE].data) == Phase.ACTIVE.value


def _wake_window(events: list[Any]) -> tuple[Counter, int, int]:
    """Actions, wakes and Iron reads from the watch's first wake on: the first timer to fire
    after the phase became Active (or in a run that started Active). The watch's first timer, and
    the Active event's delivery scheduled with it, belong to the lifecycle."""
    since = next((i for i, e in enumerate(events) if _became_active(e)), 0)
    first_wake = next((i for i in range(since, len(events)) if events[i].event_type == EventType.EVENT_TYPE_TIMER_FIRED),
                      len(events))
    window = events[first_wake:]
    wakes = sum(1 for e in window if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED)
    return billable_actions(window), wakes, activity_types(window)[GET_CUSTOMER]


async def active_day(b, lifecycle, customers: int) -> dict[str, Any]:
    """Customers of each design taken to Active, then watched for one scaled day."""
    scaled = OnboardingTimings(active_backstop_seconds=WAKE_SECONDS)
    today_ids = [f"bench-cost-today-{b.run_id}-{n}" for n in range(customers)]
    fleet_ids = [f"bench-cost-fleet-{b.run_id}-{n}" for n in range(customers)]
    await asyncio.gather(*(lifecycle(b, x, timings=scaled) for x in today_ids))
    await asyncio.gather(*(lifecycle(b, x) for x in fleet_ids))
    await asyncio.sleep(4 * WAKE_SECONDS + WAKE_SECONDS / 2)  # four wakes: one day of today's design
    today = [_wake_window(await _active_run_events(b, workflow_id_for(x))) for x in today_ids]
    fleet = [_wake_window(await _active_run_events(b, workflow_id_for(x))) for x in fleet_ids]
    wakes = sum(w for _, w, _ in today)
    per_wake_actions = sum(total(c) for c, _, _ in today) / wakes
    per_wake_iron = sum(r for _, _, r in today) / wakes
    return {
        "customers_each": customers,
        "scaled_wake_seconds": WAKE_SECONDS,
        "today_wakes_measured": wakes,
        "actions_per_wake": round(per_wake_actions, 3),
        "iron_calls_per_wake": round(per_wake_iron, 3),
        "wake_by_kind": dict(sum((c for c, _, _ in today), Counter())),
        "fleet_design_actions_in_the_same_window": sum(total(c) for c, _, _ in fleet),
        "fleet_design_wakes_in_the_same_window": sum(w for _, w, _ in fleet),
    }


async def fleet_pass(b, *, pages_per_run: int = 2) -> dict[str, Any]:
    """A pass in about six pages, a continue-as-new every two: both costs show."""
    from bench.benchmark import history_all_runs
    from operations.fleet_schedule import manual_workflow_id, reconcile_now

    listed = await b.control.customers()
    page_size = max(1, min(PAGE_SIZE, -(-len(listed) // 6)))

    started = time.perf_counter()
    result = await reconcile_now(
        b.client,
        b.stack.config.task_queue,
        FleetReconciliationInput(page_size=page_size, pages_per_run=pages_per_run, grace_seconds=0),
    )
    seconds = time.perf_counter() - started
    events = await history_all_runs(b.client, manual_workflow_id(b.stack.config.task_queue))
    actions = billable_actions(events)
    c = result.counts
    runs = actions["workflow_started"]
    per_page = actions["activities"] / c.pages
    # A million customers: 10,000 pages of 100, a run per `pages_per_run` of the default input.
    default = FleetReconciliationInput()
    pages = FLEET_AT / PAGE_SIZE
    runs_at_scale = -(-pages // default.pages_per_run)
    pass_actions = SCHEDULE_ACTIONS_PER_START + runs_at_scale + pages * per_page  # a start per run
    return {
        "customers": c.customers,
        "pages": c.pages,
        "page_size": page_size,
        "runs": runs,
        "actions": dict(actions),
        "actions_total": total(actions),
        "signals_sent": c.woken,
        "counts": c.model_dump(),
        "seconds": round(seconds, 2),
        "seconds_per_page": round(seconds / c.pages, 3),
        "actions_per_page": round(per_page, 3),
        "iron_calls_per_page": 1,
        "at_scale": {
            "customers": FLEET_AT,
            "actions_per_pass": pass_actions,
            "iron_calls_per_pass": pages,
            "actions_per_customer_year": round(pass_actions / FLEET_AT * 365, 3),
            "iron_calls_per_customer_year": round(pages / FLEET_AT * 365, 3),
        },
    }


def per_year(day: dict[str, Any], fleet: dict[str, Any], backstop_seconds: float) -> dict[str, Any]:
    wakes_today = 365 * DAY / TODAY_INTERVAL
    wakes_backstop = 365 * DAY / backstop_seconds
    today = {
        "actions": round(day["actions_per_wake"] * wakes_today, 1),
        "iron_calls": round(day["iron_calls_per_wake"] * wakes_today, 1),
    }
    scale = fleet["at_scale"]
    new = {
        "actions": round(day["actions_per_wake"] * wakes_backstop + scale["actions_per_customer_year"], 2),
        "iron_calls": round(day["iron_calls_per_wake"] * wakes_backstop + scale["iron_calls_per_customer_year"], 2),
        "of_which_backstop_actions": round(day["actions_per_wake"] * wakes_backstop, 2),
        "of_which_fleet_actions": scale["actions_per_customer_year"],
    }
    return {
        "today": today,
        "fleet": new,
        "backstop_days": round(backstop_seconds / DAY, 1),
        "actions_target_max": TARGETS["actions_per_active_customer_year_max"],
        "iron_target_max": TARGETS["iron_calls_per_active_customer_year_max"],
        "pass": new["actions"] <= TARGETS["actions_per_active_customer_year_max"]
        and new["iron_calls"] <= TARGETS["iron_calls_per_active_customer_year_max"],
    }


async def measure(b, lifecycle, lifecycle_cost: dict[str, Any], *, customers: int, iron_per_lifecycle: float) -> dict[str, Any]:
    """`lifecycle_cost` from `lifecycle_actions`, taken before other phases touch those customers."""
    b.log(f"cost: an Active day of {customers} customers of each design, a fleet pass")
    day = await active_day(b, lifecycle, customers)
    fleet = await fleet_pass(b)
    year = per_year(day, fleet, OnboardingTimings().active_backstop_seconds)
    lifecycle_cost = lifecycle_cost | {"iron_calls_http": iron_per_lifecycle}
    return {"lifecycle": lifecycle_cost, "active_day": day, "fleet_pass": fleet, "active_customer_year": year}


def cost_rows(cost: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    year, day, life, fleet = cost["active_customer_year"], cost["active_day"], cost["lifecycle"], cost["fleet_pass"]
    verdict = "pass" if year["pass"] else "MISS"
    return [
        ("cost", "today (6 h reads)", "fleet reconciliation", "target", "result"),
        ("actions per onboarded customer (lifecycle)", f"{life['actions']:g}", f"{life['actions']:g}", "-", "measured"),
        ("Iron calls per onboarded customer (HTTP)", f"{life['iron_calls_http']:g}", f"{life['iron_calls_http']:g}", "-",
         "measured"),
        ("actions per Active wake", f"{day['actions_per_wake']:g}", f"{day['actions_per_wake']:g} (backstop)", "-", "measured"),
        ("actions per Active day", f"{day['actions_per_wake'] * 4:g}",
         f"{round(year['fleet']['actions'] / 365, 3):g}", "-", "computed"),
        ("actions per Active customer-year", f"{year['today']['actions']:g}", f"{year['fleet']['actions']:g}",
         f"<= {year['actions_target_max']}", verdict),
        ("Iron calls per Active customer-year", f"{year['today']['iron_calls']:g}", f"{year['fleet']['iron_calls']:g}",
         f"<= {year['iron_target_max']}", verdict),
        (f"fleet pass over {fleet['customers']} customers (actions / Iron calls)", "-",
         f"{fleet['actions_total']} / {fleet['pages']}", "-", "measured"),
    ]

"""What a partner's real funnel costs: `python -m bench.funnel [--customers N] [--days D] [--json]`
(`make funnel`).

The first day of a fleet and the year after it (`--days`, 366), on Temporal's time-skipping server with the production worker, the Iron
sandbox over HTTP and a partner's backend receiving every event (production timings and retry
schedule). N customers (100) take the default mix: 55% Active within a day, 20% never finish
KYC, 10% never sign, 5% declined and never restarted, 5% reverted once and back, 3% suspended,
2% expired and renewed. Day one is driven as it happens (webhooks signalled as the receiver
does, signings through the workflow's update); then the server skips the remaining days, six
hours a request.

Every figure is counted, not assumed: Temporal Cloud billable actions from each customer's
histories (`bench/actions.py`, event times on the server's clock) and Iron calls from the
sandbox's request log. Per kind, the first day (the onboarding itself) and the steady state
after it, scaled to a customer-year; then a million-customer fleet of the mix in steady state,
in Iron calls per second, the daily fleet pass included (one list call per 100 customers; its
own actions: one activity per 50 pages and the schedule's start).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import shutil
import sys
import tempfile
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.actions import SCHEDULE_ACTIONS_PER_START, billable_actions, total
from contracts.messages import IronEventSignal, OnboardingTimings, Phase, SIGNAL_IRON_EVENT, workflow_id_for

MIX = {
    "active": 0.55, "kyc_never": 0.20, "never_sign": 0.10, "declined": 0.05,
    "reverted": 0.05, "suspended": 0.03, "expired_renewed": 0.02,
}
TARGETS = {
    "parked_actions_per_year_max": 30, "parked_iron_calls_per_year_max": 16,
    "active_actions_per_year_max": 3, "active_iron_calls_per_year_max": 5,
    "fleet_iron_calls_per_second_max": 5,
}
PARKED = ("kyc_never", "never_sign", "declined", "suspended")
FLEET = 1_000_000
PAGE_SIZE, PAGES_PER_ACTIVITY = 100, 50
YEAR = 365.0


def allocate(customers: int) -> list[str]:
    """Kinds for `customers` customers in the mix's proportions (largest remainders)."""
    exact = {kind: share * customers for kind, share in MIX.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    for kind in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: customers - sum(counts.values())]:
        counts[kind] += 1
    return [kind for kind, n in counts.items() for _ in range(n)]


@dataclass
class Customer:
    kind: str
    external_id: str
    iron_customer_id: str | None = None
    identification_ids: tuple[str, ...] = ()


async def _signal(client, c: Customer, type_: str, entity_id: str, status: str) -> None:
    await client.get_workflow_handle(workflow_id_for(c.external_id)).signal(
        SIGNAL_IRON_EVENT,
        IronEventSignal(type=type_, timestamp=datetime.now(timezone.utc).isoformat(), customer_id=c.iron_customer_id,
                        entity_id=entity_id, status=status, webhook_id=str(uuid.uuid4())),
    )


async def _state(client, c: Customer, predicate, what: str):
    """The state view from the memo (describe) once `predicate` holds. Never a query: the
    time-skipping server loses a query that meets a continue-as-new and holds its clock for it."""
    from operations.state_access import view_from_memo

    handle = client.get_workflow_handle(workflow_id_for(c.external_id))
    deadline = asyncio.get_running_loop().time() + 60
    view = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            view = await view_from_memo(handle)
        except Exception:  # not started its first task yet
            view = None
        if view is not None and predicate(view):
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{c.kind}: timed out waiting for {what}; last view {view.phase if view else None}")


async def drive_day_one(client, control, c: Customer) -> None:
    """What happens to a customer of this kind on its first day, as Iron and its webhooks say it."""
    from operations.onboardings import sign_all

    waiting = await _state(client, c, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, "identification")
    c.iron_customer_id, c.identification_ids = waiting.iron_customer_id, (waiting.identification_id,)
    if c.kind == "kyc_never":
        return
    if c.kind == "declined":
        await control.set_identification_status(waiting.identification_id, "Declined")
        await _signal(client, c, "identification_status", waiting.identification_id, "Declined")
        await _state(client, c, lambda s: s.phase == Phase.DECLINED, "Declined")
        return
    if c.kind == "expired_renewed":
        await control.set_identification_status(waiting.identification_id, "Expired")
        await _signal(client, c, "identification_status", waiting.identification_id, "Expired")
        renewed = await _state(client, c, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION
                               and s.identification_id != waiting.identification_id, "renewed")
        waiting = renewed
    await control.set_identification_status(waiting.identification_id, "Approved")
    await _signal(client, c, "identification_status", waiting.identification_id, "Approved")
    await _state(client, c, lambda s: s.phase == Phase.AWAITING_SIGNINGS, "signings")
    if c.kind == "never_sign":
        return
    await sign_all(client, c.external_id)
    await _state(client, c, lambda s: s.phase == Phase.ACTIVE, "Active")
    if c.kind == "reverted":
        await control.set_customer_status(c.iron_customer_id, "SigningsRequired")
        await _signal(client, c, "customer_status", c.iron_customer_id, "SigningsRequired")
        await _state(client, c, lambda s: s.phase == Phase.AWAITING_SIGNINGS and s.cycle == 2, "reverted")
        await sign_all(client, c.external_id)
        await _state(client, c, lambda s: s.phase == Phase.ACTIVE and s.cycle == 2, "Active again")
    elif c.kind == "suspended":
        await control.set_customer_status(c.iron_customer_id, "Suspended")
        await _signal(client, c, "customer_status", c.iron_customer_id, "Suspended")
        await _state(client, c, lambda s: s.phase == Phase.SUSPENDED, "Suspended")


async def _events_between(client, c: Customer, start: datetime, end: datetime | None) -> list[Any]:
    from bench.benchmark import history_all_runs

    events = await history_all_runs(client, workflow_id_for(c.external_id))
    return [e for e in events if e.event_time.ToDatetime(timezone.utc) >= start and (end is None or e.event_time.ToDatetime(timezone.utc) < end)]


def _iron_calls(log: list[dict[str, Any]], c: Customer) -> int:
    """Requests for this customer: its customer, identifications, signings, and its creation."""
    ids = {i for i in (c.iron_customer_id, *c.identification_ids) if i}
    return sum(1 for r in log if any(i in r["path"] for i in ids) or c.external_id in r["path"])


async def skip_until(env, when: datetime, step: timedelta) -> None:
    """The server's clock to `when`, `step` at a time: one sleep request must stay short in real
    time however much the workflows do meanwhile (a long one outlives its RPC deadline)."""
    from temporalio.service import RPCError

    stalled = 0
    while (left := when - await env.get_current_time()) > timedelta(0):
        try:
            await env.sleep(min(left, step))
            stalled = 0
        except RPCError as exc:
            # The time-skipping server holds its clock while a query that met a continue-as-new
            # is outstanding (it loses such a query) until that query times out: ask again.
            stalled += 1
            if stalled > 5:
                raise RuntimeError(f"the time-skipping server's clock stayed held: {exc}") from exc


async def measure(customers: int, days: int, test_server: str, state_dir: Path, kinds: list[str] | None = None) -> dict[str, Any]:
    """`kinds`: one per customer (the mix's allocation by default)."""
    from temporalio.testing import WorkflowEnvironment

    from activities.events import EventDelivery
    from activities.iron_activities import IronActivities
    from data_protection.documents import FilesystemDocumentStore
    from demo.partner_backend import PartnerBackend, PartnerBackendThread
    from iron_client import IronClient
    from iron_sandbox.testing import SandboxServer
    from operations.onboardings import start_onboarding
    from runtime.events_settings import EventsSettings
    from runtime.temporal import data_converter
    from tests.workflow_harness import iron_settings_for, register_search_attributes
    from worker import build_worker

    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    run = uuid.uuid4().hex[:6]
    fleet = [Customer(kind, f"funnel-{kind}-{n}-{run}") for n, kind in enumerate(kinds or allocate(customers))]
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([secret], out=lambda line: None)) as backend:
        from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

        quiet_core = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
        env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server, data_converter=data_converter(),
                                                            runtime=quiet_core)
        async with env:
            await register_search_attributes(env.client)
            client = env.client
            delivery = EventDelivery(EventsSettings(url=backend.events_url, secret=secret))
            async with IronClient(iron_settings_for(sandbox)) as iron:
                worker = build_worker(client, IronActivities(iron, FilesystemDocumentStore(state_dir / "documents")),
                                      events=delivery, task_queue=f"funnel-{run}")
                async with worker:
                    begun = await env.get_current_time()
                    timings = OnboardingTimings()  # production's
                    for c in fleet:
                        await start_onboarding(client, c.external_id, email=f"{c.external_id}@example.com", timings=timings,
                                               task_queue=worker.task_queue, deliver_events=True)
                    await asyncio.gather(*(drive_day_one(client, sandbox.control, c) for c in fleet))
                    await skip_until(env, begun + timedelta(days=1), timedelta(minutes=5))
                    day_one_log = await sandbox.control.requests(clear=True)
                    steady_from = await env.get_current_time()
                    await skip_until(env, steady_from + timedelta(days=days - 1), timedelta(hours=6))  # a year: 365 days after the first
                    steady_log = await sandbox.control.requests(clear=True)
                    steady_to = await env.get_current_time()
                    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
                    for c in fleet:
                        first = billable_actions(await _events_between(client, c, begun, steady_from))
                        steady = billable_actions(await _events_between(client, c, steady_from, None))
                        rows[c.kind].append({
                            "first_day_actions": total(first), "first_day_iron_calls": _iron_calls(day_one_log, c),
                            "steady_actions": total(steady), "steady_iron_calls": _iron_calls(steady_log, c),
                            **{f"steady_{k}": v for k, v in steady.items()},
                        })
                    phases = Counter([(await _state(client, c, lambda s: True, "state")).phase.value for c in fleet])
            await delivery.aclose()
    steady_days = (steady_to - steady_from).total_seconds() / 86400
    return summarize(rows, steady_days, customers, days, dict(phases))


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


def summarize(rows: dict[str, list[dict[str, float]]], steady_days: float, customers: int, days: int, phases: dict) -> dict[str, Any]:
    scale = YEAR / steady_days
    kinds = {}
    for kind, items in rows.items():
        detail = sorted({k for item in items for k in item if k.startswith("steady_") and k not in ("steady_actions", "steady_iron_calls")})
        kinds[kind] = {
            "customers": len(items),
            "first_day_actions": _mean([i["first_day_actions"] for i in items]),
            "first_day_iron_calls": _mean([i["first_day_iron_calls"] for i in items]),
            "actions_per_year": round(_mean([i["steady_actions"] for i in items]) * scale, 2),
            "iron_calls_per_year": round(_mean([i["steady_iron_calls"] for i in items]) * scale, 2),
            "actions_per_year_by_kind": {k.removeprefix("steady_"): round(_mean([i.get(k, 0) for i in items]) * scale, 2) for k in detail},
        }
    # The daily pass, per customer-year: one list call per 100 customers; one activity per 50
    # pages, the pass's start and the schedule's 2 actions for it, shared by the fleet.
    pass_iron_per_customer_year = YEAR / PAGE_SIZE
    pass_actions_per_customer_year = YEAR * (math.ceil(FLEET / PAGE_SIZE / PAGES_PER_ACTIVITY) + 1 + SCHEDULE_ACTIONS_PER_START) / FLEET
    yearly_iron = sum(MIX[k] * kinds[k]["iron_calls_per_year"] for k in kinds) + pass_iron_per_customer_year
    fleet_calls_per_second = FLEET * yearly_iron / (YEAR * 86400)
    parked = [kinds[k] for k in PARKED if k in kinds]
    active = kinds.get("active", {})
    figures = {
        "parked_actions_per_year_worst": max((k["actions_per_year"] for k in parked), default=0.0),
        "parked_iron_calls_per_year_worst": max((k["iron_calls_per_year"] for k in parked), default=0.0),
        "active_actions_per_year": round(active.get("actions_per_year", 0.0) + pass_actions_per_customer_year, 3),
        "active_iron_calls_per_year": round(active.get("iron_calls_per_year", 0.0) + pass_iron_per_customer_year, 3),
        "fleet_iron_calls_per_second": round(fleet_calls_per_second, 3),
    }
    return {
        "customers": customers, "days": days, "steady_days": round(steady_days, 2), "mix": MIX, "phases_at_end": phases,
        "kinds": kinds,
        "fleet_pass": {"iron_calls_per_customer_year": pass_iron_per_customer_year,
                       "actions_per_customer_year": round(pass_actions_per_customer_year, 4)},
        "figures": figures, "targets": TARGETS,
        "met": {
            "parked_actions": figures["parked_actions_per_year_worst"] <= TARGETS["parked_actions_per_year_max"],
            "parked_iron_calls": figures["parked_iron_calls_per_year_worst"] <= TARGETS["parked_iron_calls_per_year_max"],
            "active_actions": figures["active_actions_per_year"] <= TARGETS["active_actions_per_year_max"],
            "active_iron_calls": figures["active_iron_calls_per_year"] <= TARGETS["active_iron_calls_per_year_max"],
            "fleet_iron_calls": figures["fleet_iron_calls_per_second"] <= TARGETS["fleet_iron_calls_per_second_max"],
        },
    }


def format_report(r: dict[str, Any]) -> str:
    lines = [f"funnel: {r['customers']} customers, {r['days']} days ({r['steady_days']} steady); phases at the end {r['phases_at_end']}",
             f"{'kind':<16}{'n':>4}{'day-1 actions':>15}{'day-1 Iron':>12}{'actions/yr':>12}{'Iron/yr':>10}"]
    for kind in MIX:
        k = r["kinds"].get(kind)
        if k:
            lines.append(f"{kind:<16}{k['customers']:>4}{k['first_day_actions']:>15}{k['first_day_iron_calls']:>12}"
                         f"{k['actions_per_year']:>12}{k['iron_calls_per_year']:>10}")
    f, t = r["figures"], r["targets"]
    lines += [
        f"fleet pass per customer-year: {r['fleet_pass']['iron_calls_per_customer_year']} Iron calls, {r['fleet_pass']['actions_per_customer_year']} actions",
        f"parked, worst kind: {f['parked_actions_per_year_worst']} actions/yr (target <= {t['parked_actions_per_year_max']}), "
        f"{f['parked_iron_calls_per_year_worst']} Iron calls/yr (<= {t['parked_iron_calls_per_year_max']})",
        f"Active: {f['active_actions_per_year']} actions/yr (<= {t['active_actions_per_year_max']}), "
        f"{f['active_iron_calls_per_year']} Iron calls/yr (<= {t['active_iron_calls_per_year_max']}), fleet pass included",
        f"a million customers of this mix, steady: {f['fleet_iron_calls_per_second']} Iron calls/s (<= {t['fleet_iron_calls_per_second_max']})",
        "met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["met"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.funnel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--days", type=int, default=366, help="days simulated, the first driven, then a year counted (at least 2; a shorter run scales its one-time costs, such as reminders, to a year)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.days < 2:
        parser.error("--customers must be at least 1 and --days at least 2")
    from runtime.logging import configure_logging

    configure_logging("WARNING", json=False)  # on stderr; stdout is the report
    test_server = str(Path(sys.executable).parent / "temporal-test-server")
    if not Path(test_server).exists():
        test_server = shutil.which("temporal-test-server") or test_server
    with tempfile.TemporaryDirectory(prefix="funnel-") as state:
        report = asyncio.run(measure(args.customers, args.days, test_server, Path(state)))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

"""One fleet pass over many Iron customers: `python -m bench.fleet_pass [--customers N] [--json] [--results-dir DIR]`.

The sandbox is filled with N customers (100,000; in one `/_sim` call, as a partner's existing
customers), a customer in every 100 given a running onboarding (parked on its identification,
quietly, as a fleet's parked onboardings are: its first read of Iron an hour away; the pass
compares it and finds it matching), and one `FleetReconciliation` pass runs on a dev server with
the production worker, defaults and Iron calls queue (its rate limit raised so the pass, not the
limiter, is measured). Printed: the
pass's wall time and pages per second, its billable actions (counted from its histories, plus
the schedule's 2 for the start), and at a million customers: the time scaled with the pages,
the actions from the pass's shape (a start per run of 500 pages, an activity per 50 pages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.actions import SCHEDULE_ACTIONS_PER_START, billable_actions, total

MILLION = 1_000_000
TARGETS = {"minutes_at_a_million_max": 15, "actions_at_a_million_max": 300}


# The parked onboardings' first read of Iron: production's is a minute after parking, so the
# thousand this bench parks in a minute or two would all read Iron during the pass, a burst no
# fleet in its steady state has (and here in the one process that also runs Iron's sandbox).
QUIET_FIRST_POLL_SECONDS = 3600.0


async def onboard(client, external_ids: list[str], queue: str, *, concurrency: int = 16) -> None:
    """Start an onboarding for each and wait until each is parked on its identification."""
    from contracts.messages import OnboardingTimings, Phase, workflow_id_for
    from operations.onboardings import start_onboarding
    from operations.state_access import view_from_memo

    gate = asyncio.Semaphore(concurrency)

    async def one(external_id: str) -> None:
        async with gate:
            await start_onboarding(client, external_id, email=f"{external_id}@example.com",
                                   timings=OnboardingTimings(poll_initial_seconds=QUIET_FIRST_POLL_SECONDS),
                                   task_queue=queue)
            handle = client.get_workflow_handle(workflow_id_for(external_id))
            deadline = time.monotonic() + 120
            while (view := await view_from_memo(handle)) is None or view.phase != Phase.AWAITING_IDENTIFICATION:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{external_id} not parked on its identification within 120 s")
                await asyncio.sleep(0.1)

    await asyncio.gather(*(one(external_id) for external_id in external_ids))


async def visible(client, count: int, *, timeout: float = 120.0) -> None:
    """Wait until visibility shows `count` onboardings parked (it trails the memo): the pass
    compares what visibility shows."""
    import contracts.search_attributes as sa
    from activities.fleet import ONBOARDINGS, IDENTIFICATION_REQUIRED

    query = f'{ONBOARDINGS} AND {sa.IRON_CUSTOMER_STATUS.name} = "{IDENTIFICATION_REQUIRED}"'
    deadline = time.monotonic() + timeout
    while (shown := (await client.count_workflows(query)).count) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"visibility shows {shown} of {count} onboardings within {timeout} s")
        await asyncio.sleep(0.2)


async def measure(customers: int, cli: str, state_dir: Path, *, onboard_every: int = 100) -> dict[str, Any]:
    from temporalio.testing import WorkflowEnvironment

    import contracts.search_attributes as sa
    from activities.fleet import FleetActivities
    from activities.iron_activities import IronActivities
    from bench.benchmark import history_all_runs
    from contracts.fleet import FleetReconciliationInput
    from data_protection.documents import FilesystemDocumentStore
    from iron_client import IronClient, IronSettings
    from iron_sandbox.clock import iso
    from iron_sandbox.testing import SandboxServer
    from operations.fleet_schedule import manual_workflow_id, reconcile_now
    from pydantic import SecretStr
    from runtime.temporal import data_converter
    from worker import build_worker

    with SandboxServer() as sandbox:
        settings = IronSettings(base_url=sandbox.base_url, api_key=SecretStr(sandbox.api_key), timeout_seconds=10)
        env = await WorkflowEnvironment.start_local(dev_server_existing_path=cli, data_converter=data_converter(),
                                                    search_attributes=list(sa.ALL), ui=False)
        async with env, IronClient(settings) as iron:
            started = time.monotonic()
            await sandbox.control.add_customers(customers, prefix=f"pass-{uuid.uuid4().hex[:8]}")
            filled_in = time.monotonic() - started
            queue = f"pass-{uuid.uuid4().hex[:6]}"
            worker = build_worker(env.client, IronActivities(iron, FilesystemDocumentStore(state_dir / "documents")),
                                  fleet=FleetActivities(env.client, iron), task_queue=queue, max_iron_calls_per_second=1000)
            async with worker:
                onboarded = [f"pass-onboarded-{n}-{uuid.uuid4().hex[:6]}" for n in range(max(1, customers // onboard_every))]
                started = time.monotonic()
                await onboard(env.client, onboarded, queue)
                await visible(env.client, len(onboarded))
                onboarded_in = time.monotonic() - started
                began, began_at = time.monotonic(), iso(datetime.now(timezone.utc))
                result = await reconcile_now(env.client, queue, FleetReconciliationInput(grace_seconds=0))
                seconds, ended_at = time.monotonic() - began, iso(datetime.now(timezone.utc))
                events = await history_all_runs(env.client, manual_workflow_id(queue))
            during = [r for r in await sandbox.control.requests() if began_at <= r["at"] <= ended_at]
            listed = [r for r in during if r["method"] == "GET" and r["path"] == "/api/customers"]
    actions = total(billable_actions(events)) + SCHEDULE_ACTIONS_PER_START
    pages = result.counts.pages
    scale = MILLION / max(result.counts.customers, 1)
    # At a million: the schedule's start, a workflow start per run (a continue-as-new every
    # `pages_per_run` pages) and an activity per `pages_per_activity` pages, as this pass had.
    shape = FleetReconciliationInput()
    pages_at_million = math.ceil(MILLION / shape.page_size)
    actions_at_million = (SCHEDULE_ACTIONS_PER_START + math.ceil(pages_at_million / shape.pages_per_run)
                          + math.ceil(pages_at_million / shape.pages_per_activity))
    report = {
        "customers": result.counts.customers, "onboardings": len(onboarded),
        "filled_in_seconds": round(filled_in, 1), "onboarded_in_seconds": round(onboarded_in, 1),
        "counts": result.counts.model_dump(), "runs": result.runs, "iron_list_calls": len(listed),
        "iron_calls_beside_the_pass": len(during) - len(listed),
        "seconds": round(seconds, 2), "pages_per_second": round(pages / seconds, 1) if seconds else None,
        "actions": actions,
        "at_a_million": {
            "minutes": round(seconds * scale / 60, 1),
            "actions": actions_at_million,
        },
        "targets": TARGETS,
    }
    report["met"] = {
        "minutes": report["at_a_million"]["minutes"] <= TARGETS["minutes_at_a_million_max"],
        "actions": report["at_a_million"]["actions"] <= TARGETS["actions_at_a_million_max"],
    }
    return report


def format_report(r: dict[str, Any]) -> str:
    m = r["at_a_million"]
    return "\n".join([
        f"fleet pass: {r['customers']} Iron customers ({r['onboardings']} onboarding), {r['counts']['pages']} pages, "
        f"{r['runs']} run(s), {r['seconds']} s ({r['pages_per_second']} pages/s), {r['actions']} billable actions",
        f"found: {r['counts']['matching']} matching, {r['counts']['woken']} woken, {r['counts']['without_workflow']} without an onboarding",
        f"at a million: {m['minutes']} min (target <= {r['targets']['minutes_at_a_million_max']}), "
        f"{m['actions']} actions (<= {r['targets']['actions_at_a_million_max']})",
        "met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["met"].items()),
    ])


def markdown(r: dict[str, Any]) -> str:
    m, c, host = r["at_a_million"], r["counts"], r["machine"]
    return "\n".join([
        "# One fleet pass over many sandbox customers",
        "",
        f"Command: `{r['command']}`  ",
        f"Run: {r['finished_at']}, {r['run_seconds']} s (the sandbox filled in {r['filled_in_seconds']} s, "
        f"{r['onboardings']} onboardings parked in {r['onboarded_in_seconds']} s, then the pass)  ",
        f"Machine: {host['nproc']} CPUs, {host['memory_gib']} GiB memory, Python {host['python']}, "
        f"temporalio {host['temporalio']}, {host['platform']}; load average at start {host['load_average_at_start']}",
        "",
        "| | measured | at a million (scaled) | target | result |",
        "|---|---|---|---|---|",
        f"| time | {r['seconds']} s for {c['pages']} pages ({r['pages_per_second']} pages/s) | {m['minutes']} min | "
        f"<= {r['targets']['minutes_at_a_million_max']} min | {'met' if r['met']['minutes'] else 'MISSED'} |",
        f"| billable actions | {r['actions']} ({r['runs']} runs) | {m['actions']} | <= {r['targets']['actions_at_a_million_max']} | "
        f"{'met' if r['met']['actions'] else 'MISSED'} |",
        "",
        f"Found: {c['customers']} customers, {c['matching']} onboardings matching, {c['woken']} woken, "
        f"{c['without_workflow']} without an onboarding; {r['iron_list_calls']} Iron list calls, and "
        f"{r['iron_calls_beside_the_pass']} other Iron calls while the pass ran (the onboardings parked quietly, "
        "their first read of Iron an hour after parking).",
        "",
        "The time at a million is the measured time scaled with the customers; the actions at a million",
        "are the pass's shape at its defaults: the schedule's start (2), a start per run of 500 pages (20)",
        "and an activity per 50 pages (200).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_pass", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--onboard-every", type=int, default=100, metavar="K",
                        help="one customer in K gets a running onboarding (100)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--results-dir", type=Path, metavar="DIR",
                        help="also write the report there, as fleet-pass.json and fleet-pass.md")
    args = parser.parse_args(argv)
    if args.customers < 1:
        parser.error("--customers must be at least 1")
    from runtime.logging import configure_logging

    configure_logging("WARNING", json=False)  # on stderr; stdout is the report
    cli = str(Path(sys.executable).parent / "temporal")
    from bench.common import machine

    host, began = machine(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fleet-pass-") as state:
        report = asyncio.run(measure(args.customers, cli, Path(state), onboard_every=max(args.onboard_every, 1)))
    if args.results_dir:
        report.update(command="python -m bench.fleet_pass " + " ".join(argv if argv is not None else sys.argv[1:]),
                      machine=host, run_seconds=round(time.monotonic() - began, 1),
                      finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / "fleet-pass.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.results_dir / "fleet-pass.md").write_text(markdown(report))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

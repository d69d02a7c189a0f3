"""One fleet pass over many Iron customers: `python -m bench.fleet_pass [--customers N] [--json]`.

The sandbox is filled with N customers (100,000), a customer in every 100 given a running
onboarding (parked on its identification, so the pass compares it and finds it matching), and
one `FleetReconciliation` pass runs on a dev server with the production worker, defaults and
Iron calls queue (its rate limit raised so the pass, not the limiter, is measured). Printed: the
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
from pathlib import Path
from typing import Any

from bench.actions import SCHEDULE_ACTIONS_PER_START, billable_actions, total

MILLION = 1_000_000
TARGETS = {"minutes_at_a_million_max": 15, "actions_at_a_million_max": 300}


async def fill(iron, count: int, concurrency: int = 64) -> None:
    gate = asyncio.Semaphore(concurrency)
    prefix = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        async with gate:
            await iron.create_customer(customer_type="Person", email=f"pass-{prefix}-{i}@example.com",
                                       external_id=f"pass-{prefix}-{i}", idempotency_key=str(uuid.uuid4()))

    await asyncio.gather(*(one(i) for i in range(count)))


async def measure(customers: int, cli: str, state_dir: Path, *, onboard_every: int = 100) -> dict[str, Any]:
    from temporalio.testing import WorkflowEnvironment

    import contracts.search_attributes as sa
    from activities.fleet import FleetActivities
    from activities.iron_activities import IronActivities
    from bench.benchmark import history_all_runs
    from contracts.fleet import FleetReconciliationInput
    from contracts.messages import OnboardingTimings, Phase
    from data_protection.documents import FilesystemDocumentStore
    from iron_client import IronClient, IronSettings
    from iron_sandbox.testing import SandboxServer
    from operations.fleet_schedule import manual_workflow_id, reconcile_now
    from operations.onboardings import start_onboarding
    from operations.state_access import view_from_memo
    from pydantic import SecretStr
    from runtime.temporal import data_converter
    from worker import build_worker

    with SandboxServer() as sandbox:
        settings = IronSettings(base_url=sandbox.base_url, api_key=SecretStr(sandbox.api_key), timeout_seconds=10)
        env = await WorkflowEnvironment.start_local(dev_server_existing_path=cli, data_converter=data_converter(),
                                                    search_attributes=list(sa.ALL), ui=False)
        async with env, IronClient(settings) as iron:
            started = time.monotonic()
            await fill(iron, customers)
            filled_in = time.monotonic() - started
            queue = f"pass-{uuid.uuid4().hex[:6]}"
            worker = build_worker(env.client, IronActivities(iron, FilesystemDocumentStore(state_dir / "documents")),
                                  fleet=FleetActivities(env.client, iron), task_queue=queue, max_iron_calls_per_second=1000)
            async with worker:
                onboarded = [f"pass-onboarded-{n}-{uuid.uuid4().hex[:6]}" for n in range(max(1, customers // onboard_every))]
                for external_id in onboarded:
                    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com",
                                           timings=OnboardingTimings(), task_queue=queue)
                for external_id in onboarded:  # parked, and visible, before the pass
                    from contracts.messages import workflow_id_for

                    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
                    while (view := await view_from_memo(handle)) is None or view.phase != Phase.AWAITING_IDENTIFICATION:
                        await asyncio.sleep(0.1)
                await asyncio.sleep(2)  # visibility trails the memo
                began = time.monotonic()
                result = await reconcile_now(env.client, queue, FleetReconciliationInput(grace_seconds=0))
                seconds = time.monotonic() - began
                events = await history_all_runs(env.client, manual_workflow_id(queue))
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
        "customers": result.counts.customers, "onboardings": len(onboarded), "filled_in_seconds": round(filled_in, 1),
        "counts": result.counts.model_dump(), "runs": result.runs,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_pass", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--onboard-every", type=int, default=100, metavar="K",
                        help="one customer in K gets a running onboarding (100)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.customers < 1:
        parser.error("--customers must be at least 1")
    from runtime.logging import configure_logging

    configure_logging("WARNING", json=False)  # on stderr; stdout is the report
    cli = str(Path(sys.executable).parent / "temporal")
    with tempfile.TemporaryDirectory(prefix="fleet-pass-") as state:
        report = asyncio.run(measure(args.customers, cli, Path(state), onboard_every=max(args.onboard_every, 1)))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

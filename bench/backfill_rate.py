"""How fast `starter.py adopt --all` brings customers in, on a stack of real processes, and what
bounds it.

    python -m bench.backfill_rate --customers 3000 [--rate 1000] [--concurrency 64] [--iron-rate 100]
                                  [--worker] [--in-memory] [--sqlite-pragma P=V ...] [--parts] [--record]

Starts a dev server (database file, unless `--in-memory`) and the sandbox, with no webhook
receiver (it would adopt each new customer from its `customer_created` webhook first) and no
worker unless `--worker`, fills the sandbox with the customers in one call, runs `adopt --all`
with the flags given, then once more (every customer already running), and prints both
summaries' rates. The adoption rate is customers started per second of the run, listing included.

Beside the rate it reports what each process spent (CPU seconds per adopted customer: the dev
server, the sandbox, the `adopt` process, a worker) and the dev server's own counters per
adoption (mutable-state and visibility writes, matching dispatches). With `--worker`, once the
adopted customers have parked, the Iron calls per adoption from the sandbox's request log (the
workflow's first task reads the customer Iron had just listed). `--parts` times the parts alone:
the whole listing, one visibility list per page (empty and full), and the start RPC by itself
at the same concurrency (ids of no customer, on a task queue nobody polls), which is the
ceiling any backfill client reaches on this server. `--record` keeps the run in
`bench/results/backfill.json` (one entry per configuration) and writes `backfill.md` from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from temporalio.common import WorkflowIDConflictPolicy

from bench.common import (
    DEFAULT_STATE_ROOT, MeasuredStack, connect, cpu_seconds, fresh_dir, machine, scrape_server,
)
from contracts.messages import WORKFLOW_TYPE, external_id_for_customer, workflow_id_for
from contracts.start_metadata import start_options
from demo.stack import REPO_ROOT, StackConfig
from iron_client import IronClient
from iron_sandbox.testing import SandboxControl
from operations.onboardings import build_onboarding_input
from runtime.settings import ProcessSettings

RESULTS_DIR = REPO_ROOT / "bench" / "results"
TARGET_PER_SECOND = 100.0  # a million customers in under 3 hours
PROBE_TASK_QUEUE = "backfill-probe-nobody-polls"
ADOPTED_PHASE = "AwaitingIdentification"  # where a new sandbox customer's onboarding parks
# The dev server's counters reach its metrics endpoint a moment after the requests.
COUNTERS_LAG_SECONDS = 2.0


async def create_customers(control: SandboxControl, count: int) -> str:
    """`count` new customers at Iron (`IdentificationRequired`), in one call; their prefix."""
    prefix = f"bulk-{uuid.uuid4().hex[:8]}"
    await control.add_customers(count, prefix=prefix, timeout=600)
    return prefix


class Meter:
    """CPU seconds of every process of the stack, of this one and of finished children, and
    the dev server's counters, between `start()` and `stop()`."""

    def __init__(self, stack: MeasuredStack) -> None:
        self.stack = stack

    def _cpu(self) -> dict[str, float]:
        values = {}
        for name, process in self.stack.processes.items():
            if process.running:
                values[name] = cpu_seconds(process.popen.pid)
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        values["bench"] = me.ru_utime + me.ru_stime
        values["children"] = children.ru_utime + children.ru_stime  # the `adopt` process, once it ended
        return values

    async def start(self) -> "Meter":
        await asyncio.sleep(COUNTERS_LAG_SECONDS)  # what came before is counted before this starts
        self.cpu0, self.counters0, self.t0 = self._cpu(), await scrape_server(self.stack), time.monotonic()
        return self

    async def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.t0
        cpu1 = self._cpu()
        await asyncio.sleep(COUNTERS_LAG_SECONDS)
        counters1 = await scrape_server(self.stack)
        cpu = {name: round(cpu1[name] - self.cpu0.get(name, 0.0), 3) for name in cpu1}
        cpu["adopt"] = cpu.pop("children")  # the stack's processes are still running: only `adopt` ended
        delta = counters1 - self.counters0
        return {"seconds": round(seconds, 3), "cpu_seconds": cpu, "server": delta}


def per(value: float, n: int, digits: int = 3) -> float | None:
    return round(value / n, digits) if n else None


def server_per_start(delta: Counter, n: int) -> dict[str, float | None]:
    def total(prefix: str, names: tuple[str, ...]) -> float:
        return sum(delta[f"{prefix}:{k}"] for k in names)

    return {
        "execution_writes": per(total("persistence", ("CreateWorkflowExecution", "UpdateWorkflowExecution",
                                                      "ConflictResolveWorkflowExecution")), n, 2),
        "visibility_writes": per(total("visibility", ("RecordWorkflowExecutionStarted", "UpsertWorkflowExecution",
                                                      "RecordWorkflowExecutionClosed")), n, 2),
        "matching_dispatches": per(total("matching", ("AddWorkflowTask", "AddActivityTask")), n, 2),
        "start_requests": per(total("frontend", ("StartWorkflowExecution",)), n, 2),
        "describe_requests": per(total("frontend", ("DescribeWorkflowExecution",)), n, 2),
        "list_requests": per(total("frontend", ("ListWorkflowExecutions",)), n, 2),
    }


def adopt_all(env: dict[str, str], flags: list[str]) -> dict:
    run = subprocess.run(
        [sys.executable, "starter.py", "adopt", "--all", "--json", *flags], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True,
    )
    if run.returncode != 0:
        raise SystemExit(f"adopt --all exited {run.returncode}: {run.stderr.strip()[-500:]}")
    return json.loads(run.stdout)


async def measured_adopt(stack: MeasuredStack, env: dict[str, str], flags: list[str]) -> dict[str, Any]:
    meter = await Meter(stack).start()
    summary = await asyncio.to_thread(adopt_all, env, flags)
    measured = await meter.stop()
    started = summary["adopted"] or summary["already_running"]
    cpu = measured["cpu_seconds"]
    return {
        "summary": summary,
        "cpu_seconds": cpu,
        "cpu_ms_per_customer": {k: per(v * 1000, started, 2) for k, v in cpu.items() if k != "bench"},
        # Share of one core each process kept busy over the run (2 cores on the machine measured).
        "cores_busy": {k: round(v / measured["seconds"], 2) for k, v in cpu.items() if k != "bench"},
        "server_per_customer": server_per_start(measured["server"], started),
    }


# --- the parts alone -----------------------------------------------------------------------------


async def time_part(stack: MeasuredStack, coroutine) -> dict[str, Any]:
    meter = await Meter(stack).start()
    count = await coroutine
    measured = await meter.stop()
    seconds = measured["seconds"]
    return {
        "count": count,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1) if seconds > 0 else None,
        "dev_server_cpu_ms_each": per(measured["cpu_seconds"].get("temporal", 0.0) * 1000, count, 2),
        "client_cpu_ms_each": per(measured["cpu_seconds"]["bench"] * 1000, count, 2),
    }


async def list_everything(settings, customers: list) -> int:
    async with IronClient(settings) as iron:
        cursor = None
        while True:
            page = await iron.list_customers(cursor=cursor, page_size=100, sort_order="asc")
            customers.extend(page.items)
            if not page.cursor or not page.items:
                return len(customers)
            cursor = page.cursor


async def visibility_pages(client, workflow_ids: list[str]) -> int:
    """One visibility list per page, as `adopt --all` asks it; the pages asked."""
    pages = 0
    for i in range(0, len(workflow_ids), 100):
        names = ", ".join(f'"{w}"' for w in workflow_ids[i:i + 100])
        query = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus != "ContinuedAsNew" AND WorkflowId IN ({names})'
        async for _ in client.list_workflows(query, page_size=100):
            pass
        pages += 1
    return pages


async def probe_starts(client, customers: list, concurrency: int, started: list[str]) -> int:
    """The start RPC alone, as `adopt --all` sends it (the same input and options), under ids
    of no customer, on a task queue nobody polls; their ids go into `started`."""
    gate = asyncio.Semaphore(concurrency)
    probe = uuid.uuid4().hex[:6]

    async def one(customer) -> None:
        workflow_input = build_onboarding_input(
            f"probe-{probe}-{external_id_for_customer(customer.id, customer.external_id)}",
            customer_type=customer.customer_type, iron_customer_id=customer.id,
        )
        async with gate:
            handle = await client.start_workflow(
                WORKFLOW_TYPE, workflow_input, task_queue=PROBE_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL, **start_options(workflow_input, started_by="adopt --all"),
            )
        started.append(handle.id)

    await asyncio.gather(*(one(c) for c in customers))
    return len(started)


async def probe_describes(client, workflow_ids: list[str], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> None:
        async with gate:
            await client.get_workflow_handle(workflow_id).describe()

    await asyncio.gather(*(one(w) for w in workflow_ids))
    return len(workflow_ids)


# --- Iron calls per adoption ---------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


async def wait_parked(client, task_queue: str, count: int, timeout: float) -> tuple[int, float]:
    query = f'WorkflowType = "{WORKFLOW_TYPE}" AND OnboardingPhase = "{ADOPTED_PHASE}" AND TaskQueue = "{task_queue}"'
    began = time.monotonic()
    parked = 0
    while time.monotonic() - began < timeout:
        parked = (await client.count_workflows(query)).count
        if parked >= count:
            break
        await asyncio.sleep(2.0)
    return parked, time.monotonic() - began


def iron_calls(requests: list[dict[str, Any]], adopted: int) -> dict[str, Any]:
    kinds = Counter(f"{r['method']} {_UUID.sub('{id}', r['path'])}" for r in requests)
    listing = kinds.get("GET /api/customers", 0)
    by_workers = sum(kinds.values()) - listing
    return {
        "by_request": dict(kinds.most_common()),
        "listing_requests": listing,
        "worker_requests": by_workers,
        "worker_requests_per_adoption": per(by_workers, adopted, 2),
        "customer_reads_per_adoption": per(kinds.get("GET /api/customers/{id}", 0), adopted, 2),
    }


# --- the whole run -------------------------------------------------------------------------------


async def measure(stack: MeasuredStack, args: argparse.Namespace, flags: list[str]) -> dict[str, Any]:
    env = stack.env()
    settings = ProcessSettings.load(env).iron_settings()
    control = SandboxControl(stack.sandbox_root)
    await control.set_webhooks(targets=[])  # nothing listens; a receiver would adopt each customer first
    began = time.monotonic()
    await create_customers(control, args.customers)
    seeded = time.monotonic() - began
    print(f"{args.customers} customers at Iron in {seeded:.1f} s", flush=True)
    client = await connect(stack)
    result: dict[str, Any] = {"parts": {}}
    listed: list = []
    if args.parts:
        parts = result["parts"]
        parts["iron_listing_customers"] = await time_part(stack, list_everything(settings, listed))
        ids = [workflow_id_for(external_id_for_customer(c.id, c.external_id)) for c in listed]
        parts["visibility_list_per_page_none_running"] = await time_part(stack, visibility_pages(client, ids))
        sample = listed[: min(len(listed), args.probe)]
        probes: list[str] = []
        parts["start_rpc_alone"] = await time_part(stack, probe_starts(client, sample, int(args.concurrency), probes))
        parts["describe_rpc_alone"] = await time_part(stack, probe_describes(client, probes, int(args.concurrency)))
    await control.clear_requests()
    result["first"] = await measured_adopt(stack, env, flags)
    print(f"  first run: {result['first']['summary']['adoption_rate']} adopted/s", flush=True)
    if args.worker:
        adopted = result["first"]["summary"]["adopted"]
        parked, waited = await wait_parked(client, stack.config.task_queue, adopted, timeout=max(120.0, adopted * 0.2))
        result["worker_settled"] = {"parked": parked, "seconds_after_the_run": round(waited, 1)}
        result["iron_calls"] = iron_calls(await control.requests(), adopted)
    result["rerun"] = await measured_adopt(stack, env, flags)
    if args.parts:
        result["parts"]["visibility_list_per_page_all_running"] = await time_part(stack, visibility_pages(client, ids))
    return result


def pragmas(args: argparse.Namespace) -> tuple[str, ...]:
    """The stack's SQLite pragmas, each one named in `--sqlite-pragma` replaced by its value there."""
    given = {p.split("=", 1)[0] for p in args.sqlite_pragma}
    return tuple(p for p in StackConfig.sqlite_pragmas if p.split("=", 1)[0] not in given) + tuple(args.sqlite_pragma)


def configuration(args: argparse.Namespace) -> str:
    parts = ["memory" if args.in_memory else "file"]
    parts += [f"pragma {p}" for p in ([] if args.in_memory else pragmas(args))]
    parts.append("worker" if args.worker else "no worker")
    parts.append(f"concurrency {args.concurrency}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill_rate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rate", default="1000", help="adopt --all --rate (default 1000: as fast as it goes)")
    parser.add_argument("--concurrency", default="64")
    parser.add_argument("--iron-rate", default="100")
    parser.add_argument("--worker", action="store_true", help="run a worker beside it (its CPU and writes compete)")
    parser.add_argument("--in-memory", action="store_true", help="the dev server without a database file")
    parser.add_argument("--sqlite-pragma", action="append", default=[], metavar="P=V",
                        help="open the dev server's SQLite with this pragma (repeat), e.g. journal_mode=delete "
                             "(the stack's own: " + ", ".join(StackConfig.sqlite_pragmas) + ")")
    parser.add_argument("--parts", action="store_true", help="time the listing, visibility and the start RPC alone too")
    parser.add_argument("--probe", type=int, default=1000, help="starts and describes --parts sends (default 1000)")
    parser.add_argument("--record", action="store_true", help=f"keep the run in {RESULTS_DIR / 'backfill.json'} and .md")
    args = parser.parse_args(argv)
    command = "python -m bench.backfill_rate " + " ".join(argv if argv is not None else sys.argv[1:])
    facts = machine()
    config = StackConfig.ephemeral(
        fresh_dir(DEFAULT_STATE_ROOT / "backfill-rate"), autopilot=False, persistent=not args.in_memory,
        sqlite_pragmas=pragmas(args),
    )
    stack = MeasuredStack(config)
    flags = ["--rate", args.rate, "--concurrency", args.concurrency, "--iron-rate", args.iron_rate]
    began = time.monotonic()
    try:
        stack.start_temporal()
        stack.start_sandbox("--log-level", "warning")
        if args.worker:
            stack.start_worker()
        result = asyncio.run(measure(stack, args, flags))
    finally:
        stack.stop()
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    run = {
        "configuration": configuration(args),
        "command": command,
        "adopt_flags": flags,
        "customers": args.customers,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - began, 1),
        "machine": facts,
        **result,
    }
    run["bound"] = bound(run)
    print(report(run))
    if args.record:
        record(run)
    first, again = run["first"]["summary"], run["rerun"]["summary"]
    return 0 if first["adopted"] == args.customers and again["already_running"] == args.customers else 1


# --- what bounds it, and the record --------------------------------------------------------------


def bound(run: dict[str, Any]) -> dict[str, Any]:
    """What held the run back, from its own figures: the start RPC alone (the ceiling), and the
    process that kept a core busiest."""
    first = run["first"]
    rate = first["summary"]["adoption_rate"]
    busy = {k: v for k, v in first["cores_busy"].items()}
    busiest = max(busy, key=busy.get) if busy else None
    out: dict[str, Any] = {
        "adopted_per_second": rate,
        "target_per_second": TARGET_PER_SECOND,
        "short_of_target_by": round(max(0.0, TARGET_PER_SECOND - rate), 1),
        "times_too_slow": round(TARGET_PER_SECOND / rate, 2) if rate else None,
        "busiest_process": busiest,
        "cores_busy": busy,
        "machine_cores": run["machine"].get("nproc"),
    }
    alone = run.get("parts", {}).get("start_rpc_alone")
    if alone:
        out["start_rpc_alone_per_second"] = alone["per_second"]
        out["share_of_start_rpc_ceiling"] = round(rate / alone["per_second"], 2) if alone["per_second"] else None
    return out


def report(run: dict[str, Any]) -> str:
    lines = [f"{run['configuration']}: adopt --all {' '.join(run['adopt_flags'])} over {run['customers']} customers",
             f"  load average {run['machine']['load_average_at_start']} at start, {run['machine']['load_average_at_end']} at end"]
    for name in ("first", "rerun"):
        s = run[name]["summary"]
        lines.append(
            f"  {name:<6} adopted {s['adopted']:>6}  already running {s['already_running']:>6}  failed {len(s['failed'])}  "
            f"{s['seconds']:.1f} s  {s['adoption_rate']:.1f} adopted/s  {s['listed'] / max(s['seconds'], 1e-9):.1f} listed/s"
        )
        lines.append(f"         CPU ms per customer {run[name]['cpu_ms_per_customer']}; cores busy {run[name]['cores_busy']}")
        lines.append(f"         dev server per customer {run[name]['server_per_customer']}")
    for name, part in run.get("parts", {}).items():
        lines.append(f"  part {name}: {part}")
    if "iron_calls" in run:
        lines.append(f"  Iron calls: {run['iron_calls']}; settled {run['worker_settled']}")
    lines.append(f"  bound: {run['bound']}")
    return "\n".join(lines)


def record(run: dict[str, Any]) -> None:
    path = RESULTS_DIR / "backfill.json"
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    data["runs"][run["configuration"]] = run
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    (RESULTS_DIR / "backfill.md").write_text(markdown(data))


def short(b: dict[str, Any]) -> str:
    if not b["short_of_target_by"]:
        return "met"
    return f"{b['short_of_target_by']}/s ({b['times_too_slow']}x too slow)"


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Backfill rate (`adopt --all`)",
        "",
        f"Target: at least {TARGET_PER_SECOND:g} customers adopted a second (a million in under 3 hours). "
        "Written by `python -m bench.backfill_rate ... --record`, one row per configuration; "
        "`backfill.json` has every figure.",
        "",
        "| configuration | customers | adopted/s | short of target | rerun (all running) | dev server CPU ms / start | "
        "adopt CPU ms / start | cores busy (dev server, adopt) | start RPC alone /s | load average start / end | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"].values():
        first, rerun, b = run["first"], run["rerun"], run["bound"]
        cpu, busy = first["cpu_ms_per_customer"], first["cores_busy"]
        lines.append(
            f"| {run['configuration']} | {run['customers']} | {first['summary']['adoption_rate']} | "
            f"{short(b)} | {rerun['summary']['seconds']} s | "
            f"{cpu.get('temporal')} | {cpu.get('adopt')} | {busy.get('temporal')}, {busy.get('adopt')} | "
            f"{b.get('start_rpc_alone_per_second', '-')} | {run['machine']['load_average_at_start']} / "
            f"{run['machine']['load_average_at_end']} | `{run['command']}` |"
        )
    lines += ["", "Dev server per adopted customer (its own counters):", ""]
    for run in data["runs"].values():
        lines.append(f"- {run['configuration']}: {run['first']['server_per_customer']}")
    with_iron = [r for r in data["runs"].values() if "iron_calls" in r]
    if with_iron:
        lines += ["", "Iron calls per adopted customer, from the sandbox's request log (the worker's first tasks):", ""]
        for run in with_iron:
            calls = run["iron_calls"]
            lines.append(f"- {run['configuration']}: {calls['worker_requests_per_adoption']} "
                         f"({calls['customer_reads_per_adoption']} customer reads); by request {calls['by_request']}")
    if data.get("before"):
        lines += ["", "Before one start per customer (each start described first, pages one after the other):", ""]
        for run in data["before"]:
            lines.append(f"- {run['configuration']}: {run['adopted_per_second']} adopted/s over {run['customers']} "
                         f"(load average {run['load_average']}; `{run['command']}`)")
    if data.get("notes"):
        lines += ["", "What bounds it:", ""] + [f"- {note}" for note in data["notes"]]
    parts = [r for r in data["runs"].values() if r.get("parts")]
    if parts:
        lines += ["", "The parts alone (`--parts`):", ""]
        for run in parts:
            for name, part in run["parts"].items():
                lines.append(f"- {run['configuration']}, {name}: {part['count']} in {part['seconds']} s "
                             f"({part['per_second']}/s; dev server {part['dev_server_cpu_ms_each']} ms CPU each)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

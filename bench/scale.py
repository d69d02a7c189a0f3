"""What a worker spends per customer at scale: memory per cached workflow, and the CPU to wake a
parked customer the worker no longer holds.

    python -m bench.scale [--customers N] [--wakes K] [--rounds R] [--json] [--results-dir DIR]

On a real stack (the dev server with its database file, the Iron sandbox, worker processes of
`worker.py`), customers made in the sandbox in one call are adopted the way `adopt --all` starts
them, read Iron and park in `AwaitingIdentification` (their hosted KYC never completes; the
first backstop read is far away), with no webhooks and no events to a backend.

Memory: one worker whose cache holds every one of them (`--max-cached-workflows`). After a
warm-up batch (the first workflows load what every workflow shares), each round parks N more
and reads the worker's resident memory from /proc before and after: (after - before) / N is the
memory per cached workflow. Python seldom hands memory back, so the figure is the growth per
workflow held, not what an eviction frees. The no-op floor's worker (`bench/floor.py`) is
measured the same way, with workflows that ran one no-op activity and wait for a signal: what
the SDK holds for any cached workflow.

Wake: another worker with a cache of a few workflows parks the wake customers; each round then
wakes K of them it no longer holds (the `refresh` update: the workflow replays its history,
reads Iron and parks again), one after the other, and reads the worker's CPU seconds from
/proc/<pid>/stat before and after: CPU per wake. The same wake of customers still cached, on the
first worker, is the comparison. Each is reported as min and median over the rounds, with the
Iron calls per wake from the sandbox's request log and the history a replay reads.

Targets: at most 0.10 MB per cached workflow, at most 25 ms of CPU to wake an uncached parked
customer. Writes `scale.json` and `scale.md` in `--results-dir` (bench/results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.common import DEFAULT_STATE_ROOT, MeasuredStack, connect, cpu_seconds, fresh_dir, machine, rss_mb
from bench.floor import FLOOR_WORKFLOW, UPDATE_WAIT_PHASE, FloorShape, FloorState
from contracts.messages import (
    UPDATE_REFRESH, WORKFLOW_TYPE, OnboardingState, OnboardingTimings, RefreshRequest,
)
from contracts.start_metadata import start_options
from demo.stack import REPO_ROOT, Process, StackConfig
from iron_sandbox.testing import SandboxControl
from operations.onboardings import build_onboarding_input

RESULTS_DIR = REPO_ROOT / "bench" / "results"
TARGETS = {"mb_per_cached_workflow_max": 0.10, "cpu_ms_per_uncached_wake_max": 25.0}
CACHED_QUEUE = "scale-cached"
UNCACHED_QUEUE = "scale-uncached"
FLOOR_QUEUE = "scale-floor"
PARKED_PHASE = "AwaitingIdentification"
# Parked for the whole run: the first read of the wait is as far away as the backstop.
PARKED_TIMINGS = OnboardingTimings(poll_initial_seconds=OnboardingTimings().poll_max_seconds)
WARM_UP = 20  # workflows parked on the memory worker before its first round
SMALL_CACHE = 4  # the wake worker's cache: far fewer than the customers it wakes
START_CONCURRENCY = 32
SETTLE_SECONDS = 2.0  # after the last park, before memory is read: in-flight tasks drain


# `worker.py` with its workflows run outside Temporal's sandbox (`--unsandboxed`): what the
# sandbox's own share of each figure is. An experiment only; the product runs them sandboxed.
UNSANDBOXED_WORKER = (
    "import sys, runtime.query_task_guard as guard, worker;"
    "from temporalio.worker import UnsandboxedWorkflowRunner;"
    "guard.sandboxed_runner = UnsandboxedWorkflowRunner;"
    "from runtime.process import exit_now; exit_now(worker.main(sys.argv[1:]))"
)


def start_worker(stack: MeasuredStack, name: str, queue: str, cache: int, *, unsandboxed: bool = False) -> Process:
    # No fleet schedule: its passes would add work the figures do not ask about. Iron's calls
    # are not rate-limited here: parking is setup, not what is measured.
    args = ("--task-queue", queue, "--max-cached-workflows", str(cache), "--max-activities-per-second", "1000")
    env = {"ONBOARDING_FLEET_SCHEDULE": "false"}
    if not unsandboxed:
        return stack.start_worker(name, *args, env=env)
    process = stack._process(name, [sys.executable, "-c", UNSANDBOXED_WORKER, *args], port=None, **env)
    process.start(wait=False)
    time.sleep(0.5)
    if not process.running:
        raise RuntimeError(f"{name} exited at start; see {process.log_path}")
    return process


async def park(client: Client, control: SandboxControl, queue: str, count: int, tag: str, timeout: float) -> list[str]:
    """`count` new Iron customers adopted onto `queue`, returned (their workflow ids) once every
    one is parked."""
    prefix = f"{tag}-{os.urandom(3).hex()}"
    await control.add_customers(count, prefix=prefix, timeout=300)
    mine = [c for c in await control.customers() if (c.get("external_id") or "").startswith(prefix + "-")]
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def adopt(customer: dict[str, Any]) -> str:
        workflow_input = build_onboarding_input(
            customer["external_id"], customer_type=customer["customer_type"], iron_customer_id=customer["id"],
            timings=PARKED_TIMINGS,
        )
        async with gate:
            handle = await client.start_workflow(
                WORKFLOW_TYPE, workflow_input, task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                **start_options(workflow_input, started_by="bench.scale"),
            )
        return handle.id

    workflow_ids = await asyncio.gather(*(adopt(c) for c in mine))
    deadline = time.monotonic() + timeout
    while True:
        parked = 0
        for i in range(0, len(workflow_ids), 200):  # visibility's IN lists, a page at a time
            names = ", ".join(f'"{w}"' for w in workflow_ids[i:i + 200])
            parked += (await client.count_workflows(
                f'OnboardingPhase = "{PARKED_PHASE}" AND ExecutionStatus = "Running" AND WorkflowId IN ({names})'
            )).count
        if parked >= len(workflow_ids):
            return list(workflow_ids)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{parked} of {len(workflow_ids)} parked on {queue} after {timeout:.0f} s")
        await asyncio.sleep(1.0)


async def park_floor(client: Client, count: int, tag: str) -> None:
    """`count` no-op floor workflows, returned once each has run its activity and waits for a
    signal (an update that waits for that phase, started with it)."""
    shape = FloorShape(activities_first=1, signals=1, signal_activities=0, updates=0)
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(n: int) -> None:
        operation = WithStartWorkflowOperation(
            FLOOR_WORKFLOW, shape, id=f"{tag}-{n}", task_queue=FLOOR_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        async with gate:
            await client.execute_update_with_start_workflow(
                UPDATE_WAIT_PHASE, "awaiting_signals", start_workflow_operation=operation, result_type=FloorState,
            )

    await asyncio.gather(*(one(n) for n in range(count)))


async def floor_memory(stack: MeasuredStack, client: Client, args: argparse.Namespace, log) -> dict[str, Any]:
    """The same memory measure for the no-op floor (`bench/floor.py`): a workflow that runs one
    no-op activity and waits for a signal, under the product's runner, converter and codec. What
    the SDK itself holds per cached workflow, whatever the workflow."""
    cache = WARM_UP + args.customers * args.rounds + 100
    process = await asyncio.to_thread(lambda: start_floor_worker(stack, cache))
    pid = process.popen.pid
    await asyncio.sleep(2.0)
    prefix = f"scale-floor-{os.urandom(3).hex()}"
    await park_floor(client, WARM_UP, f"{prefix}-warm")
    await asyncio.sleep(SETTLE_SECONDS)
    rounds = []
    for n in range(args.rounds):
        before = rss_mb(pid)["rss_mb"]
        await park_floor(client, args.customers, f"{prefix}-{n}")
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_mb(pid)["rss_mb"]
        rounds.append({"parked": args.customers, "rss_before_mb": before, "rss_after_mb": after,
                       "mb_per_workflow": round((after - before) / args.customers, 4)})
        log(f"  no-op floor round {n + 1}: {before} -> {after} MB for {args.customers}: {rounds[-1]['mb_per_workflow']} MB each")
    process.stop()
    return {"rounds": rounds, "mb_per_cached_workflow": summary([r["mb_per_workflow"] for r in rounds])}


def start_floor_worker(stack: MeasuredStack, cache: int) -> Process:
    process = stack._process(
        "floor-worker", [sys.executable, "-m", "bench.floor", "--task-queue", FLOOR_QUEUE], port=None,
        ONBOARDING_MAX_CACHED_WORKFLOWS=str(cache),
    )
    process.start(wait=False)
    time.sleep(0.5)
    if not process.running:
        raise RuntimeError(f"the floor worker exited at start; see {process.log_path}")
    return process


async def wake_all(client: Client, workflow_ids: list[str], pid: int) -> dict[str, Any]:
    """Each customer woken by `refresh`, one after the other: the worker's CPU over them all."""
    began_cpu, began = cpu_seconds(pid), time.monotonic()
    for workflow_id in workflow_ids:
        state = await client.get_workflow_handle(workflow_id).execute_update(
            UPDATE_REFRESH, RefreshRequest(), result_type=OnboardingState
        )
        if state.phase.value != PARKED_PHASE:
            raise RuntimeError(f"{workflow_id} woke into {state.phase.value}, not {PARKED_PHASE}")
    cpu = cpu_seconds(pid) - began_cpu
    return {
        "wakes": len(workflow_ids),
        "seconds": round(time.monotonic() - began, 3),
        "worker_cpu_seconds": round(cpu, 3),
        "cpu_ms_per_wake": round(cpu * 1000 / len(workflow_ids), 2),
    }


async def history_length(client: Client, workflow_id: str) -> int:
    return len((await client.get_workflow_handle(workflow_id).fetch_history()).events)


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def iron_calls_per(requests: list[dict[str, Any]], count: int) -> dict[str, Any]:
    kinds = Counter(f"{r['method']} {_UUID.sub('{id}', r['path'])}" for r in requests)
    return {"per_wake": round(len(requests) / count, 2) if count else None, "by_request": dict(kinds.most_common())}


async def measure(stack: MeasuredStack, args: argparse.Namespace, log) -> dict[str, Any]:
    client = await connect(stack)
    control = SandboxControl(stack.sandbox_root)
    await control.set_webhooks(targets=[])  # no receiver: nothing but the workflows reads Iron
    per_round_timeout = 120 + args.customers * 0.5
    total_cached = WARM_UP + args.customers * args.rounds + args.wakes * args.rounds

    # --- memory: one worker holding every workflow it runs ---
    cached = await asyncio.to_thread(
        lambda: start_worker(stack, "worker-cached", CACHED_QUEUE, total_cached + 100, unsandboxed=args.unsandboxed)
    )
    pid = cached.popen.pid
    await asyncio.sleep(2.0)
    fresh = rss_mb(pid)
    log(f"memory worker (pid {pid}, cache {total_cached + 100}): {fresh['rss_mb']} MB at start; warming up with {WARM_UP}")
    await park(client, control, CACHED_QUEUE, WARM_UP, "warm", per_round_timeout)
    await asyncio.sleep(SETTLE_SECONDS)
    rounds = []
    for n in range(args.rounds):
        before = rss_mb(pid)["rss_mb"]
        began = time.monotonic()
        await park(client, control, CACHED_QUEUE, args.customers, f"mem{n}", per_round_timeout)
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_mb(pid)["rss_mb"]
        rounds.append({"parked": args.customers, "rss_before_mb": before, "rss_after_mb": after,
                       "mb_per_workflow": round((after - before) / args.customers, 4),
                       "seconds_to_park": round(time.monotonic() - began, 1)})
        log(f"  round {n + 1}: {before} -> {after} MB for {args.customers}: {rounds[-1]['mb_per_workflow']} MB each")
    held = WARM_UP + args.customers * args.rounds
    end = rss_mb(pid)
    memory = {
        "worker_max_cached_workflows": total_cached + 100,
        "workflows_held": held,
        "rss_fresh_mb": fresh["rss_mb"],
        "rss_end_mb": end["rss_mb"],
        "peak_rss_mb": end["peak_rss_mb"],
        "rounds": rounds,
        "mb_per_cached_workflow": summary([r["mb_per_workflow"] for r in rounds]),
        # The growth since the fresh worker over every workflow held, warm-up included.
        "mb_per_cached_workflow_since_fresh": round((end["rss_mb"] - fresh["rss_mb"]) / held, 4),
    }

    memory["noop_floor"] = await floor_memory(stack, client, args, log)

    # --- wakes: customers still cached (the memory worker's), then ones the small cache lost ---
    cached_wakes = []
    for n in range(args.rounds):
        ids = await park(client, control, CACHED_QUEUE, args.wakes, f"wakec{n}", per_round_timeout)
        await asyncio.sleep(SETTLE_SECONDS)
        await control.clear_requests()
        cached_wakes.append(await wake_all(client, ids, pid))
        cached_wakes[-1]["iron_calls"] = iron_calls_per(await control.requests(), len(ids))
        log(f"  cached wake round {n + 1}: {cached_wakes[-1]['cpu_ms_per_wake']} ms CPU each")

    small = await asyncio.to_thread(
        lambda: start_worker(stack, "worker-uncached", UNCACHED_QUEUE, SMALL_CACHE, unsandboxed=args.unsandboxed)
    )
    small_pid = small.popen.pid
    log(f"wake worker (pid {small_pid}, cache {SMALL_CACHE})")
    parked_rounds = [await park(client, control, UNCACHED_QUEUE, args.wakes, f"wakeu{n}", per_round_timeout)
                     for n in range(args.rounds)]
    # Nothing of the wake customers is held: each round's are more than the cache, and the
    # rounds parked after it pushed out whatever was left of the first.
    await park(client, control, UNCACHED_QUEUE, SMALL_CACHE, "filler", per_round_timeout)
    await asyncio.sleep(SETTLE_SECONDS)
    uncached_wakes = []
    for n, ids in enumerate(parked_rounds):
        await control.clear_requests()
        uncached_wakes.append(await wake_all(client, ids, small_pid))
        uncached_wakes[-1]["iron_calls"] = iron_calls_per(await control.requests(), len(ids))
        log(f"  uncached wake round {n + 1}: {uncached_wakes[-1]['cpu_ms_per_wake']} ms CPU each")
    replayed = await history_length(client, parked_rounds[0][0])
    wake = {
        "worker_max_cached_workflows": SMALL_CACHE,
        "wakes_per_round": args.wakes,
        "history_events_at_wake": replayed,
        "uncached_rounds": uncached_wakes,
        "cached_rounds": cached_wakes,
        "cpu_ms_per_uncached_wake": summary([r["cpu_ms_per_wake"] for r in uncached_wakes]),
        "cpu_ms_per_cached_wake": summary([r["cpu_ms_per_wake"] for r in cached_wakes]),
        "how": "refresh update, one customer after the other; worker CPU from /proc/<pid>/stat (10 ms ticks)",
    }
    return {"memory": memory, "wake": wake}


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    mb = result["memory"]["mb_per_cached_workflow"]["median"]
    ms = result["wake"]["cpu_ms_per_uncached_wake"]["median"]
    out = {}
    for key, value, target in (("mb_per_cached_workflow", mb, TARGETS["mb_per_cached_workflow_max"]),
                               ("cpu_ms_per_uncached_wake", ms, TARGETS["cpu_ms_per_uncached_wake_max"])):
        out[key] = {"median": value, "target_max": target, "met": value <= target,
                    "over_target_by": round(max(0.0, value - target), 3),
                    "times_target": round(value / target, 2) if target else None}
    return out


def markdown(run: dict[str, Any], other: dict[str, Any] | None = None) -> str:
    """The report; `other`, the run with the other workflow runner, when there is one."""
    memory, wake, v = run["memory"], run["wake"], run["verdicts"]
    m = run["machine"]

    def row(name: str, key: str, figures: dict[str, float], unit: str) -> str:
        verdict = v[key]
        result = "met" if verdict["met"] else f"MISSED by {verdict['over_target_by']} {unit} ({verdict['times_target']}x)"
        return (f"| {name} | <= {verdict['target_max']} {unit} | {figures['min']} | {figures['median']} | "
                f"{figures['max']} | {result} |")

    lines = [
        "# Scale figures: worker memory per cached workflow, CPU to wake an uncached parked customer",
        "",
        f"Command: `{run['command']}`  ",
        f"Run: {run['finished_at']}, {run['seconds']} s, {run['rounds']} rounds; workflow runner: {run['workflow_runner']}  ",
        f"Machine: {m['nproc']} CPUs, {m['memory_gib']} GiB, Python {m['python']}, temporalio {m['temporalio']}; "
        f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end",
        "",
        "| figure | target | min | median | max | result |",
        "|---|---|---|---|---|---|",
        row("worker memory per cached workflow (MB)", "mb_per_cached_workflow", memory["mb_per_cached_workflow"], "MB"),
        row("worker CPU to wake an uncached parked customer (ms)", "cpu_ms_per_uncached_wake",
            wake["cpu_ms_per_uncached_wake"], "ms"),
        f"| worker CPU to wake a cached parked customer (ms), for comparison | - | "
        f"{wake['cpu_ms_per_cached_wake']['min']} | {wake['cpu_ms_per_cached_wake']['median']} | "
        f"{wake['cpu_ms_per_cached_wake']['max']} | measured |",
        *([f"| no-op floor: memory per cached workflow (MB), what the SDK holds for any workflow | - | "
           f"{floor['min']} | {floor['median']} | {floor['max']} | measured |"]
          if (floor := memory.get("noop_floor", {}).get("mb_per_cached_workflow")) else []),
        "",
        f"Memory: a worker with `--max-cached-workflows {memory['worker_max_cached_workflows']}`, "
        f"{memory['rss_fresh_mb']} MB fresh, {memory['rss_end_mb']} MB holding {memory['workflows_held']} parked "
        f"workflows ({memory['mb_per_cached_workflow_since_fresh']} MB each since fresh, warm-up included). Rounds: "
        + "; ".join(f"{r['rss_before_mb']} -> {r['rss_after_mb']} MB for {r['parked']}" for r in memory["rounds"]) + "."
        + (" The no-op floor the same way, on a `python -m bench.floor` worker: a workflow that ran one no-op activity "
           "and waits for a signal, under the product's runner, converter and codec."
           if memory.get("noop_floor") else ""),
        "",
        f"Wake: `refresh` on a worker with `--max-cached-workflows {wake['worker_max_cached_workflows']}`, "
        f"{wake['wakes_per_round']} customers a round, one after the other; each replays a history of "
        f"{wake['history_events_at_wake']} events. Iron calls per wake: "
        f"{wake['uncached_rounds'][0]['iron_calls']['per_wake']} ({wake['uncached_rounds'][0]['iron_calls']['by_request']}).",
    ]
    if other is not None:
        lines += [
            "",
            f"The same measures with the other workflow runner ({other['workflow_runner']}, "
            f"`{other['command']}`, {other['finished_at']}, load average {other['machine']['load_average_at_start']}): "
            f"{other['memory']['mb_per_cached_workflow']['median']} MB per cached workflow, "
            f"{other['wake']['cpu_ms_per_uncached_wake']['median']} ms to wake an uncached customer, "
            f"{other['wake']['cpu_ms_per_cached_wake']['median']} ms a cached one: the sandbox's share is the difference.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300, help="workflows parked per memory round (default 300)")
    parser.add_argument("--wakes", type=int, default=30, help="customers woken per round (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each measure (default 3, at least 1)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="an experiment: the workers run the workflows outside Temporal's sandbox "
                             "(results go to scale-unsandboxed.json and .md)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_ROOT / "scale")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.wakes < 1 or args.rounds < 1:
        parser.error("--customers, --wakes and --rounds must be at least 1")
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    command = "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:])
    facts = machine()
    began = time.monotonic()
    stack = MeasuredStack(StackConfig.ephemeral(fresh_dir(args.state_dir), autopilot=False, events=False))
    try:
        stack.start_temporal()
        stack.start_sandbox("--log-level", "warning")
        result = asyncio.run(measure(stack, args, log))
    finally:
        stack.stop()
    facts["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    run = {
        "command": command.strip(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - began, 1),
        "rounds": args.rounds,
        "customers_per_round": args.customers,
        "workflow_runner": "unsandboxed (experiment)" if args.unsandboxed else "sandboxed (the product's)",
        "targets": TARGETS,
        "machine": facts,
        **result,
    }
    run["verdicts"] = verdicts(run)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name, other_name = ("scale-unsandboxed", "scale") if args.unsandboxed else ("scale", "scale-unsandboxed")
    other_path = args.results_dir / f"{other_name}.json"
    other = json.loads(other_path.read_text()) if other_path.exists() else None
    if other is not None and "workflow_runner" not in other:
        other = None  # from before the runner was recorded
    (args.results_dir / f"{name}.json").write_text(json.dumps(run, indent=2) + "\n")
    (args.results_dir / f"{name}.md").write_text(markdown(run, other))
    print(json.dumps(run, indent=2) if args.json else markdown(run, other))
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

"""The benchmark: the product beside two floors, measured in one run on the same local dev
server. The same-work floor F (`bench/floor.py` `SameWorkOnboarding`) does the lifecycle's
external work the plain way with the same parts (Iron over HTTP, the receiver's hop, signed
events to the backend, the codec); the ratios are taken against it. The no-op floor (`BenchFloor`,
a workflow of no-op activities of the lifecycle's shape) stays as a second reference.

    python -m bench.benchmark [--lifecycles N] [--parked N] [--latency-samples N] [--smoke]
                              [--rounds R] [--concurrency C] [--state-dir D] [--results-dir R]

Phases, each alone on the machine:
  1. calibration: real lifecycles count what one lifecycle is (activities, webhooks signalled,
     signing updates, Iron requests); the no-op floor takes that shape.
  2. throughput: R rounds (three by default), each running N/R lifecycles of the product, then of
     the same-work floor, then of the no-op floor, C in flight (start-and-wait, which answers with
     the identification -> KYC approved at Iron -> webhooks through the receiver -> the partner's
     backend signs every document on the event that asks -> the Active event at the backend).
     Each side's round is measured by the CPU of every process, the Iron sandbox's request log
     and the dev server's own Prometheus counters (`/metrics`: persistence writes, matching
     dispatches, visibility writes), scraped before and after it. Throughput is reported as the
     median round and the slowest. No driver sends a workflow query; each counts its queries.
  3. history and billable actions (`bench/actions.py`) per lifecycle, every run summed.
  4. latency at 10/s, webhook to backend event: product and same-work floor = a status change
     made at Iron, then our own signed webhook POSTed to the receiver, until the partner's
     backend receives the phase event; no-op floor = a signal, one no-op activity, then the
     product's own `deliver_event` activity. Blocks alternate between the three.
  5. cost: actions per Active customer-year (`bench/cost.py`).
  6. memory: a fresh worker process with N real CustomerOnboarding workflows parked in
     AwaitingIdentification (KYC never completes: the autopilot is off); its VmRSS.

Prints one table (three columns, ratios against F, the targets with pass/MISS) and writes
`latest.json` and `latest.md` (`smoke.json`/`smoke.md` with --smoke) to the results directory.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.common import (
    DEFAULT_STATE_ROOT,
    connect,
    cpu_seconds,
    launch,
    machine,
    percentile,
    retrying,
    rss_mb,
    scrape_server,
    server_work,
)
from bench import cost
from bench.floor import (
    FLOOR_TASK_QUEUE,
    FLOOR_WORKFLOW,
    SAME_WORK_TASK_QUEUE,
    SAME_WORK_WORKFLOW,
    SIGNAL_EVENT,
    UPDATE_ACCEPT,
    UPDATE_STARTED,
    UPDATE_WAIT_PHASE,
    FloorShape,
    FloorState,
    SameWorkInput,
    Started,
)
from contracts.events import ACTIVITY_DELIVER_EVENT
from data_protection.documents import DocumentStore
from contracts.messages import UPDATE_WAIT_FOR
from demo.partner_backend import PartnerBackendClient
from demo.query_counter import QueryCounter
from demo.stack import REPO_ROOT, TRANSFER_QUEUE_READS_PER_SECOND, Process, Stack
from contracts.messages import OnboardingTimings, Phase, workflow_id_for

RESULTS_DIR = REPO_ROOT / "bench" / "results"
PARKED_TASK_QUEUE = "bench-parked"

# What the product must hold (`make bench`, three rounds, a 2-core machine): against the
# same-work floor F, and absolute.
TARGETS = {
    "throughput_ratio_min": 0.9,
    "history_ratio_max": 1.0,
    "history_events_max": 85,
    "worker_cpu_ratio_max": 1.15,
    "latency_p50_ratio_max": 1.1,
    "latency_p99_ratio_max": 1.2,
    "persistence_writes_max": 40,
    "actions_max": 22,
    "iron_calls_max": 9,
    "backfill_per_second_min": 100,
    "mb_per_cached_workflow_max": 0.10,
    "wake_cpu_ms_max": 25,
    "worker_rss_mb_max": 350.0,
}
# The parked worker's cache (worker.py's default): the workflows its memory figure divides by.
PARKED_CACHE_SIZE = 500

# Production timings: webhooks drive every step here, so no polling timer fires during a
# lifecycle, and what is measured is what the product does by default.
PRODUCT_TIMINGS = OnboardingTimings()
# Parked customers wait for a KYC that never comes. Production polls them from 1 minute out,
# backing off to once an hour; these start at that hourly steady state, so the parking phase
# (tens of minutes for 10,000 on a small machine) measures parked workflows rather than a
# polling storm that the first customers would raise while the last ones are still starting.
PARKED_TIMINGS = OnboardingTimings(poll_initial_seconds=OnboardingTimings().poll_max_seconds)


@dataclass
class Sizes:
    lifecycles: int
    parked: int
    latency_samples: int
    concurrency: int
    calibration: int
    history_sample: int
    rounds: int = 1
    rate_per_second: float = 10.0
    cost_customers: int = 10  # Active customers of each design watched for a scaled day


FULL = dict(lifecycles=300, parked=10_000, latency_samples=200, concurrency=20, calibration=3, history_sample=40, rounds=3)
SMOKE = dict(lifecycles=3, parked=20, latency_samples=5, concurrency=3, calibration=1, history_sample=3, cost_customers=2,
             rounds=3)


@dataclass
class Bench:
    stack: Stack
    client: Client
    control: Any
    sizes: Sizes
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    log: Callable[[str], None] = print
    backend: PartnerBackendClient | None = None
    queries: QueryCounter = field(default_factory=QueryCounter)  # every workflow query the driver sent
    # What the partner's backend received, per external id (product) or workflow id (floor).
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @functools.cached_property
    def documents(self) -> DocumentStore:
        """The store the stack's worker reads: the product's starts give the contact by
        reference there, as the HTTP API and the starter do."""
        return self.stack.documents()


async def follow_events(b: Bench, key: str, until: Callable[[dict[str, Any]], bool], *, deadline: float,
                        what: str) -> dict[str, Any]:
    """The first event from here on for `key` whose `data` satisfies `until`, as the partner's
    backend received it (a long poll on the backend, never a workflow query)."""
    assert b.backend is not None
    seen = b.events.setdefault(key, [])
    checked = len(seen)
    while True:
        for event in seen[checked:]:
            checked += 1
            if until(event["data"]):
                return event
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            last = seen[-1]["data"] if seen else None
            raise TimeoutError(f"{key}: {what} not reached in time; last event "
                               + (f"{last['phase']} customer={last.get('customer_status')}" if last else "none"))
        try:
            seen += await b.backend.events(key, after=len(seen), wait=max(0.1, min(20.0, remaining)))
        except Exception:  # noqa: BLE001 - asked again until the deadline
            await asyncio.sleep(0.2)


# --- history -----------------------------------------------------------------------------------


async def history_all_runs(client: Client, workflow_id: str) -> list[Any]:
    """Every event of every run of `workflow_id`, following continue-as-new back to the first."""
    events: list[Any] = []
    run_id: str | None = None
    for _ in range(100):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events.extend(history.events)
        previous = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not previous:
            return events
        run_id = previous
    raise RuntimeError(f"{workflow_id}: more than 100 runs")


def describe_history(events: list[Any]) -> dict[str, int]:
    kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)
    accepted = [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                for e in events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    return {
        "events": len(events),
        "runs": kinds["WORKFLOW_EXECUTION_STARTED"],
        "activities": kinds["ACTIVITY_TASK_SCHEDULED"],
        "signals": kinds["WORKFLOW_EXECUTION_SIGNALED"],
        "updates": kinds["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"],
        # Updates that only wait (the start-and-wait): the floor waits in one of its own too.
        "wait_updates": sum(1 for name in accepted if name in (UPDATE_WAIT_FOR, UPDATE_WAIT_PHASE, UPDATE_STARTED)),
        # Activities that POST an event to the partner's backend rather than call Iron.
        "event_deliveries": sum(
            1 for e in events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_DELIVER_EVENT
        ),
        "workflow_tasks": kinds["WORKFLOW_TASK_COMPLETED"],
        "timers": kinds["TIMER_STARTED"],
        "search_attribute_upserts": kinds["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"],
        "other_events": len(events) - sum(
            kinds[k] * n
            for k, n in (
                ("WORKFLOW_EXECUTION_STARTED", 1),
                ("ACTIVITY_TASK_SCHEDULED", 3),
                ("WORKFLOW_EXECUTION_SIGNALED", 1),
                ("WORKFLOW_EXECUTION_UPDATE_ACCEPTED", 2),
                ("WORKFLOW_TASK_COMPLETED", 3),
                ("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", 1),
            )
        ),
    }


async def histories(client: Client, workflow_ids: list[str]) -> dict[str, float]:
    described = [describe_history(await history_all_runs(client, wid)) for wid in workflow_ids]
    keys = described[0].keys()
    return {k: round(statistics.mean(d[k] for d in described), 2) for k in keys}


# --- the product lifecycle ---------------------------------------------------------------------


async def approved_to_active(b: "Bench", external_id: str, identification_id: str, *, deadline: float, what: str) -> None:
    """Iron's KYC decides: Iron sends its webhooks to the receiver, which signals the workflow;
    the partner's backend signs on the event that asks, and the Active event ends the lifecycle."""
    await b.control.set_identification_status(identification_id, "Approved")
    await follow_events(
        b, external_id, lambda d: d["phase"] == Phase.ACTIVE.value and d.get("customer_status") == "Active",
        deadline=deadline, what=what,
    )


async def product_lifecycle(
    b: Bench, external_id: str, *, timeout: float = 120.0, timings: OnboardingTimings = PRODUCT_TIMINGS
) -> float:
    """Start-and-wait (one round trip, answered with the identification), KYC approved at Iron,
    then the partner's backend takes it from its events: it signs on the one that asks, and
    the lifecycle ends when it receives the Active event."""
    from starter import start_onboarding

    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    result = await start_onboarding(
        b.client, external_id, email=f"{external_id}@example.com", timings=timings,
        task_queue=b.stack.config.task_queue, deliver_events=True, wait=True, documents=b.documents,
        wait_timeout=max(1.0, min(60.0, deadline - time.monotonic())),
    )
    view = result.state
    if view is None or not view.identification_id:
        raise RuntimeError(f"{external_id}: start-and-wait answered without an identification ({view})")
    await approved_to_active(b, external_id, view.identification_id, deadline=deadline, what="the Active event")
    return time.perf_counter() - started


# --- the floor lifecycle -----------------------------------------------------------------------


async def floor_lifecycle(b: Bench, workflow_id: str, shape: FloorShape, *, timeout: float = 120.0) -> float:
    """Started with an update that waits for the signals to be awaited (as the product's
    start-and-wait), the signals, then the updates, each waiting inside the workflow for its
    turn: no query, no polling."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    started = time.perf_counter()
    rpc = timedelta(seconds=timeout)
    operation = WithStartWorkflowOperation(
        FLOOR_WORKFLOW, shape, id=workflow_id, task_queue=FLOOR_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    await b.client.execute_update_with_start_workflow(
        UPDATE_WAIT_PHASE, "awaiting_signals", start_workflow_operation=operation, result_type=FloorState,
        rpc_timeout=rpc,
    )
    handle = await operation.workflow_handle()
    for n in range(shape.signals):
        await handle.signal(SIGNAL_EVENT, f"event-{n}")
    for n in range(shape.updates):
        await handle.execute_update(UPDATE_ACCEPT, f"document-{n}", result_type=str, rpc_timeout=rpc)
    return time.perf_counter() - started


# --- the same-work floor's lifecycle -----------------------------------------------------------


async def same_work_lifecycle(b: Bench, external_id: str, *, timeout: float = 120.0) -> float:
    """The product's lifecycle on the same-work floor, driven the same way: start-and-wait
    (answered with the identification), KYC approved at Iron, then the partner's backend signs
    on the event that asks and the lifecycle ends when it receives the Active event."""
    import contracts.search_attributes as sa
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    operation = WithStartWorkflowOperation(
        SAME_WORK_WORKFLOW, SameWorkInput(external_id=external_id, email=f"{external_id}@example.com"),
        id=workflow_id_for(external_id), task_queue=SAME_WORK_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ONBOARDING_PHASE, Phase.FINDING_CUSTOMER.value)]),
        memo={"phase": Phase.FINDING_CUSTOMER.value},
    )
    view = await b.client.execute_update_with_start_workflow(
        UPDATE_STARTED, start_workflow_operation=operation, result_type=Started,
        rpc_timeout=timedelta(seconds=max(1.0, min(60.0, deadline - time.monotonic()))),
    )
    if not view.identification_id:
        raise RuntimeError(f"{external_id}: the same-work floor answered without an identification ({view})")
    await approved_to_active(b, external_id, view.identification_id, deadline=deadline, what="the same-work floor's Active event")
    return time.perf_counter() - started


async def many(count: int, concurrency: int, one: Callable[[int], Awaitable[float]], *, timeout: float) -> tuple[float, list[float]]:
    """`count` runs of `one`, `concurrency` at a time, all within `timeout` seconds: the wall
    time and each run's duration."""
    gate = asyncio.Semaphore(concurrency)
    durations: list[float] = []

    async def guarded(n: int) -> None:
        async with gate:
            durations.append(await one(n))

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(guarded(n) for n in range(count))), timeout)
    return time.perf_counter() - started, durations


# The sides of every comparison, in the order their rounds alternate and their columns print.
SIDES = ("product", "same_work", "noop")
SIDE_NAMES = {"product": "product", "same_work": "same-work floor F", "noop": "no-op floor"}
# Each side's own worker process (the rest, dev server, sandbox, receiver, backend, API and
# driver, are shared and measured for every side alike).
WORKER_PROCESS = {"product": "worker", "same_work": "same-work-worker", "noop": "floor-worker"}


@dataclass
class Side:
    """One side of the throughput comparison, round by round."""

    lifecycles: int = 0
    seconds: float = 0.0
    durations: list[float] = field(default_factory=list)
    cpu: Counter = field(default_factory=Counter)
    server: Counter = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)
    queries: int = 0
    iron_requests: int = 0
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def summary(self, worker: str) -> dict[str, Any]:
        rates = [r["per_second"] for r in self.rounds]
        workers = [r["worker_cpu_seconds_per_lifecycle"] for r in self.rounds]
        return {
            "lifecycles": self.lifecycles,
            "seconds": round(self.seconds, 2),
            "per_second": round(statistics.median(rates), 3),  # the median round
            "per_second_min": round(min(rates), 3),
            "per_second_overall": round(self.lifecycles / self.seconds, 3),
            "lifecycle_seconds_p50": round(percentile(self.durations, 50), 3),
            "lifecycle_seconds_p99": round(percentile(self.durations, 99), 3),
            "cpu_seconds_per_lifecycle": {k: round(v / self.lifecycles, 4) for k, v in sorted(self.cpu.items())},
            "cpu_seconds_per_lifecycle_all": round(sum(self.cpu.values()) / self.lifecycles, 4),
            "worker_cpu_seconds_per_lifecycle": round(statistics.median(workers), 4),
            "worker_cpu_seconds_per_lifecycle_min": round(min(workers), 4),
            "worker_process": worker,
            "server": server_work(self.server, self.lifecycles),
            "server_by_round": [r["server"] for r in self.rounds],
            "iron_requests_per_lifecycle": round(self.iron_requests / self.lifecycles, 2),
            "rounds": self.rounds,
            "driver_queries": self.queries,
        }


def cpu_snapshot(stack: Stack) -> Counter:
    """CPU seconds so far of every stack process, and of this driver."""
    import resource

    snapshot = Counter()
    for name, process in stack.processes.items():
        if process.running:
            try:
                snapshot[name] = cpu_seconds(process.popen.pid)
            except OSError:
                pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    snapshot["driver"] = usage.ru_utime + usage.ru_stime
    return snapshot


# --- phases ------------------------------------------------------------------------------------


async def settle(b: Bench, seconds: float = 2.0) -> None:
    try:
        await b.control.flush_webhooks(timeout=30)
    except TimeoutError:
        pass
    await asyncio.sleep(seconds)


async def calibrate(b: Bench) -> dict[str, Any]:
    """What one real lifecycle is: counted from histories and the sandbox request log."""
    ids = [f"bench-cal-{b.run_id}-{n}" for n in range(b.sizes.calibration)]
    await b.control.clear_requests()
    for external_id in ids:
        await product_lifecycle(b, external_id)
    await settle(b)
    requests = await b.control.requests()
    shape = await histories(b.client, [workflow_id_for(x) for x in ids])
    activities, signals = round(shape["activities"]), round(shape["signals"])
    # The floor's own start waits in an update as the product's does; the rest are signings.
    updates = round(shape["updates"] - shape["wait_updates"])
    deliveries = round(shape["event_deliveries"])
    others = activities - deliveries  # the Iron calls
    floor = FloorShape(
        activities_first=max(0, others - signals - updates),
        signals=signals,
        signal_activities=min(signals, max(0, others - updates)),
        updates=updates,
        deliveries=deliveries,
        deliver_events=True,
    )
    return {
        "product_history": shape,
        "iron_requests_per_lifecycle": round(len(requests) / len(ids), 2),
        "floor_shape": floor.model_dump(),
    }


async def throughput(b: Bench, shape: FloorShape) -> dict[str, Any]:
    """Product, same-work floor and no-op floor in alternating rounds in one run, so that load
    from elsewhere on the machine falls on all alike; each round alone on the stack, measured by
    the CPU of every process, the Iron sandbox's request log and the dev server's own counters
    (scraped before the round and after its last webhooks settled)."""
    n, c, rounds = b.sizes.lifecycles, b.sizes.concurrency, b.sizes.rounds
    # Warm every worker (imports, caches, connections) before measuring.
    await floor_lifecycle(b, f"bench-floor-warm-{b.run_id}", shape)
    await same_work_lifecycle(b, f"bench-sw-warm-{b.run_id}")
    await product_lifecycle(b, f"bench-warm-{b.run_id}")
    await settle(b, 1.0)
    sides = {name: Side() for name in SIDES}
    for r in range(rounds):
        count = n // rounds + (1 if r < n % rounds else 0)
        if count == 0:
            continue
        for name in SIDES:
            side = sides[name]
            if name == "noop":
                ids = [f"bench-floor-{b.run_id}-{len(side.ids) + i}" for i in range(count)]
                one = lambda i, ids=ids: floor_lifecycle(b, ids[i], shape)  # noqa: E731
            elif name == "same_work":
                ids = [f"bench-sw-{b.run_id}-{len(side.ids) + i}" for i in range(count)]
                one = lambda i, ids=ids: same_work_lifecycle(b, ids[i])  # noqa: E731
            else:
                ids = [f"bench-product-{b.run_id}-{len(side.ids) + i}" for i in range(count)]
                one = lambda i, ids=ids: product_lifecycle(b, ids[i])  # noqa: E731
            b.log(f"  round {r + 1}/{rounds}: {count} {SIDE_NAMES[name]} lifecycles, {c} in flight")
            await b.control.clear_requests()
            queries_before = b.queries.total
            server_before = await scrape_server(b.stack)
            before = cpu_snapshot(b.stack)
            seconds, durations = await many(count, c, one, timeout=120 + count * 5.0)
            used = cpu_snapshot(b.stack)
            used.subtract(before)
            used = Counter({k: v for k, v in used.items() if v > 0})
            # The lifecycles' last webhooks land before the next round starts, not inside it.
            await settle(b, 1.0)
            server = await scrape_server(b.stack)
            server.subtract(server_before)
            iron = len(await b.control.requests())
            side.cpu.update(used)
            side.server.update(server)
            side.lifecycles += count
            side.seconds += seconds
            side.durations += durations
            side.ids += ids
            side.queries += b.queries.total - queries_before
            side.iron_requests += iron
            side.rounds.append({
                "round": r + 1, "lifecycles": count, "seconds": round(seconds, 3),
                "per_second": round(count / seconds, 3),
                "worker_cpu_seconds_per_lifecycle": round(used[WORKER_PROCESS[name]] / count, 4),
                "cpu_seconds_per_lifecycle_all": round(sum(used.values()) / count, 4),
                "server": server_work(server, count),
                "iron_requests_per_lifecycle": round(iron / count, 2),
            })
    summaries = {name: sides[name].summary(WORKER_PROCESS[name]) for name in SIDES}
    summaries["product"]["webhook_delivery_lag"] = await webhook_lag(b)

    sample = max(1, min(b.sizes.history_sample, n))
    b.log(f"  history: {sample} lifecycles of each")
    summaries["product"]["history"] = await histories(b.client, [workflow_id_for(x) for x in sides["product"].ids[:sample]])
    summaries["same_work"]["history"] = await histories(b.client, [workflow_id_for(x) for x in sides["same_work"].ids[:sample]])
    summaries["noop"]["history"] = await histories(b.client, sides["noop"].ids[:sample])
    summaries["same_work"]["actions"] = await cost.lifecycle_actions(
        b, [workflow_id_for(x) for x in sides["same_work"].ids[:sample]])
    summaries["noop"]["actions"] = await cost.lifecycle_actions(b, sides["noop"].ids[:sample])
    return summaries | {"ids": {name: sides[name].ids for name in SIDES}}


async def webhook_lag(b: Bench) -> dict[str, Any]:
    """How long Iron's webhooks waited between the change at Iron and the receiver's answer to
    their first delivery attempt (the sandbox sends one target's first attempts in order)."""
    emitted = {e["seq"]: e["at"] for e in await b.control.events()}
    lags = []
    for d in await b.control.deliveries():
        if d["kind"] == "delivery" and d["attempt"] == 1 and d["event_seq"] in emitted:
            lags.append(_seconds_between(emitted[d["event_seq"]], d["at"]))
    if not lags:
        return {"deliveries": 0}
    return {
        "deliveries": len(lags),
        "p50_ms": round(percentile(lags, 50) * 1000, 1),
        "p99_ms": round(percentile(lags, 99) * 1000, 1),
    }


def _seconds_between(a: str, b: str) -> float:
    parse = lambda x: datetime.fromisoformat(x.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def webhook_sampler(b: Bench, external_ids: list[str], http: httpx.AsyncClient,
                    latencies: list[float], failures: list[str]) -> Callable[[int], Awaitable[None]]:
    """Sample n: a status change at Iron (Active <-> Suspended), then our own signed webhook for
    it POSTed to the receiver; the latency runs from the POST until the partner's backend
    received the phase event that says so (its own clock, on this machine). The same for the
    product and the same-work floor: both are found by the receiver and read Iron."""
    from iron_client.webhooks import build_container, sign

    locks = {x: asyncio.Lock() for x in external_ids}
    secret = b.stack.secrets["webhook_secret"]
    url = f"{b.stack.receiver_url}/webhooks/iron"

    async def sample(n: int) -> None:
        external_id = external_ids[n % len(external_ids)]
        async with locks[external_id]:
            try:
                last = b.events[external_id][-1]["data"]  # the lifecycle followed it to Active
                new = "Suspended" if last.get("customer_status") == "Active" else "Active"
                customer_id = last.get("iron_customer_id") or ""
                await b.control.set_customer_status(customer_id, new)
                body = json.dumps(
                    build_container(
                        "customer_status", customer_id, "CustomerStatus", {"id": customer_id, "status": new},
                        timestamp=datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                    ),
                    separators=(",", ":"),
                ).encode()
                headers = sign(secret, body)
                started = time.time()
                response = await http.post(url, content=body, headers=headers)
                if response.status_code >= 300:
                    raise RuntimeError(f"receiver answered {response.status_code}: {response.text[:200]}")
                event = await follow_events(b, external_id, lambda d: d.get("customer_status") == new,
                                            deadline=time.monotonic() + 30, what=f"the {new} event")
                latencies.append(event["received_at"] - started)
            except Exception as exc:  # noqa: BLE001 - counted; the sample is lost
                failures.append(f"{type(exc).__name__}: {exc}")

    return sample


product_sampler = webhook_sampler  # its old name


def floor_sampler(b: Bench, workflow_ids: list[str], latencies: list[float],
                  failures: list[str]) -> Callable[[int], Awaitable[None]]:
    """Sample n: a signal, one no-op activity and the product's delivery activity, until the
    partner's backend received the no-op floor's event."""
    locks = {x: asyncio.Lock() for x in workflow_ids}

    async def sample(n: int) -> None:
        workflow_id = workflow_ids[n % len(workflow_ids)]
        value = f"status-{n}"
        async with locks[workflow_id]:
            started = time.time()
            try:
                await b.client.get_workflow_handle(workflow_id).signal(SIGNAL_EVENT, value)
                event = await follow_events(b, workflow_id, lambda d: d.get("customer_status") == value,
                                            deadline=time.monotonic() + 30, what=f"the floor's event {value}")
                latencies.append(event["received_at"] - started)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{type(exc).__name__}: {exc}")

    return sample


async def latency(b: Bench, ids: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Every side at `rate` per second, in alternating one-second blocks (product, same-work
    floor, no-op floor, each block drained before the next), so all meet the same background load."""
    # Iron's own deliveries of these changes would race ours: switch them off for this phase.
    await b.control.set_webhooks(drop_rate=1.0)
    results: dict[str, tuple[list[float], list[str]]] = {name: ([], []) for name in SIDES}
    seconds = Counter()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            samplers = {
                "product": webhook_sampler(b, ids["product"], http, *results["product"]),
                "same_work": webhook_sampler(b, ids["same_work"], http, *results["same_work"]),
                "noop": floor_sampler(b, ids["noop"], *results["noop"]),
            }
            block = max(1, int(b.sizes.rate_per_second))
            total = b.sizes.latency_samples
            for first in range(0, total, block):
                for name in SIDES:
                    seconds[name] += await paced(b, samplers[name], range(first, min(total, first + block)))
    finally:
        await b.control.set_webhooks(drop_rate=0.0)
    return {
        name: summarise_latency(*results[name], {"rate_per_second": b.sizes.rate_per_second,
                                                 "seconds": round(seconds[name], 2)})
        for name in SIDES
    }


async def paced(b: Bench, sample: Callable[[int], Awaitable[None]], numbers: range) -> float:
    """Start one sample every 1/rate seconds, whatever the earlier ones are doing; then wait
    for all of them (bounded)."""
    gap = 1.0 / b.sizes.rate_per_second
    tasks = []
    started = time.perf_counter()
    for k, n in enumerate(numbers):
        tasks.append(asyncio.create_task(sample(n)))
        if k < len(numbers) - 1:
            await asyncio.sleep(max(0.0, started + (k + 1) * gap - time.perf_counter()))
    await asyncio.wait_for(asyncio.gather(*tasks), 60 + len(numbers))
    return time.perf_counter() - started


def summarise_latency(latencies: list[float], failures: list[str], paced_result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": len(latencies), "failed": len(failures), **paced_result}
    if latencies:
        out.update(
            p50_ms=round(percentile(latencies, 50) * 1000, 1),
            p99_ms=round(percentile(latencies, 99) * 1000, 1),
            max_ms=round(max(latencies) * 1000, 1),
        )
    if failures:
        out["first_failure"] = failures[0][:300]
    return out


async def parked_memory(b: Bench) -> dict[str, Any]:
    """A fresh worker process; N real onboardings started on its task queue park waiting for a
    KYC that never completes; then its resident memory is read from /proc."""
    from starter import start_onboarding

    n = b.sizes.parked
    worker: Process = await asyncio.to_thread(
        b.stack.start_worker, "worker-parked", "--task-queue", PARKED_TASK_QUEUE
    )
    pid = worker.popen.pid
    await asyncio.sleep(2.0)
    baseline = rss_mb(pid)
    query = f"TaskQueue = '{PARKED_TASK_QUEUE}' AND OnboardingPhase = 'AwaitingIdentification' AND ExecutionStatus = 'Running'"
    gate = asyncio.Semaphore(50)
    started = time.perf_counter()
    deadline = time.monotonic() + 120 + n * 0.4

    async def park(i: int) -> None:
        external_id = f"park-{b.run_id}-{i:05d}"
        async with gate:
            await retrying(
                lambda: start_onboarding(
                    b.client, external_id, email=f"{external_id}@example.com", timings=PARKED_TIMINGS,
                    task_queue=PARKED_TASK_QUEUE, deliver_events=True, documents=b.documents,
                ),
                deadline=deadline, what=f"start {external_id}",
            )

    b.log(f"  parking {n} onboardings on a fresh worker (pid {pid}, {baseline['rss_mb']} MB at start)")
    await asyncio.gather(*(park(i) for i in range(n)))
    started_all = time.perf_counter() - started
    parked = 0
    last_report = time.monotonic()
    while True:
        parked = (await b.client.count_workflows(query)).count
        if parked >= n:
            break
        if time.monotonic() > deadline:
            break
        if time.monotonic() - last_report > 30:
            b.log(f"  {parked}/{n} parked, worker at {rss_mb(pid)['rss_mb']} MB")
            last_report = time.monotonic()
        await asyncio.sleep(2.0)
    seconds = time.perf_counter() - started
    await asyncio.sleep(3.0)  # let in-flight tasks drain before reading memory
    memory = rss_mb(pid)
    return {
        "parked_target": n,
        "parked": parked,
        "baseline_rss_mb": baseline["rss_mb"],
        **memory,
        "seconds_to_start": round(started_all, 1),
        "seconds_to_park": round(seconds, 1),
        "parked_per_second": round(parked / seconds, 1) if seconds else None,
        "poll_initial_seconds": PARKED_TIMINGS.poll_initial_seconds,
    }


# --- the whole run -----------------------------------------------------------------------------


def _start_floor_process(stack: Stack, name: str, *args: str) -> Process:
    process = Process(
        name,
        [sys.executable, "-m", "bench.floor", *args],
        stack.env(),
        stack.config.state_dir / "logs" / f"{name}.log",
    )
    stack.processes[process.name] = process
    process.start(wait=False)
    time.sleep(0.5)
    if not process.running:
        raise RuntimeError(f"{name} exited at start; see {process.log_path}")
    return process


def start_floor_worker(stack: Stack) -> Process:
    """The no-op floor's worker."""
    return _start_floor_process(stack, WORKER_PROCESS["noop"], "--task-queue", FLOOR_TASK_QUEUE)


def start_same_work_worker(stack: Stack) -> Process:
    """The same-work floor's worker (its workflows and Iron's rate-limited queue)."""
    return _start_floor_process(stack, WORKER_PROCESS["same_work"], "--same-work", "--task-queue", SAME_WORK_TASK_QUEUE)


def run(sizes: Sizes, state_dir: Path, *, log: Callable[[str], None] = print,
        database: str = "memory") -> dict[str, Any]:
    facts = machine() | {"temporal_database": database}
    started = time.monotonic()
    # The backend signs for the product's and the same-work floor's lifecycles (`bench-...`),
    # never for the parked ones.
    stack = launch(state_dir, autopilot=False, sign_prefixes=("bench-",), database_file=database == "file")
    try:
        start_floor_worker(stack)
        start_same_work_worker(stack)
        report = asyncio.run(_run(stack, sizes, log))
    finally:
        stack.stop()
    report["machine"] = facts
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


async def _run(stack: Stack, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    from iron_sandbox.testing import SandboxControl

    queries = QueryCounter()
    b = Bench(stack=stack, client=await connect(stack, queries), control=SandboxControl(stack.sandbox_root, timeout=60),
              sizes=sizes, log=log, backend=PartnerBackendClient(stack.partner_backend_url, timeout=30), queries=queries)
    log(f"calibration: {sizes.calibration} product lifecycle(s)")
    calibration = await calibrate(b)
    shape = FloorShape(**calibration["floor_shape"])
    log(f"  one lifecycle: {calibration['product_history']}; no-op floor shape {shape.model_dump()}")
    log(f"throughput: {sizes.rounds} rounds, each side in turn")
    tp = await throughput(b, shape)
    sampled = [workflow_id_for(x) for x in tp["ids"]["product"][: sizes.history_sample]]
    lifecycle_cost = await cost.lifecycle_actions(b, sampled)  # before the latency phase adds to them
    pool = min(len(tp["ids"]["product"]), 20)
    log(f"latency: {sizes.latency_samples} samples at {sizes.rate_per_second:g}/s each")
    before = queries.total
    lat = await latency(b, {name: tp["ids"][name][:pool] for name in SIDES})
    latency_queries = queries.total - before
    spent = await cost.measure(
        b, product_lifecycle, lifecycle_cost, customers=sizes.cost_customers,
        iron_per_lifecycle=tp["product"]["iron_requests_per_lifecycle"],
    )
    log(f"memory: {sizes.parked} parked")
    memory = await parked_memory(b)
    await b.backend.aclose()
    report = assemble(sizes, calibration, tp, lat, memory) | {"cost": spent}
    report["driver_queries"] = {
        "throughput_product": tp["product"]["driver_queries"],
        "throughput_floor": tp["noop"]["driver_queries"],
        "throughput_same_work": tp["same_work"]["driver_queries"],
        "latency": latency_queries,
        "total": queries.total,
        "by_query": dict(queries.by_query),
    }
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 3)


def _target(value: float | None, limit: float, *, at_least: bool = False) -> bool | None:
    if value is None:
        return None
    return value >= limit if at_least else value <= limit


def assemble(sizes: Sizes, calibration: dict, tp: dict, lat: dict, memory: dict) -> dict[str, Any]:
    product, same, noop = tp["product"], tp["same_work"], tp["noop"]
    without = lambda d: {k: v for k, v in d.items() if k not in ("history", "actions")}  # noqa: E731
    throughput_ratio = _ratio(product["per_second"], same["per_second"])
    history_ratio = _ratio(product["history"]["events"], same["history"]["events"])
    worker_ratio = _ratio(product["worker_cpu_seconds_per_lifecycle"], same["worker_cpu_seconds_per_lifecycle"])
    pl, fl, nl = lat["product"], lat["same_work"], lat["noop"]
    p50_ratio, p99_ratio = _ratio(pl.get("p50_ms"), fl.get("p50_ms")), _ratio(pl.get("p99_ms"), fl.get("p99_ms"))
    # Per-round throughput ratios (round r of the product against round r of F): the spread.
    round_ratios = [_ratio(p["per_second"], f["per_second"]) for p, f in zip(product["rounds"], same["rounds"])]
    cached = min(memory["parked"], PARKED_CACHE_SIZE)
    per_cached = round((memory["rss_mb"] - memory["baseline_rss_mb"]) / cached, 3) if cached else None
    targets = {
        "throughput": {"ratio": throughput_ratio, "round_ratios": round_ratios,
                       "pass": _target(throughput_ratio, TARGETS["throughput_ratio_min"], at_least=True)},
        "history": {"ratio": history_ratio,
                    "pass": bool(_target(history_ratio, TARGETS["history_ratio_max"]))
                    and bool(_target(product["history"]["events"], TARGETS["history_events_max"]))},
        "worker_cpu": {"ratio": worker_ratio, "pass": _target(worker_ratio, TARGETS["worker_cpu_ratio_max"])},
        "latency_p50": {"ratio": p50_ratio, "pass": _target(p50_ratio, TARGETS["latency_p50_ratio_max"]) and not pl["failed"]},
        "latency_p99": {"ratio": p99_ratio, "pass": _target(p99_ratio, TARGETS["latency_p99_ratio_max"]) and not pl["failed"]},
        "persistence_writes": {"value": product["server"]["persistence_writes"],
                               "pass": _target(product["server"]["persistence_writes"] or None,
                                               TARGETS["persistence_writes_max"])},
        "iron_calls": {"value": product["iron_requests_per_lifecycle"],
                       "pass": _target(product["iron_requests_per_lifecycle"], TARGETS["iron_calls_max"])},
        "memory_per_cached_workflow": {"value": per_cached,
                                       "pass": _target(per_cached, TARGETS["mb_per_cached_workflow_max"])},
    }
    return {
        "sizes": {k: getattr(sizes, k) for k in sizes.__dataclass_fields__},
        "calibration": calibration,
        "throughput": {
            "product": without(product),
            "same_work": without(same),
            "floor": without(noop),
            "ratio": throughput_ratio,
            "round_ratios": round_ratios,
            "ratio_noop": _ratio(product["per_second"], noop["per_second"]),
            "target_min": TARGETS["throughput_ratio_min"],
            "pass": bool(targets["throughput"]["pass"]),
        },
        "history_events_per_lifecycle": {
            "product": product["history"],
            "same_work": same["history"],
            "floor": noop["history"],
            "ratio": history_ratio,
            "ratio_noop": _ratio(product["history"]["events"], noop["history"]["events"]),
            "target_max": TARGETS["history_ratio_max"],
            "pass": targets["history"]["pass"],
        },
        "iron_calls_per_lifecycle": {
            "http_requests": product["iron_requests_per_lifecycle"],
            "same_work_http_requests": same["iron_requests_per_lifecycle"],
            "activities": round(product["history"]["activities"] - product["history"]["event_deliveries"], 2),
            "event_deliveries": product["history"]["event_deliveries"],
        },
        "actions_per_lifecycle": {"same_work": same["actions"], "floor": noop["actions"]},
        "latency": {
            "product_webhook_to_event": pl,
            "same_work_webhook_to_event": fl,
            "floor_signal_to_event": nl,
            "p50_ratio": p50_ratio,
            "p99_ratio": p99_ratio,
            "target_max": TARGETS["latency_p99_ratio_max"],
            "pass": bool(targets["latency_p99"]["pass"]),
        },
        "targets": targets,
        "worker_memory": {
            **memory,
            "mb_per_cached_workflow": per_cached,
            "cache_size": PARKED_CACHE_SIZE,
            "target_mb": TARGETS["worker_rss_mb_max"],
            "pass": memory["parked"] >= memory["parked_target"] and memory["rss_mb"] < TARGETS["worker_rss_mb_max"],
        },
    }


# --- report ------------------------------------------------------------------------------------


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:g}" if isinstance(x, (int, float)) else str(x))


def _verdict(ok: bool | None, figure: Any = None) -> str:
    if ok is None:
        return "not measured"
    return "pass" if ok else ("MISS" if figure is None else f"MISS ({_fmt(figure)})")


def rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """Product, the same-work floor F and the no-op floor side by side; ratios against F; the
    issue's targets, each with its verdict (MISS with the figure when missed)."""
    tp, hist, iron = report["throughput"], report["history_events_per_lifecycle"], report["iron_calls_per_lifecycle"]
    lat, mem, t = report["latency"], report["worker_memory"], report["targets"]
    p, f, n = tp["product"], tp["same_work"], tp["floor"]
    pl, fl, nl = lat["product_webhook_to_event"], lat["same_work_webhook_to_event"], lat["floor_signal_to_event"]
    queries = report.get("driver_queries", {})
    actions = report.get("cost", {}).get("lifecycle", {}).get("actions")
    f_actions, n_actions = report["actions_per_lifecycle"]["same_work"]["actions"], report["actions_per_lifecycle"]["floor"]["actions"]
    ps, fs, ns = p["server"], f["server"], n["server"]

    def rate(side: dict) -> str:
        return f"{_fmt(side['per_second'])} (min {_fmt(side['per_second_min'])})"

    ratio_spread = [r for r in tp["round_ratios"] if r is not None]
    spread = f" (rounds {min(ratio_spread):g}-{max(ratio_spread):g})" if ratio_spread else ""
    return [
        ("metric", "product", "same-work floor F", "no-op floor", "product / F", "target", "result"),
        ("throughput, median round (lifecycles/s)", rate(p), rate(f), rate(n), _fmt(tp["ratio"]) + spread,
         f">= {TARGETS['throughput_ratio_min']:g}x F", _verdict(t["throughput"]["pass"], tp["ratio"])),
        ("history events per lifecycle", _fmt(hist["product"]["events"]), _fmt(hist["same_work"]["events"]),
         _fmt(hist["floor"]["events"]), _fmt(hist["ratio"]),
         f"<= {TARGETS['history_ratio_max']:g}x F and <= {TARGETS['history_events_max']:g}",
         _verdict(t["history"]["pass"], hist["product"]["events"])),
        ("worker CPU per lifecycle (ms, median round)", _fmt(round(p["worker_cpu_seconds_per_lifecycle"] * 1000, 1)),
         _fmt(round(f["worker_cpu_seconds_per_lifecycle"] * 1000, 1)),
         _fmt(round(n["worker_cpu_seconds_per_lifecycle"] * 1000, 1)), _fmt(t["worker_cpu"]["ratio"]),
         f"<= {TARGETS['worker_cpu_ratio_max']:g}x F", _verdict(t["worker_cpu"]["pass"], t["worker_cpu"]["ratio"])),
        ("CPU per lifecycle, every process (ms)", _fmt(round(p["cpu_seconds_per_lifecycle_all"] * 1000, 1)),
         _fmt(round(f["cpu_seconds_per_lifecycle_all"] * 1000, 1)), _fmt(round(n["cpu_seconds_per_lifecycle_all"] * 1000, 1)),
         _fmt(_ratio(p["cpu_seconds_per_lifecycle_all"], f["cpu_seconds_per_lifecycle_all"])), "-", "measured"),
        ("webhook-to-backend-event p50 (ms)", _fmt(pl.get("p50_ms")), _fmt(fl.get("p50_ms")), _fmt(nl.get("p50_ms")),
         _fmt(lat["p50_ratio"]), f"<= {TARGETS['latency_p50_ratio_max']:g}x F",
         _verdict(t["latency_p50"]["pass"], lat["p50_ratio"])),
        ("webhook-to-backend-event p99 (ms)", _fmt(pl.get("p99_ms")), _fmt(fl.get("p99_ms")), _fmt(nl.get("p99_ms")),
         _fmt(lat["p99_ratio"]), f"<= {TARGETS['latency_p99_ratio_max']:g}x F",
         _verdict(t["latency_p99"]["pass"], lat["p99_ratio"])),
        ("persistence writes per lifecycle", _fmt(ps["persistence_writes"]), _fmt(fs["persistence_writes"]),
         _fmt(ns["persistence_writes"]), _fmt(_ratio(ps["persistence_writes"], fs["persistence_writes"])),
         f"<= {TARGETS['persistence_writes_max']:g}", _verdict(t["persistence_writes"]["pass"], ps["persistence_writes"])),
        ("matching dispatches per lifecycle", _fmt(ps["matching_dispatches"]), _fmt(fs["matching_dispatches"]),
         _fmt(ns["matching_dispatches"]), _fmt(_ratio(ps["matching_dispatches"], fs["matching_dispatches"])), "-", "measured"),
        ("visibility writes per lifecycle", _fmt(ps["visibility_writes"]), _fmt(fs["visibility_writes"]),
         _fmt(ns["visibility_writes"]), _fmt(_ratio(ps["visibility_writes"], fs["visibility_writes"])), "-", "measured"),
        ("billable actions per onboarded customer", _fmt(actions), _fmt(f_actions), _fmt(n_actions),
         _fmt(_ratio(actions, f_actions)), f"<= {TARGETS['actions_max']:g}",
         _verdict(_target(actions, TARGETS["actions_max"]), actions)),
        ("Iron calls per onboarded customer (HTTP)", _fmt(iron["http_requests"]), _fmt(iron["same_work_http_requests"]),
         "0", _fmt(_ratio(iron["http_requests"], iron["same_work_http_requests"])), f"<= {TARGETS['iron_calls_max']:g}",
         _verdict(t["iron_calls"]["pass"], iron["http_requests"])),
        ("event deliveries per lifecycle", _fmt(iron["event_deliveries"]), _fmt(hist["same_work"]["event_deliveries"]),
         _fmt(hist["floor"]["event_deliveries"]), "-", "-", "measured"),
        ("all activities per lifecycle", _fmt(hist["product"]["activities"]), _fmt(hist["same_work"]["activities"]),
         _fmt(hist["floor"]["activities"]), "-", "-", "measured"),
        ("workflow queries the drivers sent", _fmt(queries.get("throughput_product", 0) + queries.get("latency", 0)),
         _fmt(queries.get("throughput_same_work")), _fmt(queries.get("throughput_floor")), "-", "0",
         _verdict(queries.get("total") == 0)),
        # Each its own command, on a stack of its own: bench/results/backfill.md and scale.md.
        ("backfill (customers/s)", "not measured here", "-", "-", "-", f">= {TARGETS['backfill_per_second_min']:g}",
         "python -m bench.backfill_rate"),
        (f"MB per cached workflow ({min(mem['parked'], mem['cache_size'])} parked, RSS growth)",
         _fmt(mem["mb_per_cached_workflow"]), "-", "-", "-", f"<= {TARGETS['mb_per_cached_workflow_max']:g}",
         _verdict(t["memory_per_cached_workflow"]["pass"], mem["mb_per_cached_workflow"])),
        ("CPU to wake an uncached parked customer (ms)", "not measured here", "-", "-", "-",
         f"<= {TARGETS['wake_cpu_ms_max']:g}", "python -m bench.scale"),
        (f"worker RSS, {mem['parked']} parked (MB)", _fmt(mem["rss_mb"]), "-", "-", "-", f"< {mem['target_mb']:g}",
         _verdict(mem["pass"])),
    ]


def _text(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def text_table(report: dict[str, Any]) -> str:
    tables = [_text(rows(report))] + ([_text(cost.cost_rows(report["cost"]))] if "cost" in report else [])
    return "\n\n".join(tables)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    table = rows(report)
    lines = [
        f"# Benchmark ({report['mode']})",
        "",
        f"Command: `{report['command']}`  ",
        f"Run: {report['finished_at']}, {report['seconds']} s  ",
        f"Machine: {m['nproc']} CPUs, {m['memory_gib']} GiB memory, Python {m['python']}, "
        f"temporalio {m['temporalio']}, {m['platform']}; load average at start {m['load_average_at_start']}  ",
        f"Dev server: SQLite {'in memory' if m['temporal_database'] == 'memory' else 'in a file'}, "
        f"transfer queue read up to {TRANSFER_QUEUE_READS_PER_SECOND} times a second",
        "",
        "| " + " | ".join(table[0]) + " |",
        "|" + "|".join("---" for _ in table[0]) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
    if "cost" in report:
        spent = cost.cost_rows(report["cost"])
        lines += ["", "| " + " | ".join(spent[0]) + " |", "|" + "|".join("---" for _ in spent[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in spent[1:]]
        c = report["cost"]
        lines += [
            "",
            f"Actions per lifecycle by kind (Temporal Cloud's billing, `bench/actions.py`): product "
            f"{c['lifecycle']['by_kind']}, same-work floor {report['actions_per_lifecycle']['same_work']['by_kind']}. "
            f"Active day: {c['active_day']}. Fleet pass: {c['fleet_pass']}.",
        ]
    hist = report["history_events_per_lifecycle"]
    tp = report["throughput"]
    mem = report["worker_memory"]
    sides = (("product", tp["product"]), ("same-work floor", tp["same_work"]), ("no-op floor", tp["floor"]))
    lines += [
        "",
        f"Rounds: {report['sizes']['rounds']}, alternating product, same-work floor, no-op floor; "
        f"throughput is each side's median round (its slowest round in brackets); per-round ratios "
        f"product / F {tp['round_ratios']}. Per round: "
        + "; ".join(f"{name} {[ (r['per_second'], r['worker_cpu_seconds_per_lifecycle']) for r in side['rounds']]}"
                    for name, side in sides)
        + " (lifecycles/s, worker CPU-s per lifecycle).",
        "",
        "What the dev server did per lifecycle, from its own `/metrics` scraped before and after each "
        "round (persistence writes: `CreateWorkflowExecution`, `UpdateWorkflowExecution`, "
        "`ConflictResolveWorkflowExecution`; matching dispatches: `AddActivityTask`, `AddWorkflowTask`; "
        "visibility writes: started, upserted, closed): "
        + "; ".join(f"{name} {side['server']}" for name, side in sides) + ".",
        "",
        f"History per lifecycle (mean over {report['sizes']['history_sample']} lifecycles, every run summed): "
        f"product {hist['product']}, same-work floor {hist['same_work']}, no-op floor {hist['floor']}.",
        "",
        "CPU seconds per lifecycle by process: "
        + "; ".join(f"{name} {side['cpu_seconds_per_lifecycle']}" for name, side in sides) + ".",
        "",
        "Lifecycle duration p50/p99: "
        + ", ".join(f"{name} {side['lifecycle_seconds_p50']}/{side['lifecycle_seconds_p99']} s" for name, side in sides)
        + f" ({report['sizes']['concurrency']} in flight); workflow queries the drivers sent: {report.get('driver_queries')}. "
        f"Iron's webhook delivery lag (change at Iron to the receiver's answer): {tp['product']['webhook_delivery_lag']}.",
        "",
        "Webhook-to-backend-event: product and same-work floor, from our signed webhook's POST to the "
        "receiver until the partner's backend received the phase event (both read Iron, both go "
        "through the receiver); no-op floor, from a signal until the backend received the event it sends "
        "after one no-op activity with the product's own `deliver_event` activity. Product "
        f"{report['latency']['product_webhook_to_event']}, same-work floor {report['latency']['same_work_webhook_to_event']}, "
        f"no-op floor {report['latency']['floor_signal_to_event']}.",
        "",
        f"Parked: {mem['parked']} of {mem['parked_target']} in {mem['seconds_to_park']} s; worker RSS "
        f"{mem['baseline_rss_mb']} MB at start, {mem['rss_mb']} MB parked, peak {mem['peak_rss_mb']} MB; "
        f"{mem['mb_per_cached_workflow']} MB per cached workflow (the growth over the "
        f"{min(mem['parked'], mem['cache_size'])} the cache holds).",
        "",
        f"No-op floor shape (from calibration): {report['calibration']['floor_shape']}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--lifecycles", type=int, default=None, help=f"default {FULL['lifecycles']}")
    parser.add_argument("--parked", type=int, default=None, help=f"default {FULL['parked']}")
    parser.add_argument("--latency-samples", type=int, default=None, help=f"default {FULL['latency_samples']}")
    parser.add_argument("--concurrency", type=int, default=None, help=f"lifecycles in flight (default {FULL['concurrency']})")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"alternating rounds of the three sides (default {FULL['rounds']})")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, well under two minutes")
    parser.add_argument(
        "--database", choices=("memory", "file"), default="memory",
        help="the dev server's SQLite: in memory (default) or a file, whose synced writes this "
             "machine's disk makes the slowest part of every transaction",
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_ROOT / "bench")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    base = dict(SMOKE if args.smoke else FULL)
    for name in ("lifecycles", "parked", "latency_samples", "concurrency", "rounds"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1")
            base[name] = value
    args.sizes = Sizes(**base)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    report = run(args.sizes, args.state_dir, log=lambda line: print(line, flush=True), database=args.database)
    report["mode"] = "smoke" if args.smoke else "full"
    report["command"] = " ".join(["python -m bench.benchmark", *argv])
    report["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    name = "smoke" if args.smoke else "latest"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results_dir / f"{name}.md").write_text(markdown(report))
    print()
    print(text_table(report))
    print(f"\nresults: {args.results_dir / (name + '.json')}, {args.results_dir / (name + '.md')}")
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

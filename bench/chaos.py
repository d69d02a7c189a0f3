"""The chaos suite: whole customer lifecycles through the real stack while parts of it fail.

    python -m bench.chaos [--customers N] [--scenarios a,b] [--state-dir D] [--concurrency C]

Each scenario brings up a fresh stack (the Temporal dev server with a database file, the Iron
sandbox with its autopilot completing hosted KYC, the webhook receiver, the partner's backend
that receives the engine's signed events, worker processes), takes N customers through start
-> KYC approved -> every document signed -> Active (every third one is then reverted by Iron's
compliance to IdentificationRequired and must come back to Active in cycle 2), while the
scenario's fault runs. The driver follows each customer by the events its backend received
(it asks the backend, never a workflow query, and counts the queries it sends: 0); the backend
signs the documents an event says are required. Then Iron's side is checked through the
sandbox's state and request log, and the backend's side through what it received:

  - every customer reached its expected state (the engine's events and Iron agree);
  - every customer's events arrived complete and in order (sequences 1, 2, 3... with no gap,
    each under its own webhook-id, every refused attempt back later under the same id);
  - exactly one Iron customer per external id;
  - one identification per cycle: the one we created in cycle 1, and in cycle 2 only the
    step-up Iron created itself (adopted, never duplicated);
  - one signing per document (content id);
  - the fault really happened (errors injected, responses lost, workers killed, ...).

Prints a table and exits non-zero if any scenario fails. At most `--concurrency` customers are
in flight at once, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable

from temporalio.client import Client

from bench.common import DEFAULT_STATE_ROOT, connect, describe, launch, retrying
from contracts.events import event_id
from contracts.messages import OnboardingState, OnboardingTimings, Phase, workflow_id_for
from data_protection.documents import DocumentStore
from demo.partner_backend import PartnerBackendClient
from demo.query_counter import QueryCounter
from demo.stack import Process, Stack

# Seconds, not production's minutes and hours: a lost webhook costs one to three seconds.
CHAOS_TIMINGS = OnboardingTimings(
    poll_initial_seconds=1,
    poll_max_seconds=3,
    poll_backoff=1.5,
    active_backstop_seconds=30,  # no fleet pass runs in a scenario: a lost reversion webhook costs 30 s
    parked_reconcile_seconds=10,
    activity_timeout_seconds=5,
    activity_retry_initial_seconds=0.5,
    activity_retry_max_seconds=3,
    event_retry_max_seconds=10,
)
# Seconds, not production's minutes and hours: a customer whose event was refused eight times in
# a row (30% 500s and outages in `backend-down`) would otherwise wait past its deadline.
CHAOS_EVENTS_RETRY_SCHEDULE = "0.5,1,2,5"
# The sandbox loses the response of a replayed (idempotent) answer as readily as the first one,
# so at a rate of 1.0 no POST is ever answered and nothing can converge. At 0.8 a POST needs
# five tries on average and every customer converges well within its deadline (--lost-rate
# tries others).
LOST_RESPONSE_RATE = 0.8
REVERT_EVERY = 3  # customers 0, 3, 6, ... are reverted after reaching Active
BAD_PHASES = {Phase.DECLINED, Phase.NEEDS_ATTENTION, Phase.ARCHIVED, Phase.SUSPENDED, Phase.USER_REQUIRED}
BAD_PHASE_NAMES = {p.value for p in BAD_PHASES}
SIGN_PREFIX = "chaos-"  # the backend signs for these customers


# --- plan and outcome ------------------------------------------------------------------------------


@dataclass
class Customer:
    index: int
    external_id: str
    revert: bool
    state: OnboardingState | None = None  # as the newest event the backend received shows it
    error: str | None = None
    seconds: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)  # as the backend received them

    @property
    def expected_cycle(self) -> int:
        return 2 if self.revert else 1

    @property
    def reached(self) -> bool:
        s = self.state
        return (
            self.error is None
            and s is not None
            and s.phase == Phase.ACTIVE
            and s.customer_status == "Active"
            and s.cycle == self.expected_cycle
        )


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    customers: int
    reached: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.reached == self.customers and self.duplicates == 0 and all(
            c.ok for c in self.checks
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "customers": self.customers,
            "reached_expected_state": self.reached,
            "duplicates_at_iron": self.duplicates,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "driver_queries": self.evidence.get("driver_queries"),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "evidence": self.evidence,
            "failures": self.failures[:20],
            "error": self.error,
        }


# --- the run context -----------------------------------------------------------------------------------


@dataclass
class Run:
    stack: Stack
    client: Client
    control: Any  # iron_sandbox.testing.SandboxControl
    timings: OnboardingTimings
    deadline_per_customer: float
    rng: random.Random
    done: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    evidence: Counter = field(default_factory=Counter)
    windows: list[tuple[float, float]] = field(default_factory=list)  # wall-clock fault windows
    lost_rate: float = LOST_RESPONSE_RATE
    backend: PartnerBackendClient | None = None
    queries: QueryCounter = field(default_factory=QueryCounter)
    plan: list[Customer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # reported with the scenario's

    @functools.cached_property
    def documents(self) -> DocumentStore:
        """Where the starts give each customer's contact by reference, as the HTTP API does."""
        return self.stack.documents()


# --- one customer ----------------------------------------------------------------------------------


def state_of(data: dict[str, Any]) -> OnboardingState:
    """The customer as an event's `data` shows it."""
    return OnboardingState(
        external_id=data["external_id"],
        phase=Phase(data["phase"]),
        cycle=data["cycle"],
        customer_status=data.get("customer_status"),
        identification_status=data.get("identification_status"),
        iron_customer_id=data.get("iron_customer_id"),
        identification_url=data.get("identification_url"),
    )


async def follow(run: Run, customer: Customer, until: Callable[[dict[str, Any]], bool], *, deadline: float,
                 what: str) -> dict[str, Any]:
    """The `data` of the first event, from here on, for which `until` holds or whose phase is a
    bad one, as the partner's backend received it (a long poll on the backend; it may be
    refusing connections for a while, which only delays the answer)."""
    assert run.backend is not None
    checked = len(customer.events)
    while True:
        for event in customer.events[checked:]:
            checked += 1
            data = event["data"]
            customer.state = state_of(data)
            if data["phase"] in BAD_PHASE_NAMES or until(data):
                return data
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            seen = describe(customer.state) if customer.state else "no event"
            raise TimeoutError(f"{customer.external_id}: {what} not reached in time; last {seen}")
        try:
            customer.events += await run.backend.events(
                customer.external_id, after=len(customer.events), wait=max(0.1, min(20.0, remaining))
            )
        except Exception:  # noqa: BLE001 - the backend is down or restarting: ask again
            await asyncio.sleep(0.3)


async def drive_customer(run: Run, customer: Customer) -> None:
    """Start -> Active (the backend signs whenever an event asks); for a reverted customer,
    Iron's compliance reverts it and it must come back to Active in cycle 2. Bounded."""
    from starter import start_onboarding

    started = time.monotonic()
    deadline = started + run.deadline_per_customer
    try:
        await retrying(
            lambda: start_onboarding(
                run.client,
                customer.external_id,
                email=f"{customer.external_id}@example.com",
                name=f"Chaos {customer.index}",
                timings=run.timings,
                task_queue=run.stack.config.task_queue,
                deliver_events=True,
                documents=run.documents,
            ),
            deadline=deadline,
            what="start",
        )
        data = await reach_active(run, customer, cycle=1, deadline=deadline)
        if customer.revert:
            await revert_and_complete_step_up(run, customer, data, deadline=deadline)
            await reach_active(run, customer, cycle=2, deadline=deadline)
    except Exception as exc:  # noqa: BLE001 - reported per customer
        customer.error = f"{type(exc).__name__}: {exc}"
    finally:
        customer.seconds = time.monotonic() - started
        run.done += 1


async def revert_and_complete_step_up(run: Run, customer: Customer, active: dict[str, Any], *, deadline: float) -> None:
    """Iron's compliance reverts the customer and opens a step-up identification. The customer
    starts on it at once (Processed, which also keeps the autopilot off it) and finishes it
    through the hosted url only once an event shows it in cycle 2: so the reversion is always
    observed, however slow Iron is, instead of being undone before anyone looked."""
    import httpx

    revert = await retrying(
        lambda: run.control.set_customer_status(active["iron_customer_id"], "IdentificationRequired"),
        deadline=deadline,
        what="revert at Iron",
    )
    step_up = (revert.get("identification") or {}).get("id")
    if step_up is None:
        raise RuntimeError(f"{customer.external_id}: Iron opened no step-up identification on reversion")
    await run.control.set_identification_status(step_up, "Processed")
    waiting = await follow(
        run, customer,
        # The hosted url names the identification (`.../hosted/kyc/<id>`).
        lambda d: d["cycle"] == 2 and d["phase"] == Phase.AWAITING_IDENTIFICATION.value
        and (d.get("identification_url") or "").rstrip("/").endswith(step_up),
        deadline=deadline, what="the step-up identification adopted in cycle 2",
    )
    if waiting["phase"] in BAD_PHASE_NAMES or not waiting.get("identification_url"):
        raise RuntimeError(f"{customer.external_id}: no step-up url to complete; {describe(state_of(waiting))}")

    async def complete() -> None:
        async with httpx.AsyncClient(timeout=15) as http:
            response = await http.post(f"{waiting['identification_url']}/complete", data={"decision": "approve"})
            response.raise_for_status()

    await retrying(complete, deadline=deadline, what="complete the step-up through its hosted url")
    run.evidence["step_ups_completed_through_url"] += 1


async def reach_active(run: Run, customer: Customer, *, cycle: int, deadline: float) -> dict[str, Any]:
    data = await follow(
        run, customer,
        lambda d: d["cycle"] == cycle and d["phase"] == Phase.ACTIVE.value and d.get("customer_status") == "Active",
        deadline=deadline, what=f"Active in cycle {cycle}",
    )
    if data["phase"] in BAD_PHASE_NAMES:
        raise RuntimeError(f"{customer.external_id} stopped in {describe(state_of(data))}")
    return data


# --- scenarios -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    proves: str
    workers: tuple[str, ...] = ("worker",)
    timings: OnboardingTimings = field(default_factory=lambda: CHAOS_TIMINGS)
    setup: Callable[[Run], Awaitable[None]] | None = None
    disrupt: Callable[[Run], Awaitable[None]] | None = None
    evidence_checks: Callable[[Run, "IronView"], list[Check]] | None = None
    # Checks that also read what the partner's backend received.
    backend_checks: Callable[[Run, "IronView", dict[str, Any], list[Customer]], list[Check]] | None = None


async def _sleep_or_stop(run: Run, seconds: float) -> bool:
    """False once the run is over."""
    try:
        await asyncio.wait_for(run.stop.wait(), seconds)
        return False
    except asyncio.TimeoutError:
        return True


# iron-errors ------------------------------------------------------------------------------------------


async def iron_errors_setup(run: Run) -> None:
    await run.control.set_faults(error_rate=0.3, error_statuses=[500, 503, 429], retry_after_seconds=1)


def iron_errors_checks(run: Run, iron: "IronView") -> list[Check]:
    errors = Counter(r["status_code"] for r in iron.requests if r.get("fault") == "error")
    run.evidence.update({f"injected_{code}": n for code, n in errors.items()})
    total = sum(errors.values())
    share = total / max(1, len(iron.requests))
    return [Check("errors injected", total > 0 and set(errors) >= {500, 503, 429},
                  f"{total} of {len(iron.requests)} requests ({share:.0%}) answered {dict(errors)}")]


# lost-responses -----------------------------------------------------------------------------------------

async def lost_responses_setup(run: Run) -> None:
    await run.control.set_faults(lose_response_rate=run.lost_rate, lose_response_methods=["POST"])


def lost_responses_checks(run: Run, iron: "IronView") -> list[Check]:
    run.evidence["lose_response_rate"] = run.lost_rate
    posts = [r for r in iron.requests if r["method"] == "POST"]
    lost = [r for r in posts if r.get("lost_response")]
    replayed = [r for r in posts if r.get("replayed")]
    run.evidence.update(posts=len(posts), lost_responses=len(lost), replayed_posts=len(replayed))
    return [
        Check("responses lost after taking effect", len(lost) > 0, f"{len(lost)} of {len(posts)} POSTs lost their response"),
        Check("retries answered from Iron's idempotency store", len(replayed) > 0, f"{len(replayed)} POSTs replayed"),
    ]


# latency ----------------------------------------------------------------------------------------------

LATENCY_MS = 3000.0  # past the activity timeout below
LATENCY_TIMINGS = CHAOS_TIMINGS.model_copy(update={"activity_timeout_seconds": 1.5})


async def latency_disrupt(run: Run) -> None:
    """Iron turns slow for a while, then recovers, over and over: every request that arrives
    in a slow window waits 3 s, past the 1.5 s activity timeout."""
    while True:
        if not await _sleep_or_stop(run, run.rng.uniform(1.5, 3.0)):
            return
        start = time.time()
        await run.control.set_faults(latency_ms=LATENCY_MS)
        if not await _sleep_or_stop(run, run.rng.uniform(1.0, 2.0)):
            await run.control.clear_faults()
            run.windows.append((start, time.time()))
            return
        await run.control.clear_faults()
        run.windows.append((start, time.time()))
        run.evidence["slow_windows"] += 1


def latency_checks(run: Run, iron: "IronView") -> list[Check]:
    def slow(entry: dict[str, Any]) -> bool:
        at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
        return any(a <= at <= b for a, b in run.windows)

    slowed = sum(1 for r in iron.requests if slow(r))
    run.evidence.update(requests=len(iron.requests), slowed_requests=slowed)
    return [Check("requests slowed past the activity timeout", slowed > 0,
                  f"{slowed} of {len(iron.requests)} requests arrived in a {LATENCY_MS / 1000:g} s window "
                  f"(activity timeout {LATENCY_TIMINGS.activity_timeout_seconds:g} s)")]


# webhooks ---------------------------------------------------------------------------------------------


async def webhooks_setup(run: Run) -> None:
    await run.control.set_webhooks(drop_rate=0.5, duplicate=2, reorder=True, replay_stale=True)


def webhooks_checks(run: Run, iron: "IronView") -> list[Check]:
    d = iron.deliveries
    dropped = sum(1 for x in d if x["outcome"] == "dropped")
    duplicates = sum(1 for x in d if x["kind"] == "duplicate" and x["outcome"] == "delivered")
    stale = [x for x in d if x["kind"] == "stale_replay"]
    stale_accepted = sum(1 for x in stale if x["outcome"] == "accepted")
    run.evidence.update(dropped=dropped, duplicates_delivered=duplicates, stale_replays=len(stale),
                        stale_accepted=stale_accepted)
    return [
        Check("half the webhooks dropped", dropped > 0, f"{dropped} of {len(iron.events)} events never sent"),
        Check("duplicates delivered", duplicates > 0, f"{duplicates} extra copies accepted"),
        Check("stale replays refused by the receiver", len(stale) > 0 and stale_accepted == 0,
              f"{len(stale)} stale replays, {stale_accepted} accepted"),
    ]


# worker-kill ------------------------------------------------------------------------------------------


async def worker_kill_disrupt(run: Run) -> None:
    """worker-2 is SIGKILLed for good early on; worker-1 is SIGKILLed at random moments after
    that and restarted each time. The first kill of each comes within 2 s, while even a few
    customers (a lifecycle takes about 3 s here) are still mid-step. Each later kill comes
    1.5 to 4 s after the restarted worker is polling again, not after its restart was asked
    for: a worker's start-up (imports, connecting) takes a machine-dependent second or more,
    and counting it would leave a slow machine's fleet without a worker most of the time."""
    processes = run.stack.processes
    if not await _sleep_or_stop(run, run.rng.uniform(0.5, 1.0)):
        return
    await asyncio.to_thread(processes["worker-2"].kill)
    run.evidence["worker-2 killed for good"] += 1
    pause = run.rng.uniform(0.3, 1.0)
    while True:
        if not await _sleep_or_stop(run, pause):
            return
        pause = run.rng.uniform(1.5, 4.0)
        await asyncio.to_thread(processes["worker-1"].kill)
        run.evidence["worker-1 kills"] += 1
        await asyncio.sleep(run.rng.uniform(0.2, 1.5))
        log_path = processes["worker-1"].log_path
        since = log_path.stat().st_size if log_path.exists() else 0
        asked = time.monotonic()
        worker = await asyncio.to_thread(run.stack.start_worker, "worker-1")
        await _until_worker_started(run, worker, since)
        run.evidence["worker-1 start-up ms"] += round((time.monotonic() - asked) * 1000)


async def _until_worker_started(run: Run, worker: Process, since: int, timeout: float = 60.0) -> None:
    """Until the worker's log, past byte `since`, reports `worker_started`; or it died, or the
    run is over, or `timeout` passed."""
    give_up_at = time.monotonic() + timeout
    while worker.running and not run.stop.is_set() and time.monotonic() < give_up_at:
        with open(worker.log_path, "rb") as log:
            log.seek(since)
            if b'"event": "worker_started"' in log.read():
                return
        await asyncio.sleep(0.05)


def worker_kill_checks(run: Run, iron: "IronView") -> list[Check]:
    kills = run.evidence["worker-1 kills"]
    start_up = run.evidence["worker-1 start-up ms"] / max(kills, 1) / 1000
    return [
        Check("worker killed and restarted", kills > 0, f"{kills} SIGKILLs of worker-1 (start-up {start_up:.1f} s on average)"),
        Check("second worker killed for good", run.evidence["worker-2 killed for good"] == 1
              and not run.stack.processes["worker-2"].running, "worker-2 stays dead"),
    ]


# temporal-restart -------------------------------------------------------------------------------------


async def temporal_restart_disrupt(run: Run) -> None:
    """Stop the dev server (same database file) a few seconds at a time, then start it again."""
    temporal = run.stack.processes["temporal"]
    first = True
    while True:
        if not await _sleep_or_stop(run, run.rng.uniform(2.0, 4.0) if first else run.rng.uniform(6.0, 12.0)):
            return
        first = False
        await asyncio.to_thread(temporal.stop)
        run.evidence["temporal restarts"] += 1
        await asyncio.sleep(run.rng.uniform(1.0, 3.0))
        await asyncio.to_thread(temporal.start)


def temporal_restart_checks(run: Run, iron: "IronView") -> list[Check]:
    n = run.evidence["temporal restarts"]
    return [Check("dev server stopped and started", n > 0, f"{n} restarts on the same database file")]


# receiver-restart -------------------------------------------------------------------------------------


async def receiver_restart_disrupt(run: Run) -> None:
    receiver = run.stack.processes["webhook-receiver"]
    while True:
        if not await _sleep_or_stop(run, run.rng.uniform(1.5, 4.0)):
            return
        await asyncio.to_thread(receiver.kill)
        run.evidence["receiver restarts"] += 1
        await asyncio.sleep(run.rng.uniform(0.5, 1.5))
        await asyncio.to_thread(receiver.start)


def receiver_restart_checks(run: Run, iron: "IronView") -> list[Check]:
    n = run.evidence["receiver restarts"]
    failed = sum(1 for x in iron.deliveries if x["outcome"] == "failed")
    gave_up = sum(1 for x in iron.deliveries if x["outcome"] == "gave_up")
    run.evidence.update(deliveries_failed_while_down=failed, deliveries_given_up=gave_up)
    return [Check("receiver restarted while Iron delivered", n > 0 and failed > 0,
                  f"{n} restarts, {failed} delivery attempts failed and were retried by Iron")]


# backend-down ----------------------------------------------------------------------------------------

BACKEND_REFUSE_RATE = 0.3


async def backend_down_setup(run: Run) -> None:
    assert run.backend is not None
    await run.backend.refuse("error", status=500, rate=BACKEND_REFUSE_RATE)
    # The first outage is armed before any customer starts, so it cannot come too late.
    first = _next_outage_customer(run, armed=set())
    if first is not None:
        await run.backend.refuse("closed", seconds=OUTAGE_BOUND_SECONDS, on_signings_of=first.external_id)


# An outage lasts until its evidence is in; this bounds it when something else is wrong.
OUTAGE_BOUND_SECONDS = 90.0


async def backend_down_disrupt(run: Run) -> None:
    """Besides the 500s, the backend stops listening (connections refused), one customer at a
    time: armed for a customer not yet asked to sign, it closes its port once that customer's
    event asking for signings is recorded, and signs only then. The outage ends on evidence, not
    after a guessed stretch: a worker's log shows that customer's Active event (made after the
    signing, so while nobody listened) refused a connection. Then SIGUSR1 reopens the backend. Every wait is bounded and a missed one is reported."""
    assert run.backend is not None
    backend = run.stack.processes["partner-backend"]
    armed: set[str] = set()
    while True:
        # One signing customer of cycle 1 at a time, none whose signings were already asked.
        candidate = _next_outage_customer(run, armed)
        if candidate is None:
            return
        armed.add(candidate.external_id)
        try:
            await run.backend.refuse("closed", seconds=OUTAGE_BOUND_SECONDS, on_signings_of=candidate.external_id)
        except Exception as exc:  # noqa: BLE001 - reported; the next customer tries again
            run.evidence["outage_requests_failed"] += 1
            run.evidence["last_outage_request_error"] = f"{type(exc).__name__}: {exc}"
            if not await _sleep_or_stop(run, 1.0):
                return
            continue
        # Closed once the backend no longer answers; a customer that got past signing without
        # closing it (its event came while the backend answered 500 is not one: that is retried)
        # frees the loop for the next.
        while await _backend_answers(run):
            if candidate.reached or candidate.error or not await _sleep_or_stop(run, 0.05):
                break
        else:
            run.evidence["backend outages"] += 1
            logs = _worker_log_sizes(run)
            ended_on_evidence = await _until_active_while_refused(run, candidate, logs)
            run.evidence["outages_ended_on_evidence" if ended_on_evidence else "outages_ended_by_bound"] += 1
            with contextlib.suppress(ProcessLookupError, AttributeError):
                os.kill(backend.popen.pid, signal.SIGUSR1)
            while not await _backend_answers(run):
                if not await _sleep_or_stop(run, 0.05):
                    return
        if not await _sleep_or_stop(run, run.rng.uniform(3.0, 6.0)):
            return


_SIGNINGS_ASKED_OR_LATER = {Phase.AWAITING_SIGNINGS, Phase.ACTIVE} | BAD_PHASES


def _next_outage_customer(run: Run, armed: set[str]) -> Customer | None:
    """A customer of cycle 1 (not to be reverted) whose signings have not been asked yet."""
    return next((c for c in run.plan if c.external_id not in armed and not c.revert
                 and (c.state is None or c.state.phase not in _SIGNINGS_ASKED_OR_LATER)), None)


async def _backend_answers(run: Run) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=2) as http:
            await http.get(f"{run.stack.partner_backend_url}/healthz")
        return True
    except httpx.HTTPError:
        return False


def _worker_log_sizes(run: Run) -> dict[str, int]:
    return {name: p.log_path.stat().st_size if p.log_path.exists() else 0
            for name, p in run.stack.processes.items() if name.startswith("worker")}


def _active_delivery_refused_since(run: Run, sizes: dict[str, int], workflow_id: str) -> bool:
    """A worker logged, since `sizes` were taken, that the customer's Active event found no listener."""
    for name, offset in sizes.items():
        path = run.stack.processes[name].log_path
        with path.open("rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                if "event_delivery_failed" not in line:
                    continue
                try:
                    entry = json.loads(line)  # the workers log JSON
                except ValueError:
                    continue
                if (entry.get("error") == "ConnectError" and entry.get("workflow_id") == workflow_id
                        and entry.get("phase") == Phase.ACTIVE.value):
                    return True
    return False


async def _until_active_while_refused(run: Run, customer: Customer, logs: dict[str, int]) -> bool:
    """True once a worker's log shows the customer's Active event refused a connection (the
    state view cannot say it: a cycle's last change goes out with its continue-as-new, after
    the delivery); False when the bound ran out or the run ended first."""
    deadline = time.monotonic() + OUTAGE_BOUND_SECONDS - 5
    workflow_id = workflow_id_for(customer.external_id)
    while time.monotonic() < deadline:
        if _active_delivery_refused_since(run, logs, workflow_id):
            return True
        if not await _sleep_or_stop(run, 0.2):
            return False
    run.failures.append(f"{customer.external_id}: outage ended by its bound, not by evidence")
    return False


def _unix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def backend_down_checks(run: Run, iron: "IronView", backend: dict[str, Any], plan: list[Customer]) -> list[Check]:
    counters = backend["counters"]
    # The backend's own times: closed before the customer's signing, reopened after.
    windows = [(o["closed_at"], o["reopened_at"]) for o in backend.get("outages", []) if o.get("reopened_at")]
    attempts = counters["refused"] + counters["received"] + counters["duplicates"]
    share = counters["refused"] / max(1, attempts)
    # Active while the backend could not hear it: the engine's Active event dates from inside
    # an outage and reached the backend only after it listened again.
    active_while_down = 0
    for customer in plan:
        for event in customer.events:
            data = event["data"]
            if data["phase"] != Phase.ACTIVE.value:
                continue
            at = _unix(event["timestamp"])
            if any(a <= at <= b and event["received_at"] >= b for a, b in windows):
                active_while_down += 1
    refused_connections = 0
    for name, process in run.stack.processes.items():
        if name.startswith("worker"):
            log = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
            refused_connections += sum(
                1 for line in log.splitlines() if "event_delivery_failed" in line and "ConnectError" in line
            )
    run.evidence.update(
        backend_refused_500=counters["refused"], backend_attempts=attempts, backend_duplicates=counters["duplicates"],
        deliveries_refused_connection=refused_connections, active_while_backend_down=active_while_down,
        backend_signed=counters["signed"], backend_sign_retries=counters["sign_retries"],
    )
    return [
        Check("backend answered 500 to a share of deliveries", counters["refused"] > 0,
              f"{counters['refused']} of {attempts} delivery attempts ({share:.0%}, asked {BACKEND_REFUSE_RATE:.0%})"),
        Check("backend refused connections for a stretch", bool(windows) and refused_connections > 0,
              f"{len(windows)} outages of {sum(b - a for a, b in windows):.0f} s in all; "
              f"{refused_connections} delivery attempts found no listener"),
        Check("every outage ended on its evidence, none by its bound",
              run.evidence["outages_ended_by_bound"] == 0 and run.evidence["outages_ended_on_evidence"] > 0,
              f"{run.evidence['outages_ended_on_evidence']} ended on evidence, "
              f"{run.evidence['outages_ended_by_bound']} by the {OUTAGE_BOUND_SECONDS:.0f} s bound"),
        Check("customers reached Active while the backend was down", active_while_down > 0,
              f"{active_while_down} Active events made during an outage, received after it"),
    ]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("iron-errors", "30% of Iron's answers are 500, 503 or 429: retries create nothing twice",
                 setup=iron_errors_setup, evidence_checks=iron_errors_checks),
        Scenario("lost-responses", "most POSTs (80% by default) take effect and lose their response: "
                 "idempotency keys make every retry land on the same resource",
                 setup=lost_responses_setup, evidence_checks=lost_responses_checks),
        Scenario("latency", "Iron slower than the activity timeout at times: timed-out calls that still "
                 "took effect are repeated safely", timings=LATENCY_TIMINGS,
                 disrupt=latency_disrupt, evidence_checks=latency_checks),
        Scenario("webhooks", "half the webhooks dropped, the rest tripled, reordered, stale ones replayed: "
                 "the workflow acts on what it reads, polling covers the lost ones",
                 setup=webhooks_setup, evidence_checks=webhooks_checks),
        Scenario("worker-kill", "workers SIGKILLed mid-step (one for good): Temporal resumes every "
                 "customer on the surviving worker", workers=("worker-1", "worker-2"),
                 disrupt=worker_kill_disrupt, evidence_checks=worker_kill_checks),
        Scenario("temporal-restart", "the Temporal server stops and starts on its database file: "
                 "nothing is lost", disrupt=temporal_restart_disrupt, evidence_checks=temporal_restart_checks),
        Scenario("receiver-restart", "the webhook receiver dies while Iron delivers: Iron's retries and "
                 "polling get every customer through", disrupt=receiver_restart_disrupt,
                 evidence_checks=receiver_restart_checks),
        Scenario("backend-down", "the partner's backend answers 30% of events 500 and stops listening for "
                 "stretches: every event arrives later, in order, under its own id, and customers reach "
                 "Active meanwhile", setup=backend_down_setup, disrupt=backend_down_disrupt,
                 backend_checks=backend_down_checks),
    ]
}


# --- Iron's side -----------------------------------------------------------------------------------


@dataclass
class IronView:
    customers: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    events: list[dict[str, Any]]


async def read_iron(run: Run) -> IronView:
    control = run.control
    deadline = time.monotonic() + 60
    return IronView(
        customers=await retrying(control.customers, deadline=deadline, what="sandbox customers"),
        requests=await retrying(control.requests, deadline=deadline, what="sandbox request log"),
        deliveries=await retrying(control.deliveries, deadline=deadline, what="webhook deliveries"),
        events=await retrying(control.events, deadline=deadline, what="webhook events"),
    )


def check_iron(result: ScenarioResult, customers: list[Customer], iron: IronView, prefix: str) -> None:
    """Per customer: one Iron customer, one identification per cycle, one signing per
    document, Active at Iron as in Temporal. Adds up the duplicates."""
    by_external: dict[str, list[dict[str, Any]]] = {}
    for c in iron.customers:
        if (c.get("external_id") or "").startswith(prefix):
            by_external.setdefault(c["external_id"], []).append(c)
    planned = {c.external_id for c in customers}
    strays = sorted(set(by_external) - planned)
    if strays:
        result.duplicates += len(strays)
        result.failures.append(f"Iron customers nobody asked for: {strays[:5]}")
    duplicates = Counter()
    documents_at_iron = 0
    for customer in customers:
        problems: list[str] = []
        matches = by_external.get(customer.external_id, [])
        if len(matches) != 1:
            problems.append(f"{len(matches)} Iron customers")
            duplicates["customers"] += max(0, len(matches) - 1)
        for iron_customer in matches[:1]:
            ours = [i for i in iron_customer["identifications"] if i.get("created_by") != "iron"]
            step_ups = [i for i in iron_customer["identifications"] if i.get("created_by") == "iron"]
            expected_step_ups = 1 if customer.revert else 0
            if len(ours) != 1:
                problems.append(f"{len(ours)} identifications created by us (want 1)")
                duplicates["identifications"] += max(0, len(ours) - 1)
            if len(step_ups) != expected_step_ups:
                problems.append(f"{len(step_ups)} step-up identifications (want {expected_step_ups})")
                duplicates["identifications"] += max(0, len(step_ups) - expected_step_ups)
            documents_at_iron += len(iron_customer["documents"])
            per_document = Counter(s["content_id"] for s in iron_customer["signings"])
            extra = sum(n - 1 for n in per_document.values())
            if extra:
                problems.append(f"{extra} extra signings")
                duplicates["signings"] += extra
            unsigned = [d for d in iron_customer["documents"] if not d.get("signing_id") and not d.get("waived")]
            if unsigned:
                problems.append(f"{len(unsigned)} documents unsigned at Iron")
            if iron_customer["status"] != "Active":
                problems.append(f"Iron status {iron_customer['status']}")
            if customer.state is not None and customer.state.iron_customer_id != iron_customer["id"]:
                problems.append("the workflow tracks another Iron customer")
        if not customer.reached:
            problems.append(customer.error or (describe(customer.state) if customer.state else "no state"))
        if problems:
            result.failures.append(f"{customer.external_id}: " + "; ".join(problems))
        elif customer.reached:
            result.reached += 1
    result.duplicates += sum(duplicates.values())
    result.evidence["duplicates_by_kind"] = dict(duplicates)
    # The request log from the other side: every successful create was a first execution
    # (201, not replayed) exactly once per resource; the replays show idempotency at work.
    creates = Counter()
    for r in iron.requests:
        if r["method"] == "POST" and r.get("status_code") == 201 and not r.get("replayed"):
            kind = "signings" if r["path"].endswith("/signings") else (
                "identifications" if "/identifications" in r["path"] else "customers")
            creates[kind] += 1
    expected_creates = {
        "customers": len(customers),
        "identifications": len(customers),
        "signings": documents_at_iron,
    }
    result.evidence["first_executions_at_iron"] = dict(creates)
    result.evidence["iron_requests"] = len(iron.requests)
    result.evidence["replayed_requests"] = sum(1 for r in iron.requests if r.get("replayed"))
    result.checks.append(
        Check(
            "one successful create per resource in the request log",
            all(creates[k] <= v for k, v in expected_creates.items()),
            f"first executions {dict(creates)}, expected at most {expected_creates}",
        )
    )


# --- the backend's side -----------------------------------------------------------------------------


def check_events(result: ScenarioResult, customers: list[Customer], backend: dict[str, Any]) -> None:
    """Per customer, the events its backend received: sequences 1, 2, 3... with no gap and no
    repeat, each under its own webhook-id (UUIDv5 of workflow id and sequence), the newest
    showing the state the customer reached. Every attempt the backend refused came back later
    as a received event under the same id."""
    received = backend["customers"]
    problems = 0
    delivered_ids: set[str] = set()
    for customer in customers:
        events = received.get(customer.external_id, [])
        sequences = [e["sequence"] for e in events]
        ids = [e["webhook_id"] for e in events]
        delivered_ids.update(ids)
        wrong: list[str] = []
        if sequences != list(range(1, len(events) + 1)):
            wrong.append(f"sequences {sequences[:12]}")
        workflow_id = workflow_id_for(customer.external_id)
        if ids != [event_id(workflow_id, n) for n in sequences] or len(set(ids)) != len(ids):
            wrong.append("webhook-ids are not one per event")
        last = events[-1]["data"] if events else {}
        if customer.reached and (last.get("phase") != Phase.ACTIVE.value or last.get("cycle") != customer.expected_cycle):
            wrong.append(f"newest event says {last.get('phase')} in cycle {last.get('cycle')}")
        if wrong:
            problems += 1
            result.failures.append(f"{customer.external_id} events: " + "; ".join(wrong))
    refused = [i for i in backend.get("refused_ids", []) if i]
    lost = [i for i in refused if i not in delivered_ids]
    result.evidence["events_received"] = sum(len(received.get(c.external_id, [])) for c in customers)
    result.evidence["event_attempts_refused"] = len(refused)
    result.checks.append(Check(
        "every customer's events complete and in order, one id per event",
        problems == 0,
        f"{len(customers) - problems}/{len(customers)} customers with sequences 1..n and their own ids",
    ))
    result.checks.append(Check(
        "every refused attempt delivered later under the same id",
        not lost,
        f"{len(refused) - len(lost)} of {len(refused)} refused attempts came back as delivered events"
        + (f"; never delivered: {lost[:3]}" if lost else ""),
    ))


# --- running a scenario ------------------------------------------------------------------------------


def run_scenario(
    name: str,
    customers: int,
    state_dir: Path,
    *,
    concurrency: int = 20,
    deadline_per_customer: float = 300.0,
    seed: int | None = None,
    lost_rate: float = LOST_RESPONSE_RATE,
    log: Callable[[str], None] = print,
) -> ScenarioResult:
    """One scenario on its own fresh stack (brought up and torn down here)."""
    scenario = SCENARIOS[name]
    result = ScenarioResult(name, customers)
    started = time.monotonic()
    stack: Stack | None = None
    try:
        stack = launch(state_dir / name, autopilot=True, autopilot_after=1.0, workers=scenario.workers,
                       sign_prefixes=(SIGN_PREFIX,), events_retry_schedule=CHAOS_EVENTS_RETRY_SCHEDULE)
        asyncio.run(_drive(scenario, stack, result, customers, concurrency, deadline_per_customer, seed, lost_rate, log))
    except Exception as exc:  # noqa: BLE001 - a scenario that cannot run is a failed scenario
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if stack is not None:
            stack.stop()
        result.seconds = time.monotonic() - started
    return result


async def _drive(
    scenario: Scenario,
    stack: Stack,
    result: ScenarioResult,
    count: int,
    concurrency: int,
    deadline_per_customer: float,
    seed: int | None,
    lost_rate: float,
    log: Callable[[str], None],
) -> None:
    from iron_sandbox.testing import SandboxControl

    rng = random.Random(seed)
    queries = QueryCounter()
    run = Run(
        stack=stack,
        client=await connect(stack, queries),
        control=SandboxControl(stack.sandbox_root, timeout=15),
        timings=scenario.timings,
        deadline_per_customer=deadline_per_customer,
        rng=rng,
        lost_rate=lost_rate,
        backend=PartnerBackendClient(stack.partner_backend_url, timeout=15),
        queries=queries,
    )
    prefix = f"{SIGN_PREFIX}{scenario.name}-{secrets.token_hex(3)}-"
    plan = [Customer(i, f"{prefix}{i:04d}", revert=i % REVERT_EVERY == 0) for i in range(count)]
    run.plan = plan
    if scenario.setup:
        await scenario.setup(run)
    gate = asyncio.Semaphore(concurrency)

    async def one(customer: Customer) -> None:
        async with gate:
            await drive_customer(run, customer)

    async def progress() -> None:
        while not run.stop.is_set():
            if not await _sleep_or_stop(run, 10):
                return
            log(f"  {scenario.name}: {run.done}/{count} customers done")

    disruptor = asyncio.create_task(scenario.disrupt(run)) if scenario.disrupt else None
    reporter = asyncio.create_task(progress())
    try:
        # Bounded twice over: each customer by its own deadline, the whole wave by this one.
        waves = -(-count // concurrency)
        overall = deadline_per_customer * waves + 60
        await asyncio.wait_for(asyncio.gather(*(one(c) for c in plan)), overall)
    finally:
        run.stop.set()
        for task in (disruptor, reporter):
            if task is not None:
                try:
                    await asyncio.wait_for(task, 60)
                except Exception as exc:  # noqa: BLE001
                    result.failures.append(f"disruption task: {type(exc).__name__}: {exc}")
    # Faults off and every part up before reading Iron's side.
    await retrying(run.control.clear_faults, deadline=time.monotonic() + 30, what="clear faults")
    await retrying(run.backend.accept, deadline=time.monotonic() + 30, what="backend accepts again")
    iron = await read_iron(run)
    check_iron(result, plan, iron, prefix)
    backend = await retrying(run.backend.snapshot, deadline=time.monotonic() + 60, what="backend's events")
    check_events(result, plan, backend)
    if scenario.evidence_checks:
        result.checks.extend(scenario.evidence_checks(run, iron))
    if scenario.backend_checks:
        result.checks.extend(scenario.backend_checks(run, iron, backend, plan))
    await run.backend.aclose()
    result.evidence["driver_queries"] = run.queries.total
    result.checks.append(Check("the driver sent no workflow query", run.queries.total == 0,
                               f"{run.queries.total} queries ({dict(run.queries.by_query)})"))
    result.evidence.update({k: v for k, v in run.evidence.items()})
    result.failures.extend(run.failures)
    times = sorted(c.seconds for c in plan)
    if times:
        result.evidence["customer_seconds_p50"] = round(times[len(times) // 2], 1)
        result.evidence["customer_seconds_max"] = round(times[-1], 1)


# --- report ---------------------------------------------------------------------------------------


def table(results: list[ScenarioResult]) -> str:
    rows = [("scenario", "customers", "reached expected state", "duplicates at Iron", "events in order",
             "driver queries", "time", "result")]
    for r in results:
        in_order = next((c.detail.split(" ", 1)[0] for c in r.checks if c.name.startswith("every customer's events")), "-")
        rows.append((r.name, str(r.customers), f"{r.reached}/{r.customers}", str(r.duplicates), in_order,
                     str(r.evidence.get("driver_queries", "-")), f"{r.seconds:.0f} s", "ok" if r.ok else "FAILED"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(result: ScenarioResult) -> str:
    lines = [f"{result.name}: {SCENARIOS[result.name].proves}"]
    for c in result.checks:
        lines.append(f"  [{'x' if c.ok else ' '}] {c.name}: {c.detail}")
    if result.evidence:
        shown = {k: v for k, v in result.evidence.items() if k != "duplicates_by_kind" or v}
        lines.append(f"  evidence: {shown}")
    if result.error:
        lines.append(f"  ERROR {result.error}")
    for failure in result.failures[:10]:
        lines.append(f"  ! {failure}")
    if len(result.failures) > 10:
        lines.append(f"  ! ... and {len(result.failures) - 10} more")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20, help="customers per scenario (default 20)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_ROOT / "chaos",
                        help="where each scenario keeps its database file and logs (default .data/chaos)")
    parser.add_argument("--concurrency", type=int, default=20, help="customers in flight at once (default 20)")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds each customer may take (default 300)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--lost-rate", type=float, default=LOST_RESPONSE_RATE,
                        help=f"share of POSTs losing their response in lost-responses (default {LOST_RESPONSE_RATE})")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    if not 0 < args.lost_rate < 1:
        parser.error("--lost-rate must be above 0 and below 1 (at 1 no POST is ever answered)")
    if args.customers < 1 or args.concurrency < 1:
        parser.error("--customers and --concurrency must be at least 1")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results: list[ScenarioResult] = []
    for name in args.names:
        print(f"{name}: {args.customers} customers, fresh stack in {args.state_dir / name}", flush=True)
        result = run_scenario(name, args.customers, args.state_dir, concurrency=args.concurrency,
                              deadline_per_customer=args.deadline, seed=args.seed, lost_rate=args.lost_rate,
                              log=lambda line: print(line, flush=True))
        results.append(result)
        print(details(result), flush=True)
        print(flush=True)
    print(table(results))
    failed = [r.name for r in results if not r.ok]
    print(f"\n{'every scenario passed' if not failed else 'FAILED: ' + ', '.join(failed)} "
          f"(logs under {args.state_dir})")
    return 1 if failed else 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

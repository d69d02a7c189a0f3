"""Bursts of webhook deliveries against a real receiver process: `make receiver-load`.

    python -m bench.receiver_load [--bursts 5] [--customers 50] [--per-customer 10]
                                  [--duplicates 0.1] [--forged 0.1] [--iron-latency-ms 0] [--state-dir .data/receiver-load]

Starts a Temporal dev server, the Iron sandbox, `python -m webhook_receiver` and a worker as
their own processes; the worker runs a counting stand-in for `CustomerOnboarding` (same name,
same messages) that records the `webhook-id` of every signal it receives. Each
burst creates fresh customers at Iron (so every customer lookup is cold), starts workflows for
half of them (the other half are adopted by the receiver), and sends every delivery at once,
shuffled: valid ones (`per-customer` each), exact duplicates of a share of them (same id, same
body, as Iron's retries), and a share with a forged signature. After each burst a fresh
customer is signalled and `/readyz` asked: a receiver that wedged would fail both.

Reported: answers by status, p50/p99 latency, and whether every 200 became exactly one signal
(per webhook id: signals received == deliveries answered 200; forged ones: none).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.common import DEFAULT_STATE_ROOT, connect, fresh_dir, percentile
from contracts.messages import (
    SIGNAL_IRON_EVENT,
    WORKFLOW_TYPE,
    IronEventSignal,
    OnboardingInput,
    workflow_id_for,
)
from contracts.start_metadata import start_options
from demo.stack import Stack, StackConfig
from operations.onboardings import build_onboarding_input
from iron_client import IronClient, IronSettings
from iron_client.webhooks import build_container, sign

TASK_QUEUE = "receiver-load"


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class CountingOnboarding:
    """Records the webhook id of every `iron_event` signal; nothing else."""

    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        self._webhook_ids: list[str] = []
        self._finished = False

    @workflow.run
    async def run(self, input: OnboardingInput) -> None:
        await workflow.wait_condition(lambda: self._finished)

    @workflow.signal(name=SIGNAL_IRON_EVENT)
    def iron_event(self, event: IronEventSignal) -> None:
        self._webhook_ids.append(event.webhook_id or "")

    @workflow.signal(name="finish")
    def finish(self) -> None:
        self._finished = True

    @workflow.query(name="webhook_ids")
    def webhook_ids(self) -> list[str]:
        return list(self._webhook_ids)


@dataclass
class Delivery:
    kind: str  # valid | duplicate | forged | probe
    webhook_id: str
    workflow_id: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    answer: str | None = None
    seconds: float | None = None


@dataclass
class LoadResult:
    bursts: int
    min_share_200: float = 1.0
    deliveries: list[Delivery] = field(default_factory=list)
    probes_ok: list[bool] = field(default_factory=list)
    ready_after_burst: list[bool] = field(default_factory=list)
    signal_mismatches: list[str] = field(default_factory=list)
    workflows_checked: int = 0
    signalled_after_503: int = 0
    error: str | None = None

    def by_kind_and_status(self) -> dict[str, dict[int, int]]:
        table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for d in self.deliveries:
            table[d.kind][d.status or 0] += 1
        return {kind: dict(sorted(counts.items())) for kind, counts in sorted(table.items())}

    def latency_ms(self, q: float, kind: str | None = None) -> float:
        values = [d.seconds * 1000 for d in self.deliveries if d.seconds is not None and (kind is None or d.kind == kind)]
        return round(percentile(values, q), 1) if values else float("nan")

    def share_200(self) -> float:
        valid = [d for d in self.deliveries if d.kind in ("valid", "duplicate")]
        return sum(d.status == 200 for d in valid) / len(valid) if valid else 0.0

    @property
    def ok(self) -> bool:
        """Every valid delivery answered 200 (or, with `min_share_200` < 1, 200 or 503), every
        forged one 401, every 200 a signal, and the receiver healthy after each burst."""
        allowed = {200} if self.min_share_200 >= 1 else {200, 503}
        valid_ok = all(d.status in allowed for d in self.deliveries if d.kind in ("valid", "duplicate"))
        forged_ok = all(d.status == 401 for d in self.deliveries if d.kind == "forged")
        return (
            self.error is None
            and valid_ok
            and self.share_200() >= self.min_share_200
            and forged_ok
            and all(self.probes_ok)
            and all(self.ready_after_burst)
            and not self.signal_mismatches
            and len(self.probes_ok) == self.bursts
        )

    def report(self) -> str:
        lines = ["| deliveries | answers by status | p50 ms | p99 ms |", "|---|---|---|---|"]
        for kind, counts in self.by_kind_and_status().items():
            shown = ", ".join(f"{status}: {n}" for status, n in counts.items())
            lines.append(f"| {kind} ({sum(counts.values())}) | {shown} | {self.latency_ms(50, kind)} | {self.latency_ms(99, kind)} |")
        lines.append(f"| all ({len(self.deliveries)}) | | {self.latency_ms(50)} | {self.latency_ms(99)} |")
        lines.append("")
        lines.append(f"valid and duplicate deliveries answered 200: {self.share_200():.1%}")
        lines.append(f"fresh customer signalled after each burst: {sum(self.probes_ok)}/{self.bursts}")
        lines.append(f"/readyz 200 after each burst: {sum(self.ready_after_burst)}/{self.bursts}")
        lines.append(
            f"every 200 became exactly one signal: {'yes' if not self.signal_mismatches else 'NO'}"
            f" ({self.workflows_checked} workflows checked)"
        )
        lines.append(f"deliveries answered 503 whose signal landed anyway (Iron retries them; harmless): {self.signalled_after_503}")
        for mismatch in self.signal_mismatches[:10]:
            lines.append(f"  - {mismatch}")
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append(f"result: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def _delivery(kind: str, secret: str, customer_id: str, workflow_id: str, n: int) -> Delivery:
    now = datetime.now(timezone.utc).isoformat()
    if n % 2:
        container = build_container(
            "identification_status", customer_id, "IdentificationStatus",
            {"id": str(uuid.uuid4()), "status": "Pending"}, timestamp=now,
        )
    else:
        container = build_container(
            "customer_status", customer_id, "CustomerStatus", {"id": customer_id, "status": "IdentificationRequired"},
            timestamp=now,
        )
    body = json.dumps(container).encode()
    webhook_id = f"msg_{uuid.uuid4().hex}"
    headers = sign(secret if kind != "forged" else "whsec-forged-" + uuid.uuid4().hex, body, webhook_id=webhook_id)
    return Delivery(kind, webhook_id, workflow_id, body, headers)


async def _post(http: httpx.AsyncClient, url: str, delivery: Delivery) -> None:
    started = time.perf_counter()
    try:
        response = await http.post(url, content=delivery.body, headers=delivery.headers)
        delivery.status = response.status_code
        try:
            delivery.answer = response.json().get("status")
        except ValueError:
            delivery.answer = None
    except httpx.HTTPError as exc:
        delivery.status = 0  # no answer at all: counted as such, never as a success
        delivery.answer = f"{type(exc).__name__}: {exc}"
    delivery.seconds = time.perf_counter() - started


async def _new_customers(iron: IronClient, count: int, prefix: str) -> list[tuple[str, str]]:
    async def one(i: int) -> tuple[str, str]:
        external_id = f"{prefix}-{i}"
        customer = await iron.create_customer(
            customer_type="Person", email=f"load-{i}@example.com", external_id=external_id,
            idempotency_key=str(uuid.uuid4()),
        )
        return customer.id, external_id

    gate = asyncio.Semaphore(20)

    async def bounded(i: int) -> tuple[str, str]:
        async with gate:
            return await one(i)

    return list(await asyncio.gather(*(bounded(i) for i in range(count))))


async def _start_workflow(client: Client, customer_id: str, external_id: str) -> None:
    workflow_input = build_onboarding_input(external_id, email="load@example.com", iron_customer_id=customer_id)
    await client.start_workflow(
        WORKFLOW_TYPE, workflow_input, task_queue=TASK_QUEUE,
        # The sandbox's own customer_created webhook may have had it adopted already.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **start_options(workflow_input, started_by="receiver load"),
    )


async def run_load(
    state_dir: Path,
    *,
    bursts: int = 5,
    customers: int = 50,
    per_customer: int = 10,
    duplicate_share: float = 0.1,
    forged_share: float = 0.1,
    seed: int = 13,
    min_share_200: float = 1.0,
    iron_latency_ms: float = 0.0,
    log: Any = print,
) -> LoadResult:
    rng = random.Random(seed)
    result = LoadResult(bursts, min_share_200)
    config = StackConfig.ephemeral(fresh_dir(state_dir), autopilot=False, task_queue=TASK_QUEUE, events=False)
    stack = Stack(config)
    try:
        stack.start_temporal()
        stack.start_sandbox("--log-level", "warning")
        stack.start_receiver()
        secret = stack.secrets["webhook_secret"]
        if iron_latency_ms:
            # Iron slow to answer the receiver's customer reads (creates stay fast).
            async with httpx.AsyncClient(base_url=stack.sandbox_root, timeout=10) as control:
                answer = await control.post(
                    "/_sim/faults", json={"paths": ["/api/customers/"], "methods": ["GET"], "latency_ms": iron_latency_ms}
                )
                answer.raise_for_status()
        client = await connect(stack)
        iron = IronClient(IronSettings(base_url=stack.iron_base_url, api_key=SecretStr(stack.config.api_key), timeout_seconds=20))
        url = f"{stack.receiver_url}/webhooks/iron"
        # A connection per delivery, as a webhook sender opens them: no keep-alive connection that
        # the receiver closes while idle can be picked for the next request.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        worker = stack._process(
            "counting-worker", [sys.executable, "-m", "bench.receiver_load", "--serve-worker"], port=None
        ).start(wait=False)
        async with iron, httpx.AsyncClient(timeout=60, limits=limits) as http:
            if not worker.running:
                raise RuntimeError(f"counting worker exited; see {worker.log_path}")
            workflow_ids: set[str] = set()
            run_id = uuid.uuid4().hex[:8]
            for burst in range(bursts):
                people = await _new_customers(iron, customers, f"load-{run_id}-{burst}")
                await asyncio.gather(*(_start_workflow(client, cid, ext) for cid, ext in people[::2]))
                deliveries: list[Delivery] = []
                for cid, ext in people:
                    workflow_ids.add(workflow_id_for(ext))
                    for n in range(per_customer):
                        deliveries.append(_delivery("valid", secret, cid, workflow_id_for(ext), n))
                valid = list(deliveries)
                for original in rng.sample(valid, int(len(valid) * duplicate_share)):
                    deliveries.append(Delivery("duplicate", original.webhook_id, original.workflow_id, original.body, dict(original.headers)))
                for original in rng.sample(valid, int(len(valid) * forged_share)):
                    cid = json.loads(original.body)["data"]["customer_id"]
                    deliveries.append(_delivery("forged", secret, cid, original.workflow_id, 0))
                rng.shuffle(deliveries)
                started = time.perf_counter()
                await asyncio.gather(*(_post(http, url, d) for d in deliveries))
                elapsed = time.perf_counter() - started
                result.deliveries.extend(deliveries)
                statuses = collections.Counter(d.status for d in deliveries)
                # A customer the receiver has never seen, right after the burst.
                (fresh_id, fresh_ext), = await _new_customers(iron, 1, f"load-{run_id}-{burst}-probe")
                probe = _delivery("probe", secret, fresh_id, workflow_id_for(fresh_ext), 0)
                await _post(http, url, probe)
                result.deliveries.append(probe)
                workflow_ids.add(probe.workflow_id)
                result.probes_ok.append(probe.status == 200)
                ready = await http.get(f"{stack.receiver_url}/readyz")
                result.ready_after_burst.append(ready.status_code == 200)
                log(
                    f"burst {burst + 1}/{bursts}: {len(deliveries)} deliveries in {elapsed:.1f}s "
                    f"{dict(sorted(statuses.items(), key=lambda kv: kv[0] or 0))}; probe {probe.status}; readyz {ready.status_code}"
                )
            # Every 200 must be exactly one signal in Temporal's record.
            answered = collections.Counter(d.webhook_id for d in result.deliveries if d.status == 200)
            received: collections.Counter = collections.Counter()
            sent_ids = {d.webhook_id for d in result.deliveries}
            for workflow_id in sorted(workflow_ids):
                ids = await _webhook_ids(client, workflow_id)
                received.update(i for i in ids if i in sent_ids)
                result.workflows_checked += 1
            unconfirmed = collections.Counter(d.webhook_id for d in result.deliveries if d.status == 503)
            for webhook_id in set(answered) | set(received):
                # A 200 must be a signal. A 503 may still have landed (Temporal applied it but did
                # not confirm in time): Iron retries it, the workflow dedups; it is counted apart.
                extra = received[webhook_id] - answered[webhook_id]
                if extra < 0 or extra > unconfirmed[webhook_id]:
                    result.signal_mismatches.append(
                        f"{webhook_id}: answered 200 x{answered[webhook_id]} (503 x{unconfirmed[webhook_id]}), "
                        f"signalled x{received[webhook_id]}"
                    )
                elif extra:
                    result.signalled_after_503 += extra
            forged_ids = {d.webhook_id for d in result.deliveries if d.kind == "forged"}
            for webhook_id in forged_ids & set(received):
                result.signal_mismatches.append(f"{webhook_id}: forged, yet signalled")
    except Exception as exc:  # report what was measured, and why it stopped
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        stack.stop()
    return result


async def _webhook_ids(client: Client, workflow_id: str) -> list[str]:
    """The webhook ids the workflow was signalled with; none when it was never started."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(25):
        try:
            return await handle.query("webhook_ids", result_type=list[str])
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{workflow_id} does not answer its query")


async def serve_worker() -> None:
    """The counting worker, in its own process (Temporal and keys from the environment)."""
    import signal

    from runtime.temporal import connect as connect_from_env

    client = await connect_from_env()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with Worker(
        client, task_queue=TASK_QUEUE, workflows=[CountingOnboarding], workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=200,
    ):
        await stop.wait()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--customers", type=int, default=50, help="fresh customers per burst")
    parser.add_argument("--per-customer", type=int, default=10, help="valid deliveries per customer per burst")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of valid deliveries sent twice")
    parser.add_argument("--forged", type=float, default=0.1, help="share of forged deliveries added")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--iron-latency-ms", type=float, default=0.0, help="delay of Iron's answer to each customer read")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_ROOT / "receiver-load")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_worker:
        asyncio.run(serve_worker())
        return 0
    result = asyncio.run(
        run_load(
            args.state_dir, bursts=args.bursts, customers=args.customers, per_customer=args.per_customer,
            duplicate_share=args.duplicates, forged_share=args.forged, seed=args.seed,
            iron_latency_ms=args.iron_latency_ms,
        )
    )
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

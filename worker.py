"""Runs the `CustomerOnboarding` workflow and the Iron activities.

    python worker.py [--task-queue Q] [--max-concurrent-activities N] [--max-concurrent-workflow-tasks N]
                     [--metrics-port P]

Temporal comes from Temporal's env config (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_PROFILE`); everything else from `WorkerSettings`
(Iron's `IRON_*` included) and, for the events to the partner's backend, `EventsSettings`, each
loaded once by `main()` and passed down. Configuration is read and checked (keys included)
before anything connects: a bad value is one line on stderr,
`configuration: <VARIABLE>: <what is wrong>`, and exit code 7 (`runtime.process`). SIGINT or SIGTERM stops polling, gives running activities
`ONBOARDING_WORKER_SHUTDOWN_GRACE_SECONDS` (30) to finish, cancels what is left (Temporal retries
it at once on another worker), logs `worker_stopping` then `worker_stopped`, and exits 0. With
`--metrics-port` (or `ONBOARDING_METRICS_PORT`) it serves Prometheus metrics, the SDK's and the
engine's, on `ONBOARDING_METRICS_HOST` (127.0.0.1 unless set; `runtime/metrics.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from pydantic import Field
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from activities.events import EventDelivery
from activities.fleet import FleetActivities
from runtime.events_settings import EventsSettings
from activities.iron_activities import IronActivities
from contracts.messages import DEFAULT_TASK_QUEUE, iron_calls_queue
from data_protection.documents import DocumentStore
from iron_client import IronClient
from runtime.logging import get_logger
from runtime.metrics import MetricsSettings, runtime_for
from runtime.process import exit_now, exit_on_configuration, load_or_exit
from runtime.settings import DocumentStoreSettings, Flag
from runtime.query_task_guard import QueryTaskGuard
from runtime.temporal import connect
from workflows.fleet import FleetReconciliation
from workflows.onboarding import CustomerOnboarding
import operations.fleet_schedule as fleet_reconcile


# A customer's workflow sleeps for hours between wakes, so a cached one is rarely reused before
# it would be evicted anyway; each costs about 0.22 MB (`python -m bench.scale`). One that is not cached replays its
# history (tens of events, bounded by continue-as-new) when it next wakes.
DEFAULT_MAX_CACHED_WORKFLOWS = 500
# Iron's per-key limits are not published; 50 calls a second serves about 16,000 lifecycles an
# hour (11 calls each) beside a daily fleet pass of a million customers (10,000 calls).
DEFAULT_ACTIVITIES_PER_SECOND = 50.0
# An onboarding's activity attempt (an Iron call, an event delivery) times out after 30 s and is
# retried anyway, so waiting longer on SIGTERM would only delay the exit. A fleet page cut off
# (up to 2 minutes) is read again from its cursor by another worker.
DEFAULT_SHUTDOWN_GRACE_SECONDS = 30.0
WORKFLOWS = [CustomerOnboarding, FleetReconciliation]  # what every worker registers


class WorkerSettings(MetricsSettings, DocumentStoreSettings):
    """The worker's configuration besides Temporal's own (task queue, Iron, keys, events URL,
    logs, metrics and the document store shared)."""

    document_retention_days: float = Field(30.0, gt=0, allow_inf_nan=False, validation_alias="ONBOARDING_DOCUMENT_RETENTION_DAYS")
    delete_documents_after_submission: Flag = Field(False, validation_alias="ONBOARDING_DELETE_DOCUMENTS_AFTER_SUBMISSION")
    max_cached_workflows: int = Field(DEFAULT_MAX_CACHED_WORKFLOWS, ge=0, validation_alias="ONBOARDING_MAX_CACHED_WORKFLOWS")
    # Iron's calls started per second on their task queue, across every worker (Temporal's
    # matching service enforces it), so Iron's load stays bounded however many workers run.
    # Every worker should set the same value.
    activities_per_second: float = Field(
        DEFAULT_ACTIVITIES_PER_SECOND, gt=0, allow_inf_nan=False, validation_alias="ONBOARDING_ACTIVITIES_PER_SECOND"
    )
    fleet_schedule: Flag = Field(True, validation_alias="ONBOARDING_FLEET_SCHEDULE")
    fleet_every_hours: float = Field(
        fleet_reconcile.DEFAULT_EVERY_HOURS, gt=0, allow_inf_nan=False, validation_alias="ONBOARDING_FLEET_EVERY_HOURS"
    )
    # On SIGTERM, running activities get this long to finish before they are cancelled and
    # handed back to Temporal; the pod's termination grace must exceed it.
    shutdown_grace_seconds: float = Field(
        DEFAULT_SHUTDOWN_GRACE_SECONDS, ge=0, allow_inf_nan=False, validation_alias="ONBOARDING_WORKER_SHUTDOWN_GRACE_SECONDS"
    )


class OnboardingWorker:
    """The two Temporal workers one onboarding process runs, started and stopped together
    (`async with`).

    On the task queue: the workflows, the events to the partner's backend, the fleet's
    activities, and Iron's calls of runs from before their own queue existed. On
    `iron_calls_queue(task_queue)`: Iron's calls, under the task-queue-wide rate limit when one is
    given. Temporal cannot rate limit an eager activity, so a rate-limited queue starts none
    eagerly and each of its activities waits for a poll; kept apart, only Iron's calls pay that.
    """

    def __init__(self, main: Worker, iron_calls: Worker) -> None:
        self.main, self.iron_calls = main, iron_calls
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def task_queue(self) -> str:
        return self.main.task_queue

    @property
    def iron_calls_queue(self) -> str:
        return self.iron_calls.task_queue

    def config(self) -> dict:
        """The onboarding queue's worker configuration (the workflows' one)."""
        return self.main.config()

    async def __aenter__(self) -> "OnboardingWorker":
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.iron_calls)
            await stack.enter_async_context(self.main)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            # Both stop polling at once and drain side by side: one after the other, the second
            # would go on taking tasks while the first drains, and the grace would count twice.
            await asyncio.gather(self.main.shutdown(), self.iron_calls.shutdown())
            await stack.__aexit__(*exc_info)


def build_worker(
    client: Client,
    activities: IronActivities,
    *,
    events: EventDelivery | None = None,
    fleet: FleetActivities | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int = 100,
    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS,
    max_iron_calls_per_second: float | None = None,
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
    **kwargs,
) -> OnboardingWorker:
    """The worker every process and test uses: one place for what it registers.
    `max_iron_calls_per_second` is Temporal's task-queue-wide limit on Iron's calls queue;
    `shutdown_grace_seconds`, how long running activities may finish once it is stopping."""
    # Evicts a workflow whose query task did workflow work (runtime/query_task_guard.py).
    guard = QueryTaskGuard(kwargs.pop("workflow_runner", None))
    queue = task_queue or DEFAULT_TASK_QUEUE
    common = dict(graceful_shutdown_timeout=timedelta(seconds=shutdown_grace_seconds), **kwargs)
    main = Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities.all()
        + (events.all() if events is not None else [])
        + (fleet.all() if fleet is not None else []),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        max_cached_workflows=max_cached_workflows,
        workflow_runner=guard,
        **common,
    )
    iron_calls = Worker(
        client,
        task_queue=iron_calls_queue(queue),
        # A fleet pass's page is an Iron call too (since workflows/fleet.py's patch); the main
        # queue keeps it for passes that started before.
        activities=activities.all() + (fleet.all() if fleet is not None else []),
        max_concurrent_activities=max_concurrent_activities,
        max_task_queue_activities_per_second=max_iron_calls_per_second,
        **common,
    )
    return OnboardingWorker(main, iron_calls)


async def purge_documents_periodically(documents, retention_seconds: float, every_seconds: float = 3600) -> None:
    """Retention: identification data older than the retention period is deleted."""
    log = get_logger("worker")
    while True:
        try:
            removed = await documents.purge_older_than(retention_seconds)
            if removed:
                log.info("documents_purged", count=removed, retention_days=retention_seconds / 86400)
        except Exception as exc:  # a failed sweep must not stop the worker
            log.warning("document_purge_failed", error=str(exc))
        await asyncio.sleep(every_seconds)


async def ensure_fleet_schedule(client: Client, task_queue: str, every_hours: float) -> None:
    """The daily fleet-wide reconciliation, created when missing; an existing schedule keeps its
    interval (`ONBOARDING_FLEET_EVERY_HOURS` applies at creation only, the command changes it).
    A failure (say, an API key without schedule rights) is logged and the worker runs on:
    Active customers still have their backstop read."""
    log = get_logger("worker")
    try:
        done = await fleet_reconcile.create_schedule_if_missing(client, task_queue, every_hours=every_hours)
        if done == "created":
            log.info("fleet_schedule_created", every_hours=every_hours)
        else:
            log.info("fleet_schedule_kept", change_with="python starter.py fleet-reconcile --schedule --every-hours N")
    except Exception as exc:
        log.warning("fleet_schedule_failed", error=str(exc)[:300])


def parse_args(argv: list[str], config: WorkerSettings | None = None) -> argparse.Namespace:
    """The command line, its defaults from `config` (the settings `main()` loaded)."""
    config = config or WorkerSettings.load()
    parser = argparse.ArgumentParser(description="Run the Iron onboarding worker.")
    parser.add_argument("--task-queue", default=config.task_queue, help="default: $ONBOARDING_TASK_QUEUE or iron-onboarding")
    parser.add_argument("--max-concurrent-activities", type=int, default=100)
    parser.add_argument("--max-concurrent-workflow-tasks", type=int, default=100)
    parser.add_argument(
        "--max-cached-workflows",
        type=int,
        default=config.max_cached_workflows,
        help="workflows kept in memory between tasks; fewer saves memory, the rest replay when they wake",
    )
    parser.add_argument(
        "--max-activities-per-second",
        type=float,
        default=config.activities_per_second,
        help="Iron calls started per second on their task queue, all workers together (bounds Iron's load)",
    )
    parser.add_argument("--profile", default=None, help="Temporal env-config profile")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (default: $ONBOARDING_METRICS_PORT, else off)",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class WorkerConfiguration:
    """What the worker reads at start, loaded and built once: its settings, the events
    settings, the data converter and the document store."""

    settings: WorkerSettings
    events: EventsSettings
    converter: DataConverter
    documents: DocumentStore


def load_configuration(environ: Mapping[str, str] | None = None) -> WorkerConfiguration:
    """Every setting, once, and what they build, or one line on stderr and the configuration
    exit code."""
    config = load_or_exit(lambda: WorkerSettings.load(environ))
    config.configure_logging()
    if not config.iron_api_key.get_secret_value():
        exit_on_configuration("IRON_API_KEY", "not set: the worker calls Iron with it")
    converter = load_or_exit(config.data_converter)
    keyring = load_or_exit(config.keyring)
    # Events to the partner's backend: an unusable secret stops the worker here too. The URL is
    # the one the worker's settings read.
    events = load_or_exit(lambda: EventsSettings.load(environ, url=config.events_url))
    documents = load_or_exit(lambda: config.documents(keyring))
    return WorkerConfiguration(config, events, converter, documents)


async def run(argv: list[str], configuration: WorkerConfiguration | None = None) -> int:
    configuration = configuration or load_configuration()
    config, documents = configuration.settings, configuration.documents
    args = parse_args(argv, config)
    log = get_logger("worker")
    iron_settings = config.iron_settings()
    # The runtime exists before the client: the client and its worker report to it.
    metrics_runtime = load_or_exit(lambda: runtime_for(config, args.metrics_port))
    runtime_option = {"runtime": metrics_runtime} if metrics_runtime is not None else {}
    client = await connect(args.profile, data_converter=configuration.converter, **runtime_option)
    if metrics_runtime is not None:
        log.info("metrics_served", host=config.metrics_host, port=args.metrics_port or config.metrics_port)
    stop = asyncio.Event()
    stopped_by: list[str] = []

    def request_stop(sig: signal.Signals) -> None:
        stopped_by.append(sig.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig)
    purge = asyncio.create_task(purge_documents_periodically(documents, config.document_retention_days * 86400))
    events = EventDelivery(configuration.events)
    async with IronClient(iron_settings) as iron:
        worker = build_worker(
            client,
            IronActivities(
                iron,
                documents,
                delete_documents_after_submission=config.delete_documents_after_submission,
            ),
            events=events,
            fleet=FleetActivities(client, iron),
            task_queue=args.task_queue,
            max_concurrent_activities=args.max_concurrent_activities,
            max_concurrent_workflow_tasks=args.max_concurrent_workflow_tasks,
            max_cached_workflows=args.max_cached_workflows,
            max_iron_calls_per_second=args.max_activities_per_second,
            shutdown_grace_seconds=config.shutdown_grace_seconds,
        )
        if config.fleet_schedule:
            await ensure_fleet_schedule(client, args.task_queue, config.fleet_every_hours)
        log.info("worker_started", task_queue=args.task_queue, iron_base_url=iron_settings.base_url)
        async with worker:
            await stop.wait()
            log.info("worker_stopping", signal=stopped_by[0], grace_seconds=config.shutdown_grace_seconds)
            stopping_since = time.monotonic()
    purge.cancel()
    await events.aclose()
    log.info("worker_stopped", seconds=round(time.monotonic() - stopping_since, 3))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python worker.py ...`: the configuration first, before the event loop and the Temporal
    client's threads exist, then the worker until SIGINT or SIGTERM."""
    configuration = load_configuration()
    return asyncio.run(run(sys.argv[1:] if argv is None else argv, configuration))


if __name__ == "__main__":
    exit_now(main())

"""The floor: the least a Temporal workflow of the same shape as one onboarding lifecycle costs
on the same server, so the benchmark can say how much the product adds.

`BenchFloor` runs as many no-op activities as a lifecycle makes Iron calls, takes as many
external signals as a lifecycle receives webhooks (each followed by one no-op activity, as a
webhook is followed by one Iron read) and as many updates as a lifecycle has signings (each
running one no-op activity, as `accept_signing` runs one Iron call). It then stays open like
an Active customer: each `event` signal runs one no-op activity and shows its value in the
`state` query, which is what the benchmark's signal-to-query latency measures.

    python -m bench.floor [--task-queue Q]    # its worker; Temporal from the environment
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

FLOOR_WORKFLOW = "BenchFloor"
FLOOR_TASK_QUEUE = "bench-floor"
SIGNAL_EVENT = "event"
UPDATE_ACCEPT = "accept"
QUERY_STATE = "state"


class FloorShape(BaseModel):
    activities_first: int  # before any signal, as find-or-create and create-identification
    signals: int  # webhooks of one lifecycle
    signal_activities: int  # how many of those signals are followed by a no-op activity
    updates: int  # signings of one lifecycle, each one activity


class FloorState(BaseModel):
    phase: str
    signals_seen: int
    updates_done: int
    activities: int
    status: str | None = None


@activity.defn(name="bench_noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name=FLOOR_WORKFLOW)
class BenchFloor:
    def __init__(self) -> None:
        self._phase = "starting"
        self._events: list[str] = []
        self._signals_seen = 0
        self._updates_done = 0
        self._activities = 0
        self._status: str | None = None

    async def _noop(self, value: str) -> None:
        self._activities += 1
        await workflow.execute_activity(noop, value, start_to_close_timeout=timedelta(seconds=30))

    @workflow.run
    async def run(self, shape: FloorShape) -> None:
        for n in range(shape.activities_first):
            await self._noop(f"first-{n}")
        self._phase = "awaiting_signals"
        while self._signals_seen < shape.signals:
            await workflow.wait_condition(lambda: bool(self._events))
            self._events.pop(0)
            self._signals_seen += 1
            if self._signals_seen <= shape.signal_activities:
                await self._noop(f"signal-{self._signals_seen}")
        self._phase = "awaiting_updates"
        await workflow.wait_condition(lambda: self._updates_done >= shape.updates)
        self._phase = "active"
        while True:
            await workflow.wait_condition(lambda: bool(self._events))
            value = self._events.pop(0)
            await self._noop(value)
            self._status = value

    @workflow.signal(name=SIGNAL_EVENT)
    def event(self, value: str) -> None:
        self._events.append(value)

    @workflow.update(name=UPDATE_ACCEPT)
    async def accept(self, content_id: str) -> str:
        await self._noop(content_id)
        self._updates_done += 1
        return content_id

    @workflow.query(name=QUERY_STATE)
    def state(self) -> FloorState:
        return FloorState(
            phase=self._phase,
            signals_seen=self._signals_seen,
            updates_done=self._updates_done,
            activities=self._activities,
            status=self._status,
        )


async def run_worker(task_queue: str) -> None:
    from runtime.temporal import connect

    client = await connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The same limits as the onboarding worker (worker.py defaults), so only the work differs.
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BenchFloor],
        activities=[noop],
        max_concurrent_activities=100,
        max_concurrent_workflow_tasks=100,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    async with worker:
        print(f"floor worker polling {task_queue}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description="Run the benchmark's floor worker.")
    parser.add_argument("--task-queue", default=FLOOR_TASK_QUEUE)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(run_worker(args.task_queue))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The floor: the least a Temporal workflow of the same shape as one onboarding lifecycle costs
on the same server, so the benchmark can say how much the product adds.

`BenchFloor` runs as many no-op activities as a lifecycle makes Iron calls and event deliveries,
takes as many external signals as a lifecycle receives webhooks (each followed by one no-op
activity, as a webhook is followed by one Iron read) and as many updates as a lifecycle has
signings (each running one no-op activity, as `accept_signing` runs one Iron call). Its driver
waits the way the product's does, without queries: the start is an update-with-start that
answers once the signals are awaited (`wait_phase`, like the product's start-and-wait), and each
`accept` update waits inside the workflow until updates are awaited.

It then stays open like an Active customer: each `event` signal runs one no-op activity (the
product's Iron read) and then delivers one signed event to the partner's backend with the
product's own `deliver_event` activity, when events are configured. That is the least a
Temporal workflow does to turn an outside change into an event at the backend, and what the
benchmark's webhook-to-event latency is measured against.

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

    from contracts.events import (
        ACTIVITY_DELIVER_EVENT,
        DeliverEventInput,
        DeliverEventResult,
        EventData,
        EventType,
        OnboardingEvent,
        timestamp_of,
    )
    from contracts.phase import Phase

FLOOR_WORKFLOW = "BenchFloor"
FLOOR_TASK_QUEUE = "bench-floor"
SIGNAL_EVENT = "event"
UPDATE_ACCEPT = "accept"
UPDATE_WAIT_PHASE = "wait_phase"
QUERY_STATE = "state"
FLOOR_EVENT_CYCLE = 1


class FloorShape(BaseModel):
    activities_first: int  # before any signal, as find-or-create and create-identification
    signals: int  # webhooks of one lifecycle
    signal_activities: int  # how many of those signals are followed by a no-op activity
    updates: int  # signings of one lifecycle, each one activity
    # Event deliveries of one lifecycle: no-op activities one at a time in a lane beside the
    # rest, as the product delivers its events beside its loop. The last update returns once
    # they are done, as the product's lifecycle ends when its backend has the Active event.
    deliveries: int = 0
    # Once active, deliver a signed event per `event` signal (the latency floor).
    deliver_events: bool = False


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
        self._delivered = 0
        self._updates_expected = 0

    async def _noop(self, value: str) -> None:
        self._activities += 1
        await workflow.execute_activity(noop, value, start_to_close_timeout=timedelta(seconds=30))

    async def _deliver_event(self, value: str) -> None:
        self._delivered += 1
        info = workflow.info()
        event = OnboardingEvent(
            type=EventType.PHASE_CHANGED,
            timestamp=timestamp_of(workflow.now()),
            data=EventData(external_id=info.workflow_id, workflow_id=info.workflow_id, phase=Phase.ACTIVE,
                           cycle=FLOOR_EVENT_CYCLE, customer_status=value, sequence=self._delivered),
        )
        await workflow.execute_activity(
            ACTIVITY_DELIVER_EVENT, DeliverEventInput.of(event), result_type=DeliverEventResult,
            start_to_close_timeout=timedelta(seconds=30),
        )

    async def _lane(self, deliveries: int) -> None:
        for n in range(deliveries):
            await self._noop(f"delivery-{n}")

    @workflow.run
    async def run(self, shape: FloorShape) -> None:
        self._updates_expected = shape.updates
        lane = asyncio.ensure_future(self._lane(shape.deliveries))
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
        await lane
        self._phase = "active"
        while True:
            await workflow.wait_condition(lambda: bool(self._events))
            value = self._events.pop(0)
            await self._noop(value)
            self._status = value
            if shape.deliver_events:
                await self._deliver_event(value)

    @workflow.signal(name=SIGNAL_EVENT)
    def event(self, value: str) -> None:
        self._events.append(value)

    @workflow.update(name=UPDATE_ACCEPT)
    async def accept(self, content_id: str) -> str:
        await workflow.wait_condition(lambda: self._phase in ("awaiting_updates", "active"))
        await self._noop(content_id)
        self._updates_done += 1
        if self._updates_done >= self._updates_expected:
            await workflow.wait_condition(lambda: self._phase == "active")
        return content_id

    @workflow.update(name=UPDATE_WAIT_PHASE)
    async def wait_phase(self, phase: str) -> FloorState:
        await workflow.wait_condition(lambda: self._phase == phase)
        return self.state()

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

    from activities.events import EventDelivery
    from runtime.events_settings import load_events_settings

    client = await connect()
    delivery = EventDelivery(load_events_settings())  # the product's delivery activity, same settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The same limits as the onboarding worker (worker.py defaults), so only the work differs.
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BenchFloor],
        activities=[noop, *delivery.all()],
        max_concurrent_activities=100,
        max_concurrent_workflow_tasks=100,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    async with worker:
        print(f"floor worker polling {task_queue}", flush=True)
        await stop.wait()
    await delivery.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description="Run the benchmark's floor worker.")
    parser.add_argument("--task-queue", default=FLOOR_TASK_QUEUE)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(run_worker(args.task_queue))
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    exit_now(main())

"""The benchmark's two floors: what a Temporal workflow costs on the same server for the same
job, so the benchmark can say how much the product adds.

The no-op floor: the least a Temporal workflow of the same shape as one onboarding lifecycle costs.

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

`SameWorkOnboarding` is the other floor, the one the benchmark's ratios are taken against: the
simplest workflow a competent Temporal engineer would write for the same job, doing the same
external work as the product's lifecycle with the same parts (see its docstring).

    python -m bench.floor [--task-queue Q]                 # the no-op floor's worker
    python -m bench.floor --same-work [--task-queue Q]     # the same-work floor's worker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from runtime.workflow_sandbox import sandboxed_runner

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    import contracts.search_attributes as sa
    from contracts.events import (
        ACTIVITY_DELIVER_EVENT,
        DeliverEventInput,
        DeliverEventResult,
        EventData,
        EventSigning,
        EventType,
        OnboardingEvent,
        timestamp_of,
    )
    from contracts.messages import (
        SIGNAL_IRON_EVENT,
        UPDATE_ACCEPT_SIGNING,
        WORKFLOW_TYPE,
        AcceptSigningRequest,
        AcceptSigningResult,
        IronEventSignal,
    )
    from contracts.phase import Phase
    from workflows.idempotency import customer_key, identification_key, signing_key

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


# --- the same-work floor ----------------------------------------------------------------------

# The product's workflow type name: the receiver finds an onboarding in Temporal's visibility by
# type and `IronCustomerId`, so a floor onboarding is found (and its own new customer's
# `customer_created` acknowledged) the way the product's is. Its own task queue keeps it apart.
SAME_WORK_WORKFLOW = WORKFLOW_TYPE
SAME_WORK_TASK_QUEUE = "bench-same-work"
# Iron's calls on a queue of their own under Temporal's task-queue-wide rate limit, as the
# product's (worker.py): the limit holds across workers, and only Iron's calls lose eager start.
SAME_WORK_IRON_QUEUE = SAME_WORK_TASK_QUEUE + "-iron"
UPDATE_STARTED = "identification_ready"
SAME_WORK_CYCLE = 1
ACT_SETUP = "samework_find_or_create_and_identify"
ACT_READ = "samework_read_customer_and_signings"
ACT_CUSTOMER = "samework_read_customer"
ACT_SIGN = "samework_sign"


class SameWorkInput(BaseModel):
    external_id: str
    email: str
    poll_seconds: float = 60.0  # the product's first poll of a wait (OnboardingTimings.poll_initial_seconds)


class SetupInput(BaseModel):
    workflow_id: str
    external_id: str
    email: str


class SetupResult(BaseModel):
    customer_id: str
    customer_status: str
    identification_id: str
    identification_status: str
    identification_url: str | None = None


class CustomerRead(BaseModel):
    customer_status: str
    identification_status: str | None = None
    signings: list[EventSigning] = []


class SignInput(BaseModel):
    customer_id: str
    content_id: str
    idempotency_key: str


class SignResult(BaseModel):
    signing_id: str
    signed_at: str


class Started(BaseModel):
    phase: str
    workflow_id: str
    customer_id: str | None
    identification_id: str | None
    identification_url: str | None


def _text(value: object) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


class SameWorkActivities:
    """Iron's calls of the same-work floor, with the product's Iron client and idempotency keys
    (derived from the workflow id, `workflows/idempotency.py`). A rejection no retry can fix
    (Iron's 4xx) is final; everything else is retried by Temporal."""

    def __init__(self, iron) -> None:
        self.iron = iron

    async def _call(self, call):
        from iron_client.errors import IronFinalError

        try:
            return await call
        except IronFinalError as exc:
            raise ApplicationError(str(exc)[:300], type="IronRejected", non_retryable=True) from None

    @activity.defn(name=ACT_SETUP)
    async def setup(self, req: SetupInput) -> SetupResult:
        """Find the customer by external id or create it, then create its identification."""
        from iron_client.models import LinkIdentificationParams

        customer = await self._call(self.iron.find_customer_by_external_id(req.external_id))
        if customer is None:
            customer = await self._call(self.iron.create_customer(
                customer_type="Person", email=req.email, external_id=req.external_id,
                idempotency_key=customer_key(req.workflow_id),
            ))
        identification = await self._call(self.iron.create_identification(
            customer.id, LinkIdentificationParams(), idempotency_key=identification_key(req.workflow_id, SAME_WORK_CYCLE, 0),
        ))
        return SetupResult(
            customer_id=customer.id, customer_status=_text(customer.status) or "",
            identification_id=identification.id, identification_status=_text(identification.status) or "",
            identification_url=identification.url,
        )

    @activity.defn(name=ACT_READ)
    async def read_customer_and_signings(self, customer_id: str) -> CustomerRead:
        customer = await self._call(self.iron.get_customer(customer_id))
        signings = await self._call(self.iron.get_required_signings(customer_id))
        return CustomerRead(
            customer_status=_text(customer.status) or "", identification_status=_text(customer.identification_status),
            signings=[EventSigning(id=x.id, url=x.url, display_name=x.display_name) for x in signings],
        )

    @activity.defn(name=ACT_CUSTOMER)
    async def read_customer(self, customer_id: str) -> CustomerRead:
        customer = await self._call(self.iron.get_customer(customer_id))
        return CustomerRead(customer_status=_text(customer.status) or "",
                            identification_status=_text(customer.identification_status))

    @activity.defn(name=ACT_SIGN)
    async def sign(self, req: SignInput) -> SignResult:
        signing = await self._call(self.iron.create_signing(req.customer_id, content_id=req.content_id,
                                                            idempotency_key=req.idempotency_key))
        return SignResult(signing_id=signing.id, signed_at=signing.created_at.isoformat())

    def all(self) -> list:
        return [self.setup, self.read_customer_and_signings, self.read_customer, self.sign]


@workflow.defn(name=SAME_WORK_WORKFLOW)
class SameWorkOnboarding:
    """The same-work floor: one customer's onboarding written the plain way, doing the external
    work the product's lifecycle does with the same parts, and nothing else.

    * Same parts: the same Iron client against the same sandbox, with the product's idempotency
      keys; the same webhook receiver routes Iron's signed webhooks to it (the workflow id is
      the product's `onboarding-{external_id}`, its type name the product's and the signal the
      product's `iron_event`, so the receiver finds it in Temporal's visibility as it finds the
      product's); the product's `deliver_event` activity sends its events, signed,
      to the same partner backend, which signs through the same HTTP API and the product's
      `accept_signing` update; the same data converter and payload codec, the SDK's sandboxed
      runner with the floor's module passed through as the product's are
      (`runtime/workflow_sandbox.py`), the product worker's limits and cache size.
    * Iron's rate limit: a task-queue rate limit on the queue of Iron's calls, the product's
      `ONBOARDING_ACTIVITIES_PER_SECOND`, enforced by Temporal's matching service as the
      product's is (so Iron's calls, and only they, are never started eagerly).
    * The work: start-and-wait (an update-with-start answered with the identification url); one
      activity that finds or creates the customer and creates its identification; one read of
      the customer and its required signings when a webhook says the identification or the
      customer changed (or the one poll timer of the wait fires); one signing activity per
      `accept_signing` update; a final read once every document is signed; one event to the
      backend per phase (in order, beside the main flow); one search-attribute and one memo
      write per phase. Once Active, a webhook showing another customer status costs one read,
      and a change of phase one event.
    """

    def __init__(self) -> None:
        self._phase = Phase.FINDING_CUSTOMER
        self._customer_id: str | None = None
        self._customer_status: str | None = None
        self._identification_id: str | None = None
        self._identification_status: str | None = None
        self._identification_url: str | None = None
        self._signings: list[EventSigning] = []
        self._signed: dict[str, SignResult] = {}
        self._hints: list[tuple[str, str, str | None]] = []  # webhooks since the last read: (type, status, id)
        self._outbox: list[OnboardingEvent] = []
        self._sequence = 0
        self._external_id = ""

    async def _iron(self, name: str, arg, result_type):
        return await workflow.execute_activity(
            name, arg, result_type=result_type, task_queue=SAME_WORK_IRON_QUEUE,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)),
        )

    def _enter(self, phase: Phase) -> None:
        """A new phase: one search-attribute write, one memo write, one event to the backend."""
        previous, self._phase = self._phase, phase
        workflow.upsert_search_attributes([
            sa.ONBOARDING_PHASE.value_set(phase.value),
            sa.IRON_CUSTOMER_ID.value_set(self._customer_id or ""),
            sa.IRON_CUSTOMER_STATUS.value_set(self._customer_status or ""),
        ])
        workflow.upsert_memo({"phase": phase.value, "customer_status": self._customer_status})
        self._sequence += 1
        info = workflow.info()
        self._outbox.append(OnboardingEvent(
            type=EventType.PHASE_CHANGED,
            timestamp=timestamp_of(workflow.now()),
            data=EventData(
                external_id=self._external_id, workflow_id=info.workflow_id, iron_customer_id=self._customer_id,
                phase=phase, previous_phase=previous, cycle=SAME_WORK_CYCLE, customer_status=self._customer_status,
                identification_status=self._identification_status, identification_url=self._identification_url,
                required_signings=[s.model_copy(update={"signed": s.id in self._signed}) for s in self._signings],
                sequence=self._sequence,
            ),
        ))

    async def _deliver(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            event = self._outbox[0]
            await workflow.execute_activity(
                ACTIVITY_DELIVER_EVENT, DeliverEventInput.of(event), result_type=DeliverEventResult,
                start_to_close_timeout=timedelta(seconds=30),
            )
            self._outbox.pop(0)

    def _apply(self, read: CustomerRead) -> None:
        self._customer_status = read.customer_status
        if read.identification_status is not None:
            self._identification_status = read.identification_status
        if read.signings:
            self._signings = read.signings

    async def _wait_for_change(self, poll: timedelta | None = None) -> None:
        """Until a webhook shows a change (or, with `poll`, the poll timer fires); the read that
        follows answers every webhook so far."""
        try:
            await workflow.wait_condition(self._news, timeout=poll)
        except asyncio.TimeoutError:
            pass
        self._hints.clear()

    @workflow.run
    async def run(self, input: SameWorkInput) -> None:
        self._external_id = input.external_id
        info = workflow.info()
        lane = asyncio.ensure_future(self._deliver())
        setup = await self._iron(ACT_SETUP, SetupInput(workflow_id=info.workflow_id, external_id=input.external_id,
                                                       email=input.email), SetupResult)
        self._customer_id, self._customer_status = setup.customer_id, setup.customer_status
        self._identification_id, self._identification_status = setup.identification_id, setup.identification_status
        self._identification_url = setup.identification_url
        self._enter(Phase.AWAITING_IDENTIFICATION)
        poll = timedelta(seconds=input.poll_seconds)
        while self._phase == Phase.AWAITING_IDENTIFICATION:
            await self._wait_for_change(poll)
            self._apply(await self._iron(ACT_READ, self._customer_id, CustomerRead))
            if self._customer_status == "SigningsRequired" and self._signings:
                self._enter(Phase.AWAITING_SIGNINGS)
            elif self._customer_status == "Active":
                self._enter(Phase.ACTIVE)
        while self._phase == Phase.AWAITING_SIGNINGS:
            await workflow.wait_condition(lambda: all(s.id in self._signed for s in self._signings))
            self._apply(await self._iron(ACT_CUSTOMER, self._customer_id, CustomerRead))
            if self._customer_status == "Active":
                self._enter(Phase.ACTIVE)
            else:
                await self._wait_for_change()
        while True:  # Active, or suspended and back: a changed status is read, then told
            await self._wait_for_change()
            self._apply(await self._iron(ACT_CUSTOMER, self._customer_id, CustomerRead))
            phase = Phase.ACTIVE if self._customer_status == "Active" else Phase.SUSPENDED
            if phase != self._phase:
                self._enter(phase)
        await lane  # pragma: no cover - the loop above never ends

    @workflow.signal(name=SIGNAL_IRON_EVENT)
    def iron_event(self, event: IronEventSignal) -> None:
        if event.status and event.type in ("customer_status", "identification_status"):
            self._hints.append((event.type, event.status, event.entity_id))

    def _news(self) -> bool:
        """Whether a webhook since the last read shows a status the workflow does not know (one
        that arrived before the setup's answer, say, may show what that answer already says)."""
        for kind, status, entity_id in self._hints:
            if kind == "customer_status" and status != self._customer_status:
                return True
            if (kind == "identification_status" and status != self._identification_status
                    and entity_id in (None, self._identification_id)):
                return True
        return False

    @workflow.update(name=UPDATE_ACCEPT_SIGNING)
    async def accept_signing(self, request: AcceptSigningRequest) -> AcceptSigningResult:
        content_id = request.content_id
        await workflow.wait_condition(lambda: self._phase != Phase.AWAITING_IDENTIFICATION)
        if content_id not in {s.id for s in self._signings}:
            raise ApplicationError(f"{content_id} is not a required signing", type="SigningRejected", non_retryable=True)
        if content_id not in self._signed:
            assert self._customer_id is not None
            self._signed[content_id] = await self._iron(ACT_SIGN, SignInput(
                customer_id=self._customer_id, content_id=content_id,
                idempotency_key=signing_key(workflow.info().workflow_id, SAME_WORK_CYCLE, content_id),
            ), SignResult)
        done = self._signed[content_id]
        remaining = [s.id for s in self._signings if s.id not in self._signed]
        return AcceptSigningResult(content_id=content_id, signing_id=done.signing_id, signed_at=done.signed_at,
                                   remaining=remaining)

    @workflow.update(name=UPDATE_STARTED)
    async def identification_ready(self) -> Started:
        """The start-and-wait: answers once the identification url exists."""
        await workflow.wait_condition(lambda: self._phase != Phase.FINDING_CUSTOMER)
        return Started(phase=self._phase.value, workflow_id=workflow.info().workflow_id, customer_id=self._customer_id,
                       identification_id=self._identification_id, identification_url=self._identification_url)


async def run_worker(task_queue: str, *, same_work: bool = False) -> None:
    """A floor's worker with the product worker's configuration (worker.py): its settings, data
    converter and payload codec, Iron client, event delivery, limits, cache and shutdown grace."""
    from activities.events import EventDelivery
    from iron_client import IronClient
    from runtime.events_settings import EventsSettings
    from runtime.temporal import connect
    from worker import WorkerSettings

    config = WorkerSettings.load()
    client = await connect(data_converter=config.data_converter())
    delivery = EventDelivery(EventsSettings.load(url=config.events_url))  # the product's delivery activity
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    common = dict(
        max_concurrent_activities=100,
        # The product's sandbox setting, the floor's own module passed through as the product's are.
        workflow_runner=sandboxed_runner(passed_through=(SameWorkOnboarding.__module__,)),
        graceful_shutdown_timeout=timedelta(seconds=config.shutdown_grace_seconds),
    )
    async with contextlib.AsyncExitStack() as stack:
        if same_work:
            iron = await stack.enter_async_context(IronClient(config.iron_settings()))
            workers = [
                Worker(client, task_queue=task_queue, workflows=[SameWorkOnboarding], activities=delivery.all(),
                       max_concurrent_workflow_tasks=100, max_cached_workflows=config.max_cached_workflows, **common),
                Worker(client, task_queue=SAME_WORK_IRON_QUEUE, activities=SameWorkActivities(iron).all(),
                       max_task_queue_activities_per_second=config.activities_per_second, **common),
            ]
        else:
            workers = [Worker(client, task_queue=task_queue, workflows=[BenchFloor], activities=[noop, *delivery.all()],
                              max_concurrent_workflow_tasks=100, max_cached_workflows=config.max_cached_workflows,
                              **common)]
        for w in workers:
            await stack.enter_async_context(w)
        print(f"{'same-work' if same_work else 'no-op'} floor worker polling {task_queue}", flush=True)
        await stop.wait()
    await delivery.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description="Run the benchmark's floor worker.")
    parser.add_argument("--same-work", action="store_true", help="the same-work floor (default: the no-op floor)")
    parser.add_argument("--task-queue", default=None,
                        help=f"default {FLOOR_TASK_QUEUE}, or {SAME_WORK_TASK_QUEUE} with --same-work")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    queue = args.task_queue or (SAME_WORK_TASK_QUEUE if args.same_work else FLOOR_TASK_QUEUE)
    asyncio.run(run_worker(queue, same_work=args.same_work))
    return 0


if __name__ == "__main__":
    from runtime.process import exit_now  # no interpreter finalization under the Temporal client's threads

    # The workflows from `bench.floor`, not from `__main__`: the sandbox imports a workflow's module
    # by its name, and passes through only a module it can name (`run_worker`).
    from bench.floor import main as floor_main

    exit_now(floor_main())

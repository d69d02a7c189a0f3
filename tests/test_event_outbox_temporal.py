"""The outbox and `deliver_event` together, on a real dev server, against the partner backend
while it refuses (500s, then a closed port): a workflow that emits events as it goes never waits
for the backend, continues as new with events still undelivered, and every event still arrives,
in order, each under its own id, once the backend is back.

`EventfulCustomer` is the smallest workflow with the onboarding's delivery shape: the outbox in
its state, one delivery at a time from the head, retried for ever, beside its own work."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.events import EventDelivery
from contracts.events import ACTIVITY_DELIVER_EVENT, DeliverEventInput, DeliverEventResult, phase_changed
from contracts.messages import OnboardingState, Phase
from contracts.outbox import Outbox
from demo.partner_backend import PartnerBackend, PartnerBackendThread
from runtime.events_settings import EventsSettings
from tests.workflow_harness import dev_server_env, until

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
PHASES = [
    Phase.FINDING_CUSTOMER, Phase.CREATING_IDENTIFICATION, Phase.AWAITING_IDENTIFICATION,
    Phase.AWAITING_SIGNINGS, Phase.ACTIVE, Phase.AWAITING_IDENTIFICATION, Phase.AWAITING_SIGNINGS, Phase.ACTIVE,
]


class EventfulInput(BaseModel):
    external_id: str
    phases: list[Phase]
    carry_after: int  # continue as new once this many phases were emitted (0: never)
    emitted: int = 0
    outbox: Outbox = Outbox()


class EventfulResult(BaseModel):
    outbox: Outbox
    finished_emitting_at: float
    runs: int


@workflow.defn(sandboxed=False)
class EventfulCustomer:
    def __init__(self) -> None:
        self.outbox = Outbox()
        self.emitted_everything = False

    @workflow.query
    def finished_emitting(self) -> bool:
        return self.emitted_everything

    async def _deliver(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.outbox.head is not None)
            head = self.outbox.head
            await workflow.execute_activity(
                ACTIVITY_DELIVER_EVENT,
                DeliverEventInput.of(head),
                result_type=DeliverEventResult,
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100),
                                         maximum_interval=timedelta(milliseconds=400)),
            )
            self.outbox = self.outbox.acknowledge(head.sequence)

    @workflow.run
    async def run(self, inp: EventfulInput) -> EventfulResult:
        self.outbox = inp.outbox
        delivery = asyncio.create_task(self._deliver())
        previous = inp.phases[inp.emitted - 1] if inp.emitted else None
        for index in range(inp.emitted, len(inp.phases)):
            phase = inp.phases[index]
            state = OnboardingState(external_id=inp.external_id, phase=phase, cycle=1 + (index >= 5))
            self.outbox = self.outbox.append(phase_changed(state, previous_phase=previous, at=workflow.now()))
            previous = phase
            if index % 2:
                # The customer's own progress, not the backend's (Temporal rounds timers to 1 s).
                await workflow.sleep(1)
            if inp.carry_after and index + 1 == inp.carry_after:
                # Undelivered events ride in the state; the head in flight is sent again, same id.
                workflow.continue_as_new(
                    inp.model_copy(update={"emitted": index + 1, "outbox": self.outbox, "carry_after": 0})
                )
        finished = workflow.now().timestamp()
        self.emitted_everything = True
        await workflow.wait_condition(lambda: self.outbox.head is None)
        delivery.cancel()
        return EventfulResult(outbox=self.outbox, finished_emitting_at=finished, runs=1 + (inp.emitted > 0))


async def until_emitted(handle, timeout: float = 60.0) -> None:
    """Until the workflow's last run has emitted every phase (asked of whichever run is current)."""
    deadline = time.monotonic() + timeout
    while not await handle.query(EventfulCustomer.finished_emitting):
        assert time.monotonic() < deadline, "the workflow never finished emitting"
        await asyncio.sleep(0.1)


async def test_every_event_arrives_in_order_after_a_backend_outage_across_continue_as_new(temporal_cli_path):
    lines: list[str] = []
    backend = PartnerBackend([SECRET], out=lines.append)
    external_id = f"outage-{uuid.uuid4().hex[:8]}"
    with PartnerBackendThread(backend) as server:
        delivery = EventDelivery(EventsSettings(url=server.events_url, secret=SECRET, timeout_seconds=2))
        async with dev_server_env(temporal_cli_path) as env, delivery.http:
            async with Worker(
                env.client, task_queue="eventful", workflows=[EventfulCustomer], activities=delivery.all(),
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                backend.refuse("error", status=500)
                handle = await env.client.start_workflow(
                    EventfulCustomer.run,
                    EventfulInput(external_id=external_id, phases=PHASES, carry_after=3),
                    id=f"onboarding-{external_id}", task_queue="eventful",
                )
                # Refusing first, then down altogether (connections refused) until the workflow
                # has emitted everything: each step waits for its evidence, not for a guess.
                await until("a delivery refused with 500", lambda: backend.counters["refused"] > 0)
                server.close_for(120.0)
                await until("the backend closed", lambda: not server.listening)
                backend.accept()  # answers again once it listens again
                await until_emitted(handle)
                back_at = time.time()
                server.reopen()
                result = await asyncio.wait_for(handle.result(), timeout=60)

    # The workflow emitted everything while the backend was still down.
    assert result.finished_emitting_at < back_at
    assert result.runs == 2
    assert result.outbox.pending == () and result.outbox.dropped == 0
    assert result.outbox.delivered_through == len(PHASES)
    # Every event arrived, in order, each once under its own id (retries were refused, not recorded).
    received = backend.events_for(external_id)
    assert [e.sequence for e in received] == list(range(1, len(PHASES) + 1))
    assert [e.phase for e in received] == [p.value for p in PHASES]
    assert len({e.webhook_id for e in received}) == len(PHASES)
    assert backend.counters["refused"] >= 1
    assert any(line.startswith("backend closed for") for line in lines)

"""`CustomerOnboarding`: one workflow per customer, for as long as the customer exists.

The Temporal shell around `workflows/decide.py`. Handlers only record what happened (a wake)
in the inbox; one loop takes the wakes, lets `decide` choose the next action from the state and
what was observed, performs it (an Iron call as an activity, a wait, continue-as-new or
completion) and feeds the outcome back. One timer serves the earliest named deadline. What
a run does that an older engine's run did not is asked of `Features.of(input.engine_version)`
(`contracts/engine.py`), so a running customer replays the code its run started on.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    import contracts.activity_models as am
    import contracts.search_attributes as sa
    from contracts.engine import Features
    from contracts.messages import (
        QUERY_STATE,
        SIGNAL_IRON_EVENT,
        UPDATE_ACCEPT_SIGNING,
        UPDATE_AMEND,
        UPDATE_REFRESH,
        UPDATE_RESTART_IDENTIFICATION,
        UPDATE_WAIT_FOR,
        WORKFLOW_TYPE,
        AcceptSigningRequest,
        AcceptSigningResult,
        AmendRequest,
        AmendResult,
        IronEventSignal,
        OnboardingInput,
        iron_calls_queue,
        OnboardingState,
        Phase,
        RefreshRequest,
        RestartIdentificationRequest,
        RestartIdentificationResult,
    )
    import workflows.decide as d
    from activities.events import EventDelivery
    from contracts.events import DeliverEventInput
    from contracts.start_metadata import START_DIGEST_MEMO, amended_start_digest
    from workflows.inbox import Inbox
    from workflows.iron_calls import IronCall, iron_call, refusal
    from workflows.publishing import Publisher
    from workflows.waiters import Waiters, WaitForRequest, WaitForResult


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class CustomerOnboarding:
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        # What this run's engine does (`contracts/engine.py`); a version this worker does not know
        # fails the task here, before any command, and waits for a worker that knows it.
        self._features = Features.of(input.engine_version)
        self._input = input
        self._timings = input.timings
        carried = input.carried.model_copy(update={"runs": input.carried.runs + 1}, deep=True) if input.carried else None
        self._state = carried or OnboardingState.first(input)
        self._seen_events = set(self._state.seen_event_keys)
        self._inbox = Inbox()
        self._customer_reads_started = self._customer_reads_done = 0
        self._signing_outcomes: dict[str, am.SigningSnapshot | str] = {}
        self._timer: asyncio.Task[None] | None = None
        self._timer_due: datetime | None = None
        self._timer_fired = self._continue_as_new_due = False
        self._publisher = Publisher(self._features)
        self._waiters = Waiters()

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingState:
        s = self._state
        self._publisher.started(s, input)
        observation: d.Observation = d.RunStarted.of(input)
        lane = asyncio.ensure_future(self._deliver_events()) if input.deliver_events else None
        while True:
            phase = s.phase
            action = d.decide(s, observation, workflow.now(), self._timings, self._features)
            self._publisher.note(s, phase)
            if isinstance(action, d.Complete):
                self._publisher.flush()
                if lane is not None:  # the backend hears of the end before the workflow closes
                    await workflow.wait_condition(lambda: s.outbox.head is None)
                await self._waiters.release()  # callers of wait_for hear the end too
                return s
            observation = await self._perform(action)

    async def _deliver_events(self) -> None:
        """Events go out one at a time, in order, beside the loop: a backend that is down delays
        its events, never the customer. A run that continues as new before the head went out
        hands it to the next run, which sends it again under the same id. A head the backend
        refuses past the window flags the outbox until the next delivery (engine 2)."""
        while True:
            await workflow.wait_condition(lambda: self._state.outbox.head is not None)
            outbox = self._state.outbox
            head = outbox.head
            assert head is not None
            window = self._failing_window()
            try:
                await workflow.execute_activity_method(
                    EventDelivery.deliver_event,
                    DeliverEventInput.of(head, failing=outbox.failing_since is not None),
                    summary=f"deliver event {head.sequence}: {head.type.value}",
                    start_to_close_timeout=timedelta(seconds=30),
                    schedule_to_close_timeout=window,
                    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=self._timings.event_retry_max_seconds)),
                )
            except ActivityError as err:
                if window is None or err.retry_state != RetryState.TIMEOUT:
                    raise
                self._state.outbox = self._state.outbox.failing()
                self._publish_now()
                continue
            self._state.outbox = self._state.outbox.acknowledge(head.sequence)
            if outbox.failing_since is not None:  # the backend is back
                self._publish_now()

    def _failing_window(self) -> timedelta | None:
        """How long a head may be refused before the backend counts as failing: the first
        delivery of a head on a backend not yet known to fail; after it, no bound."""
        after = self._timings.events_failing_after_seconds
        if not self._features.flags_failing_backend or after is None or self._state.outbox.failing_since is not None:
            return None
        return timedelta(seconds=after)

    def _publish_now(self) -> None:
        """The delivery lane changed what operators see: out in this workflow task."""
        s = self._state
        self._publisher.note(s, s.phase)
        self._publisher.flush()

    # --- performing what decide chose ----------------------------------------------------------

    async def _perform(self, action: d.Action) -> d.Observation:
        if isinstance(action, d.Wait):
            return await self._wait()
        if isinstance(action, d.ContinueAsNew):
            self._continue_as_new_due = True  # at the first wait with nothing to handle
            return await self._wait()
        reading_customer = isinstance(action, d.ReadCustomer)
        self._customer_reads_started += reading_customer
        posted_before = self._inbox.posted
        self._inbox.reading(action)
        call = iron_call(action, self._state, self._input, workflow.info().workflow_id)
        task = asyncio.ensure_future(self._iron(call))
        # A create retrying on old start data gives way to an amend: it starts over with the new.
        amended = lambda: isinstance(action, d.FindOrCreateCustomer) and self._inbox.has(d.AmendRequested)
        await workflow.wait_condition(lambda: task.done() or amended())
        if not task.done():
            task.cancel()
            return await self._wait()
        result = task.result()
        self._customer_reads_done += reading_customer
        if isinstance(result, am.OnwardRead) and result.customer is not None and not reading_customer:
            self._inbox.customer_read(posted_before)  # read on from the identification
        if isinstance(action, d.Sign):  # the update that asked for it returns this
            refused = isinstance(result, d.IronRefused)
            self._signing_outcomes[action.content_id] = result.reason if refused else result
            if refused:
                return d.SigningRefused(action.content_id, result.reason)
        return result if isinstance(result, (d.IronRefused, d.RequirementsUnavailable)) else call.observed(result)

    async def _iron(self, call: IronCall) -> Any:
        """One Iron call; a final rejection comes back as `IronRefused`, anything else retries."""
        # A phase change is published before the call (it may retry for long); a status read on
        # the way goes out with the next phase change or wait.
        if self._publisher.urgent():
            self._publisher.flush()
        self._state.iron_calls += 1
        t = self._timings
        try:
            return await workflow.execute_activity_method(
                call.activity,
                call.arg,
                task_queue=iron_calls_queue(workflow.info().task_queue),
                summary=call.summary[:200],
                start_to_close_timeout=timedelta(seconds=t.activity_timeout_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=t.activity_retry_initial_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=t.activity_retry_max_seconds),
                    maximum_attempts=call.maximum_attempts,
                ),
            )
        except ActivityError as err:
            refused = refusal(call, err.cause)
            if refused is None:
                raise
            return refused

    # --- waiting: the inbox, or the earliest deadline ------------------------------------------

    async def _wait(self) -> d.Woken:
        """Until a deadline is due or a wake comes that the reads have not answered."""
        while True:
            self._inbox.drop_answered(self._state)
            if not self._inbox and (self._continue_as_new_due or self._continue_as_new_suggested()):
                await self._continue_as_new()  # returns only when a wake came first
                continue
            self._publisher.flush()
            self._timer_fired = False  # a timer that fired while the loop was busy is not owed twice
            due = d.due_deadlines(self._state, workflow.now())
            if not due and not self._inbox:
                self._arm_timer(workflow.now())
                await workflow.wait_condition(lambda: bool(self._inbox) or self._timer_fired)
                # A timer kept for a later deadline fires a little early: a poll is only a read.
                due = d.due_deadlines(self._state, workflow.now()) or (d.earliest_deadline(self._state) if self._timer_fired else ())
                if not due and self._inbox.drop_answered(self._state) and not self._inbox:
                    continue  # every wake was already known: wait on
            return d.Woken(wakes=self._inbox.take(), due=due)

    def _arm_timer(self, now: datetime) -> None:
        """One timer, for the earliest deadline; one already running for a little earlier stays
        (`d.keeps_running_timer`), so a webhook-driven wait costs no timer cancellation."""
        earliest = d.earliest_deadline(self._state)
        if not earliest:
            return self._cancel_timer()
        due = self._state.deadlines[earliest[0]]
        if self._timer is not None and self._timer_due is not None and d.keeps_running_timer(
            self._timer_due, due, now, replaces_early=self._features.replaces_early_timers
        ):
            return
        self._cancel_timer()
        self._timer_due = due
        summary = d.timer_summary(self._state, earliest[0])
        self._timer = asyncio.ensure_future(workflow.sleep(due - now, summary=summary))
        self._timer.add_done_callback(self._timer_done)

    def _timer_done(self, task: asyncio.Task[None]) -> None:
        if task is self._timer:
            self._timer, self._timer_due = None, None
            self._timer_fired = not task.cancelled()

    def _cancel_timer(self) -> None:
        timer, self._timer, self._timer_due = self._timer, None, None
        if timer is not None:
            timer.cancel()

    # --- continue-as-new -----------------------------------------------------------------------

    def _continue_as_new_suggested(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._timings.continue_as_new_after_events

    async def _continue_as_new(self) -> None:
        """Continue as new once every handler has finished; returns if a wake arrives first."""
        s = self._state
        if d.delivers_before_continuing_as_new(self._input, s, long_history=self._continue_as_new_suggested()):
            await workflow.wait_condition(lambda: s.outbox.head is None or bool(self._inbox))
        if self._inbox or not await self._waiters.let_go(lambda: bool(self._inbox)):  # and every handler finishes
            return
        s.seen_event_keys = s.seen_event_keys[-self._timings.dedup_memory :]
        d.record(s, workflow.now(), f"continuing as new (run {s.runs + 1})", self._timings.audit_tail)
        self._publisher.note(s, s.phase)
        next_run = d.next_run_input(self._input, s)
        workflow.continue_as_new(
            next_run,
            # The new run starts with them: no upsert spent on the last changes.
            search_attributes=sa.at_start(s, engine_version=next_run.engine_version),
            memo=self._publisher.memo_at_continue_as_new(s),
        )

    # --- messages: each records a wake for the loop --------------------------------------------

    @workflow.signal(name=SIGNAL_IRON_EVENT)
    def iron_event(self, event: IronEventSignal) -> None:
        # Total by design: a signal handler that raised would stall the workflow task.
        try:
            hint = d.note_webhook(self._state, self._seen_events, event, workflow.now(), self._timings)
            if hint is not None:
                self._inbox.post(hint)
        except Exception:  # pragma: no cover - defensive
            workflow.logger.exception("could not record iron_event")

    @workflow.update(name=UPDATE_ACCEPT_SIGNING)
    async def accept_signing(self, request: AcceptSigningRequest) -> AcceptSigningResult:
        content_id = request.content_id
        self._inbox.post(d.SigningRequested(content_id))
        await workflow.wait_condition(lambda: content_id in self._signing_outcomes)
        outcome = self._signing_outcomes.pop(content_id)
        if isinstance(outcome, str):
            raise ApplicationError(
                f"Iron did not accept the signing of {content_id}: {outcome}", type="SigningRejected", non_retryable=True
            )
        remaining = [x.id for x in self._state.required_signings if not x.signed]
        return AcceptSigningResult(
            content_id=content_id, signing_id=outcome.id, signed_at=outcome.created_at, remaining=remaining
        )

    @accept_signing.validator
    def _validate_accept_signing(self, request: AcceptSigningRequest) -> None:
        in_flight = self._state.signing_queue + self._inbox.signings()
        d.check_signing(self._state, request.content_id, in_flight)

    @workflow.update(name=UPDATE_RESTART_IDENTIFICATION)
    async def restart_identification(self, request: RestartIdentificationRequest) -> RestartIdentificationResult:
        if request.identification is not None:
            self._input = self._input.model_copy(update={"identification": request.identification})
        posted = self._inbox.post(d.RestartRequested(reason=request.reason))
        await workflow.wait_condition(lambda: self._inbox.taken >= posted)
        return RestartIdentificationResult(accepted=True, phase=self._state.phase, cycle=self._state.cycle)

    @restart_identification.validator
    def _validate_restart(self, request: RestartIdentificationRequest) -> None:
        d.check_restart(self._state, pending=self._inbox.has(d.RestartRequested))

    @workflow.update(name=UPDATE_REFRESH)
    async def refresh(self, request: RefreshRequest) -> OnboardingState:
        target = self._customer_reads_started + 1
        self._inbox.post(d.RefreshRequested())
        await workflow.wait_condition(
            lambda: self._customer_reads_done >= target or self._state.phase == Phase.ARCHIVED
        )
        return self._state

    @refresh.validator
    def _validate_refresh(self, request: RefreshRequest) -> None:
        d.check_refresh(self._state)

    @workflow.update(name=UPDATE_AMEND)
    async def amend(self, request: AmendRequest) -> AmendResult:
        changes = request.model_dump(exclude_none=True)
        self._input = self._input.model_copy(update=changes)
        posted = self._inbox.post(d.AmendRequested(
            fields=tuple(sorted(changes)), email_known=bool(self._input.email or self._input.contact_ref),
            personal_data=bool(request.email or request.name)))
        digest = workflow.memo_value(START_DIGEST_MEMO, None, type_hint=dict)
        if isinstance(digest, dict):  # a start with the corrected data attaches again
            workflow.upsert_memo({START_DIGEST_MEMO: amended_start_digest(
                digest, self._state.external_id, request, sub_partner_id=self._state.sub_partner_id)})
        await workflow.wait_condition(lambda: self._inbox.taken >= posted)
        return AmendResult(accepted=True, phase=self._state.phase, amended=sorted(changes))

    @amend.validator
    def _validate_amend(self, request: AmendRequest) -> None:
        d.check_amend(self._state)

    @workflow.update(name=UPDATE_WAIT_FOR)
    async def wait_for(self, request: WaitForRequest) -> WaitForResult:
        return await self._waiters.wait(request, lambda: self._state)

    @workflow.query(name=QUERY_STATE)
    def state(self) -> OnboardingState:
        return self._state

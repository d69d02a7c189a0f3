"""The first `CustomerOnboarding` loop, frozen: it replays the runs that were started before the
current loop (`workflows/onboarding.py`) existed, and carries each of them over to it.

Runs whose input has `engine_version` 1 (every input written before the field existed) are
handed to this class by `CustomerOnboarding`. Replaying their recorded history, it makes the
same decisions as when they ran. Once replay is over and the run reaches its next wait (or its
next continue-as-new), patch `carry-over-to-engine-2/N` (N numbers the run's checks) continues
it as new into the current loop, carrying its state. Do not change what this module does: its only job is to replay old histories
exactly. It can be deleted once no open run has `engine_version` 1 (see the README).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Awaitable, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.activity_models import (
        CREATE_IDENTIFICATION,
        CREATE_SIGNING,
        FIND_OR_CREATE_CUSTOMER,
        GET_CUSTOMER,
        GET_IDENTIFICATION,
        GET_REQUIRED_SIGNINGS,
        LATEST_IDENTIFICATION,
        CreateIdentificationResult,
        LatestIdentificationResult,
        RequiredSigningsResult,
        SigningSnapshot,
        CreateIdentificationInput,
        CreateSigningInput,
        CustomerRef,
        CustomerSnapshot,
        FindOrCreateCustomerInput,
        IdentificationRef,
        IdentificationSnapshot,
        RequiredSigningSnapshot,
    )
    from contracts import search_attributes as sa
    from workflows.idempotency import customer_key, identification_key, signing_key
    from contracts.messages import (
        ENGINE_VERSION,
        UPDATE_ACCEPT_SIGNING,
        UPDATE_REFRESH,
        UPDATE_RESTART_IDENTIFICATION,
        QUERY_STATE,
        SIGNAL_IRON_EVENT,
        WORKFLOW_TYPE,
        AcceptSigningRequest,
        AcceptSigningResult,
        AttentionView,
        AuditEntry,
        EventRecord,
        IronEventSignal,
        OnboardingInput,
        OnboardingState,
        Phase,
        RefreshRequest,
        RestartIdentificationRequest,
        RestartIdentificationResult,
        SigningView,
    )

T = TypeVar("T")

# Iron's statuses, as strings (snapshots carry strings so history reads plainly).
IDENTIFICATION_REQUIRED = "IdentificationRequired"
SIGNINGS_REQUIRED = "SigningsRequired"
ACTIVE = "Active"
SUSPENDED = "Suspended"
ARCHIVED = "Archived"
WAITING_IDENTIFICATION_STATUSES = {"Pending", "Processed", "PendingReview"}
RECENT_EVENTS_KEPT = 20
# Patch id of the leaner waiting: the poll timer survives an early wake and is reused by the next
# wait, and a status-only search-attribute change waits for the next phase change or wait
# instead of costing an upsert of its own. Histories recorded before it replay the old way.
LEANER_WAITS_PATCH = "leaner-waits-v1"
# Patch id of the carry-over: a run of this loop that is past its replay continues as new into
# the current loop at its next wait.
CARRY_OVER_PATCH = "carry-over-to-engine-2"


# Design: the main loop reads the customer and dispatches on Iron's status. Each step waits
# with `_wait`, which returns early when a signal or update marks the workflow dirty; the
# step then reads the resource it waits on. A customer-level hint (customer webhook, refresh,
# restart) sends control back to the main loop so the customer is read again.
# Counters that feed idempotency keys (`cycle`, `identification_attempt`) only move on a new
# logical operation, and travel through continue-as-new in `OnboardingState`.
@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class CustomerOnboardingV1:
    # False only where a test runs this loop as the code that ran before the carry-over existed.
    carry_over_to_current_engine = True

    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        self._input = input
        self._timings = input.timings
        self._request = input.identification
        if input.carried is not None:
            self._state = input.carried.model_copy(deep=True)
            self._state.runs += 1
        else:
            self._state = OnboardingState.first(input)
        self._seen_events = set(self._state.seen_event_keys)
        self._dirty = False
        self._customer_hint = False
        self._restart: RestartIdentificationRequest | None = None
        self._renew_identification = False
        self._reads_started = 0
        self._reads_completed = 0
        self._signings_in_flight: set[str] = set()
        self._fresh_customer: CustomerSnapshot | None = None
        self._attention_customer_status: str | None = None
        self._waiting_for = "starting"
        self._poll_key: tuple[Any, ...] | None = None
        self._poll_delay = self._timings.poll_initial_seconds
        self._published: dict[str, Any] = {}
        self._unpublished: dict[Any, Any] = {}
        self._poll_timer: asyncio.TimerHandle | None = None
        self._poll_timer_due = 0.0
        self._poll_timer_fired = False
        self._carry_checks = 0

    # --- main loop -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingState:
        s = self._state
        self._published = {pair.key.name: pair.value for pair in workflow.info().typed_search_attributes}
        self._publish()
        if input.carried is not None and s.phase == Phase.ACTIVE and s.cycle_completed and not s.needs_attention:
            # The run before ended a cycle on a fresh read of an Active customer: watch first.
            await self._wait(self._timings.active_reconcile_seconds)
        while True:
            if self._restart is not None and s.phase not in (Phase.DECLINED, Phase.NEEDS_ATTENTION):
                self._consume_restart()  # Iron moved on before the restart was picked up
            if self._should_continue_as_new():
                await self._continue_as_new()
            if s.needs_attention is not None:
                await self._park_needing_attention()
                continue
            if not s.iron_customer_id:
                await self._find_or_create_customer()
                continue
            customer = self._fresh_customer or await self._read_customer("reconcile")
            self._fresh_customer = None
            if customer is None:
                continue
            status = customer.status
            if status == ARCHIVED:
                s.outcome = "Archived"
                self._transition(Phase.ARCHIVED, "customer archived at Iron: onboarding ends")
                self._flush_search_attributes()
                await workflow.wait_condition(workflow.all_handlers_finished)
                return s
            if status == ACTIVE:
                await self._watch_active()
            elif status in (IDENTIFICATION_REQUIRED, SIGNINGS_REQUIRED):
                if s.cycle_completed:
                    self._start_new_cycle(status)
                if status == IDENTIFICATION_REQUIRED:
                    await self._identification_step(customer)
                else:
                    await self._signings_step()
            elif status == SUSPENDED:
                s.outcome = "Suspended"
                self._waiting_for = "Iron's compliance to lift the suspension"
                self._transition(Phase.SUSPENDED, "customer suspended at Iron")
                await self._wait(self._timings.parked_reconcile_seconds)
            else:
                self._waiting_for = f"Iron status {status}: waiting for Iron"
                self._transition(Phase.USER_REQUIRED, f"customer {status} at Iron")
                await self._wait(self._timings.parked_reconcile_seconds)

    # --- steps ---------------------------------------------------------------------------------

    async def _find_or_create_customer(self) -> None:
        s = self._state
        self._waiting_for = "Iron to find or create the customer"
        self._transition(Phase.FINDING_CUSTOMER, "looking up the customer by external id")
        if not self._input.email:
            self._needs_attention(
                "find_or_create_customer", "no email to create the customer with", error_type="MissingEmail"
            )
            return
        customer = await self._attempt(
            "find_or_create_customer",
            self._activity(
                FIND_OR_CREATE_CUSTOMER,
                FindOrCreateCustomerInput(
                    external_id=s.external_id,
                    email=self._input.email,
                    customer_type=self._input.customer_type,
                    name=self._input.name,
                    idempotency_key=customer_key(workflow.info().workflow_id),
                ),
                CustomerSnapshot,
            ),
        )
        if customer is None:
            return
        s.iron_customer_id = customer.id
        self._observe_customer(customer)
        self._audit("customer created at Iron" if customer.created else "existing Iron customer found")
        self._fresh_customer = customer

    async def _identification_step(self, customer: CustomerSnapshot) -> None:
        s = self._state
        known_id, known_status = s.identification_id, s.identification_status
        current = await self._current_identification(customer)
        if s.needs_attention is not None:
            return
        if self._renew_identification:
            self._renew_identification = False
            if current is not None and current.status not in WAITING_IDENTIFICATION_STATUSES:
                current = None
        cause = "customer needs an identification"
        while True:
            if current is None:
                current = await self._create_identification(cause)
                if current is None:
                    return
            previous_status = known_status if current.id == known_id else None
            self._observe_identification(current)
            known_id, known_status = current.id, current.status
            status = current.status
            if status in WAITING_IDENTIFICATION_STATUSES:
                self._waiting_for = (
                    "the customer to complete identification" if status == "Pending" else "Iron's KYC review"
                )
                self._transition(Phase.AWAITING_IDENTIFICATION, f"identification {current.id} {status}")
                await self._wait(self._next_poll_delay())
                if self._customer_hint or self._restart is not None or self._should_continue_as_new():
                    return
                current = await self._read_identification(current.id)
                if current is None:
                    return
                continue
            if status == "Approved":
                if previous_status == "Approved":
                    # Approved, yet Iron still shows the customer as IdentificationRequired:
                    # give Iron time rather than spin.
                    self._waiting_for = "Iron to move the customer on after approval"
                    await self._wait(self._next_poll_delay())
                return
            if status == "Declined":
                s.outcome = "Declined"
                self._waiting_for = "an operator to restart the identification"
                self._transition(Phase.DECLINED, f"identification {current.id} declined by Iron")
                await self._wait(self._timings.parked_reconcile_seconds)
                if self._restart is not None and self._consume_restart():
                    current, cause = None, "operator restart after decline"
                    continue
                return
            # Expired or Archived: start a new identification, a bounded number of times.
            if s.expired_count >= self._timings.max_expired_renewals:
                self._needs_attention(
                    "create_identification",
                    f"identification {status.lower()} {s.expired_count + 1} times in cycle {s.cycle}; "
                    "restart to try again",
                    error_type="IdentificationExpired",
                )
                return
            s.expired_count += 1
            current, cause = None, f"identification {current.id} {status}: renewal {s.expired_count}"

    async def _current_identification(self, customer: CustomerSnapshot) -> IdentificationSnapshot | None:
        """The identification this cycle waits on: the one we track, else Iron's newest
        (adopted: a pending one we lost track of, or a step-up Iron created itself)."""
        s = self._state
        newest_id = customer.identification_ids[-1] if customer.identification_ids else None
        if s.identification_id and s.identification_cycle == s.cycle and newest_id == s.identification_id:
            return await self._read_identification(s.identification_id)
        if not customer.identification_ids:
            return None
        result = await self._attempt(
            "latest_identification",
            self._activity(LATEST_IDENTIFICATION, CustomerRef(customer_id=customer.id), LatestIdentificationResult),
        )
        if result is None or result.identification is None:
            return None
        newest = result.identification
        if newest.id == s.identification_id and s.identification_cycle < s.cycle:
            if newest.status not in WAITING_IDENTIFICATION_STATUSES:
                return None  # last cycle's identification is done with: this cycle needs its own
        if newest.id != s.identification_id or s.identification_cycle != s.cycle:
            s.identification_id = newest.id
            s.identification_cycle = s.cycle
            self._audit(f"adopted identification {newest.id} ({newest.status}) from Iron")
        return newest

    async def _create_identification(self, cause: str) -> IdentificationSnapshot | None:
        s = self._state
        s.identification_attempt += 1
        self._waiting_for = "Iron to create the identification"
        self._transition(Phase.CREATING_IDENTIFICATION, cause)
        result = await self._attempt(
            "create_identification",
            self._activity(
                CREATE_IDENTIFICATION,
                CreateIdentificationInput(
                    customer_id=s.iron_customer_id or "",
                    request=self._request,
                    idempotency_key=identification_key(
                        workflow.info().workflow_id, s.cycle, s.identification_attempt
                    ),
                ),
                CreateIdentificationResult,
            ),
        )
        if result is None:
            return None
        ident = result.identification
        s.identification_id = ident.id
        s.identification_cycle = s.cycle
        s.identification_kind = self._request.kind.value
        s.outcome = None
        self._audit(
            f"{'adopted pending' if result.adopted else 'created'} {self._request.kind.value} "
            f"identification {ident.id}"
        )
        return ident

    async def _signings_step(self) -> None:
        s = self._state
        result = await self._attempt(
            "get_required_signings",
            self._activity(GET_REQUIRED_SIGNINGS, CustomerRef(customer_id=s.iron_customer_id or ""), RequiredSigningsResult),
        )
        if result is None:
            return
        self._merge_signings(result.signings)
        unsigned = [x for x in s.required_signings if not x.signed]
        if unsigned:
            self._waiting_for = "the customer to accept: " + ", ".join(x.display_name for x in unsigned)
        else:
            self._waiting_for = "Iron to activate the customer"
        self._transition(Phase.AWAITING_SIGNINGS, f"{len(unsigned)} signing(s) required")
        await self._wait(self._next_poll_delay())

    async def _watch_active(self) -> None:
        s = self._state
        s.outcome = "Active"
        s.needs_attention = None
        entered = self._transition(Phase.ACTIVE, "customer Active at Iron")
        self._waiting_for = "compliance changes (webhooks and periodic reconciliation)"
        if entered and not s.cycle_completed:
            s.cycle_completed = True
            # End of a cycle: start the next run with a short history.
            await self._continue_as_new()
        s.cycle_completed = True
        await self._wait(self._timings.active_reconcile_seconds)

    def _start_new_cycle(self, status: str) -> None:
        s = self._state
        s.cycle += 1
        s.cycle_completed = False
        s.identification_attempt = 0
        s.expired_count = 0
        s.required_signings = []
        s.outcome = None
        self._audit(f"Iron reverted the customer to {status}: cycle {s.cycle} begins")
        self._publish()

    async def _park_needing_attention(self) -> None:
        """Stay visibly parked until an operator restarts, or Iron moves the customer on."""
        s = self._state
        self._waiting_for = "an operator: " + (s.needs_attention.reason if s.needs_attention else "")
        await self._wait(None)
        if self._restart is not None:
            self._consume_restart()
            return
        if self._customer_hint and s.iron_customer_id:
            customer = await self._read_customer("reconcile while parked")
            if customer is not None and customer.status != self._attention_customer_status:
                s.needs_attention = None
                self._audit(f"Iron moved the customer to {customer.status}: attention cleared")
                self._fresh_customer = customer
        self._dirty = False

    def _consume_restart(self) -> bool:
        s = self._state
        request, self._restart = self._restart, None
        if request is None:
            return False
        if request.identification is not None:
            self._request = request.identification
        s.needs_attention = None
        s.expired_count = 0
        s.outcome = None
        self._renew_identification = True
        self._audit(f"operator restart: {request.reason}")
        return True

    # --- continue-as-new -----------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return self._restart is None and (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._timings.continue_as_new_after_events
        )

    def _carry_over_due(self) -> bool:
        # One patch id per check: a patch's answer is fixed for the whole run once asked, and
        # every check made while replaying the run's old history answers no. The first check made
        # past the replay answers yes and records its marker, which later replays find again.
        if not self.carry_over_to_current_engine:
            return False
        self._carry_checks += 1
        return workflow.patched(f"{CARRY_OVER_PATCH}/{self._carry_checks}")

    async def _carry_over(self) -> None:
        """Continue as new into the current loop, unless a wake arrives while handlers finish."""
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._dirty)
        if not self._dirty:
            await self._continue_as_new(carrying=True)

    async def _continue_as_new(self, *, carrying: bool = False) -> None:
        self._flush_search_attributes()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._restart is None)
        s = self._state
        s.seen_event_keys = s.seen_event_keys[-self._timings.dedup_memory :]
        self._audit(f"continuing as new (run {s.runs + 1})")
        self._flush_search_attributes()
        if s.needs_attention is not None and s.needs_attention.customer_status is None:
            s.needs_attention.customer_status = self._attention_customer_status
        # Personal data is no longer needed once the customer exists: leave it behind.
        workflow.continue_as_new(
            OnboardingInput(
                engine_version=ENGINE_VERSION if carrying or self._carry_over_due() else 1,
                external_id=s.external_id,
                customer_type=self._input.customer_type,
                email=None if s.iron_customer_id else self._input.email,
                name=None if s.iron_customer_id else self._input.name,
                identification=self._request,
                iron_customer_id=s.iron_customer_id,
                timings=self._timings,
                carried=s,
            )
        )

    # --- Iron reads ----------------------------------------------------------------------------

    def _activity(self, name: str, arg: Any, result_type: type) -> Awaitable[Any]:
        # A phase change is published before the call (the call may retry for long); a status
        # read on the way goes out with the next phase change or wait, a few seconds later.
        pending = set(self._unpublished)
        if pending and (
            not pending <= {sa.IRON_CUSTOMER_STATUS, sa.IRON_IDENTIFICATION_STATUS}
            or not workflow.patched(LEANER_WAITS_PATCH)
        ):
            self._flush_search_attributes()
        self._state.iron_calls += 1
        t = self._timings
        return workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=t.activity_timeout_seconds),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=t.activity_retry_initial_seconds),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=t.activity_retry_max_seconds),
            ),
        )

    async def _attempt(self, step: str, call: Awaitable[T]) -> T | None:
        """Run an Iron call; a final rejection parks the workflow in NeedsAttention (None)."""
        try:
            return await call
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
                self._needs_attention(
                    step,
                    cause.message,
                    error_type=details.get("iron_error") or cause.type,
                    status_code=details.get("status_code"),
                )
                return None
            raise

    async def _read_customer(self, why: str) -> CustomerSnapshot | None:
        self._dirty = False
        self._customer_hint = False
        self._reads_started += 1
        number = self._reads_started
        try:
            customer = await self._attempt(
                "get_customer",
                self._activity(GET_CUSTOMER, CustomerRef(customer_id=self._state.iron_customer_id or ""), CustomerSnapshot),
            )
        finally:
            self._reads_completed = max(self._reads_completed, number)
        if customer is not None:
            self._observe_customer(customer)
        return customer

    async def _read_identification(self, identification_id: str) -> IdentificationSnapshot | None:
        self._dirty = False
        return await self._attempt(
            "get_identification",
            self._activity(GET_IDENTIFICATION, IdentificationRef(identification_id=identification_id), IdentificationSnapshot),
        )

    # --- state bookkeeping ---------------------------------------------------------------------

    def _observe_customer(self, customer: CustomerSnapshot) -> None:
        s = self._state
        if s.customer_status != customer.status:
            self._audit(f"customer status {s.customer_status or '-'} -> {customer.status}")
        s.customer_status = customer.status
        self._publish()

    def _observe_identification(self, ident: IdentificationSnapshot) -> None:
        s = self._state
        s.identification_id = ident.id
        s.identification_status = ident.status
        s.identification_url = ident.url
        s.identification_retry_steps = list(ident.retry_steps)
        self._publish()

    def _merge_signings(self, fetched: list[RequiredSigningSnapshot]) -> None:
        s = self._state
        known = {x.id: x for x in s.required_signings}
        merged = [
            SigningView(
                id=r.id,
                url=r.url,
                display_name=r.display_name,
                signed=known[r.id].signed if r.id in known else False,
                signing_id=known[r.id].signing_id if r.id in known else None,
            )
            for r in fetched
        ]
        fetched_ids = {r.id for r in fetched}
        merged += [x for x in s.required_signings if x.signed and x.id not in fetched_ids]
        s.required_signings = merged

    def _needs_attention(
        self, step: str, reason: str, *, error_type: str | None = None, status_code: int | None = None
    ) -> None:
        s = self._state
        s.needs_attention = AttentionView(
            reason=reason, step=step, error_type=error_type, status_code=status_code, since=self._now()
        )
        s.outcome = "NeedsAttention"
        self._attention_customer_status = s.customer_status
        self._transition(Phase.NEEDS_ATTENTION, f"{step}: {reason}")

    def _transition(self, phase: Phase, cause: str) -> bool:
        s = self._state
        if s.phase == phase:
            self._publish()
            return False
        s.phase = phase
        self._audit(cause)
        workflow.logger.info("onboarding phase %s: %s", phase.value, cause)
        self._publish()
        return True

    def _audit(self, cause: str) -> None:
        s = self._state
        s.audit.append(
            AuditEntry(
                at=self._now(),
                phase=s.phase,
                cause=cause,
                customer_status=s.customer_status,
                identification_status=s.identification_status,
            )
        )
        del s.audit[: -self._timings.audit_tail]
        s.updated_at = self._now()

    def _publish(self) -> None:
        """Note the search attributes that changed (sent by `_flush_search_attributes`, once
        per workflow task: each upsert is a history event) and refresh the one-line summary
        the Temporal UI shows."""
        s = self._state
        for key, value in sa.for_state(s).items():
            if value is not None and self._published.get(key.name) != value:
                self._unpublished[key] = value
            elif key in self._unpublished and self._published.get(key.name) == value:
                del self._unpublished[key]
        details = (
            f"{s.phase.value}: waiting for {self._waiting_for}. "
            f"Customer {s.customer_status or '-'}, identification {s.identification_status or '-'}, cycle {s.cycle}."
        )
        if s.needs_attention is not None:
            details += f" Needs attention at {s.needs_attention.step}: {s.needs_attention.reason}"
        workflow.set_current_details(details)

    def _flush_search_attributes(self) -> None:
        """Send what `_publish` noted: called wherever the workflow is about to yield."""
        if not self._unpublished:
            return
        workflow.upsert_search_attributes([key.value_set(value) for key, value in self._unpublished.items()])
        for key, value in self._unpublished.items():
            self._published[key.name] = value
        self._unpublished = {}

    def _now(self) -> str:
        return workflow.now().isoformat()

    # --- waiting -------------------------------------------------------------------------------

    async def _wait(self, seconds: float | None) -> None:
        """Until a signal or update marks the workflow dirty, or `seconds` pass (the poll)."""
        self._publish()
        self._flush_search_attributes()
        if self._dirty:
            return
        if self._restart is None and self._carry_over_due():
            await self._carry_over()
            if self._dirty:
                return
        self._poll_timer_fired = False  # a poll that came due while busy is not owed twice
        if seconds is not None:
            self._arm_poll_timer(seconds)
        elif self._poll_timer is not None:  # waiting for a person alone: no poll
            self._cancel_poll_timer()
        await workflow.wait_condition(lambda: self._dirty or self._poll_timer_fired)
        if self._poll_timer_fired:
            self._poll_timer_fired = False
        elif self._poll_timer is not None and not workflow.patched(LEANER_WAITS_PATCH):
            self._cancel_poll_timer()  # as before the patch: each wait had a timer of its own

    # Design: one poll timer at a time, on the workflow's event loop (a timer command when armed,
    # a cancel command when cancelled, like the timeout of `wait_condition`). A webhook that wakes
    # the workflow leaves it running; the next wait keeps it when it comes due no later than that
    # wait wants, so a lifecycle driven by webhooks starts one timer per run, not one timer and
    # one cancellation per wake. A poll may come a little early: it is only a read of Iron.
    def _arm_poll_timer(self, seconds: float) -> None:
        due = workflow.time() + seconds
        if self._poll_timer is not None:
            if self._poll_timer_due <= due:
                return
            self._cancel_poll_timer()
        self._poll_timer_due = due
        self._poll_timer = asyncio.get_running_loop().call_later(seconds, self._poll_timer_came_due)

    def _poll_timer_came_due(self) -> None:
        self._poll_timer = None
        self._poll_timer_fired = True

    def _cancel_poll_timer(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None

    def _next_poll_delay(self) -> float:
        """Polling fallback with backoff, restarting for each new thing waited on."""
        s = self._state
        key = (s.phase, s.identification_id, s.identification_status, s.cycle)
        if key != self._poll_key:
            self._poll_key = key
            self._poll_delay = self._timings.poll_initial_seconds
        delay = self._poll_delay
        self._poll_delay = min(delay * self._timings.poll_backoff, self._timings.poll_max_seconds)
        return delay

    def _wake(self, *, customer: bool) -> None:
        self._dirty = True
        self._customer_hint = self._customer_hint or customer
        self._poll_key = None

    # --- messages ------------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_IRON_EVENT)
    def iron_event(self, event: IronEventSignal) -> None:
        # Total by design: a signal handler that raised would stall the workflow task.
        try:
            s = self._state
            key = event.dedup_key
            duplicate = key in self._seen_events
            s.recent_events.append(
                EventRecord(
                    type=event.type,
                    status=event.status,
                    entity_id=event.entity_id,
                    timestamp=event.timestamp,
                    received_at=self._now(),
                    duplicate=duplicate,
                )
            )
            del s.recent_events[:-RECENT_EVENTS_KEPT]
            if duplicate:
                return
            self._seen_events.add(key)
            s.seen_event_keys.append(key)
            if len(s.seen_event_keys) > self._timings.dedup_memory:
                self._seen_events.discard(s.seen_event_keys.pop(0))
            if event.customer_id and s.iron_customer_id and event.customer_id != s.iron_customer_id:
                workflow.logger.warning("ignoring event for another customer")
                return
            about_current = event.type == "identification_status" and event.entity_id == s.identification_id
            self._wake(customer=not about_current)
        except Exception:  # pragma: no cover - defensive
            workflow.logger.exception("could not record iron_event")

    @workflow.update(name=UPDATE_ACCEPT_SIGNING)
    async def accept_signing(self, request: AcceptSigningRequest) -> AcceptSigningResult:
        s = self._state
        self._signings_in_flight.add(request.content_id)
        try:
            signing = await self._activity(
                CREATE_SIGNING,
                CreateSigningInput(
                    customer_id=s.iron_customer_id or "",
                    content_id=request.content_id,
                    idempotency_key=signing_key(workflow.info().workflow_id, s.cycle, request.content_id),
                ),
                SigningSnapshot,
            )
        except ActivityError as err:
            self._wake(customer=True)
            message = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
            raise ApplicationError(
                f"Iron did not accept the signing of {request.content_id}: {message}",
                type="SigningRejected",
                non_retryable=True,
            ) from None
        finally:
            self._signings_in_flight.discard(request.content_id)
        name = request.content_id
        for view in s.required_signings:
            if view.id == request.content_id:
                view.signed = True
                view.signing_id = signing.id
                name = view.display_name
        remaining = [x.id for x in s.required_signings if not x.signed]
        self._audit(f"signed {name!r} at Iron (signing {signing.id})")
        if not remaining:
            self._wake(customer=True)
        self._publish()
        self._flush_search_attributes()
        return AcceptSigningResult(
            content_id=request.content_id, signing_id=signing.id, signed_at=signing.created_at, remaining=remaining
        )

    @accept_signing.validator
    def _validate_accept_signing(self, request: AcceptSigningRequest) -> None:
        s = self._state
        if s.phase != Phase.AWAITING_SIGNINGS:
            raise ValueError(f"no signing is awaited: onboarding is in phase {s.phase.value}")
        view = next((x for x in s.required_signings if x.id == request.content_id), None)
        if view is None:
            known = ", ".join(x.id for x in s.required_signings if not x.signed) or "none"
            raise ValueError(f"unknown content id {request.content_id}; awaiting: {known}")
        if view.signed:
            raise ValueError(f"{request.content_id} ({view.display_name}) is already signed")
        if request.content_id in self._signings_in_flight:
            raise ValueError(f"{request.content_id} is being signed right now")

    @workflow.update(name=UPDATE_RESTART_IDENTIFICATION)
    async def restart_identification(self, request: RestartIdentificationRequest) -> RestartIdentificationResult:
        self._restart = request
        self._wake(customer=True)
        await workflow.wait_condition(lambda: self._restart is not request)
        return RestartIdentificationResult(accepted=True, phase=self._state.phase, cycle=self._state.cycle)

    @restart_identification.validator
    def _validate_restart(self, request: RestartIdentificationRequest) -> None:
        phase = self._state.phase
        if phase not in (Phase.DECLINED, Phase.NEEDS_ATTENTION):
            raise ValueError(f"nothing to restart: onboarding is in phase {phase.value}")
        if self._restart is not None:
            raise ValueError("a restart is already under way")

    @workflow.update(name=UPDATE_REFRESH)
    async def refresh(self, request: RefreshRequest) -> OnboardingState:
        target = self._reads_started + 1
        self._wake(customer=True)
        await workflow.wait_condition(lambda: self._reads_completed >= target)
        return self._state

    @refresh.validator
    def _validate_refresh(self, request: RefreshRequest) -> None:
        if not self._state.iron_customer_id:
            raise ValueError("no Iron customer yet: nothing to refresh")
        if self._state.phase == Phase.ARCHIVED:
            raise ValueError("the customer is archived")

    @workflow.query(name=QUERY_STATE)
    def state(self) -> OnboardingState:
        return self._state

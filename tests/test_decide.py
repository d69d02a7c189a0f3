"""`decide`, the onboarding's business rules, without Temporal or Iron: one table row per branch.

Each test feeds observations one at a time, the way the workflow does, and checks the action
`decide` returns and what it recorded in the state.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.activity_models import (
    CustomerSnapshot,
    IdentificationSnapshot,
    RequiredSigningSnapshot,
    SigningSnapshot,
)
from contracts.messages import (
    IronEventSignal,
    OnboardingInput,
    OnboardingState,
    OnboardingTimings,
    Phase,
)
from contracts.requirements import RequirementsView, RequirementView
from contracts.engine import Features
from workflows import decide as d

T = OnboardingTimings()
# Release 1.0.0's engine: its customers still run, so its rules stay under test until its gate goes.
ENGINE_1 = Features.of(1)
# What the current engine reads on from an identification read, and from a customer read.
ONWARD = {"customer_if": ("Approved",), "signings_if": ("SigningsRequired",)}
SIGNINGS_ONWARD = {"signings_if": ("SigningsRequired",)}
FIRST_IDENTIFICATION = d.CreateIdentification(cycle=1, attempt=1, cause="customer needs an identification")
IDENTIFY_ON_CREATE = {"identify": FIRST_IDENTIFICATION, "identify_if": ("IdentificationRequired",)}
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CUSTOMER = "cus-1"


def customer(status: str, *ids: str, created: bool = False) -> CustomerSnapshot:
    return CustomerSnapshot(id=CUSTOMER, status=status, customer_type="Person", identification_ids=list(ids), created=created)


def identification(id_: str, status: str, *retry_steps: str) -> IdentificationSnapshot:
    return IdentificationSnapshot(
        id=id_, status=status, url=f"https://kyc.example/{id_}", retry_steps=list(retry_steps), created_at=T0.isoformat()
    )


def requirements(bucket: str = "missing", code: str = "kyc_identity", *labels: str, ident: str = "idv-1") -> RequirementsView:
    item = RequirementView(code=code, identification_id=ident, retryable=bucket == "missing", reject_labels=list(labels))
    return RequirementsView(requirements_due=["kyc"] if bucket != "complete" else [], **{bucket: [item]})


SIGNINGS = (
    RequiredSigningSnapshot(id="terms", url="https://sign.example/terms", display_name="Terms"),
    RequiredSigningSnapshot(id="privacy", url="https://sign.example/privacy", display_name="Privacy"),
)


class Run:
    """Feeds `decide` like the workflow does, with a clock."""

    def __init__(
        self,
        state: OnboardingState | None = None,
        timings: OnboardingTimings = T,
        *,
        deliver_events: bool = False,
        features: Features = d.CURRENT_FEATURES,
    ) -> None:
        self.state = state or OnboardingState(external_id="ext-1")
        self.timings = timings
        self.deliver_events = deliver_events
        self.features = features
        self.now = T0

    def __call__(self, observation: d.Observation, *, after: float = 1.0) -> d.Action:
        self.now += timedelta(seconds=after)
        return d.decide(self.state, observation, self.now, self.timings, self.features)

    def start(self, *, carried: bool = False, email: bool = True, by_reference: bool = False) -> d.Action:
        """A run whose input gives the email inline (personal data in its history), by
        reference (`contact_ref`: none), or not at all."""
        return self(d.RunStarted(carried=carried, email_known=email, deliver_events=self.deliver_events,
                                 personal_data=email and not by_reference))

    def woken(self, *wakes: d.Wake, due: tuple[str, ...] = (), after: float = 1.0) -> d.Action:
        return self(d.Woken(wakes=wakes, due=due), after=after)


def to_awaiting_identification(run: Run, started: bool = False, **start: bool) -> d.Action:
    """A new customer created, and its first identification, as the run's engine does it
    (after the run's start, unless `started` already)."""
    assert started or isinstance(run.start(**start), d.FindOrCreateCustomer)
    created = d.IdentificationCreated(identification("idv-1", "Pending"), adopted=False, kind="Link")
    if run.features.identifies_on_create:
        return run(d.CustomerFound(customer("IdentificationRequired", created=True), created, identification_attempt=1))
    assert isinstance(run(d.CustomerFound(customer("IdentificationRequired", created=True))), d.CreateIdentification)
    return run(created)


def to_awaiting_signings(run: Run, **start: bool) -> d.Action:
    to_awaiting_identification(run, **start)
    assert isinstance(run.woken(d.IronHint("identification_status", about_customer=False)), d.ReadIdentification)
    assert run(d.IdentificationRead(identification("idv-1", "Approved"))) == d.ReadCustomer(
        cause="identification approved", **(SIGNINGS_ONWARD if run.features.reads_onward else {}))
    assert isinstance(run(d.CustomerRead(customer("SigningsRequired", "idv-1"))), d.ReadSignings)
    return run(d.SigningsRead(SIGNINGS))


def to_active(run: Run, **start: bool) -> d.Action:
    to_awaiting_signings(run, **start)
    for content_id in ("terms", "privacy"):
        action = run.woken(d.SigningRequested(content_id))
        assert action == d.Sign(content_id=content_id, cycle=run.state.cycle)
        action = run(d.Signed(content_id, SigningSnapshot(id=f"sig-{content_id}", content_id=content_id, created_at="t")))
    assert isinstance(action, d.ReadCustomer)
    return run(d.CustomerRead(customer("Active", "idv-1")))


# --- finding or creating the customer ----------------------------------------------------------


def test_a_new_onboarding_finds_or_creates_the_customer_first():
    run = Run()
    assert run.start() == d.FindOrCreateCustomer(attempt=0, **IDENTIFY_ON_CREATE)
    assert run.state.phase == Phase.FINDING_CUSTOMER
    assert Run(features=Features.of(1)).start() == d.FindOrCreateCustomer(attempt=0), "engine 1 creates it alone"


def test_the_identification_created_with_the_customer_goes_straight_to_its_wait():
    run = Run(deliver_events=True)
    run.start()
    created = d.IdentificationCreated(identification("idv-1", "Pending"), adopted=False, kind="Link")
    assert run(d.CustomerFound(customer("IdentificationRequired", created=True), created, identification_attempt=1)) == d.Wait()
    s = run.state
    assert s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id == "idv-1"
    assert s.identification_attempt == 1, "the attempt its key was made with: a renewal takes the next"
    assert s.identification_url == "https://kyc.example/idv-1"
    (event,) = s.outbox.pending
    assert (event.data.previous_phase, event.data.phase) == (Phase.FINDING_CUSTOMER, Phase.AWAITING_IDENTIFICATION)
    causes = [e.cause for e in s.audit]
    assert causes.index("customer created at Iron") < causes.index("created Link identification idv-1")


def test_a_customer_found_without_the_identification_gets_it_from_its_own_step_under_the_same_key():
    run = Run()
    run.start()  # Iron refused the identification for good, or the customer's status did not ask for one
    assert run(d.CustomerFound(customer("IdentificationRequired", created=True))) == FIRST_IDENTIFICATION
    assert run.state.phase == Phase.CREATING_IDENTIFICATION


def test_only_a_customer_without_an_identification_gets_one_created_with_it():
    run = Run()
    run.state.customer_identification_ids = ["idv-0"]  # known from an earlier run
    assert run.start() == d.FindOrCreateCustomer(attempt=0)
    run = Run()
    run.state.cycle_completed = True  # back from Active: the new cycle decides its identification
    assert run.start() == d.FindOrCreateCustomer(attempt=0)


def test_without_an_email_the_customer_cannot_be_created_and_needs_attention():
    run = Run()
    assert run.start(email=False) == d.Wait()
    assert run.state.phase == Phase.NEEDS_ATTENTION
    assert run.state.needs_attention.error_type == "MissingEmail"
    assert set(run.state.deadlines) == {"sla", "idle"}, "a person fixes this: no poll, only the operator SLA's and idle deadlines"


def test_amended_start_data_retries_the_customer_with_a_new_idempotency_attempt():
    run = Run()
    run.start()
    assert run(d.IronRefused("find_or_create_customer", "email invalid", "IronValidationError", 422)) == d.Wait()
    assert run.state.phase == Phase.NEEDS_ATTENTION
    action = run.woken(d.AmendRequested(fields=("email",), email_known=True))
    assert action == d.FindOrCreateCustomer(attempt=1, **IDENTIFY_ON_CREATE)
    assert run.state.needs_attention is None
    assert "start data amended: email" in run.state.audit[-2].cause


def test_an_existing_customer_with_a_pending_identification_is_adopted():
    run = Run()
    run.start()
    assert run(d.CustomerFound(customer("IdentificationRequired", "idv-9"))) == d.ReadLatestIdentification()
    assert run(d.LatestIdentificationRead(identification("idv-9", "Pending"))) == d.Wait()
    s = run.state
    assert s.identification_id == "idv-9" and s.phase == Phase.AWAITING_IDENTIFICATION
    assert any("adopted identification idv-9" in e.cause for e in s.audit)


# --- identification ----------------------------------------------------------------------------


def test_the_first_identification_is_created_then_awaited_with_its_url_and_a_poll():
    run = Run()
    run.start()
    action = run(d.CustomerFound(customer("IdentificationRequired", created=True)))
    assert action == d.CreateIdentification(cycle=1, attempt=1, cause="customer needs an identification")
    assert run.state.phase == Phase.CREATING_IDENTIFICATION
    assert run(d.IdentificationCreated(identification("idv-1", "Pending"), adopted=False, kind="Link")) == d.Wait()
    s = run.state
    assert s.phase == Phase.AWAITING_IDENTIFICATION
    assert s.identification_url == "https://kyc.example/idv-1"
    assert s.deadlines["poll"] == run.now + timedelta(seconds=T.poll_initial_seconds)
    assert set(s.deadlines) == {"poll", "sla", "idle"}, "a poll, the customer SLA's deadline and the idle one"
    assert s.waiting_for == "the customer to complete identification"


def test_a_pending_identification_adopted_on_409_is_recorded_as_adopted():
    run = Run()
    run.start()
    run(d.CustomerFound(customer("IdentificationRequired", created=True)))
    run(d.IdentificationCreated(identification("idv-1", "Pending"), adopted=True, kind="Link"))
    assert "adopted pending Link identification idv-1" in [e.cause for e in run.state.audit]


def test_a_webhook_about_the_identification_reads_only_the_identification():
    run = Run()
    to_awaiting_identification(run)
    action = run.woken(d.IronHint("identification_status", about_customer=False))
    assert action == d.ReadIdentification(identification_id="idv-1", cause="webhook identification_status", **ONWARD)


@pytest.mark.parametrize("status, waiting_for", [("Processed", "Iron's KYC review"), ("PendingReview", "Iron's KYC review")])
def test_review_statuses_keep_waiting(status, waiting_for):
    run = Run()
    to_awaiting_identification(run)
    run.woken(due=("poll",))
    assert run(d.IdentificationRead(identification("idv-1", status))) == d.Wait()
    assert run.state.phase == Phase.AWAITING_IDENTIFICATION and run.state.waiting_for == waiting_for


def test_polling_backs_off_and_a_webhook_starts_it_over_for_ever_on_engine_1():
    run = Run(features=ENGINE_1)
    to_awaiting_identification(run)
    delays = []
    for _ in range(8):
        run.woken(due=("poll",))
        run(d.IdentificationRead(identification("idv-1", "Pending")))
        delays.append((run.state.deadlines["poll"] - run.now).total_seconds())
    assert delays[:4] == [120, 240, 480, 960] and delays[-1] == T.poll_max_seconds
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Pending")))
    assert (run.state.deadlines["poll"] - run.now).total_seconds() == T.poll_initial_seconds


def test_approved_moves_on_once_iron_moves_the_customer():
    run = Run()
    assert to_awaiting_signings(run) == d.Wait()
    s = run.state
    assert s.phase == Phase.AWAITING_SIGNINGS
    assert [x.id for x in s.required_signings] == ["terms", "privacy"]
    assert s.waiting_for == "the customer to accept: Terms, Privacy"


def test_approved_while_iron_still_requires_identification_waits_instead_of_spinning():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Approved")))
    assert run(d.CustomerRead(customer("IdentificationRequired", "idv-1"))) == d.Wait()
    assert run.state.waiting_for == "Iron to move the customer on after approval"
    assert "poll" in run.state.deadlines


@pytest.mark.parametrize("status", ["Expired", "Archived"])
def test_an_expired_identification_is_renewed_with_the_next_attempt(status):
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    action = run(d.IdentificationRead(identification("idv-1", status)))
    assert action == d.CreateIdentification(cycle=1, attempt=2, cause=f"identification idv-1 {status}: renewal 1")
    assert run.state.expired_count == 1


def test_renewals_are_bounded_then_the_customer_needs_attention():
    run = Run(timings=T.model_copy(update={"max_expired_renewals": 1}))
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Expired")))
    run(d.IdentificationCreated(identification("idv-2", "Pending"), adopted=False, kind="Link"))
    run.woken(d.IronHint("identification_status", about_customer=False))
    assert run(d.IdentificationRead(identification("idv-2", "Expired"))) == d.Wait()
    s = run.state
    assert s.phase == Phase.NEEDS_ATTENTION and s.needs_attention.error_type == "IdentificationExpired"
    assert "expired 2 times in cycle 1" in s.needs_attention.reason


def test_declined_parks_and_never_retries_on_its_own():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    assert run(d.IdentificationRead(identification("idv-1", "Declined"))) == d.ReadRequirements(cause="identification declined")
    assert run(d.RequirementsRead(requirements("missing", "kyc_identity"))) == d.Wait()
    assert run.state.phase == Phase.DECLINED and run.state.outcome == "Declined"
    for _ in range(3):  # hourly reconciliation: reads, never creates (requirements once per reading of Iron)
        assert isinstance(run.woken(due=("reconcile",), after=3600), d.ReadCustomer)
        assert isinstance(run(d.CustomerRead(customer("IdentificationRequired", "idv-1"))), d.ReadIdentification)
        assert run(d.IdentificationRead(identification("idv-1", "Declined"))) == d.Wait()


def test_an_operator_restart_after_decline_creates_a_new_identification():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Declined")))
    assert isinstance(run.woken(d.RestartRequested(reason="documents re-checked")), d.ReadCustomer)
    assert isinstance(run(d.CustomerRead(customer("IdentificationRequired", "idv-1"))), d.ReadIdentification)
    action = run(d.IdentificationRead(identification("idv-1", "Declined")))
    assert action == d.CreateIdentification(cycle=1, attempt=2, cause="operator restart: documents re-checked")
    assert run.state.outcome is None, "the restart clears the Declined outcome"


def test_a_restart_survives_continue_as_new_before_it_is_acted_on():
    """The restart is state, not a flag of one run: a run that continues as new right after
    taking it still renews the identification."""
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Declined")))
    run.woken(d.RestartRequested(reason="documents re-checked"))
    carried = OnboardingState.model_validate_json(run.state.model_dump_json())  # what continue-as-new carries
    next_run = Run(carried)
    assert isinstance(next_run.start(carried=True), d.ReadCustomer)
    next_run(d.CustomerRead(customer("IdentificationRequired", "idv-1")))
    action = next_run(d.IdentificationRead(identification("idv-1", "Declined")))
    assert isinstance(action, d.CreateIdentification)


def test_an_unknown_identification_status_parks_visibly_and_never_creates():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    assert run(d.IdentificationRead(identification("idv-1", "OnHold"))) == d.Wait()
    s = run.state
    assert s.phase == Phase.UNKNOWN_IRON_STATUS and s.identification_status == "OnHold"
    assert "'OnHold'" in s.waiting_for and "poll" in s.deadlines
    run.woken(due=("poll",))
    assert isinstance(run(d.CustomerRead(customer("IdentificationRequired", "idv-1"))), d.ReadIdentification)
    assert run(d.IdentificationRead(identification("idv-1", "Pending"))) == d.Wait()
    assert run.state.phase == Phase.AWAITING_IDENTIFICATION


# --- signings ----------------------------------------------------------------------------------


def test_signings_are_signed_one_by_one_and_the_last_reads_the_customer():
    run = Run()
    to_awaiting_signings(run)
    assert run.woken(d.SigningRequested("terms")) == d.Sign(content_id="terms", cycle=1)
    action = run(d.Signed("terms", SigningSnapshot(id="sig-1", content_id="terms", created_at="t")))
    assert action == d.Wait(), "one still unsigned: no read of Iron"
    assert run.state.waiting_for == "the customer to accept: Privacy"
    run.woken(d.SigningRequested("privacy"))
    action = run(d.Signed("privacy", SigningSnapshot(id="sig-2", content_id="privacy", created_at="t")))
    assert action == d.ReadCustomer(cause="every document signed")
    assert all(x.signed for x in run.state.required_signings)


def test_a_refused_signing_reads_the_customer_and_signings_again():
    run = Run()
    to_awaiting_signings(run)
    run.woken(d.SigningRequested("terms"))
    assert isinstance(run(d.SigningRefused("terms", "content no longer required")), d.ReadCustomer)
    assert isinstance(run(d.CustomerRead(customer("SigningsRequired", "idv-1"))), d.ReadSignings)


# --- Active and after --------------------------------------------------------------------------


def test_reaching_active_ends_the_cycle_with_continue_as_new_into_the_watch():
    reconcile_after = T.active_backstop_seconds  # the fleet-wide reconciliation watches the rest
    run = Run()
    assert to_active(run) == d.ContinueAsNew(reason="end of cycle")
    s = run.state
    assert s.phase == Phase.ACTIVE and s.outcome == "Active" and s.cycle_completed
    assert s.deadlines == {"reconcile": run.now + timedelta(seconds=reconcile_after)}
    next_run = Run(OnboardingState.model_validate_json(s.model_dump_json()))
    assert next_run.start(carried=True) == d.Wait(), "the next run watches first: Iron was just read"


def test_a_run_without_personal_data_stays_in_its_run_at_the_end_of_a_cycle():
    run = Run()
    assert to_active(run, by_reference=True) == d.Wait(), "the contact came by reference: nothing to leave behind"
    s = run.state
    assert s.phase == Phase.ACTIVE and s.cycle_completed and not s.personal_data_in_run
    assert s.deadlines == {"reconcile": run.now + timedelta(seconds=T.active_backstop_seconds)}
    # Back from Active and onboarded again: the cycle ends in the same run too.
    assert isinstance(run.woken(d.IronHint("customer_status", about_customer=True)), d.ReadCustomer)
    run(d.CustomerRead(customer("SigningsRequired", "idv-1")))
    assert not run.state.cycle_completed, "a new cycle began"
    for content_id in ("terms", "privacy"):
        run.woken(d.SigningRequested(content_id))
        action = run(d.Signed(content_id, SigningSnapshot(id=f"sig2-{content_id}", content_id=content_id, created_at="t")))
    assert isinstance(action, d.ReadCustomer)
    assert run(d.CustomerRead(customer("Active", "idv-1"))) == d.Wait()
    assert run.state.cycle == 2 and run.state.cycle_completed


@pytest.mark.parametrize("features, by_reference, amended", [
    (d.CURRENT_FEATURES, False, False),
    (d.CURRENT_FEATURES, True, True),
    (ENGINE_1, True, False),
], ids=["email-inline", "amended-inline", "engine-1-always"])
def test_a_run_that_holds_personal_data_continues_as_new_at_the_end_of_a_cycle(features, by_reference, amended):
    run = Run(features=features)
    assert isinstance(run.start(by_reference=by_reference), d.FindOrCreateCustomer)
    if amended:  # the corrected email is in this run's history now, as the amend's argument
        assert isinstance(run.woken(d.AmendRequested(fields=("email",), email_known=True, personal_data=True)),
                          d.FindOrCreateCustomer)
    ended = to_active(run, started=True)
    assert run.state.personal_data_in_run == (not by_reference or amended)
    assert ended == d.ContinueAsNew(reason="end of cycle")


@pytest.mark.parametrize(
    "deliver_events, long_history, pending, waits",
    [
        (True, False, 1, True),
        (True, False, 0, True),
        (True, False, 2, False),
        (True, True, 1, False),
        (False, False, 0, False),
    ],
    ids=["its-last-event", "all-delivered", "backend-lagging", "long-history", "no-events"],
)
def test_the_end_of_a_cycle_waits_for_its_last_event_before_continuing_as_new(deliver_events, long_history, pending, waits):
    run = Run(deliver_events=deliver_events)
    to_active(run)
    assert len(run.state.outbox.pending) == (3 if deliver_events else 0), "one event per phase"
    while len(run.state.outbox.pending) > pending:  # the backend took these already, head first
        run.state.outbox = run.state.outbox.acknowledge(run.state.outbox.head.sequence)
    assert len(run.state.outbox.pending) == pending
    start = OnboardingInput(external_id="ext-1", email="e@example.com", deliver_events=deliver_events)
    assert d.delivers_before_continuing_as_new(start, run.state, long_history=long_history) is waits


def test_active_is_reconciled_and_stays_active_without_a_new_cycle():
    reconcile_after = T.active_backstop_seconds
    run = Run()
    to_active(run)
    assert run.state.deadlines["reconcile"] == run.now + timedelta(seconds=reconcile_after)
    assert isinstance(run.woken(due=("reconcile",), after=reconcile_after), d.ReadCustomer)
    assert run(d.CustomerRead(customer("Active", "idv-1"))) == d.Wait()
    assert run.state.cycle == 1
    assert run.state.deadlines == {"reconcile": run.now + timedelta(seconds=reconcile_after)}


def test_the_backstop_is_the_only_timer_while_active_and_the_fleet_reconciler_wakes_it():
    timings = OnboardingTimings(active_backstop_seconds=30 * 86400)
    run = Run(timings=timings)
    to_active(run)
    assert run.state.deadlines == {"reconcile": run.now + timedelta(days=30)}
    assert d.due_deadlines(run.state, run.now + timedelta(hours=6)) == (), "no 6-hour read any more"
    # The fleet reconciler saw another status at Iron: its hint reads the customer at once.
    event = IronEventSignal(type="fleet_reconciliation", timestamp="t1", customer_id=CUSTOMER, entity_id=CUSTOMER, status="Suspended")
    hint = d.note_webhook(run.state, set(), event, run.now, timings)
    assert hint == d.IronHint("fleet_reconciliation", about_customer=True, status="Suspended", entity_id=CUSTOMER)
    assert run.woken(hint) == d.ReadCustomer(cause="webhook fleet_reconciliation")
    assert run(d.CustomerRead(customer("Suspended", "idv-1"))) == d.Wait()
    assert run.state.phase == Phase.SUSPENDED
    assert run.state.deadlines == {
        "reconcile": run.now + timedelta(seconds=timings.parked_reconcile_seconds),
        "idle": run.now + timedelta(seconds=timings.idle_after_seconds),
    }


def test_reversion_to_identification_required_adopts_irons_step_up_in_a_new_cycle():
    run = Run()
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    assert run(d.CustomerRead(customer("IdentificationRequired", "idv-1", "idv-2"))) == d.ReadLatestIdentification()
    assert run.state.cycle == 2 and not run.state.cycle_completed and run.state.required_signings == []
    assert run(d.LatestIdentificationRead(identification("idv-2", "Pending"))) == d.ReadRequirements(cause="identification Pending")
    assert run(d.RequirementsRead(requirements("missing", "identification_kyc", ident="idv-2"))) == d.Wait()
    s = run.state
    assert s.identification_id == "idv-2" and s.identification_cycle == 2
    assert s.phase == Phase.AWAITING_IDENTIFICATION


def test_reversion_without_a_step_up_creates_this_cycles_own_identification():
    run = Run()
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    run(d.CustomerRead(customer("IdentificationRequired", "idv-1")))
    action = run(d.LatestIdentificationRead(identification("idv-1", "Approved")))
    assert action == d.CreateIdentification(cycle=2, attempt=1, cause="customer needs an identification")


def test_reversion_to_signings_required_reads_the_new_signings():
    run = Run()
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    assert run(d.CustomerRead(customer("SigningsRequired", "idv-1"))) == d.ReadSignings()
    assert run.state.cycle == 2


@pytest.mark.parametrize(
    "status, phase, outcome",
    [("Suspended", Phase.SUSPENDED, "Suspended"), ("UserRequired", Phase.USER_REQUIRED, None), ("Frozen", Phase.UNKNOWN_IRON_STATUS, None)],
)
def test_parked_customer_statuses_wait_visibly_with_hourly_reconciliation_on_engine_1(status, phase, outcome):
    run = Run(features=ENGINE_1)
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    assert run(d.CustomerRead(customer(status, "idv-1"))) == d.Wait()
    s = run.state
    assert s.phase == phase and s.customer_status == status
    assert s.deadlines["reconcile"] == run.now + timedelta(seconds=T.parked_reconcile_seconds)
    assert set(s.deadlines) <= {"reconcile", "sla"}, "a reconcile, and the wait's SLA if it has one"
    if outcome:
        assert s.outcome == outcome
    run.woken(due=("reconcile",), after=3600)
    assert run(d.CustomerRead(customer("Active", "idv-1"))) == d.Wait()
    assert run.state.phase == Phase.ACTIVE and run.state.cycle == 1


def test_archived_completes():
    run = Run()
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    assert run(d.CustomerRead(customer("Archived", "idv-1"))) == d.Complete()
    assert run.state.phase == Phase.ARCHIVED and run.state.outcome == "Archived"


# --- needing attention -------------------------------------------------------------------------


def test_a_final_rejection_parks_with_step_code_and_reason_until_iron_or_an_operator_moves():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    assert run(d.IronRefused("get_identification", "not found", "IronNotFound", 404)) == d.Wait()
    s = run.state
    assert s.phase == Phase.NEEDS_ATTENTION and s.outcome == "NeedsAttention"
    assert (s.needs_attention.step, s.needs_attention.status_code) == ("get_identification", 404)
    assert set(s.deadlines) == {"sla", "idle"}, "no poll: an operator or Iron moves it; only the operator SLA's and idle deadlines"
    # A webhook: read the customer; same status, still parked.
    assert isinstance(run.woken(d.IronHint("customer_status", about_customer=True)), d.ReadCustomer)
    assert run(d.CustomerRead(customer("IdentificationRequired", "idv-1"))) == d.Wait()
    assert run.state.phase == Phase.NEEDS_ATTENTION
    # Iron moved the customer on: the flag clears and the loop follows Iron.
    run.woken(d.IronHint("customer_status", about_customer=True))
    assert isinstance(run(d.CustomerRead(customer("SigningsRequired", "idv-1"))), d.ReadSignings)
    assert run.state.needs_attention is None


def test_a_restart_from_needs_attention_retries():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IronRefused("get_identification", "not found", "IronNotFound", 404))
    assert isinstance(run.woken(d.RestartRequested(reason="fixed")), d.ReadCustomer)
    assert run.state.needs_attention is None and run.state.renewal_due


# --- webhooks and handlers ---------------------------------------------------------------------


def test_webhooks_are_deduplicated_and_other_customers_ignored():
    state = OnboardingState(external_id="ext-1", iron_customer_id=CUSTOMER, identification_id="idv-1")
    seen: set[str] = set()
    event = IronEventSignal(type="identification_status", timestamp="1", customer_id=CUSTOMER, entity_id="idv-1", status="Approved")
    assert d.note_webhook(state, seen, event, T0, T) == d.IronHint(
        "identification_status", about_customer=False, status="Approved", entity_id="idv-1"
    )
    assert d.note_webhook(state, seen, event, T0, T) is None
    assert state.recent_events[-1].duplicate
    other = event.model_copy(update={"customer_id": "someone-else", "timestamp": "2"})
    assert d.note_webhook(state, seen, other, T0, T) is None
    customer_event = event.model_copy(update={"type": "customer_status", "entity_id": CUSTOMER, "timestamp": "3"})
    assert d.note_webhook(state, seen, customer_event, T0, T) == d.IronHint(
        "customer_status", about_customer=True, status="Approved", entity_id=CUSTOMER
    )
    # The hint keeps what the webhook said, to compare with what the reads showed.
    later = customer_event.model_copy(update={"timestamp": "4", "status": "Active"})
    assert d.note_webhook(state, seen, later, T0, T) == d.IronHint(
        "customer_status", about_customer=True, status="Active", entity_id=CUSTOMER
    )


def test_update_validators_refuse_what_cannot_be_done():
    run = Run()
    to_awaiting_identification(run)
    with pytest.raises(ValueError, match="no signing is awaited"):
        d.check_signing(run.state, "terms", [])
    with pytest.raises(ValueError, match="nothing to restart"):
        d.check_restart(run.state, pending=False)
    with pytest.raises(ValueError, match="exists already"):
        d.check_amend(run.state)
    d.check_refresh(run.state)
    run = Run()
    to_awaiting_signings(run)
    with pytest.raises(ValueError, match="unknown content id"):
        d.check_signing(run.state, "nope", [])
    with pytest.raises(ValueError, match="being signed"):
        d.check_signing(run.state, "terms", ["terms"])
    d.check_signing(run.state, "terms", [])
    with pytest.raises(ValueError, match="nothing to refresh"):
        d.check_refresh(OnboardingState(external_id="x"))


def test_timer_names_say_what_they_wait_for():
    run = Run()
    to_awaiting_identification(run)
    assert d.timer_summary(run.state, "poll") == "poll Iron: the customer to complete identification"
    to_active(run := Run())
    assert d.timer_summary(run.state, "reconcile") == "reconcile while Active"


# --- events for the partner's backend ----------------------------------------------------------


def test_with_events_on_every_phase_change_queues_one_event_in_order():
    run = Run(deliver_events=True)
    to_awaiting_signings(run)
    events = run.state.outbox.pending
    assert [e.data.phase.value for e in events] == ["AwaitingIdentification", "AwaitingSignings"]
    assert [e.sequence for e in events] == [1, 2]
    assert events[-1].data.previous_phase == Phase.AWAITING_IDENTIFICATION
    assert [x.id for x in events[-1].data.required_signings] == ["terms", "privacy"]


def test_without_events_nothing_is_queued_and_no_reminder_is_planned():
    run = Run()
    to_awaiting_identification(run)
    assert run.state.outbox.pending == () and "reminder" not in run.state.deadlines


def test_reminders_come_at_their_offsets_after_a_fresh_read_and_start_over_for_a_new_wait_on_engine_1():
    run = Run(deliver_events=True, features=ENGINE_1)
    to_awaiting_identification(run)
    began = run.state.awaiting_since
    assert run.state.deadlines["reminder"] == began + timedelta(days=1)

    def reminders():
        return [e.data.reminder for e in run.state.outbox.pending if e.type.value == "onboarding.reminder_due"]

    for number, day in ((1, 1), (2, 3), (3, 7)):
        run.now = began + timedelta(days=day)
        assert isinstance(run.woken(due=("reminder",), after=0), d.ReadIdentification), "a fresh read first"
        assert len(reminders()) == number - 1, "no reminder before Iron is read"
        run(d.IdentificationRead(identification("idv-1", "Pending")), after=0)
        assert len(reminders()) == number
        assert (reminders()[-1].number, reminders()[-1].of, reminders()[-1].awaiting.value) == (number, 3, "identification")
    assert "reminder" not in run.state.deadlines, "three reminders, then no more"

    # The customer moves on: the documents are a new wait with a schedule of its own.
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Approved")))
    run(d.CustomerRead(customer("SigningsRequired", "idv-1")))
    run(d.SigningsRead(SIGNINGS))
    assert run.state.reminders_sent == 0 and run.state.awaiting_since == run.now
    assert run.state.deadlines["reminder"] == run.now + timedelta(days=1)


def test_no_reminder_once_a_read_shows_the_customer_acted_on_engine_1():
    run = Run(deliver_events=True, features=ENGINE_1)
    to_awaiting_identification(run)
    run.now += timedelta(days=1)
    run.woken(due=("reminder",), after=0)
    run(d.IdentificationRead(identification("idv-1", "Processed")), after=0)  # submitted: Iron reviews now
    assert not any(e.type.value == "onboarding.reminder_due" for e in run.state.outbox.pending)
    assert "reminder" not in run.state.deadlines


# --- what the customer must fix: Iron's requirements ----------------------------------------------


def events_of(run: Run, kind: str) -> list:
    return [e for e in run.state.outbox.pending if e.type.value == kind]


def test_a_step_to_redo_reads_the_requirements_before_the_wait_and_the_event_carries_them():
    run = Run(deliver_events=True)
    run.start()
    run(d.CustomerFound(customer("IdentificationRequired", created=True)))
    created = identification("idv-1", "Pending", "questionnaire")  # a reliance token lacked answers
    action = run(d.IdentificationCreated(created, adopted=False, kind="Token"))
    assert action == d.ReadRequirements(cause="identification Pending")
    assert run.state.phase == Phase.CREATING_IDENTIFICATION, "the phase event waits for the requirements"
    assert run(d.RequirementsRead(requirements("missing", "kyc_questionnaire"))) == d.Wait()
    s = run.state
    assert s.phase == Phase.AWAITING_IDENTIFICATION
    assert [x.code for x in s.requirements.missing] == ["kyc_questionnaire"]
    (event,) = [e for e in events_of(run, "onboarding.phase_changed") if e.data.phase == Phase.AWAITING_IDENTIFICATION]
    assert event.data.requirements.missing[0].code == "kyc_questionnaire"
    assert "Iron requires: missing kyc_questionnaire." in d.current_details(s)
    # The poll finds nothing new: no second read.
    assert isinstance(run.woken(due=("poll",), after=60), d.ReadIdentification)
    assert run(d.IdentificationRead(created)) == d.Wait()
    # The customer answered: Iron reviews. Requirements are shown, so they are read again.
    run.woken(d.IronHint("identification_status", about_customer=False))
    assert run(d.IdentificationRead(identification("idv-1", "PendingReview"))) == d.ReadRequirements(
        cause="identification PendingReview"
    )
    assert run(d.RequirementsRead(requirements("pending", "identification_kyc"))) == d.Wait()
    assert d.current_details(run.state).endswith("Iron requires: pending identification_kyc.")


def test_a_plain_pending_link_costs_no_requirements_read():
    run = Run()
    assert to_awaiting_identification(run) == d.Wait()
    assert run.state.requirements is None and run.state.requirements_key is None


def test_declined_reads_what_to_redo_then_parks():
    run = Run(deliver_events=True)
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    declined = identification("idv-1", "Declined", "identity")
    assert run(d.IdentificationRead(declined)) == d.ReadRequirements(cause="identification declined")
    assert run(d.RequirementsRead(requirements("missing", "kyc_identity", "UNSATISFACTORY_PHOTOS"))) == d.Wait()
    assert run.state.phase == Phase.DECLINED
    (event,) = [e for e in events_of(run, "onboarding.phase_changed") if e.data.phase == Phase.DECLINED]
    item = event.data.requirements.missing[0]
    assert (item.code, item.retryable, item.reject_labels) == ("kyc_identity", True, ["UNSATISFACTORY_PHOTOS"])
    assert "missing kyc_identity (UNSATISFACTORY_PHOTOS)" in d.current_details(run.state)


def test_a_failed_requirements_read_never_stops_the_onboarding():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    assert isinstance(run(d.IdentificationRead(identification("idv-1", "Declined"))), d.ReadRequirements)
    assert run(d.RequirementsUnavailable("Customer not found")) == d.Wait()
    s = run.state
    assert s.phase == Phase.DECLINED and s.needs_attention is None and s.requirements is None
    assert "requirements unavailable: Customer not found" in s.audit[-2].cause
    # Not asked again until Iron's state moves: a parked reconcile reads the customer only.
    assert isinstance(run.woken(due=("reconcile",), after=3600), d.ReadCustomer)
    assert run(d.CustomerRead(customer("IdentificationRequired", "idv-1"))) == d.ReadIdentification(
        identification_id="idv-1", cause="reconcile", **ONWARD
    )
    assert run(d.IdentificationRead(identification("idv-1", "Declined"))) == d.Wait()


def test_a_step_up_reads_the_requirements_of_the_new_cycle_and_active_clears_them():
    run = Run()
    to_active(run)
    assert isinstance(run.woken(d.IronHint("customer_status", about_customer=True)), d.ReadCustomer)
    assert run(d.CustomerRead(customer("IdentificationRequired", "idv-1", "idv-2"))) == d.ReadLatestIdentification()
    action = run(d.LatestIdentificationRead(identification("idv-2", "Pending")))
    assert action == d.ReadRequirements(cause="identification Pending") and run.state.cycle == 2
    assert run(d.RequirementsRead(requirements("missing", "identification_kyc", ident="idv-2"))) == d.Wait()
    assert run.state.requirements.missing[0].identification_id == "idv-2"
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-2", "Approved")))
    assert run(d.CustomerRead(customer("Active", "idv-1", "idv-2"))) == d.ContinueAsNew(reason="end of cycle")
    assert run.state.requirements is None and run.state.requirements_key is None


def test_a_reversion_to_signings_reads_the_requirements():
    run = Run()
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    assert run(d.CustomerRead(customer("SigningsRequired", "idv-1"))) == d.ReadSignings()
    assert run(d.SigningsRead(SIGNINGS[:1])) == d.ReadRequirements(cause="signings required")
    assert run(d.RequirementsRead(requirements("complete", "identification_kyc"))) == d.Wait()
    assert run.state.phase == Phase.AWAITING_SIGNINGS
    assert "Iron requires" not in d.current_details(run.state), "nothing outstanding is not shown"


# --- SLAs ----------------------------------------------------------------------------------------


def test_a_customer_past_its_sla_is_flagged_and_announced_once_and_a_phase_change_clears_it_on_engine_1():
    run = Run(deliver_events=True, features=ENGINE_1)
    to_awaiting_identification(run)
    since = run.state.sla_since
    assert run.state.deadlines["sla"] == since + timedelta(days=7)
    assert d.timer_summary(run.state, "sla") == "SLA customer: AwaitingIdentification past its limit"
    run.now = since + timedelta(days=7)
    assert isinstance(run.woken(due=("sla",), after=0), d.ReadIdentification)
    assert run(d.IdentificationRead(identification("idv-1", "Pending")), after=0) == d.Wait()
    breach = run.state.sla_breached
    assert (breach.sla, breach.phase, breach.limit_seconds) == ("customer", Phase.AWAITING_IDENTIFICATION, 7 * 86400)
    assert breach.since == since.isoformat().replace("+00:00", "Z")
    assert "sla" not in run.state.deadlines
    assert "SLA customer breached: AwaitingIdentification since" in d.current_details(run.state)
    (announced,) = events_of(run, "onboarding.sla_breached")
    assert announced.data.sla.deadline == "customer" and announced.data.sla.phase == Phase.AWAITING_IDENTIFICATION
    # Still waiting: flagged, never announced again.
    run.woken(due=("poll",), after=3600)
    run(d.IdentificationRead(identification("idv-1", "Pending")))
    assert len(events_of(run, "onboarding.sla_breached")) == 1 and run.state.sla_breached is not None
    # The customer acts: Iron's review is a new wait, under its own SLA.
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "PendingReview")))
    assert run.state.sla_breached is None
    assert run.state.deadlines["sla"] == run.now + timedelta(hours=48)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Approved")))
    run(d.CustomerRead(customer("SigningsRequired", "idv-1")))
    run(d.SigningsRead(SIGNINGS))
    assert run.state.phase == Phase.AWAITING_SIGNINGS and run.state.sla_breached is None
    assert run.state.deadlines["sla"] == run.now + timedelta(days=7)


@pytest.mark.parametrize("status, sla", [("Declined", "operator"), ("PendingReview", "review")])
def test_each_wait_has_its_own_sla(status, sla):
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    action = run(d.IdentificationRead(identification("idv-1", status)))
    if isinstance(action, d.ReadRequirements):
        run(d.RequirementsUnavailable("refused"))
    limit = {"operator": T.sla_operator_seconds, "review": T.sla_review_seconds}[sla]
    assert run.state.sla_key.startswith(f"{sla}|") and run.state.deadlines["sla"] == run.now + timedelta(seconds=limit)


def test_an_sla_of_none_is_off_and_zero_flags_at_once_without_events_when_they_are_off():
    run = Run(OnboardingState(external_id="ext-1"), T.model_copy(update={"sla_customer_seconds": None, "sla_operator_seconds": 0}))
    to_awaiting_identification(run)
    assert "sla" not in run.state.deadlines and run.state.sla_key is None
    run(d.IronRefused("get_identification", "gone", "IronNotFound", 404))
    assert run.state.phase == Phase.NEEDS_ATTENTION
    assert run.state.sla_breached.sla == "operator" and run.state.outbox.pending == ()


# --- quiet waits (engine 2): a customer who does nothing costs nothing --------------------------


def reads_until_quiet(run: Run, due: str, read) -> list[float]:
    """Let each poll come due and answer it with `read()`, until the wait stops polling: the
    seconds after the wait began at which Iron was read."""
    began, reads = run.now, []
    while due in run.state.deadlines:
        assert len(reads) < 50, f"still polling after {reads}"
        run.now = run.state.deadlines[due]
        action = run.woken(due=(due,), after=0)
        assert isinstance(action, (d.ReadIdentification, d.ReadCustomer, d.ReadSignings)), action
        reads.append((run.now - began).total_seconds())
        while not isinstance(action, d.Wait):
            action = run(read(action), after=0)
    return reads


def test_a_wait_on_the_customer_polls_only_in_its_first_hour_then_waits_on_the_backstop():
    run = Run()
    to_awaiting_identification(run)
    reads = reads_until_quiet(run, "poll", lambda _: d.IdentificationRead(identification("idv-1", "Pending")))
    assert reads == [60, 180, 420, 900, 1860], "the backoff, within the first window of an hour"
    assert run.state.deadlines["backstop"] == run.now + timedelta(seconds=T.parked_backstop_seconds)
    assert "poll" not in run.state.deadlines and d.timer_summary(run.state, "backstop").startswith("backstop read of Iron")
    # Quiet, and still moved at once by a webhook: the identification is read, the customer signs.
    run.now += timedelta(days=20)
    assert run.woken(d.IronHint("identification_status", about_customer=False)) == d.ReadIdentification(
        identification_id="idv-1", cause="webhook identification_status", **ONWARD)
    assert run(d.IdentificationRead(identification("idv-1", "Approved"))) == d.ReadCustomer(
        cause="identification approved", **SIGNINGS_ONWARD)


def test_irons_review_keeps_its_longer_window():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "PendingReview")))
    reads = reads_until_quiet(run, "poll", lambda _: d.IdentificationRead(identification("idv-1", "PendingReview")))
    assert reads[-1] <= T.review_quiet_after_seconds < reads[-1] + T.poll_max_seconds
    assert len(reads) == 10 and set(run.state.deadlines) >= {"backstop"}


def test_a_customer_waiting_for_signatures_reads_iron_no_more_after_the_window_and_signs_at_once():
    run = Run()
    to_awaiting_signings(run)
    unchanged = {d.ReadCustomer: d.CustomerRead(customer("SigningsRequired", "idv-1")), d.ReadSignings: d.SigningsRead(SIGNINGS)}
    reads = reads_until_quiet(run, "poll", lambda action: unchanged[type(action)])
    assert len(reads) == 5 and "backstop" in run.state.deadlines
    run.now += timedelta(days=45)
    assert run.woken(d.SigningRequested("terms")) == d.Sign(content_id="terms", cycle=1), "a signing goes out at once"


@pytest.mark.parametrize("status, phase", [("Suspended", Phase.SUSPENDED), ("UserRequired", Phase.USER_REQUIRED), ("Frozen", Phase.UNKNOWN_IRON_STATUS)])
def test_a_customer_held_by_iron_is_read_hourly_only_in_the_first_window(status, phase):
    run = Run()
    to_active(run)
    run.woken(d.IronHint("customer_status", about_customer=True))
    run(d.CustomerRead(customer(status, "idv-1")))
    assert run.state.phase == phase
    reads = reads_until_quiet(run, "reconcile", lambda _: d.CustomerRead(customer(status, "idv-1")))
    assert reads == [T.parked_reconcile_seconds], "one read in the first hour"
    assert run.state.deadlines["backstop"] == run.now + timedelta(seconds=T.parked_backstop_seconds)
    # The backstop read, sixty days on: nothing changed, the next backstop is sixty days further.
    run.now = run.state.deadlines["backstop"]
    assert isinstance(run.woken(due=("backstop",), after=0), d.ReadCustomer)
    run(d.CustomerRead(customer(status, "idv-1")), after=0)
    assert run.state.deadlines["backstop"] == run.now + timedelta(seconds=T.parked_backstop_seconds)
    # The fleet pass found Iron moved the customer: read at once, Active again.
    run.woken(d.IronHint("fleet_reconciliation", about_customer=True, status="Active"))
    assert run(d.CustomerRead(customer("Active", "idv-1"))) == d.Wait()
    assert run.state.phase == Phase.ACTIVE


def test_a_declined_customer_waits_quietly_for_an_operator_restart_which_acts_at_once():
    run = Run()
    to_awaiting_identification(run)
    run.woken(d.IronHint("identification_status", about_customer=False))
    run(d.IdentificationRead(identification("idv-1", "Declined")))
    run(d.RequirementsUnavailable("none"))
    assert run.state.phase == Phase.DECLINED
    unchanged = {d.ReadCustomer: d.CustomerRead(customer("IdentificationRequired", "idv-1")),
                 d.ReadIdentification: d.IdentificationRead(identification("idv-1", "Declined"))}
    assert reads_until_quiet(run, "reconcile", lambda action: unchanged[type(action)]) == [3600]
    run.now += timedelta(days=50)
    assert isinstance(run.woken(d.RestartRequested("customer called")), d.ReadCustomer)


def test_reminders_and_slas_come_due_without_reading_iron():
    run = Run(deliver_events=True)
    to_awaiting_identification(run)
    began = run.state.awaiting_since
    for number, day in ((1, 1), (2, 3)):
        run.now = began + timedelta(days=day)
        assert run.woken(due=("reminder",), after=0) == d.Wait(), "no read for a reminder"
        assert len(events_of(run, "onboarding.reminder_due")) == number
    run.now = run.state.deadlines["sla"]
    assert run.woken(due=("sla",), after=0) == d.Wait(), "no read for an SLA"
    assert run.state.sla_breached is not None and len(events_of(run, "onboarding.sla_breached")) == 1


def test_a_customer_untouched_for_its_idle_time_is_flagged_once_and_moves_at_once_on_a_wake():
    run = Run(deliver_events=True)
    to_awaiting_signings(run)
    since = run.state.phase_since
    assert run.state.deadlines["idle"] == since + timedelta(days=30)
    run.now = since + timedelta(days=30)
    assert run.woken(due=("idle",), after=0) == d.Wait(), "flagging reads nothing"
    idle = run.state.idle
    assert (idle.sla, idle.phase, idle.limit_seconds) == ("idle", Phase.AWAITING_SIGNINGS, 30 * 86400)
    assert "Idle: AwaitingSignings untouched since" in d.current_details(run.state)
    (announced,) = [e for e in events_of(run, "onboarding.sla_breached") if e.data.sla.deadline == "idle"]
    assert announced.data.sla.phase == Phase.AWAITING_SIGNINGS
    assert "idle" not in run.state.deadlines
    run.now = run.state.deadlines["backstop"]
    run.woken(due=("backstop",), after=0)
    run(d.CustomerRead(customer("SigningsRequired", "idv-1")), after=0)
    assert run.state.idle is not None and len([e for e in events_of(run, "onboarding.sla_breached") if e.data.sla.deadline == "idle"]) == 1
    # The customer signs: at once, and the flag clears with the phase.
    assert run.woken(d.SigningRequested("terms")) == d.Sign(content_id="terms", cycle=1)
    run(d.Signed("terms", SigningSnapshot(id="sig-terms", content_id="terms", created_at="t")))
    assert run.woken(d.SigningRequested("privacy")) == d.Sign(content_id="privacy", cycle=1)
    assert isinstance(run(d.Signed("privacy", SigningSnapshot(id="sig-privacy", content_id="privacy", created_at="t"))), d.ReadCustomer)
    run(d.CustomerRead(customer("Active", "idv-1")))
    assert run.state.phase == Phase.ACTIVE and run.state.idle is None and "idle" not in run.state.deadlines


def test_engine_1_never_flags_idle_and_keeps_polling():
    run = Run(features=ENGINE_1)
    to_awaiting_signings(run)
    assert "idle" not in run.state.deadlines and "poll" in run.state.deadlines
    run.now += timedelta(days=90)
    run.woken(due=("poll",), after=0)
    action = run(d.CustomerRead(customer("SigningsRequired", "idv-1")), after=0)
    if isinstance(action, d.ReadSignings):
        run(d.SigningsRead(SIGNINGS), after=0)
    assert run.state.idle is None and run.state.deadlines["poll"] == run.now + timedelta(seconds=T.poll_initial_seconds * 2)


def test_the_details_line_says_since_when_the_backend_refuses_events():
    from contracts.outbox import Outbox
    from tests.test_outbox import phase_event

    s = OnboardingState(external_id="c", phase=Phase.ACTIVE, outbox=Outbox().append(phase_event(0)))
    assert "Events" not in d.current_details(s), "queued is not failing"
    s.outbox = s.outbox.failing()
    assert d.current_details(s).endswith(f"Events: the backend has refused them since {s.outbox.failing_since} (1 waiting).")


def test_status_says_since_when_the_backend_refuses_events_from_the_state_and_from_the_view():
    from contracts.outbox import Outbox
    from contracts.state_view import OnboardingStateView
    from starter import format_state
    from tests.test_outbox import phase_event

    s = OnboardingState(external_id="c", phase=Phase.ACTIVE, outbox=Outbox().append(phase_event(0)))
    assert "EVENTS FAILING" not in format_state(s)
    s.outbox = s.outbox.failing()
    line = f"EVENTS FAILING   the backend has refused them since {s.outbox.failing_since} (1 waiting)"
    assert line in format_state(s).splitlines()
    assert line in format_state(OnboardingStateView.of(s)).splitlines()


def test_reads_in_a_row_go_out_as_one_and_are_taken_in_order():
    run = Run()
    to_awaiting_identification(run)
    assert run.woken(d.IronHint("identification_status", about_customer=False)) == d.ReadIdentification(
        identification_id="idv-1", cause="webhook identification_status", **ONWARD)
    # Approved, the customer needs signings, its signings: what three reads in a row would give.
    read = d.IdentificationRead(identification("idv-1", "Approved"), customer("SigningsRequired", "idv-1"), SIGNINGS)
    assert run(read) == d.Wait()
    s = run.state
    assert s.phase == Phase.AWAITING_SIGNINGS and s.identification_status == "Approved"
    assert s.customer_status == "SigningsRequired" and [x.id for x in s.required_signings] == [x.id for x in SIGNINGS]
    # Still pending: the read stops at the identification, and the wait goes on.
    again = Run()
    to_awaiting_identification(again)
    again.woken(d.IronHint("identification_status", about_customer=False))
    assert again(d.IdentificationRead(identification("idv-1", "Pending"))) == d.Wait()
    # A customer read on a webhook reads its signings on when it needs them in this cycle.
    hinted = Run()
    to_awaiting_identification(hinted)
    assert hinted.woken(d.IronHint("customer_status", about_customer=True, status="SigningsRequired")) == d.ReadCustomer(
        cause="webhook customer_status", **SIGNINGS_ONWARD)
    assert hinted(d.CustomerRead(customer("SigningsRequired", "idv-1"), SIGNINGS)) == d.Wait()
    assert hinted.state.phase == Phase.AWAITING_SIGNINGS


def test_a_reverted_customer_reads_its_signings_after_the_new_cycle_begins():
    run = Run()
    to_awaiting_signings(run)
    for content in SIGNINGS:
        run.woken(d.SigningRequested(content.id))
        run(d.Signed(content.id, SigningSnapshot(id=f"sig-{content.id}", content_id=content.id, created_at="2026-11-30T00:00:00Z")))
    assert run(d.CustomerRead(customer("Active", "idv-1"))) == d.ContinueAsNew(reason="end of cycle")
    # Back from Active: a new cycle forgets the signings, so they are read after it, not on.
    assert run.woken(d.IronHint("customer_status", about_customer=True, status="SigningsRequired")) == d.ReadCustomer(
        cause="webhook customer_status")
    assert run(d.CustomerRead(customer("SigningsRequired", "idv-1"))) == d.ReadSignings()
    assert run.state.cycle == 2


def test_engine_1_reads_one_resource_an_activity():
    run = Run(features=ENGINE_1)
    to_awaiting_identification(run)
    assert run.woken(d.IronHint("identification_status", about_customer=False)) == d.ReadIdentification(
        identification_id="idv-1", cause="webhook identification_status")
    assert run(d.IdentificationRead(identification("idv-1", "Approved"))) == d.ReadCustomer(cause="identification approved")


@pytest.mark.parametrize("running_in, due_in, replaces_early, kept", [
    (60, 60, True, True),  # the same time
    (50, 60, True, True),  # a poll deadline moved a little later by a webhook
    (60, 365 * 86400, True, False),  # a minute-old poll timer, now Active: replaced
    (60, 365 * 86400, False, True),  # engine 1 keeps it, and reads a year early
    (70, 60, False, False),  # due later than the deadline: never kept
], ids=["same", "a-little-early", "far-too-early", "engine-1", "too-late"])
def test_a_running_timer_is_kept_only_while_it_fires_a_little_early(running_in, due_in, replaces_early, kept):
    now = T0
    running, due = now + timedelta(seconds=running_in), now + timedelta(seconds=due_in)
    assert d.keeps_running_timer(running, due, now, replaces_early=replaces_early) is kept

"""Every business rule of a customer's onboarding, as one function: `decide`.

`decide(state, observation, now, timings, features)` records what the workflow just learned (the wakes it
was woken by, a read of Iron, the outcome of a write) in `state`, and returns the one action to
take next: an Iron read or write, a wait, continue-as-new, or completion. It does no I/O and
imports nothing from Temporal; `workflows/onboarding.py` performs each action and feeds its
outcome back. Everything a rule must remember lives in `OnboardingState`, so it survives
continue-as-new.

Iron is the truth, webhooks are hints: a wake only says what to read again, and every phase
follows from what a read returned. The handling of one wake is a *pass*; `state.progress` says
what the pass has already read, so each resource is read once per pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.activity_models import (
    CustomerSnapshot,
    IdentificationSnapshot,
    RequiredSigningSnapshot,
    SigningSnapshot,
)
from contracts.events import Awaiting, ReminderDue, SlaBreach, phase_changed, reminder_due, sla_breached, timestamp_of
from contracts.engine import ENGINE_VERSION, Features
from contracts.messages import (
    AttentionView,
    AuditEntry,
    EventRecord,
    IronEventSignal,
    OnboardingInput,
    OnboardingState,
    OnboardingTimings,
    PassProgress,
    Phase,
    SigningView,
    SlaBreachView,
)
from contracts.phase import PARKED_PHASES
from contracts.requirements import RequirementsView
from iron_client.models import CustomerStatus, IdentificationStatus

# Iron's statuses as the snapshots carry them (strings: an unknown value stays what Iron sent).
IDENTIFICATION_REQUIRED = CustomerStatus.IDENTIFICATION_REQUIRED.value
SIGNINGS_REQUIRED = CustomerStatus.SIGNINGS_REQUIRED.value
ACTIVE = CustomerStatus.ACTIVE.value
SUSPENDED = CustomerStatus.SUSPENDED.value
ARCHIVED = CustomerStatus.ARCHIVED.value
USER_REQUIRED = CustomerStatus.USER_REQUIRED.value
PENDING = IdentificationStatus.PENDING.value
APPROVED = IdentificationStatus.APPROVED.value
DECLINED = IdentificationStatus.DECLINED.value
WAITING_IDENTIFICATION = frozenset({PENDING, IdentificationStatus.PROCESSED.value, IdentificationStatus.PENDING_REVIEW.value})
RENEWABLE_IDENTIFICATION = frozenset({IdentificationStatus.EXPIRED.value, IdentificationStatus.ARCHIVED.value})
KNOWN_CUSTOMER_STATUSES = frozenset(status.value for status in CustomerStatus)

RECENT_EVENTS_KEPT = 20

# Deadlines a phase sets on each wait; other named deadlines (reminders, SLAs, idle) outlive phases.
POLL, RECONCILE, BACKSTOP, REMINDER, SLA, IDLE = "poll", "reconcile", "backstop", "reminder", "sla", "idle"
PHASE_DEADLINES = frozenset({POLL, RECONCILE, BACKSTOP})
# Deadlines that only keep time: with quiet waits, one of them coming due reads nothing from Iron.
TIMEKEEPING_DEADLINES = frozenset({REMINDER, SLA, IDLE})
REVIEW_IDENTIFICATION = WAITING_IDENTIFICATION - {PENDING}


# --- what the workflow observes ----------------------------------------------------------------


@dataclass(frozen=True)
class IronHint:
    """A webhook: `about_customer` False when it only concerns the identification waited on;
    `status` and `entity_id` as the webhook said them (a hint to compare, never a fact)."""

    event_type: str
    about_customer: bool
    status: str | None = None
    entity_id: str | None = None


@dataclass(frozen=True)
class RestartRequested:
    reason: str


@dataclass(frozen=True)
class RefreshRequested:
    pass


@dataclass(frozen=True)
class SigningRequested:
    content_id: str


@dataclass(frozen=True)
class AmendRequested:
    fields: tuple[str, ...]
    email_known: bool
    personal_data: bool = False  # the amend carries an email or a name


Wake = IronHint | RestartRequested | RefreshRequested | SigningRequested | AmendRequested


@dataclass(frozen=True)
class RunStarted:
    carried: bool
    email_known: bool
    deliver_events: bool = False
    personal_data: bool = False  # the run's input holds an email or a name

    @classmethod
    def of(cls, start: OnboardingInput) -> "RunStarted":
        """The start of a run of `start`."""
        return cls(carried=start.carried is not None, email_known=bool(start.email or start.contact_ref),
                   deliver_events=start.deliver_events, personal_data=bool(start.email or start.name))


@dataclass(frozen=True)
class Woken:
    wakes: tuple[Wake, ...] = ()
    due: tuple[str, ...] = ()  # names of the deadlines that came due


@dataclass(frozen=True)
class CustomerFound:
    customer: CustomerSnapshot
    # Created with it (`FindOrCreateCustomer.identify`), under the attempt that action gave.
    identified: IdentificationCreated | None = None
    identification_attempt: int = 0


@dataclass(frozen=True)
class CustomerRead:
    customer: CustomerSnapshot
    # Read on in the same activity (`ReadCustomer.signings_if`): None when not read.
    signings: tuple[RequiredSigningSnapshot, ...] | None = None


@dataclass(frozen=True)
class IdentificationRead:
    identification: IdentificationSnapshot
    # Read on in the same activity (`ReadIdentification.customer_if`): None when not read.
    customer: CustomerSnapshot | None = None
    signings: tuple[RequiredSigningSnapshot, ...] | None = None


@dataclass(frozen=True)
class LatestIdentificationRead:
    identification: IdentificationSnapshot | None


@dataclass(frozen=True)
class IdentificationCreated:
    identification: IdentificationSnapshot
    adopted: bool
    kind: str


@dataclass(frozen=True)
class SigningsRead:
    signings: tuple[RequiredSigningSnapshot, ...]


@dataclass(frozen=True)
class Signed:
    content_id: str
    signing: SigningSnapshot


@dataclass(frozen=True)
class SigningRefused:
    content_id: str
    reason: str


@dataclass(frozen=True)
class RequirementsRead:
    requirements: RequirementsView


@dataclass(frozen=True)
class RequirementsUnavailable:
    """The requirements read failed (refused, or still failing after a few attempts): they are
    informative, so the onboarding goes on without them."""

    reason: str


@dataclass(frozen=True)
class IronRefused:
    """A final rejection from Iron (a 4xx no retry fixes): the customer needs a person."""

    step: str
    reason: str
    error_type: str | None = None
    status_code: int | None = None


Observation = (
    RunStarted
    | Woken
    | CustomerFound
    | CustomerRead
    | IdentificationRead
    | LatestIdentificationRead
    | IdentificationCreated
    | SigningsRead
    | Signed
    | SigningRefused
    | IronRefused
    | RequirementsRead
    | RequirementsUnavailable
)


# --- what it does next -------------------------------------------------------------------------


@dataclass(frozen=True)
class FindOrCreateCustomer:
    attempt: int  # feeds the customer's idempotency key: 0 until the start data is amended
    # Creates on (`Features.identifies_on_create`): this identification too, when the customer
    # has none and its status is one of `identify_if`, as the next step would ask.
    identify: CreateIdentification | None = None
    identify_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadCustomer:
    cause: str
    # Reads on (`Features.reads_onward`): the required signings too when the customer's status
    # is one of these, as the next step would ask.
    signings_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadIdentification:
    identification_id: str
    cause: str
    # Reads on (`Features.reads_onward`): the customer when the identification's status is one
    # of `customer_if`, then its signings when the customer's is one of `signings_if`.
    customer_if: tuple[str, ...] = ()
    signings_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadLatestIdentification:
    pass


@dataclass(frozen=True)
class CreateIdentification:
    cycle: int
    attempt: int
    cause: str


@dataclass(frozen=True)
class ReadSignings:
    pass


@dataclass(frozen=True)
class Sign:
    content_id: str
    cycle: int


@dataclass(frozen=True)
class ReadRequirements:
    cause: str


@dataclass(frozen=True)
class Wait:
    """Until a wake arrives or the earliest of `state.deadlines` comes due."""


@dataclass(frozen=True)
class ContinueAsNew:
    reason: str


@dataclass(frozen=True)
class Complete:
    pass


Action = (
    FindOrCreateCustomer
    | ReadCustomer
    | ReadIdentification
    | ReadLatestIdentification
    | CreateIdentification
    | ReadSignings
    | Sign
    | ReadRequirements
    | Wait
    | ContinueAsNew
    | Complete
)


@dataclass(frozen=True)
class _Now:
    at: datetime
    timings: OnboardingTimings
    quiet: bool  # `Features.quiet_waits` of the run's engine
    onward: bool = False  # `Features.reads_onward`
    identifies: bool = False  # `Features.identifies_on_create`
    keeps_run: bool = False  # `Features.keeps_run_at_cycle_end`


CURRENT_FEATURES = Features.of(ENGINE_VERSION)


def decide(
    state: OnboardingState, observation: Observation, now: datetime, timings: OnboardingTimings,
    features: Features = CURRENT_FEATURES,
) -> Action:
    """Record `observation` in `state` and return the next action, as the run's engine does."""
    ctx = _Now(now, timings, quiet=features.quiet_waits, onward=features.reads_onward,
               identifies=features.identifies_on_create, keeps_run=features.keeps_run_at_cycle_end)
    _absorb(state, observation, ctx)
    return _next(state, ctx)


# --- recording what was observed ---------------------------------------------------------------


def _absorb(s: OnboardingState, obs: Observation, ctx: _Now) -> None:
    p = s.progress
    if isinstance(obs, RunStarted):
        s.start_email_known = obs.email_known
        s.personal_data_in_run = obs.personal_data
        s.deliver_events = obs.deliver_events
        s.signing_queue = []
        if s.phase_since is None:  # a new onboarding
            s.phase_since = ctx.at
        # A run that continued as new while parked resumes the wait; any other reads Iron first.
        s.progress = PassProgress(resume_wait=obs.carried and s.waiting)
        s.waiting = s.waiting and obs.carried
    elif isinstance(obs, Woken):
        _absorb_wakes(s, obs, ctx)
    elif isinstance(obs, CustomerFound):
        s.iron_customer_id = obs.customer.id
        _observe_customer(s, obs.customer, ctx)
        _note(s, ctx, "customer created at Iron" if obs.customer.created else "existing Iron customer found")
        if obs.identified is not None:
            s.identification_attempt = obs.identification_attempt
            _absorb(s, obs.identified, ctx)
    elif isinstance(obs, CustomerRead):
        _absorb_customer_read(s, obs.customer, ctx)
        if obs.signings is not None:
            _absorb(s, SigningsRead(obs.signings), ctx)
    elif isinstance(obs, IdentificationRead):
        _observe_identification(s, obs.identification)
        p.identification = "current"
        p.customer_read_after_identification = False
        if obs.customer is not None:  # read on, as the next steps would have asked, in order
            _absorb(s, CustomerRead(obs.customer, obs.signings), ctx)
    elif isinstance(obs, LatestIdentificationRead):
        _adopt_latest(s, obs.identification, ctx)
    elif isinstance(obs, IdentificationCreated):
        ident = obs.identification
        s.identification_id = ident.id
        s.identification_cycle = s.cycle
        s.identification_kind = obs.kind
        s.outcome = None
        if ident.id not in s.customer_identification_ids:
            s.customer_identification_ids.append(ident.id)
        _note(s, ctx, f"{'adopted pending' if obs.adopted else 'created'} {obs.kind} identification {ident.id}")
        _observe_identification(s, ident)
        p.identification = "current"
        p.customer_read_after_identification = False
    elif isinstance(obs, SigningsRead):
        _merge_signings(s, list(obs.signings))
        p.signings_read = True
    elif isinstance(obs, Signed):
        _dequeue_signing(s, obs.content_id)
        name = obs.content_id
        for view in s.required_signings:
            if view.id == obs.content_id:
                view.signed, view.signing_id, name = True, obs.signing.id, view.display_name
        _note(s, ctx, f"signed {name!r} at Iron (signing {obs.signing.id})")
        if not any(not x.signed for x in s.required_signings):
            _customer_changed(p, "every document signed")
    elif isinstance(obs, SigningRefused):
        _dequeue_signing(s, obs.content_id)
        _customer_changed(p, "a signing was refused")
        p.signings_read = False
    elif isinstance(obs, IronRefused):
        _needs_attention(s, ctx, obs.step, obs.reason, error_type=obs.error_type, status_code=obs.status_code)
    elif isinstance(obs, RequirementsRead):
        s.requirements, s.requirements_key = obs.requirements, _requirements_key(s)
        _note(s, ctx, f"Iron's requirements: {obs.requirements.brief()}")
    elif isinstance(obs, RequirementsUnavailable):
        # Not read again until Iron's state moves on; the onboarding never waits for them.
        s.requirements, s.requirements_key = None, _requirements_key(s)
        _note(s, ctx, f"Iron's requirements unavailable: {obs.reason[:200]}")


def _absorb_customer_read(s: OnboardingState, customer: CustomerSnapshot, ctx: _Now) -> None:
    _observe_customer(s, customer, ctx)
    attention = s.needs_attention
    if attention is not None and s.customer_status != attention.customer_status:
        s.needs_attention = None
        s.outcome = None
        _note(s, ctx, f"Iron moved the customer to {s.customer_status}: attention cleared")


def _absorb_wakes(s: OnboardingState, obs: Woken, ctx: _Now) -> None:
    s.waiting = False
    signings = [w for w in obs.wakes if isinstance(w, SigningRequested)]
    s.signing_queue.extend(w.content_id for w in signings if w.content_id not in s.signing_queue)
    others = [w for w in obs.wakes if not isinstance(w, SigningRequested)]
    if not others and not obs.due:
        return  # only signings: the pass goes on where it was
    if ctx.quiet and not others and set(obs.due) <= TIMEKEEPING_DEADLINES:
        # A reminder, SLA or idle deadline alone: what the state says stands, nothing is read.
        s.progress = PassProgress(
            customer="known", identification="current", signings_read=True,
            customer_read_after_identification=True, cause=obs.due[0],
        )
        return
    customer_hint = any(not isinstance(w, IronHint) or w.about_customer for w in others)
    # A wake about the identification alone, while waiting on it: the customer still needs it.
    trusted = s.phase == Phase.AWAITING_IDENTIFICATION and not customer_hint
    s.progress = PassProgress(
        customer="trusted" if trusted else "stale", customer_hint=customer_hint, cause=_cause(others, obs.due)
    )
    for wake in others:
        if isinstance(wake, IronHint):
            s.poll_key = None  # news from Iron: polling starts over from its first interval
        elif isinstance(wake, RestartRequested):
            s.needs_attention = None
            s.expired_count = 0
            s.outcome = None
            s.renewal_due = True
            s.progress.create_cause = f"operator restart: {wake.reason}"
            _note(s, ctx, f"operator restart: {wake.reason}")
        elif isinstance(wake, AmendRequested):
            s.start_email_known = wake.email_known
            s.personal_data_in_run = s.personal_data_in_run or wake.personal_data
            if not s.iron_customer_id:
                s.customer_attempt += 1
                if s.needs_attention is not None and s.needs_attention.step == "find_or_create_customer":
                    s.needs_attention = None
                    s.outcome = None
            _note(s, ctx, f"start data amended: {', '.join(wake.fields)}")


def _cause(wakes: list[Wake], due: tuple[str, ...]) -> str:
    for wake in wakes:
        if isinstance(wake, IronHint):
            return f"webhook {wake.event_type}"
        if isinstance(wake, RestartRequested):
            return "operator restart"
        if isinstance(wake, RefreshRequested):
            return "refresh"
        if isinstance(wake, AmendRequested):
            return "start data amended"
    return due[0] if due else "reconcile"


def _customer_changed(p: PassProgress, cause: str) -> None:
    p.customer = "stale"
    p.customer_hint = True
    p.cause = cause


def _dequeue_signing(s: OnboardingState, content_id: str) -> None:
    s.signing_queue = [x for x in s.signing_queue if x != content_id]


def _observe_customer(s: OnboardingState, customer: CustomerSnapshot, ctx: _Now) -> None:
    if s.customer_status != customer.status:
        _note(s, ctx, f"customer status {s.customer_status or '-'} -> {customer.status}")
    s.customer_status = customer.status
    s.customer_identification_ids = list(customer.identification_ids)
    s.progress.customer = "fresh"
    s.progress.customer_read_after_identification = True


def _observe_identification(s: OnboardingState, ident: IdentificationSnapshot) -> None:
    s.identification_id = ident.id
    s.identification_status = ident.status
    s.identification_url = ident.url
    s.identification_retry_steps = list(ident.retry_steps)


def _adopt_latest(s: OnboardingState, newest: IdentificationSnapshot | None, ctx: _Now) -> None:
    """Iron's newest identification: the one to wait on (a pending one we lost track of, or a
    step-up Iron created itself), unless it is last cycle's and done with."""
    p = s.progress
    if newest is None:
        p.identification = "none"
        return
    if newest.id == s.identification_id and s.identification_cycle < s.cycle and newest.status not in WAITING_IDENTIFICATION:
        p.identification = "none"  # last cycle's identification: this cycle needs its own
        return
    if newest.id != s.identification_id or s.identification_cycle != s.cycle:
        s.identification_id = newest.id
        s.identification_cycle = s.cycle
        _note(s, ctx, f"adopted identification {newest.id} ({newest.status}) from Iron")
    _observe_identification(s, newest)
    p.identification = "current"
    p.customer_read_after_identification = False


def _merge_signings(s: OnboardingState, fetched: list[RequiredSigningSnapshot]) -> None:
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


# --- choosing what to do -----------------------------------------------------------------------


def _next(s: OnboardingState, ctx: _Now) -> Action:
    p = s.progress
    if s.signing_queue:
        return Sign(content_id=s.signing_queue[0], cycle=s.cycle)
    if p.resume_wait:
        p.resume_wait = False
        s.waiting = True
        return Wait()
    if s.needs_attention is not None:
        if p.customer_hint and p.customer != "fresh" and s.iron_customer_id:
            return ReadCustomer(cause=f"{p.cause}: reconcile while parked")
        s.waiting_for = "an operator: " + s.needs_attention.reason
        return _wait(s, ctx)
    if not s.iron_customer_id:
        if not s.start_email_known:
            _needs_attention(
                s, ctx, "find_or_create_customer", "no email to create the customer with", error_type="MissingEmail"
            )
            return _next(s, ctx)
        s.waiting_for = "Iron to find or create the customer"
        _transition(s, ctx, Phase.FINDING_CUSTOMER, "looking up the customer by external id")
        return _find_or_create(s, ctx)
    if p.customer == "stale":
        return ReadCustomer(cause=p.cause, signings_if=_signings_onward(s, ctx))
    status = s.customer_status or ""
    if status == ARCHIVED:
        s.outcome = "Archived"
        s.waiting_for = "nothing: the customer is archived"
        _transition(s, ctx, Phase.ARCHIVED, "customer archived at Iron: onboarding ends")
        return Complete()
    if status == ACTIVE:
        return _active(s, ctx)
    if status in (IDENTIFICATION_REQUIRED, SIGNINGS_REQUIRED):
        if s.cycle_completed:
            _start_new_cycle(s, ctx, status)
        return _identification_next(s, ctx) if status == IDENTIFICATION_REQUIRED else _signings_next(s, ctx)
    if status == SUSPENDED:
        s.outcome = "Suspended"
        s.waiting_for = "Iron's compliance to lift the suspension"
        _transition(s, ctx, Phase.SUSPENDED, "customer suspended at Iron")
        return _parked_wait(s, ctx)
    if status == USER_REQUIRED:
        s.waiting_for = f"Iron status {status}: waiting for Iron"
        _transition(s, ctx, Phase.USER_REQUIRED, f"customer {status} at Iron")
        return _parked_wait(s, ctx)
    return _unknown_status(s, ctx, "customer status", status, polled=False)


def _active(s: OnboardingState, ctx: _Now) -> Action:
    s.outcome = "Active"
    s.needs_attention = None
    s.requirements, s.requirements_key = None, None  # onboarded: nothing left to provide
    s.waiting_for = "compliance changes (webhooks and periodic reconciliation)"
    entered = _transition(s, ctx, Phase.ACTIVE, "customer Active at Iron")
    wait = _wait(s, ctx, reconcile=ctx.timings.active_backstop_seconds)
    if entered and not s.cycle_completed and (s.personal_data_in_run or not ctx.keeps_run):
        s.cycle_completed = True
        # The next run starts in this wait, without the start's email and name.
        return ContinueAsNew(reason="end of cycle")
    s.cycle_completed = True
    return wait


def _identification_next(s: OnboardingState, ctx: _Now) -> Action:
    p = s.progress
    if p.identification == "unresolved":
        ids = s.customer_identification_ids
        newest = ids[-1] if ids else None
        if s.identification_id and s.identification_cycle == s.cycle and newest == s.identification_id:
            if not ctx.onward:
                return ReadIdentification(identification_id=s.identification_id, cause=p.cause)
            # An approval is followed by a read of the customer (`customer_read_after_identification`
            # is unset by the identification's read), and its signings when it needs them.
            return ReadIdentification(
                identification_id=s.identification_id, cause=p.cause,
                customer_if=(APPROVED,), signings_if=_signings_onward(s, ctx),
            )
        if not ids:
            p.identification = "none"
        else:
            return ReadLatestIdentification()
    if s.renewal_due:
        s.renewal_due = False
        if p.identification == "current" and s.identification_status not in WAITING_IDENTIFICATION:
            p.identification = "none"
    if p.identification == "none":
        s.identification_attempt += 1
        s.waiting_for = "Iron to create the identification"
        _transition(s, ctx, Phase.CREATING_IDENTIFICATION, p.create_cause)
        return CreateIdentification(cycle=s.cycle, attempt=s.identification_attempt, cause=p.create_cause)
    status = s.identification_status or ""
    ident = s.identification_id
    if status in WAITING_IDENTIFICATION:
        # Missing data (a step to redo, data a reliance token lacked) or Iron's own step-up.
        asks = status == PENDING and (bool(s.identification_retry_steps) or s.cycle > 1)
        read = _read_requirements(s, f"identification {status}", asks=asks)
        if read is not None:
            return read
        s.waiting_for = "the customer to complete identification" if status == PENDING else "Iron's KYC review"
        _transition(s, ctx, Phase.AWAITING_IDENTIFICATION, f"identification {ident} {status}")
        return _polled_wait(s, ctx)
    if status == APPROVED:
        if not p.customer_read_after_identification:
            return ReadCustomer(cause="identification approved", signings_if=_signings_onward(s, ctx))
        # Approved, yet Iron still shows the customer as IdentificationRequired: give Iron time.
        s.waiting_for = "Iron to move the customer on after approval"
        return _polled_wait(s, ctx)
    if status == DECLINED:
        read = _read_requirements(s, "identification declined", asks=True)
        if read is not None:
            return read
        s.outcome = "Declined"
        s.waiting_for = "an operator to restart the identification"
        _transition(s, ctx, Phase.DECLINED, f"identification {ident} declined by Iron")
        return _parked_wait(s, ctx)
    if status in RENEWABLE_IDENTIFICATION:
        if s.expired_count >= ctx.timings.max_expired_renewals:
            _needs_attention(
                s,
                ctx,
                "create_identification",
                f"identification {status.lower()} {s.expired_count + 1} times in cycle {s.cycle}; restart to try again",
                error_type="IdentificationExpired",
            )
            return _next(s, ctx)
        s.expired_count += 1
        p.identification = "none"
        p.create_cause = f"identification {ident} {status}: renewal {s.expired_count}"
        return _identification_next(s, ctx)
    # A status this code does not know: never renew, create or sign on a guess.
    return _unknown_status(s, ctx, "identification status", status, polled=True)


def _find_or_create(s: OnboardingState, ctx: _Now) -> FindOrCreateCustomer:
    """Find or create the customer; with `Features.identifies_on_create`, create the identification
    `_identification_next` would create next in the same activity: the cycle's first, for a
    customer in `IdentificationRequired` with none."""
    if not ctx.identifies or s.cycle_completed or s.identification_id or s.customer_identification_ids:
        return FindOrCreateCustomer(attempt=s.customer_attempt)
    create = CreateIdentification(cycle=s.cycle, attempt=s.identification_attempt + 1, cause=s.progress.create_cause)
    return FindOrCreateCustomer(attempt=s.customer_attempt, identify=create, identify_if=(IDENTIFICATION_REQUIRED,))


def _signings_onward(s: OnboardingState, ctx: _Now) -> tuple[str, ...]:
    """Read the signings on from a customer read when `_signings_next` would ask for them next:
    a customer needing signings in this cycle whose signings this pass has not read. (A customer
    back from `Active` starts a new cycle first, which forgets the signings: read after it.)"""
    if not ctx.onward or s.cycle_completed or s.progress.signings_read:
        return ()
    return (SIGNINGS_REQUIRED,)


def _signings_next(s: OnboardingState, ctx: _Now) -> Action:
    if not s.progress.signings_read:
        return ReadSignings()
    read = _read_requirements(s, "signings required", asks=s.cycle > 1)  # a reversion
    if read is not None:
        return read
    unsigned = [x for x in s.required_signings if not x.signed]
    if unsigned:
        s.waiting_for = "the customer to accept: " + ", ".join(x.display_name for x in unsigned)
    else:
        s.waiting_for = "Iron to activate the customer"
    _transition(s, ctx, Phase.AWAITING_SIGNINGS, f"{len(unsigned)} signing(s) required")
    return _polled_wait(s, ctx)


def _requirements_key(s: OnboardingState) -> str:
    """What Iron's requirements follow from: a read answers this reading of Iron."""
    steps = ",".join(s.identification_retry_steps)
    return f"{s.cycle}|{s.customer_status}|{s.identification_id}|{s.identification_status}|{steps}"


def _read_requirements(s: OnboardingState, cause: str, *, asks: bool) -> ReadRequirements | None:
    """Read what the customer must provide when Iron `asks` for something, and again whenever
    Iron's state moved while requirements are shown, until the customer is `Active`."""
    if not (asks or s.requirements is not None):
        return None
    if s.requirements_key == _requirements_key(s):
        return None
    return ReadRequirements(cause=cause)


def _unknown_status(s: OnboardingState, ctx: _Now, what: str, value: str, *, polled: bool) -> Action:
    s.waiting_for = f"Iron's {what} {value!r}, which this engine does not know: waiting for a known one"
    _transition(s, ctx, Phase.UNKNOWN_IRON_STATUS, f"unknown Iron {what} {value!r}")
    return _polled_wait(s, ctx) if polled else _parked_wait(s, ctx)


def _start_new_cycle(s: OnboardingState, ctx: _Now, status: str) -> None:
    s.cycle += 1
    s.cycle_completed = False
    s.identification_attempt = 0
    s.expired_count = 0
    s.required_signings = []
    s.outcome = None
    s.progress.identification = "unresolved"
    s.progress.signings_read = False
    _note(s, ctx, f"Iron reverted the customer to {status}: cycle {s.cycle} begins")


def _needs_attention(
    s: OnboardingState, ctx: _Now, step: str, reason: str, *, error_type: str | None = None, status_code: int | None = None
) -> None:
    s.needs_attention = AttentionView(
        reason=reason,
        step=step,
        error_type=error_type,
        status_code=status_code,
        since=ctx.at.isoformat(),
        customer_status=s.customer_status,
    )
    s.outcome = "NeedsAttention"
    s.progress.customer_hint = False
    _transition(s, ctx, Phase.NEEDS_ATTENTION, f"{step}: {reason}")


def _wait(s: OnboardingState, ctx: _Now, **seconds: float) -> Wait:
    """Wait for a wake, or for the phase's deadlines (`poll`, `reconcile`, `backstop`) given in seconds."""
    kept = {name: due for name, due in s.deadlines.items() if name not in PHASE_DEADLINES}
    s.deadlines = kept | {name: ctx.at + timedelta(seconds=value) for name, value in seconds.items()}
    _remind(s, ctx)
    _watch_sla(s, ctx)
    _watch_idle(s, ctx)
    s.waiting = True
    return Wait()


def _polled_wait(s: OnboardingState, ctx: _Now) -> Wait:
    """A wait on the customer or on Iron's review: Iron polled on the backoff; with quiet waits,
    only while the poll's next read falls in the wait's first window, then one backstop read."""
    delay = _next_poll_delay(s, ctx)
    t = ctx.timings
    if ctx.quiet:
        window = t.review_quiet_after_seconds if s.identification_status in REVIEW_IDENTIFICATION else t.quiet_after_seconds
        if s.poll_since is None or ctx.at + timedelta(seconds=delay) > s.poll_since + timedelta(seconds=window):
            return _wait(s, ctx, backstop=t.parked_backstop_seconds)
    return _wait(s, ctx, poll=delay)


def _parked_wait(s: OnboardingState, ctx: _Now) -> Wait:
    """A wait on Iron's compliance or an operator: Iron read every `parked_reconcile_seconds`;
    with quiet waits, only during the phase's first window, then one backstop read."""
    t = ctx.timings
    if ctx.quiet and (s.phase_since is None or ctx.at - s.phase_since >= timedelta(seconds=t.quiet_after_seconds)):
        return _wait(s, ctx, backstop=t.parked_backstop_seconds)
    return _wait(s, ctx, reconcile=t.parked_reconcile_seconds)


def _awaited(s: OnboardingState) -> Awaiting | None:
    """What the customer has to do, if anything: complete the hosted identification, or sign."""
    if s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_status == PENDING and s.identification_url:
        return Awaiting.IDENTIFICATION
    if s.phase == Phase.AWAITING_SIGNINGS and any(not x.signed for x in s.required_signings):
        return Awaiting.SIGNINGS
    return None


def _remind(s: OnboardingState, ctx: _Now) -> None:
    """Reminders for an abandoned onboarding: at each offset after the wait began, once a read of
    Iron in this pass shows the customer still has to act; a new wait starts the schedule over."""
    awaited = _awaited(s) if s.deliver_events else None
    key = f"{awaited.value}|{s.identification_id if awaited is Awaiting.IDENTIFICATION else ''}|{s.cycle}" if awaited else None
    if key != s.reminder_key:
        s.reminder_key, s.awaiting_since, s.reminders_sent = key, ctx.at if key else None, 0
    offsets = ctx.timings.reminder_offsets_seconds
    if awaited is None or s.awaiting_since is None or s.reminders_sent >= len(offsets):
        s.deadlines.pop(REMINDER, None)
        return
    due = s.awaiting_since + timedelta(seconds=offsets[s.reminders_sent])
    p = s.progress
    # Quiet waits trust the state (webhooks, the fleet pass and the backstop keep it current).
    read_now = ctx.quiet or p.customer == "fresh" or (awaited is Awaiting.IDENTIFICATION and p.identification == "current")
    if due <= ctx.at and read_now:
        s.reminders_sent += 1
        reminder = ReminderDue(
            awaiting=awaited,
            number=s.reminders_sent,
            of=len(offsets),
            waiting_since=timestamp_of(s.awaiting_since),
            after_seconds=offsets[s.reminders_sent - 1],
        )
        s.outbox = s.outbox.append(reminder_due(s, reminder=reminder, at=ctx.at, requirements=s.requirements))
        _note(s, ctx, f"reminder {s.reminders_sent} of {len(offsets)}: the customer still has to act on {awaited.value}")
        return _remind(s, ctx)
    s.deadlines[REMINDER] = due


def _sla(s: OnboardingState, t: OnboardingTimings) -> tuple[str, float | None] | None:
    """Which SLA the current wait is under, and its limit in seconds (None: off)."""
    if s.phase == Phase.AWAITING_IDENTIFICATION:
        return ("customer", t.sla_customer_seconds) if s.identification_status == PENDING else ("review", t.sla_review_seconds)
    if s.phase == Phase.AWAITING_SIGNINGS:
        return "customer", t.sla_customer_seconds
    if s.phase in (Phase.NEEDS_ATTENTION, Phase.DECLINED, Phase.UNKNOWN_IRON_STATUS):
        return "operator", t.sla_operator_seconds
    if s.phase in (Phase.SUSPENDED, Phase.USER_REQUIRED):
        return "iron_hold", t.sla_iron_hold_seconds
    return None


def _watch_sla(s: OnboardingState, ctx: _Now) -> None:
    """Flag, once, a customer that stayed in one wait past its SLA; a new wait starts over."""
    sla = _sla(s, ctx.timings)
    key = f"{sla[0]}|{s.phase.value}|{s.cycle}" if sla is not None and sla[1] is not None else None
    if key != s.sla_key:
        s.sla_key, s.sla_since, s.sla_breached = key, ctx.at if key else None, None
    if sla is None or sla[1] is None or s.sla_since is None or s.sla_breached is not None:
        s.deadlines.pop(SLA, None)
        return
    name, limit = sla[0], sla[1]
    _flag_when_due(s, ctx, SLA, "sla_breached", name, s.sla_since, limit, "SLA {name} breached: {phase} since {since}, limit {limit:g} s")


def _watch_idle(s: OnboardingState, ctx: _Now) -> None:
    """Flag, once, a customer that stayed in one parked wait `idle_after_seconds` (quiet waits)."""
    limit = ctx.timings.idle_after_seconds
    if not ctx.quiet or limit is None or s.phase not in PARKED_PHASES or s.phase_since is None or s.idle is not None:
        s.deadlines.pop(IDLE, None)
        return
    _flag_when_due(s, ctx, IDLE, "idle", IDLE, s.phase_since, limit, "idle: {phase} untouched since {since}, past {limit:g} s")


def _flag_when_due(
    s: OnboardingState, ctx: _Now, deadline: str, field: str, name: str, since: datetime, limit: float, note: str
) -> None:
    """A wait held since `since`: its `deadline` while `limit` seconds have not passed; once they
    have, the breach in `field` of the state, an audit note and, with events on, one
    `onboarding.sla_breached` naming `name`."""
    due = since + timedelta(seconds=limit)
    if due > ctx.at:
        s.deadlines[deadline] = due
        return
    s.deadlines.pop(deadline, None)
    held_since = timestamp_of(since)
    breach = SlaBreachView(sla=name, phase=s.phase, since=held_since, limit_seconds=limit, breached_at=timestamp_of(ctx.at))
    setattr(s, field, breach)
    _note(s, ctx, note.format(name=name, phase=s.phase.value, since=held_since, limit=limit))
    if s.deliver_events:
        event = SlaBreach(deadline=name, phase=s.phase, since=held_since, limit_seconds=limit)
        s.outbox = s.outbox.append(sla_breached(s, breach=event, at=ctx.at, requirements=s.requirements))


def due_deadlines(s: OnboardingState, now: datetime) -> tuple[str, ...]:
    return tuple(name for name, at in s.deadlines.items() if at <= now)


def earliest_deadline(s: OnboardingState) -> tuple[str, ...]:
    return (min(s.deadlines, key=s.deadlines.__getitem__),) if s.deadlines else ()


def keeps_running_timer(running_due: datetime, due: datetime, now: datetime, *, replaces_early: bool) -> bool:
    """Whether the timer running for `running_due` serves a wait whose earliest deadline is
    `due`. One due later stays, fired early (the earliest deadline is then taken as due: a poll
    is only a read), so a webhook-driven wait costs no cancellation. With `replaces_early`
    (`Features.replaces_early_timers`) only while that is a little early: a deadline at most
    twice as far off as the timer, not a year's reconcile read a minute after `Active`."""
    if running_due > due:
        return False
    return not replaces_early or due - now <= 2 * (running_due - now)


def timer_summary(s: OnboardingState, name: str) -> str:
    """The timer's name in the Temporal UI: `poll Iron: ...` or `reconcile while Active`."""
    if name == POLL:
        text = f"poll Iron: {s.waiting_for}"
    elif name == REMINDER:
        text = f"reminder {s.reminders_sent + 1}: the customer still has to act"
    elif name == SLA:
        text = f"SLA {(s.sla_key or '').split('|')[0]}: {s.phase.value} past its limit"
    elif name == IDLE:
        text = f"idle: {s.phase.value} untouched for long"
    elif name == BACKSTOP:
        text = f"backstop read of Iron while {s.phase.value} (webhooks and the fleet pass wake it sooner)"
    else:
        text = f"{name} while {s.phase.value}"
    return text[:200]


def _next_poll_delay(s: OnboardingState, ctx: _Now) -> float:
    """Polling fallback with backoff, starting over for each new thing waited on."""
    t = ctx.timings
    key = f"{s.phase.value}|{s.identification_id}|{s.identification_status}|{s.cycle}"
    if key != s.poll_key or s.poll_delay_seconds is None:
        s.poll_key = key
        s.poll_delay_seconds = t.poll_initial_seconds
        s.poll_since = ctx.at
    delay = s.poll_delay_seconds
    s.poll_delay_seconds = min(delay * t.poll_backoff, t.poll_max_seconds)
    return delay


def _transition(s: OnboardingState, ctx: _Now, phase: Phase, cause: str) -> bool:
    if s.phase == phase:
        return False
    previous, s.phase = s.phase, phase
    s.phase_since = ctx.at
    _note(s, ctx, cause)
    # A new phase starts its SLA over (even one entered again): a breach was about the last one.
    s.sla_key, s.sla_since, s.sla_breached = None, None, None
    s.idle = None
    if s.deliver_events:
        s.outbox = s.outbox.append(phase_changed(s, previous_phase=previous, at=ctx.at, requirements=s.requirements))
    return True


def record(s: OnboardingState, at: datetime, cause: str, audit_tail: int) -> None:
    """Append to the audit trail, keeping its last `audit_tail` entries."""
    s.audit.append(
        AuditEntry(
            at=at.isoformat(),
            phase=s.phase,
            cause=cause,
            customer_status=s.customer_status,
            identification_status=s.identification_status,
        )
    )
    del s.audit[:-audit_tail]
    s.updated_at = at.isoformat()


def _note(s: OnboardingState, ctx: _Now, cause: str) -> None:
    record(s, ctx.at, cause, ctx.timings.audit_tail)


# --- what handlers accept ----------------------------------------------------------------------


def note_webhook(
    s: OnboardingState, seen: set[str], event: IronEventSignal, now: datetime, timings: OnboardingTimings
) -> IronHint | None:
    """Keep a webhook for audit and deduplication; the hint to act on, if it is news."""
    duplicate = event.dedup_key in seen
    s.recent_events.append(
        EventRecord(
            type=event.type,
            status=event.status,
            entity_id=event.entity_id,
            timestamp=event.timestamp,
            received_at=now.isoformat(),
            duplicate=duplicate,
        )
    )
    del s.recent_events[:-RECENT_EVENTS_KEPT]
    if duplicate:
        return None
    seen.add(event.dedup_key)
    s.seen_event_keys.append(event.dedup_key)
    if len(s.seen_event_keys) > timings.dedup_memory:
        seen.discard(s.seen_event_keys.pop(0))
    if event.customer_id and s.iron_customer_id and event.customer_id != s.iron_customer_id:
        return None  # about another customer: nothing to read here
    about_identification = event.type == "identification_status" and event.entity_id == s.identification_id
    return IronHint(
        event_type=event.type, about_customer=not about_identification, status=event.status, entity_id=event.entity_id
    )


def answered(
    wake: Wake, posted: int, *, customer_read_from: int, identification_read_from: int, state: OnboardingState | None = None
) -> bool:
    """Whether a read has answered this wake already: one that began after it was posted
    (wakes are numbered as they come), so a webhook that arrived while its resource was being
    read again costs no second read; or what the reads already showed (`already_known`). Operator requests are never answered this way."""
    if isinstance(wake, IronHint):
        if posted <= (customer_read_from if wake.about_customer else identification_read_from):
            return True
        return state is not None and already_known(state, wake)
    return isinstance(wake, RefreshRequested) and posted <= customer_read_from


def already_known(s: OnboardingState, hint: IronHint) -> bool:
    """A webhook that tells what the last read of its resource said: the customer's status as
    Iron's last customer read gave it, the identification's as its last read did, or the creation
    of the customer the workflow already found. A read would show the same, unless Iron moved
    since, and a move sends a webhook of its own (a lost one is caught by polling and the fleet
    pass, as any lost webhook is). Reordered and repeated deliveries of older statuses still
    differ from the read, and are read."""
    if hint.event_type == "customer_created":
        return s.iron_customer_id is not None and hint.entity_id in (None, s.iron_customer_id)
    if hint.status is None:
        return False
    if hint.event_type == "customer_status":
        return s.customer_status == hint.status and hint.entity_id in (None, s.iron_customer_id)
    if hint.event_type == "identification_status":
        return hint.entity_id == s.identification_id and s.identification_status == hint.status
    return False


def check_signing(s: OnboardingState, content_id: str, in_flight: list[str]) -> None:
    """Refuse (ValueError) a signing that cannot be sent to Iron now."""
    if s.phase != Phase.AWAITING_SIGNINGS:
        raise ValueError(f"no signing is awaited: onboarding is in phase {s.phase.value}")
    view = next((x for x in s.required_signings if x.id == content_id), None)
    if view is None:
        known = ", ".join(x.id for x in s.required_signings if not x.signed) or "none"
        raise ValueError(f"unknown content id {content_id}; awaiting: {known}")
    if view.signed:
        raise ValueError(f"{content_id} ({view.display_name}) is already signed")
    if content_id in in_flight:
        raise ValueError(f"{content_id} is being signed right now")


def check_restart(s: OnboardingState, *, pending: bool) -> None:
    if s.phase not in (Phase.DECLINED, Phase.NEEDS_ATTENTION):
        raise ValueError(f"nothing to restart: onboarding is in phase {s.phase.value}")
    if pending:
        raise ValueError("a restart is already under way")


def check_refresh(s: OnboardingState) -> None:
    if not s.iron_customer_id:
        raise ValueError("no Iron customer yet: nothing to refresh")
    if s.phase == Phase.ARCHIVED:
        raise ValueError("the customer is archived")


def check_amend(s: OnboardingState) -> None:
    if s.iron_customer_id:
        raise ValueError("the Iron customer exists already: its data is changed at Iron, not here")


# --- what operators see, and what the next run starts from ---------------------------------------


def current_details(s: OnboardingState) -> str:
    """The one line the Temporal UI shows for the workflow: what it waits for, and why."""
    details = (
        f"{s.phase.value}: waiting for {s.waiting_for}. "
        f"Customer {s.customer_status or '-'}, identification {s.identification_status or '-'}, cycle {s.cycle}."
    )
    if s.needs_attention is not None:
        details += f" Needs attention at {s.needs_attention.step}: {s.needs_attention.reason}"
    if s.sla_breached is not None:
        details += f" SLA {s.sla_breached.sla} breached: {s.sla_breached.phase.value} since {s.sla_breached.since}."
    if s.idle is not None:
        details += f" Idle: {s.idle.phase.value} untouched since {s.idle.since}."
    if s.requirements is not None and s.requirements.outstanding():
        details += f" Iron requires: {s.requirements.brief()}."
    if s.outbox.failing_since is not None:
        details += f" Events: the backend has refused them since {s.outbox.failing_since} ({len(s.outbox.pending)} waiting)."
    return details


def delivers_before_continuing_as_new(start: OnboardingInput, s: OnboardingState, *, long_history: bool) -> bool:
    """The end of a cycle waits for its last event to go out: its delivery would die
    with the run and the next run send it again, a second POST per onboarding. A backend that
    already lags (more than that event waiting), or a history grown long, continues at once:
    the next run sends the head again under the same id, and visibility is not held back."""
    return (
        start.deliver_events
        and len(s.outbox.pending) <= 1
        and not long_history
    )


def next_run_input(start: OnboardingInput, s: OnboardingState) -> OnboardingInput:
    """The input of the run that continues this one: the state, and no personal data once the
    customer exists at Iron (the email and name, or their reference, were only needed to
    create it)."""
    return OnboardingInput(
        engine_version=ENGINE_VERSION,
        external_id=s.external_id,
        customer_type=start.customer_type,
        email=None if s.iron_customer_id else start.email,
        name=None if s.iron_customer_id else start.name,
        contact_ref=None if s.iron_customer_id else start.contact_ref,
        identification=start.identification,
        iron_customer_id=s.iron_customer_id,
        timings=start.timings,
        carried=s,
        deliver_events=start.deliver_events,
        sub_partner_id=start.sub_partner_id,
    )

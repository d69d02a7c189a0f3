"""Property: whatever webhooks arrive (duplicated, reordered, stale, about other customers), the
phase only ever follows what the reads of Iron said, and nothing is created or signed that Iron
did not call for.

A small model of Iron answers the actions `decide` chooses; hypothesis writes the story (Iron's
compliance moves, the customer's steps, webhooks and timers in any order) and the test replays
it through `decide` the way the workflow does, continue-as-new included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

from contracts.activity_models import (
    CustomerSnapshot,
    IdentificationSnapshot,
    RequiredSigningSnapshot,
    SigningSnapshot,
)
from contracts.messages import IronEventSignal, OnboardingState, OnboardingTimings, Phase
from contracts.requirements import RequirementsView, RequirementView
from workflows import decide as d
from workflows.inbox import Inbox

T = OnboardingTimings(max_expired_renewals=2)
CUSTOMER = "cus-1"
WAITING = {"Pending", "Processed", "PendingReview"}


@dataclass
class Iron:
    """Iron's side, as FACTS.md describes it, reduced to what onboarding reads."""

    status: str = "IdentificationRequired"
    identifications: dict[str, str] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    signed: set[str] = field(default_factory=set)
    created: bool = False
    counter: int = 0

    def latest(self) -> str | None:
        return next(reversed(self.identifications), None)

    def new_identification(self) -> str:
        self.counter += 1
        ident = f"idv-{self.counter}"
        self.identifications[ident] = "Pending"
        return ident

    def snapshot(self) -> CustomerSnapshot:
        return CustomerSnapshot(id=CUSTOMER, status=self.status, customer_type="Person", identification_ids=list(self.identifications))

    def identification(self, ident: str) -> IdentificationSnapshot:
        return IdentificationSnapshot(id=ident, status=self.identifications[ident], url=f"https://kyc/{ident}", created_at="t")

    # --- what the world does between waits --------------------------------------------------

    def apply(self, move: str) -> None:
        latest = self.latest()
        if move == "approve" and latest and self.identifications[latest] in WAITING and self.status == "IdentificationRequired":
            self.identifications[latest] = "Approved"
            self.counter += 1
            self.required = [f"doc-{self.counter}a", f"doc-{self.counter}b"]
            self.status = "SigningsRequired"
        elif move in ("decline", "expire", "review") and latest and self.identifications[latest] in WAITING:
            self.identifications[latest] = {"decline": "Declined", "expire": "Expired", "review": "PendingReview"}[move]
        elif move == "revert_identification" and self.status == "Active":
            self.status = "IdentificationRequired"
            self.new_identification()  # Iron's step-up
        elif move == "revert_signings" and self.status == "Active":
            self.counter += 1
            self.required = [f"doc-{self.counter}c"]
            self.status = "SigningsRequired"
        elif move == "suspend" and self.status == "Active":
            self.status = "Suspended"
        elif move == "lift" and self.status == "Suspended":
            self.status = "Active"


MOVES = st.sampled_from(["approve", "decline", "expire", "review", "revert_identification", "revert_signings", "suspend", "lift"])
WEBHOOK = st.tuples(
    st.sampled_from(["customer_status", "identification_status", "customer_created", "unknown_type"]),
    st.sampled_from([CUSTOMER, "someone-else", None]),
    st.sampled_from(["idv-1", "idv-2", "idv-3", CUSTOMER, None]),
    st.sampled_from(["Active", "Approved", "Declined", "Pending", "SigningsRequired", "IdentificationRequired"]),
    st.integers(min_value=0, max_value=3),  # timestamp: small range, so duplicates happen
)
STEP = st.one_of(
    st.tuples(st.just("move"), MOVES),
    st.tuples(st.just("webhooks"), st.lists(WEBHOOK, min_size=1, max_size=4)),
    st.tuples(st.just("timer"), st.none()),
    st.tuples(st.just("sign"), st.none()),
)


class Story:
    def __init__(self) -> None:
        self.iron = Iron()
        self.state = OnboardingState(external_id="ext-1")
        self.seen: set[str] = set()
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.customer_read: str | None = None
        self.identification_read: dict[str, str] = {}
        self.created = 0
        self.requirement_reads = 0

    def decide(self, observation: d.Observation) -> d.Action:
        self.now += timedelta(seconds=1)
        before = self.state.phase
        action = d.decide(self.state, observation, self.now, T)
        if isinstance(observation, d.Woken) and not any(isinstance(w, d.RestartRequested) for w in observation.wakes):
            assert self.state.phase == before, f"a wake alone moved the phase {before} -> {self.state.phase}"
        if self.state.phase != before:
            self.check_phase_follows_reads()
        assert self.state.customer_status == self.customer_read
        return action

    def check_phase_follows_reads(self) -> None:
        """A phase is entered only on what the reads just said."""
        s = self.state
        ident_read = self.identification_read.get(s.identification_id or "")
        expected = {
            Phase.ACTIVE: self.customer_read == "Active",
            Phase.AWAITING_SIGNINGS: self.customer_read == "SigningsRequired",
            Phase.SUSPENDED: self.customer_read == "Suspended",
            Phase.ARCHIVED: self.customer_read == "Archived",
            Phase.AWAITING_IDENTIFICATION: self.customer_read == "IdentificationRequired" and ident_read in WAITING,
            Phase.DECLINED: ident_read == "Declined",
        }
        assert expected.get(s.phase, True), (
            f"phase {s.phase.value} but Iron said customer {self.customer_read}, identification {ident_read}"
        )

    def perform(self, action: d.Action) -> d.Observation:
        iron = self.iron
        if isinstance(action, d.FindOrCreateCustomer):
            created = not iron.created
            iron.created = True
            self.customer_read = iron.status
            return d.CustomerFound(iron.snapshot().model_copy(update={"created": created}))
        if isinstance(action, d.ReadCustomer):
            self.customer_read = iron.status
            return d.CustomerRead(iron.snapshot())
        if isinstance(action, d.ReadIdentification):
            self.identification_read[action.identification_id] = iron.identifications[action.identification_id]
            return d.IdentificationRead(iron.identification(action.identification_id))
        if isinstance(action, d.ReadLatestIdentification):
            latest = iron.latest()
            if latest:
                self.identification_read[latest] = iron.identifications[latest]
            return d.LatestIdentificationRead(iron.identification(latest) if latest else None)
        if isinstance(action, d.CreateIdentification):
            latest = iron.latest()
            assert latest is None or iron.identifications[latest] not in WAITING | {"Approved"} or (
                self.state.identification_cycle < self.state.cycle
            ), f"created an identification while {latest} is {iron.identifications.get(latest or '')}"
            assert iron.status == "IdentificationRequired"
            ident = iron.new_identification()
            self.identification_read[ident] = "Pending"
            self.created += 1
            return d.IdentificationCreated(iron.identification(ident), adopted=False, kind="Link")
        if isinstance(action, d.ReadSignings):
            return d.SigningsRead(tuple(RequiredSigningSnapshot(id=x, url=f"https://sign/{x}", display_name=x) for x in iron.required))
        if isinstance(action, d.Sign):
            assert action.content_id in iron.required and action.content_id not in iron.signed, "signed what Iron did not ask for"
            iron.signed.add(action.content_id)
            if set(iron.required) <= iron.signed:
                iron.status = "Active"
            return d.Signed(action.content_id, SigningSnapshot(id=f"sig-{action.content_id}", content_id=action.content_id, created_at="t"))
        if isinstance(action, d.ReadRequirements):
            s = self.state
            ident_read = self.identification_read.get(s.identification_id or "")
            # Only where Iron said something changed: a decline, a step-up or reversion, or a move
            # while requirements are shown.
            assert ident_read == "Declined" or s.cycle > 1 or s.requirements is not None, (
                f"requirements read with identification {ident_read} in cycle {s.cycle}"
            )
            self.requirement_reads += 1
            if self.requirement_reads % 3 == 0:
                return d.RequirementsUnavailable("Iron answered 500")  # informative: never blocks
            latest = iron.latest()
            status = iron.identifications[latest] if latest else None
            bucket = {"Declined": "issues", "Approved": "complete"}.get(status or "", "pending" if status in WAITING else "missing")
            item = RequirementView(code="identification_kyc", identification_id=latest)
            return d.RequirementsRead(RequirementsView(**{bucket: [item]}))
        raise AssertionError(f"unexpected {action!r}")

    def webhooks(self, raw: list[tuple]) -> tuple[d.Wake, ...]:
        hints = []
        for type_, customer_id, entity_id, status, stamp in raw:
            event = IronEventSignal(type=type_, timestamp=str(stamp), customer_id=customer_id, entity_id=entity_id, status=status)
            hint = d.note_webhook(self.state, self.seen, event, self.now, T)
            if hint is not None:
                hints.append(hint)
        # Through the workflow's inbox, which drops what the reads already showed.
        inbox = Inbox()
        for hint in hints:
            inbox.post(hint)
        inbox.drop_answered(self.state)
        return inbox.take()


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=40))
def test_the_phase_only_follows_what_iron_said(steps):
    story = Story()
    observation: d.Observation = d.RunStarted(carried=False, email_known=True)
    remaining = list(steps)
    for _ in range(2000):
        action = story.decide(observation)
        if isinstance(action, d.Complete):
            return
        if isinstance(action, d.ContinueAsNew):
            story.state = OnboardingState.model_validate_json(story.state.model_dump_json())
            story.state.runs += 1
            observation = d.RunStarted(carried=True, email_known=False)
            continue
        if not isinstance(action, d.Wait):
            observation = story.perform(action)
            continue
        if not remaining:
            return
        kind, value = remaining.pop(0)
        if kind == "move":
            story.iron.apply(value)
            observation = d.Woken()
            if story.state.needs_attention is not None:
                observation = d.Woken(wakes=(d.IronHint("customer_status", about_customer=True),))
            else:
                observation = d.Woken(due=d.earliest_deadline(story.state))
        elif kind == "webhooks":
            # Every one already known: the inbox is empty and the wait goes on to its deadline.
            wakes = story.webhooks(value)
            observation = d.Woken(wakes=wakes) if wakes else d.Woken(due=d.earliest_deadline(story.state))
        elif kind == "timer":
            observation = d.Woken(due=d.earliest_deadline(story.state))
        else:
            unsigned = [x.id for x in story.state.required_signings if not x.signed]
            if story.state.phase == Phase.AWAITING_SIGNINGS and unsigned:
                d.check_signing(story.state, unsigned[0], [])
                observation = d.Woken(wakes=(d.SigningRequested(unsigned[0]),))
            else:
                observation = d.Woken(due=d.earliest_deadline(story.state))
    raise AssertionError("decide never settled into a wait: a loop without progress")

"""Events to the partner's backend: what each one says, and its id.

One event per change a backend acts on, POSTed as Standard Webhooks (`activities/events.py`
signs and sends them). The body is `{"type", "timestamp", "data"}`:

    onboarding.phase_changed   every change of phase
    onboarding.reminder_due    the customer still has to act (`data.reminder` says on what)
    onboarding.sla_breached    a customer stayed in a phase past a named deadline (`data.sla`)

Every event's `data` carries the customer's full current state (ids, statuses, urls, display
names; never personal data), so a backend that keeps only the newest event per customer, by
`sequence`, is never behind. `sequence` counts each customer's events from 1 and only grows,
across continue-as-new; a gap means the backlog bound dropped older events (`contracts/outbox.py`).

The `webhook-id` is UUIDv5 of the workflow ID and the sequence under a fixed namespace: every
retry of one event carries the same id, every other event a different one, so a backend
deduplicates on it.

A leaf module: pydantic, the standard library and `contracts.phase`, nothing that does I/O,
so workflow code imports it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from contracts.phase import Phase
from contracts.workflow_ids import workflow_id_for

ACTIVITY_DELIVER_EVENT = "deliver_event"

# Fixed forever: changing it would give every event already sent a new webhook-id on retry.
EVENT_ID_NAMESPACE = uuid.UUID("b45d2a0c-6460-4ac7-840c-6b932ec69eb9")


class EventType(str, Enum):
    PHASE_CHANGED = "onboarding.phase_changed"
    REMINDER_DUE = "onboarding.reminder_due"
    SLA_BREACHED = "onboarding.sla_breached"


class Awaiting(str, Enum):
    """What the customer has to do for a reminder to be due."""

    IDENTIFICATION = "identification"  # complete the identification at `identification_url`
    SIGNINGS = "signings"  # sign the `required_signings` not yet `signed`


class EventModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- what the customer has to fix (Iron's requirements, without free text) ---------------------


class LenientEventModel(EventModel):
    # Built from Iron's requirement items, whose free-text `description` (a moderator's comment,
    # which may quote the customer) is dropped here on purpose: no personal data in events.
    model_config = ConfigDict(extra="ignore", frozen=True)


class EventRejectReason(LenientEventModel):
    code: str
    description: str  # Sumsub's text for the label, not the customer's data


class EventMissingQuestion(LenientEventModel):
    id: str
    # Iron's question text; the engine keeps questions by id only (`contracts/requirements.py`), so
    # in its events this is null: show the backend's own text for the id.
    title: str | None = None
    section_id: str | None = None


class EventRequirementItem(LenientEventModel):
    code: str
    identification_id: str | None = None
    retryable: bool | None = None
    reject_labels: list[str] = Field(default_factory=list)
    # Empty in the engine's events, which keep Iron's codes only: switch on `reject_labels`.
    reject_reasons: list[EventRejectReason] = Field(default_factory=list)
    missing_questions: list[EventMissingQuestion] = Field(default_factory=list)


class EventRequirements(LenientEventModel):
    """Iron's `GET /customers/{id}/requirements`; switch on `code`, never on text."""

    requirements_due: list[str] = Field(default_factory=list)
    complete: list[EventRequirementItem] = Field(default_factory=list)
    pending: list[EventRequirementItem] = Field(default_factory=list)
    missing: list[EventRequirementItem] = Field(default_factory=list)
    issues: list[EventRequirementItem] = Field(default_factory=list)

    @classmethod
    def of(cls, value: Any) -> "EventRequirements | None":
        """From Iron's model, a snapshot with the same field names, or a dict."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        return cls.model_validate(value)


# --- the state every event carries -------------------------------------------------------------


class EventSigning(EventModel):
    id: str
    url: str
    display_name: str
    signed: bool = False


class EventAttention(EventModel):
    reason: str
    step: str
    status_code: int | None = None
    since: str


class ReminderDue(EventModel):
    """Which reminder this is (`number` of `of`) for the wait that began at `waiting_since`."""

    awaiting: Awaiting
    number: int = Field(ge=1)
    of: int = Field(ge=1)
    waiting_since: str
    after_seconds: float = Field(ge=0)


class SlaBreach(EventModel):
    """The customer has been in `phase` since `since`, longer than `deadline` allows."""

    deadline: str
    phase: Phase
    since: str
    limit_seconds: float = Field(ge=0)


class EventData(EventModel):
    external_id: str
    workflow_id: str
    iron_customer_id: str | None = None
    phase: Phase
    previous_phase: Phase | None = None
    cycle: int
    customer_status: str | None = None
    identification_status: str | None = None
    identification_url: str | None = None
    required_signings: list[EventSigning] = Field(default_factory=list)
    needs_attention: EventAttention | None = None
    outcome: str | None = None
    requirements: EventRequirements | None = None
    # 0 on a draft; the outbox assigns 1, 2, 3... as it takes the event.
    sequence: int = Field(default=0, ge=0)
    reminder: ReminderDue | None = None
    sla: SlaBreach | None = None
    # The Iron sub-partner the customer is onboarded for; left out for the default scope, whose
    # events stay exactly as they were.
    sub_partner_id: str | None = None

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("sub_partner_id", "") is None:
            del data["sub_partner_id"]
        return data


class OnboardingEvent(EventModel):
    """One event, exactly as its body is sent."""

    type: EventType
    timestamp: str
    data: EventData

    @model_validator(mode="after")
    def _details_match_type(self) -> "OnboardingEvent":
        if (self.type is EventType.REMINDER_DUE) != (self.data.reminder is not None):
            raise ValueError("data.reminder is set on, and only on, onboarding.reminder_due")
        if (self.type is EventType.SLA_BREACHED) != (self.data.sla is not None):
            raise ValueError("data.sla is set on, and only on, onboarding.sla_breached")
        return self

    @property
    def sequence(self) -> int:
        return self.data.sequence

    @property
    def webhook_id(self) -> str:
        return event_id(self.data.workflow_id, self.data.sequence)

    def with_sequence(self, sequence: int) -> "OnboardingEvent":
        return self.model_copy(update={"data": self.data.model_copy(update={"sequence": sequence})})

    def body(self) -> bytes:
        """The exact bytes that are signed and sent (compact JSON, fields in contract order)."""
        return self.model_dump_json().encode()


def event_id(workflow_id: str, sequence: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{workflow_id}/{sequence}"))


# --- delivery activity -------------------------------------------------------------------------


class DeliverEventInput(EventModel):
    """Activity `deliver_event`: POST this event to the partner's backend under `webhook_id`."""

    event: OnboardingEvent
    webhook_id: str
    # The backend is known to be failing (the outbox is flagged): retry on the schedule's last,
    # longest step from the first attempt, instead of starting the schedule over.
    failing: bool = False

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        # Left out when false, so a release-1.0 worker (whose input forbids unknown fields) still
        # delivers the events of a deployment being upgraded.
        data = handler(self)
        if not self.failing:
            data.pop("failing", None)
        return data

    @model_validator(mode="after")
    def _id_of_the_event(self) -> "DeliverEventInput":
        if self.event.sequence < 1:
            raise ValueError("only an event the outbox numbered (sequence >= 1) can be delivered")
        if self.webhook_id != self.event.webhook_id:
            raise ValueError("webhook_id must be the event's own id (workflow id + sequence)")
        return self

    @classmethod
    def of(cls, event: OnboardingEvent, *, failing: bool = False) -> "DeliverEventInput":
        return cls(event=event, webhook_id=event.webhook_id, failing=failing)


class DeliverEventResult(EventModel):
    """`delivered`: the backend answered 2xx. `gone`: it answered 410 Gone, refusing this event
    for good (for example a customer it deleted); it is not retried. `disabled`: no
    `ONBOARDING_EVENTS_URL` is configured, so events are not sent. The workflow acknowledges
    the event in all three cases; every other answer raises a retryable error instead."""

    webhook_id: str
    sequence: int
    outcome: Literal["delivered", "gone", "disabled"]
    status_code: int | None = None
    attempt: int = 1


# --- building events from the workflow's state -------------------------------------------------


def timestamp_of(at: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the body's `timestamp` and every time in `data`."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class StateShown(Protocol):
    """What an event shows of a customer's state: the fields `OnboardingState` has (it holds
    the outbox of these events, so it is named by its shape rather than imported)."""

    external_id: str
    iron_customer_id: str | None
    phase: Phase
    cycle: int
    customer_status: str | None
    identification_status: str | None
    identification_url: str | None
    required_signings: Sequence[Any]
    needs_attention: Any
    outcome: Any


def event_data(
    state: StateShown,
    *,
    previous_phase: Phase | None = None,
    requirements: Any = None,
    reminder: ReminderDue | None = None,
    sla: SlaBreach | None = None,
) -> EventData:
    """The customer as the state shows it now. Reads only the state's public fields, so any
    state with those names (`StateShown`) will do."""
    attention = state.needs_attention
    return EventData(
        external_id=state.external_id,
        workflow_id=workflow_id_for(state.external_id, getattr(state, "sub_partner_id", None)),
        sub_partner_id=getattr(state, "sub_partner_id", None),
        iron_customer_id=state.iron_customer_id,
        phase=state.phase,
        previous_phase=previous_phase,
        cycle=state.cycle,
        customer_status=state.customer_status,
        identification_status=state.identification_status,
        identification_url=state.identification_url,
        required_signings=[
            EventSigning(id=s.id, url=s.url, display_name=s.display_name, signed=s.signed)
            for s in state.required_signings
        ],
        needs_attention=(
            EventAttention(
                reason=attention.reason, step=attention.step, status_code=attention.status_code, since=attention.since
            )
            if attention is not None
            else None
        ),
        outcome=state.outcome,
        requirements=EventRequirements.of(requirements),
        reminder=reminder,
        sla=sla,
    )


def phase_changed(
    state: StateShown, *, previous_phase: Phase | None, at: datetime, requirements: Any = None
) -> OnboardingEvent:
    """A draft (sequence 0) for the outbox: the state has just moved from `previous_phase`."""
    return OnboardingEvent(
        type=EventType.PHASE_CHANGED,
        timestamp=timestamp_of(at),
        data=event_data(state, previous_phase=previous_phase, requirements=requirements),
    )


def reminder_due(
    state: StateShown,
    *,
    reminder: ReminderDue,
    at: datetime,
    previous_phase: Phase | None = None,
    requirements: Any = None,
) -> OnboardingEvent:
    return OnboardingEvent(
        type=EventType.REMINDER_DUE,
        timestamp=timestamp_of(at),
        data=event_data(state, previous_phase=previous_phase, requirements=requirements, reminder=reminder),
    )


def sla_breached(
    state: StateShown,
    *,
    breach: SlaBreach,
    at: datetime,
    previous_phase: Phase | None = None,
    requirements: Any = None,
) -> OnboardingEvent:
    return OnboardingEvent(
        type=EventType.SLA_BREACHED,
        timestamp=timestamp_of(at),
        data=event_data(state, previous_phase=previous_phase, requirements=requirements, sla=breach),
    )

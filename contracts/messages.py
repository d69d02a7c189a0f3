"""Every message in and out of `CustomerOnboarding`: one pydantic model per input, signal,
update and query. Pure data, no I/O, safe to import from workflow code, the starter, the
webhook receiver and tests alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from contracts.engine import ENGINE_VERSION
from contracts.outbox import Outbox
from contracts.phase import Phase
from contracts.requirements import RequirementsView
# Importers name a workflow from here too, beside the messages that carry its customer.
from contracts.workflow_ids import canonical_sub_partner_id, workflow_id_for
from iron_client.models import CustomerType, IdentificationKind, IntendedUse

WORKFLOW_TYPE = "CustomerOnboarding"
DEFAULT_TASK_QUEUE = "iron-onboarding"
# Iron's calls have a task queue of their own beside the onboarding's, so Temporal's task-queue
# rate limit bounds Iron's load alone. The rest (workflow tasks, events to the partner's
# backend) stays on the onboarding's queue, where activities start eagerly: Temporal cannot rate
# limit an eager activity, so a rate-limited queue dispatches none eagerly.
IRON_CALLS_QUEUE_SUFFIX = "-iron-calls"

SIGNAL_IRON_EVENT = "iron_event"
UPDATE_ACCEPT_SIGNING = "accept_signing"
UPDATE_RESTART_IDENTIFICATION = "restart_identification"
UPDATE_REFRESH = "refresh"
UPDATE_AMEND = "amend"
UPDATE_WAIT_FOR = "wait_for"  # models in contracts/state_view.py
QUERY_STATE = "state"
# What a `state` query that reached a worker by a query task which found new events answers
# (runtime.query_task_guard): the worker reloads the workflow, and asking again is answered.
QUERY_TASK_DID_WORK = (
    "the workflow moved on while this query waited for a worker (as after a Temporal restart); "
    "the worker reloads the workflow: ask again"
)
QUERY_TASK_DID_WORK_TYPE = "QueryTaskDidWorkflowWork"

EXTERNAL_ID_MAX_LENGTH = 200

def iron_calls_queue(task_queue: str) -> str:
    """The task queue of Iron's calls for onboardings that run on `task_queue`: the one queue
    Temporal rate limits for Iron's budget (`ONBOARDING_ACTIVITIES_PER_SECOND`)."""
    return task_queue + IRON_CALLS_QUEUE_SUFFIX


def omit_default_scope(data: Any) -> Any:
    """A serialised message without `sub_partner_id` when it is None: a customer of the default
    scope is written exactly as before sub-partners existed (inputs, state, activity inputs,
    events), so its payloads and commands do not change."""
    if isinstance(data, dict) and "sub_partner_id" in data and data["sub_partner_id"] is None:
        del data["sub_partner_id"]
    return data


def external_id_for_customer(iron_customer_id: str, external_id: str | None) -> str:
    """The external id an Iron customer's onboarding is named after: Iron's `external_id`
    when it is a valid one, else the Iron customer id. The receiver and `adopt` agree on it.

    Two customers can meet on one name (an external id shared at Iron, or one equal to another
    customer's Iron id). The names stay as they are, so running onboardings keep theirs; the
    receiver instead compares the workflow's `IronCustomerId` search attribute with the
    customer it is delivering for and refuses the delivery (409) when they differ."""
    if external_id and _valid_external_id(external_id):
        return external_id
    return iron_customer_id


# A URL resolves these segments against the path: as an id in Iron's paths they would send a
# request to another route (`GET /customers/../external` is `GET /external`).
DOT_SEGMENTS = frozenset({".", ".."})


def _valid_external_id(value: str) -> bool:
    return (
        0 < len(value) <= EXTERNAL_ID_MAX_LENGTH
        and value == value.strip()
        and value not in DOT_SEGMENTS
        and not any(ch.isspace() or not ch.isprintable() for ch in value)
    )


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- input -------------------------------------------------------------------------------------


class IdentificationRequest(Message):
    """Which identification to create. `Person` and `Business` carry their data by reference:
    `document_ref` points into the document store, and only the activity that calls Iron reads
    it, so names, documents and selfies never enter Temporal history."""

    kind: IdentificationKind = IdentificationKind.LINK
    with_edd: bool | None = None
    token: str | None = None
    intended_use: IntendedUse | None = None
    ip_address: str | None = None
    document_ref: str | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> "IdentificationRequest":
        if self.kind == IdentificationKind.TOKEN and not (self.token and self.intended_use):
            raise ValueError("a Token identification needs 'token' and 'intended_use'")
        if self.kind in (IdentificationKind.PERSON, IdentificationKind.BUSINESS) and not self.document_ref:
            raise ValueError(f"a {self.kind.value} identification needs 'document_ref' (a document store reference)")
        if self.kind in (IdentificationKind.LINK, IdentificationKind.TOKEN) and self.document_ref:
            raise ValueError(f"a {self.kind.value} identification takes no 'document_ref'")
        return self


class OnboardingTimings(Message):
    """How long to wait for what. Production defaults; tests shrink them."""

    poll_initial_seconds: float = Field(default=60.0, gt=0)
    poll_max_seconds: float = Field(default=3600.0, gt=0)
    poll_backoff: float = Field(default=2.0, ge=1.0)
    # With the fleet-wide reconciliation (`FleetReconciliation`, daily) catching lost webhooks,
    # an Active customer's own read of Iron is a backstop only, for a namespace whose schedule is
    # missing: once a year (a wake is two billable actions; a quarter's cost four times that).
    active_backstop_seconds: float = Field(default=365 * 86400.0, gt=0)
    parked_reconcile_seconds: float = Field(default=3600.0, gt=0)
    max_expired_renewals: int = Field(default=3, ge=0)
    activity_timeout_seconds: float = Field(default=30.0, gt=0)
    activity_retry_initial_seconds: float = Field(default=1.0, gt=0)
    activity_retry_max_seconds: float = Field(default=60.0, gt=0)
    # Deliveries the backend refused retry on the worker's schedule (ONBOARDING_EVENTS_RETRY_SCHEDULE);
    # this bounds the backoff of an attempt that ended without one (a worker lost mid-attempt).
    # Each attempt is a billable action on Temporal Cloud, hence not the activities' 60 s.
    event_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # A head the backend has refused this long flags the backend as failing (engine 2): the state
    # view, the details line, `OnboardingEventsFailingSince` and `report`'s `events_failing`. The
    # flag is raised once the schedule's next retry would fall past it, and cleared by the next
    # delivery; it costs two upserts an outage, none while deliveries succeed. None: never flag.
    events_failing_after_seconds: float | None = Field(default=3600.0, gt=0)
    audit_tail: int = Field(default=50, ge=5)
    dedup_memory: int = Field(default=200, ge=10)
    continue_as_new_after_events: int = Field(default=10_000, ge=20)
    # While the customer must act (a hosted identification, documents to sign), remind the
    # backend at these offsets after the wait began (with events on): 1, 3 and 7 days.
    reminder_offsets_seconds: list[float] = Field(default_factory=lambda: [86400.0, 3 * 86400.0, 7 * 86400.0])
    # SLAs: how long a customer may stay in one wait before it is flagged (None: no SLA).
    # Waiting on the customer (a hosted identification, documents to sign): 7 days.
    sla_customer_seconds: float | None = Field(default=7 * 86400.0, ge=0)
    # Iron's compliance review (`Processed`, `PendingReview`; Iron: typically 24 to 48 hours): 48 h.
    sla_review_seconds: float | None = Field(default=48 * 3600.0, ge=0)
    # Waiting on an operator: `NeedsAttention`, `Declined`, an Iron status this engine does not know.
    sla_operator_seconds: float | None = Field(default=3600.0, ge=0)
    # Iron's compliance holding the customer (`Suspended`, `UserRequired`): off by default.
    sla_iron_hold_seconds: float | None = Field(default=None, ge=0)
    # Quiet waits (engine 2): a wait polls Iron (on the backoff above, or every
    # `parked_reconcile_seconds` while parked) only while it is younger than its first window;
    # after it, only wakes move it (webhooks, operators' updates, signings, the fleet pass,
    # reminders and SLAs, which read nothing) and one backstop read every `parked_backstop_seconds`.
    # A customer who acts, acts in the first hour (the hosted KYC is one sitting); later news comes
    # by webhook, and a lost webhook by the daily fleet pass or, at worst, the backstop.
    quiet_after_seconds: float = Field(default=3600.0, gt=0)
    # Iron's own review (`Processed`, `PendingReview`; typically 24 to 48 h) is polled longer.
    review_quiet_after_seconds: float = Field(default=6 * 3600.0, gt=0)
    parked_backstop_seconds: float = Field(default=60 * 86400.0, gt=0)
    # A customer in one wait this long is flagged idle (the state's `idle`, the details line,
    # `report`, the SLA metric and one `onboarding.sla_breached` event with deadline `idle`);
    # None: never. It moves at once on its next wake all the same.
    idle_after_seconds: float | None = Field(default=30 * 86400.0, gt=0)


class OnboardingInput(Message):
    """Start (or adopt, with `iron_customer_id`) one customer's onboarding."""

    external_id: str = Field(min_length=1, max_length=EXTERNAL_ID_MAX_LENGTH)
    email: str | None = None
    customer_type: CustomerType = CustomerType.PERSON
    name: str | None = None
    identification: IdentificationRequest = Field(default_factory=IdentificationRequest)
    iron_customer_id: str | None = None
    timings: OnboardingTimings = Field(default_factory=OnboardingTimings)
    carried: "OnboardingState | None" = None
    # The code that runs this customer (`contracts/engine.py`): the current engine unless a
    # continue-as-new of an older run says otherwise.
    engine_version: int = ENGINE_VERSION
    # Send the partner's backend a signed event per change (`ONBOARDING_EVENTS_URL` where the
    # onboarding was started); off, the outbox stays empty and no delivery costs history.
    deliver_events: bool = False
    # The Iron sub-partner this customer is onboarded for (`X-SUB-PARTNER-ID` on its every Iron
    # call); None: the deployment's default scope (`IRON_SUB_PARTNER_ID`, or the partner itself).
    sub_partner_id: str | None = None
    # The last event sequence an earlier, closed onboarding under this workflow id made (one an
    # operator terminated, say, before the customer was adopted again): this one numbers its
    # events after it, so a customer's `sequence` only grows and no `webhook-id` comes twice.
    # Filled in by whoever starts the workflow (`operations.state_access.last_event_sequence`).
    events_after: int = Field(default=0, ge=0)
    # The email and name by reference: a contact document in the document store
    # (`data_protection/contact.py`), read only by the activity that creates the customer. The
    # run then holds no personal data, so its customer stays in it when a cycle ends (engine 2).
    # `email` and `name` given as well (an amend) win over the document's.
    contact_ref: str | None = None

    @field_validator("external_id")
    @classmethod
    def _printable_external_id(cls, value: str) -> str:
        if not _valid_external_id(value):
            raise ValueError("external_id must not contain whitespace or control characters, nor be `.` or `..`")
        return value

    @field_validator("sub_partner_id")
    @classmethod
    def _sub_partner_is_a_uuid(cls, value: str | None) -> str | None:
        return None if value is None else canonical_sub_partner_id(value)

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        data = omit_default_scope(handler(self))
        # Left out when there is nothing before, so the input of a first onboarding is what
        # workers without this field read too.
        if isinstance(data, dict):
            if not data.get("events_after"):
                data.pop("events_after", None)
            if data.get("contact_ref") is None:
                data.pop("contact_ref", None)
        return data

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.external_id, self.sub_partner_id)

    @model_validator(mode="after")
    def _email_to_create(self) -> "OnboardingInput":
        if not self.iron_customer_id and not self.carried and not self.email and not self.contact_ref:
            raise ValueError("'email' (or 'contact_ref') is required to create a customer (or give 'iron_customer_id' to adopt one)")
        return self


# --- signal ------------------------------------------------------------------------------------


class IronEventSignal(Message):
    """Signal `iron_event`: a webhook from Iron, as a hint. The workflow reads Iron before it
    acts, so a duplicate, late or forged-looking event cannot move it backwards."""

    model_config = ConfigDict(extra="ignore")

    type: str
    timestamp: str = ""
    customer_id: str | None = None
    entity_id: str | None = None
    status: str | None = None
    webhook_id: str | None = None

    @property
    def dedup_key(self) -> str:
        return f"{self.type}|{self.entity_id}|{self.status}|{self.timestamp}"


# --- updates -----------------------------------------------------------------------------------


class AcceptSigningRequest(Message):
    """Update `accept_signing`: the customer accepted this required signing; sign it at Iron."""

    content_id: str = Field(min_length=1)


class AcceptSigningResult(Message):
    content_id: str
    signing_id: str
    signed_at: str
    remaining: list[str]


class RestartIdentificationRequest(Message):
    """Update `restart_identification`: an operator retries after `Declined` or
    `NeedsAttention`. A new identification kind (for example a fresh document reference) may
    be given; otherwise the original request is reused."""

    reason: str = Field(default="operator restart", max_length=500)
    identification: IdentificationRequest | None = None


class RestartIdentificationResult(Message):
    accepted: bool
    phase: Phase
    cycle: int


class RefreshRequest(Message):
    """Update `refresh`: read Iron now instead of waiting for a webhook or timer."""


class AmendRequest(Message):
    """Update `amend`: correct the start data of an onboarding that has not created its Iron
    customer yet (a mistyped email, say). Only the fields given change."""

    email: str | None = None
    name: str | None = None
    customer_type: CustomerType | None = None

    @model_validator(mode="after")
    def _something_to_amend(self) -> "AmendRequest":
        if self.email is None and self.name is None and self.customer_type is None:
            raise ValueError("nothing to amend: give email, name or customer_type")
        return self


class AmendResult(Message):
    accepted: bool
    phase: Phase
    amended: list[str]


# --- query -------------------------------------------------------------------------------------


class SigningView(Message):
    id: str
    url: str
    display_name: str
    signed: bool = False
    signing_id: str | None = None


class AttentionView(Message):
    reason: str
    step: str
    error_type: str | None = None
    status_code: int | None = None
    since: str
    # Iron's customer status when the workflow parked: Iron moving away from it clears the flag.
    customer_status: str | None = None


class AuditEntry(Message):
    at: str
    phase: Phase
    cause: str
    customer_status: str | None = None
    identification_status: str | None = None


class EventRecord(Message):
    type: str
    status: str | None
    entity_id: str | None
    timestamp: str
    received_at: str
    duplicate: bool = False


class SlaBreachView(Message):
    """The customer has waited on `sla` in `phase` since `since`, past `limit_seconds`."""

    sla: str  # customer, review, operator or iron_hold (`OnboardingTimings.sla_*_seconds`)
    phase: Phase
    since: str
    limit_seconds: float
    breached_at: str


class PassProgress(Message):
    """What the handling of the current wake (a pass) has already learned from Iron, so each
    read happens once per pass. `customer`: `stale` (read it), `fresh` (read in this pass) or
    `trusted` (a wake about the identification alone, while the customer is known to need it) or
    `known` (a reminder, SLA or idle deadline alone: the state stands, nothing is read)."""

    customer: str = "stale"
    customer_read_after_identification: bool = False
    identification: str = "unresolved"  # or "none" (create one) or "current" (state fields are fresh)
    signings_read: bool = False
    customer_hint: bool = False
    cause: str = "reconcile"
    create_cause: str = "customer needs an identification"
    resume_wait: bool = False


class OnboardingState(Message):
    """Query `state`, and the state carried across continue-as-new."""

    external_id: str
    phase: Phase = Phase.FINDING_CUSTOMER
    customer_status: str | None = None
    identification_status: str | None = None
    iron_customer_id: str | None = None
    identification_id: str | None = None
    identification_url: str | None = None
    identification_kind: str | None = None
    identification_cycle: int = 0
    identification_retry_steps: list[str] = Field(default_factory=list)
    required_signings: list[SigningView] = Field(default_factory=list)
    cycle: int = 1
    cycle_completed: bool = False
    outcome: str | None = None
    needs_attention: AttentionView | None = None
    identification_attempt: int = 0
    expired_count: int = 0
    iron_calls: int = 0
    runs: int = 1
    audit: list[AuditEntry] = Field(default_factory=list)
    recent_events: list[EventRecord] = Field(default_factory=list)
    seen_event_keys: list[str] = Field(default_factory=list)
    updated_at: str | None = None
    # What the engine waits for, in words (the UI's current details).
    waiting_for: str = "starting"
    # Named deadlines (`poll`, `reconcile`): the workflow keeps one timer, for the earliest.
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    poll_key: str | None = None
    poll_delay_seconds: float | None = None
    # True while parked in a wait: a run that continued as new there resumes the wait.
    waiting: bool = False
    # An operator restart taken but not yet acted on: the next identification is a new one.
    renewal_due: bool = False
    # Bumped by `amend`: corrected start data needs a new idempotency key at Iron.
    customer_attempt: int = 0
    start_email_known: bool = True
    # The run's own history holds the start's email or name (its input or an amend): its cycle
    # ends with a continue-as-new that leaves them behind (`Features.keeps_run_at_cycle_end`).
    personal_data_in_run: bool = False
    customer_identification_ids: list[str] = Field(default_factory=list)
    signing_queue: list[str] = Field(default_factory=list)
    progress: PassProgress = Field(default_factory=PassProgress)
    # Events for the partner's backend not yet delivered, with their sequence (`contracts/outbox.py`).
    deliver_events: bool = False
    outbox: Outbox = Field(default_factory=Outbox)
    # The wait the customer must act on (what, for which identification and cycle), since when,
    # and how many reminders it has had.
    reminder_key: str | None = None
    awaiting_since: datetime | None = None
    reminders_sent: int = 0
    # What the customer must still provide (codes only), and which reading of Iron it answers.
    requirements: RequirementsView | None = None
    requirements_key: str | None = None
    # The SLA the current wait is under (which one, in which phase and cycle), since when, and
    # the breach once past it; cleared when the phase changes.
    sla_key: str | None = None
    sla_since: datetime | None = None
    sla_breached: SlaBreachView | None = None
    # Flagged once a customer has stayed in one wait `idle_after_seconds` (engine 2); cleared
    # when the phase changes.
    idle: SlaBreachView | None = None
    # When the current poll schedule began (its first window is measured from here).
    poll_since: datetime | None = None
    # When the current phase began (search attribute `OnboardingPhaseSince`, the time-in-phase
    # metric): carried across continue-as-new, so a long wait is measured from its start.
    phase_since: datetime | None = None
    # The customer's Iron scope, from the start input (None: the default scope).
    sub_partner_id: str | None = None

    @classmethod
    def first(cls, input: OnboardingInput) -> "OnboardingState":
        """The state a new onboarding starts in."""
        scope: dict[str, Any] = {"sub_partner_id": input.sub_partner_id} if input.sub_partner_id else {}
        if input.events_after:
            scope["outbox"] = Outbox(next_sequence=input.events_after + 1)
        return cls(external_id=input.external_id, iron_customer_id=input.iron_customer_id, **scope)

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        return omit_default_scope(handler(self))

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.external_id, self.sub_partner_id)

    def summary(self) -> dict[str, Any]:
        """The fields a person reads first."""
        return {
            "phase": self.phase.value,
            "customer_status": self.customer_status,
            "identification_status": self.identification_status,
            "cycle": self.cycle,
            "outcome": self.outcome,
        }


OnboardingState.model_rebuild()
OnboardingInput.model_rebuild()

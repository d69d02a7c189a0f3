"""The compact view of an onboarding that machines read without a workflow query, and the
`wait_for` update's request and result.

The workflow keeps `OnboardingStateView` in its memo under `STATE_MEMO` (written with its
search-attribute upserts, given at start and at continue-as-new), so `describe` answers "where
does this customer stand" without a workflow task: a dashboard reading ten customers a second
costs the workers nothing. Memos go through the payload codec like every payload; the view holds
ids, statuses, urls and document display names only, never personal data, and is clipped to stay
far below Temporal's memo size limits (the server warns above 2 KiB per memo by default).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from contracts.messages import AttentionView, AuditEntry, SigningView, SlaBreachView, omit_default_scope, workflow_id_for
from contracts.phase import Phase

if TYPE_CHECKING:
    from contracts.messages import OnboardingState

STATE_MEMO = "onboarding_state"
# Set by a start that waits (update-with-start): the update tells it whether it started the run.
START_REQUEST_MEMO = "start_request"
VIEW_VERSION = 1

# The view stays below this many bytes of JSON; the memo also holds the start digest, and the
# codec adds a few dozen bytes.
VIEW_MAX_BYTES = 1536
_REASON_MAX = 300
_WAITING_FOR_MAX = 160
_DISPLAY_NAME_MAX = 80
_URL_MAX = 500
_SIGNINGS_MAX = 10
_AUDIT_KEPT = 2
_AUDIT_CAUSE_MAX = 80

# Once one of these is reached no identification url will come in this cycle: a start that
# waits for the url returns there instead.
NO_URL_PHASES = (
    Phase.AWAITING_SIGNINGS,
    Phase.ACTIVE,
    Phase.DECLINED,
    Phase.NEEDS_ATTENTION,
    Phase.SUSPENDED,
    Phase.ARCHIVED,
)

# One wait is at most this long (a week); longer ones loop on the client.
WAIT_MAX_SECONDS = 7 * 86400.0


class OnboardingStateView(BaseModel):
    """Where one customer's onboarding stands: field names as in `OnboardingState`."""

    model_config = ConfigDict(extra="ignore")

    version: int = VIEW_VERSION
    external_id: str
    phase: Phase
    cycle: int = 1
    runs: int = 1
    customer_status: str | None = None
    identification_status: str | None = None
    iron_customer_id: str | None = None
    identification_id: str | None = None
    identification_url: str | None = None
    identification_kind: str | None = None
    required_signings: list[SigningView] = Field(default_factory=list)
    needs_attention: AttentionView | None = None
    outcome: str | None = None
    waiting_for: str = ""
    # What Iron still requires of the customer, in one line of codes (the state has the buckets),
    # and an SLA the current wait is past.
    requires: str | None = None
    sla_breached: SlaBreachView | None = None
    idle: SlaBreachView | None = None
    # Events waiting on a partner's backend that has been failing since `events_failing_since`
    # (`OnboardingTimings.events_failing_after_seconds`); 0 while deliveries succeed.
    events_pending: int = 0
    events_failing_since: str | None = None
    last_event_sequence: int = 0
    updated_at: str | None = None
    # The last entries of the audit trail, briefly (`status --live` shows the whole trail).
    audit: list[AuditEntry] = Field(default_factory=list)
    # True when the view had to leave something out to stay small (signing urls first).
    truncated: bool = False
    # The Iron sub-partner the customer is onboarded for; left out for the default scope.
    sub_partner_id: str | None = None

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        return omit_default_scope(handler(self))

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.external_id, self.sub_partner_id)

    @classmethod
    def of(cls, s: "OnboardingState", *, every_pending: bool = False) -> "OnboardingStateView":
        """`every_pending`: count every queued event, as engine 1 did (its runs replay the memo
        writes that count made); the view is written only at a change, so that count was stale."""
        attention = s.needs_attention
        if attention is not None and len(attention.reason) > _REASON_MAX:
            attention = attention.model_copy(update={"reason": _clip(attention.reason, _REASON_MAX)})
        signings = [
            x.model_copy(update={"display_name": _clip(x.display_name, _DISPLAY_NAME_MAX), "url": _clip(x.url, _URL_MAX)})
            for x in s.required_signings[:_SIGNINGS_MAX]
        ]
        view = cls(
            external_id=s.external_id,
            sub_partner_id=getattr(s, "sub_partner_id", None),
            phase=s.phase,
            cycle=s.cycle,
            runs=s.runs,
            customer_status=s.customer_status,
            identification_status=s.identification_status,
            iron_customer_id=s.iron_customer_id,
            identification_id=s.identification_id,
            identification_url=s.identification_url if s.identification_url and len(s.identification_url) <= _URL_MAX else None,
            identification_kind=s.identification_kind,
            required_signings=signings,
            needs_attention=attention,
            outcome=_clip(s.outcome, _REASON_MAX) if s.outcome else None,
            waiting_for=_clip(s.waiting_for, _WAITING_FOR_MAX),
            requires=s.requirements.brief() if s.requirements is not None and s.requirements.outstanding() else None,
            sla_breached=s.sla_breached,
            idle=s.idle,
            events_pending=len(s.outbox.pending) if every_pending else s.outbox.waiting_on_failing_backend,
            events_failing_since=s.outbox.failing_since,
            last_event_sequence=s.outbox.last_sequence,
            updated_at=s.updated_at,
            audit=[AuditEntry(at=e.at, phase=e.phase, cause=_clip(e.cause, _AUDIT_CAUSE_MAX)) for e in s.audit[-_AUDIT_KEPT:]],
            truncated=len(s.required_signings) > _SIGNINGS_MAX
            or bool(s.identification_url and len(s.identification_url) > _URL_MAX),
        )
        for shrink in _SHRINKS:  # what an unusually large state gives up first, in order
            if len(view.to_memo_json()) <= VIEW_MAX_BYTES:
                break
            shrink(view)
            view.truncated = True
        return view

    def same_as(self, other: "OnboardingStateView | None") -> bool:
        """Equal but for `updated_at` and the audit tail: a note in the audit trail alone is not
        worth a memo write (it goes out with the next change)."""
        if other is None:
            return False
        return self.model_dump(exclude={"updated_at", "audit"}) == other.model_dump(exclude={"updated_at", "audit"})

    def to_memo(self) -> dict:
        return self.model_dump(mode="json", exclude_defaults=True) | {
            "external_id": self.external_id, "phase": self.phase.value, "version": self.version,
        }

    def to_memo_json(self) -> str:
        return json.dumps(self.to_memo(), separators=(",", ":"))


class WaitForRequest(BaseModel):
    """Update `wait_for`: answer once the onboarding is in one of `phases`, or (with
    `identification_url`) once the identification url exists, or when `timeout_seconds` passed.
    `start_digest` (a start that waits) is compared with the running onboarding's start data."""

    model_config = ConfigDict(extra="forbid")

    phases: list[Phase] = Field(default_factory=list)
    identification_url: bool = False
    timeout_seconds: float = Field(gt=0, le=WAIT_MAX_SECONDS)
    start_digest: dict[str, str] | None = None
    start_request: str | None = None

    @model_validator(mode="after")
    def _something_to_wait_for(self) -> "WaitForRequest":
        if not self.phases and not self.identification_url:
            raise ValueError("nothing to wait for: give phases or identification_url")
        return self

    def reached_by(self, view: OnboardingStateView) -> bool:
        return view.phase in self.phases or (self.identification_url and bool(view.identification_url))


class WaitForResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reached: bool
    state: OnboardingStateView
    # The run is continuing as new (or ending): ask again, with the time that is left.
    run_ending: bool = False
    # A start that waits: whether its request started this run, and the start fields in which
    # the running onboarding differs (None: not compared).
    started: bool = False
    start_data_differs: list[str] | None = None


def _no_audit(v: OnboardingStateView) -> None:
    v.audit = []


def _no_signing_urls(v: OnboardingStateView) -> None:
    v.required_signings = [x.model_copy(update={"url": ""}) for x in v.required_signings]


def _short_texts(v: OnboardingStateView) -> None:
    v.required_signings = [x.model_copy(update={"display_name": _clip(x.display_name, 24)}) for x in v.required_signings[:5]]
    v.waiting_for = _clip(v.waiting_for, 60)
    v.requires = _clip(v.requires, 60) if v.requires else None
    v.outcome = _clip(v.outcome, 120) if v.outcome else None
    if v.needs_attention is not None:
        v.needs_attention = v.needs_attention.model_copy(update={"reason": _clip(v.needs_attention.reason, 120)})


def _unsigned_ids_only(v: OnboardingStateView) -> None:
    v.required_signings = [x.model_copy(update={"display_name": ""}) for x in v.required_signings if not x.signed][:3]


_SHRINKS = (_no_audit, _no_signing_urls, _short_texts, _unsigned_ids_only)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"

"""The HTTP API's request and response bodies: the contract clients are generated from
(`onboarding_api/openapi.json`). They are the API's own, separate from the engine's messages,
so a change inside the engine changes no client unless it is made here on purpose.

Requests refuse fields they do not know. Their rules beyond the types (an email's syntax, an
external id's characters, identification data Iron accepts) are the command line's, checked by
`operations.onboardings` when the request is served: a refusal is a `bad-input` problem naming
the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.messages import EXTERNAL_ID_MAX_LENGTH
from contracts.phase import Phase
from iron_client.models import CustomerType, IdentificationKind, IntendedUse
from operations.onboardings import NAME_MAX_LENGTH, TEXT_MAX_LENGTH, TOKEN_MAX_LENGTH

EMAIL_MAX_LENGTH = 320
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ----------------------------------------------------------------------------------


class IdentificationInput(Request):
    """Which identification Iron creates. `Link` (the default): a hosted KYC link for the
    customer. `Token`: a SumSub share token, with `token` and `intended_use`. `Person` and
    `Business`: the identification data inline in `data` (as `samples/` shows), kept in the
    document store and never in Temporal."""

    kind: IdentificationKind = IdentificationKind.LINK
    token: str | None = Field(None, min_length=1, max_length=TOKEN_MAX_LENGTH)
    intended_use: IntendedUse | None = None
    data: dict[str, Any] | None = Field(None, description="Person or Business identification data, as Iron takes it")


class StartRequest(Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"external_id": "cust-42", "email": "ada@example.com", "name": "Ada Lovelace", "customer_type": "Person"},
    ]})

    external_id: str = Field(min_length=1, max_length=EXTERNAL_ID_MAX_LENGTH,
                             description="Your id for the customer: names the onboarding")
    email: str = Field(min_length=1, max_length=EMAIL_MAX_LENGTH)
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX_LENGTH)
    customer_type: CustomerType = CustomerType.PERSON
    identification: IdentificationInput = Field(default_factory=IdentificationInput)
    sub_partner_id: str | None = Field(
        None, pattern=UUID_PATTERN,
        description="The Iron sub-partner the customer is onboarded for (a key scoped to one needs none)",
    )


class AmendRequest(Request):
    """The start data to correct before the Iron customer exists: at least one field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"email": "ada.lovelace@example.com"}]})

    email: str | None = Field(None, min_length=1, max_length=EMAIL_MAX_LENGTH)
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX_LENGTH)
    customer_type: CustomerType | None = None


class RestartRequest(Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "documents re-checked"}]})

    reason: str = Field("operator restart", min_length=1, max_length=TEXT_MAX_LENGTH)
    identification: IdentificationInput | None = Field(
        None, description="A new identification; none: the original request again"
    )


class WaitRequest(Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"phases": ["AwaitingSignings", "Active"], "timeout": 1}]})

    phases: list[Phase] = Field(min_length=1, max_length=len(Phase))
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds (at most the API's ONBOARDING_API_WAIT_MAX_SECONDS)")


class AdoptionRequest(Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"iron_customer_id": "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"}]})

    iron_customer_id: str = Field(pattern=UUID_PATTERN, max_length=64)
    sub_partner_id: str | None = Field(None, pattern=UUID_PATTERN)


# --- responses ---------------------------------------------------------------------------------


class Signing(BaseModel):
    id: str = Field(description="The content id to sign once the customer accepted it")
    url: str
    display_name: str
    signed: bool = False
    signing_id: str | None = None


class NeedsAttention(BaseModel):
    reason: str
    step: str
    since: str
    error_type: str | None = None
    status_code: int | None = None
    customer_status: str | None = None


class SlaBreach(BaseModel):
    sla: str
    phase: Phase
    since: str
    limit_seconds: float
    breached_at: str


class Onboarding(BaseModel):
    """Where one customer's onboarding stands: the state view the workflow keeps in its memo,
    read without asking the workflow. Ids, statuses, urls and display names only."""

    external_id: str
    sub_partner_id: str | None = None
    workflow_id: str
    phase: Phase
    cycle: int
    customer_status: str | None = None
    identification_status: str | None = None
    iron_customer_id: str | None = None
    identification_id: str | None = None
    identification_url: str | None = None
    identification_kind: str | None = None
    required_signings: list[Signing] = Field(default_factory=list)
    needs_attention: NeedsAttention | None = None
    outcome: str | None = None
    waiting_for: str = ""
    requires: str | None = None
    sla_breached: SlaBreach | None = None
    # A month in one wait with nothing moving it (`deadline` idle): docs/lifecycle.md, quiet waits.
    idle: SlaBreach | None = None
    events_pending: int = Field(0, description="Events waiting on a partner's backend that has been refusing them; 0 while deliveries succeed")
    events_failing_since: str | None = Field(
        None, description="Since when the partner's backend has refused this customer's events (absent while deliveries succeed)"
    )
    last_event_sequence: int = 0
    updated_at: str | None = None
    truncated: bool = False

    @classmethod
    def of(cls, view: Any) -> "Onboarding":
        """From the engine's `OnboardingStateView` (or its whole state)."""
        from contracts.state_view import OnboardingStateView

        if not isinstance(view, OnboardingStateView):
            view = OnboardingStateView.of(view)
        data = view.model_dump(mode="json", exclude={"version", "runs", "audit"})
        data.setdefault("sub_partner_id", None)
        return cls.model_validate({**data, "workflow_id": view.workflow_id})


class StartAnswer(BaseModel):
    started: bool = Field(description="True: this request (or the first try under its Idempotency-Key) started it")
    reached: bool | None = Field(
        None, description="With ?wait=identification_url: whether the url (or a phase where none will come) was reached in time"
    )
    onboarding: Onboarding


class SigningAnswer(BaseModel):
    content_id: str
    signing_id: str
    signed_at: str
    remaining: list[str] = Field(description="Content ids still to sign")


class RestartAnswer(BaseModel):
    phase: Phase
    cycle: int


class AmendAnswer(BaseModel):
    amended: list[str]
    phase: Phase


class OnboardingPage(BaseModel):
    items: list[Onboarding]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last")


class Health(BaseModel):
    status: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; `type` is stable per kind of error (docs/http-api.md)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = Field(None, description="bad-input: each field and the rule it breaks")
    fields: list[str] | None = Field(None, description="start-data-differs: the start fields that differ")
    state: Onboarding | None = Field(None, description="wait-timed-out, onboarding-closed: where it stands")

"""What the customer must still provide, as the workflow keeps it: Iron's
`GET /customers/{id}/requirements`, trimmed to codes, ids and flags.

Iron's free text is left out on purpose: an item's `description` is a moderator's comment that
may quote the customer, and Iron says every text may change without notice (switch on `code`
and `reject_labels`). A question is kept by its id. What remains is small enough to carry in
the state through every continue-as-new and to send in every event (`contracts/events.py`
builds `EventRequirements` from it: the field names match).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from iron_client.models import CustomerRequirements, RequirementItem, wire

BUCKETS = ("complete", "pending", "missing", "issues")
# Only the buckets that ask something of someone are named in the one-line summary.
_OUTSTANDING = ("missing", "issues", "pending")


class RequirementsModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuestionRef(RequirementsModel):
    """A questionnaire question the customer left unanswered (`sourceOfFunds`), by id."""

    id: str
    section_id: str | None = None


class RequirementView(RequirementsModel):
    code: str  # Iron's `RequirementCode`, or the string Iron sent for one the spec does not list yet
    identification_id: str | None = None
    retryable: bool | None = None
    reject_labels: list[str] = Field(default_factory=list)
    missing_questions: list[QuestionRef] = Field(default_factory=list)

    @classmethod
    def of(cls, item: RequirementItem) -> "RequirementView":
        return cls(
            code=wire(item.code) or "",
            identification_id=item.identification_id,
            retryable=item.retryable,
            reject_labels=list(item.reject_labels),
            missing_questions=[QuestionRef(id=q.id, section_id=q.section_id) for q in item.missing_questions],
        )


class RequirementsView(RequirementsModel):
    """The four buckets: `complete`, `pending` (submitted, awaiting review), `missing` (the
    customer can resubmit) and `issues` (terminal: no resubmission clears them)."""

    requirements_due: list[str] = Field(default_factory=list)
    complete: list[RequirementView] = Field(default_factory=list)
    pending: list[RequirementView] = Field(default_factory=list)
    missing: list[RequirementView] = Field(default_factory=list)
    issues: list[RequirementView] = Field(default_factory=list)

    @classmethod
    def of(cls, requirements: CustomerRequirements) -> "RequirementsView":
        return cls(
            requirements_due=[wire(category) or "" for category in requirements.requirements_due],
            **{bucket: [RequirementView.of(item) for item in getattr(requirements, bucket)] for bucket in BUCKETS},
        )

    def outstanding(self) -> bool:
        return any(getattr(self, bucket) for bucket in _OUTSTANDING)

    def brief(self, limit: int = 160) -> str:
        """One line for people: `missing kyc_identity (UNSATISFACTORY_PHOTOS); pending identification_kyc`."""
        parts = []
        for bucket in _OUTSTANDING:
            items = getattr(self, bucket)
            if items:
                parts.append(f"{bucket} " + ", ".join(_item_brief(item) for item in items))
        text = "; ".join(parts) or "nothing outstanding"
        return text if len(text) <= limit else text[: limit - 3] + "..."


def _item_brief(item: RequirementView) -> str:
    extras = list(item.reject_labels) + [q.id for q in item.missing_questions]
    return item.code + (f" ({', '.join(extras)})" if extras else "")

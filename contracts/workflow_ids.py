"""How an onboarding's workflow ID is made from its customer's names, and read back: one
customer, one workflow ID, in the deployment's default scope or a sub-partner's. Depends on
nothing else of the project, so every contract (messages, events) can name a workflow.
"""

from __future__ import annotations

import uuid

WORKFLOW_ID_PREFIX = "onboarding-"

# A customer onboarded for a sub-partner: `onboarding-sp-{sub_partner_id}-{external_id}`. The
# sub-partner comes first so one sub-partner's onboardings share a prefix (`WorkflowId
# STARTS_WITH "onboarding-sp-<id>-"`); the default scope keeps `onboarding-{external_id}`.
SUB_PARTNER_WORKFLOW_ID_PREFIX = f"{WORKFLOW_ID_PREFIX}sp-"
_UUID_TEXT_LENGTH = 36


def workflow_id_for(external_id: str, sub_partner_id: str | None = None) -> str:
    """The workflow ID of the onboarding of `external_id` in a sub-partner's scope (None: the
    deployment's default scope, `IRON_SUB_PARTNER_ID` or none, named as it always was)."""
    if sub_partner_id is None:
        return f"{WORKFLOW_ID_PREFIX}{external_id}"
    return f"{SUB_PARTNER_WORKFLOW_ID_PREFIX}{canonical_sub_partner_id(sub_partner_id)}-{external_id}"


def scope_of_workflow_id(workflow_id: str) -> tuple[str | None, str] | None:
    """(sub_partner_id or None, external_id) named by an onboarding workflow ID, or None for an
    ID that is not an onboarding's. An external id of the default scope that itself begins with
    `sp-<uuid>-` reads as a sub-partner's: such ids are reserved for that form."""
    if not workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return None
    rest = workflow_id[len(WORKFLOW_ID_PREFIX):]
    if workflow_id.startswith(SUB_PARTNER_WORKFLOW_ID_PREFIX):
        tail = workflow_id[len(SUB_PARTNER_WORKFLOW_ID_PREFIX):]
        candidate, dash, external_id = tail[:_UUID_TEXT_LENGTH], tail[_UUID_TEXT_LENGTH:_UUID_TEXT_LENGTH + 1], tail[_UUID_TEXT_LENGTH + 1:]
        if dash == "-" and external_id and _is_canonical_uuid(candidate):
            return candidate, external_id
    return (None, rest) if rest else None


def canonical_sub_partner_id(value: str) -> str:
    """A sub-partner id as Iron's `X-SUB-PARTNER-ID` takes it: a UUID, in its canonical
    lower-case hyphenated form (so one sub-partner always names one workflow ID). Raises
    ValueError for anything that is not a UUID."""
    if not isinstance(value, str) or not 0 < len(value.strip()) <= 64:
        raise ValueError("a sub-partner id must be a UUID (such as 0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f)")
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("a sub-partner id must be a UUID (such as 0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f)") from None


def _is_canonical_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False

"""What every start of a `CustomerOnboarding` gives Temporal besides its input: the static
summary and details the Web UI shows on a workflow's first tab, the `start_digest` memo
that lets a second start tell "the same customer again" from "different data for a running
customer", and the `started_by` memo from which a run continued as new tells the same story
(continue-as-new cannot carry a start's summary and details: `first_run_story`).

Pure functions, no I/O: the starter, the webhook receiver's adoption and the workflow (to keep
the digest true after an `amend`) call the same ones. Nothing personal goes in: the summary and
details name ids, kinds and types only, and the digest holds one salted SHA-256 per field, never
the value (memos are encrypted by the payload codec as well, where keys are configured).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import contracts.search_attributes as search_attributes
from contracts.messages import (
    QUERY_STATE,
    UPDATE_ACCEPT_SIGNING,
    UPDATE_AMEND,
    UPDATE_REFRESH,
    UPDATE_RESTART_IDENTIFICATION,
    AmendRequest,
    IdentificationRequest,
    OnboardingInput,
    OnboardingState,
    workflow_id_for,
)
from contracts.state_view import STATE_MEMO, OnboardingStateView

START_DIGEST_MEMO = "start_digest"
# Who started the onboarding (`starter`, `webhook receiver (...)`, `adopt`): the memo goes on
# through continue-as-new, the start's summary and details do not.
STARTED_BY_MEMO = "started_by"
# The start data a second start is compared on. Timings are not: they tune the engine, they do
# not describe the customer.
DIGEST_FIELDS = ("email", "name", "customer_type", "identification", "iron_customer_id")
DIGEST_VERSION = "1"
# A sub-partner's start carries its scope too: a start that meets another scope's workflow (a
# default-scope external id of the reserved form `sp-<uuid>-...`) differs instead of attaching.
SUB_PARTNER_FIELD = "sub_partner_id"

# The Web UI shows the summary as one line; Temporal caps user metadata in size.
SUMMARY_MAX_CHARS = 200
DETAILS_MAX_CHARS = 4000


# --- start digest ------------------------------------------------------------------------------


def field_digest(workflow_id: str, field: str, value: str | None) -> str:
    """A salted SHA-256 of one start field: equal values give equal digests for one workflow,
    and a digest says nothing of the value (the salt is the workflow id, so the same email of
    two customers does not even look alike)."""
    h = hashlib.sha256()
    h.update(f"start-digest/{DIGEST_VERSION}\x00{workflow_id}\x00{field}\x00".encode("utf-8"))
    h.update(b"\x00" if value is None else b"\x01" + value.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def identification_fingerprint(identification: IdentificationRequest, content: Any = None) -> str:
    """What identifies the identification a start asks for. `content`, the parsed data file of a
    Person or Business identification, stands in for its document reference: every start
    stores the file anew, under a new reference, though it is the same data."""
    fields = identification.model_dump(mode="json", exclude_none=True)
    if content is not None:
        fields.pop("document_ref", None)
        fields["content_sha256"] = hashlib.sha256(
            json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
        ).hexdigest()
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def start_digest(workflow_input: OnboardingInput, *, identification_content: Any = None) -> dict[str, str]:
    """The `start_digest` memo value for a start with this input: field name -> digest."""
    workflow_id = workflow_id_for(workflow_input.external_id, workflow_input.sub_partner_id)
    values: dict[str, str | None] = {
        "email": workflow_input.email,
        "name": workflow_input.name,
        "customer_type": workflow_input.customer_type.value,
        "identification": identification_fingerprint(workflow_input.identification, identification_content),
        "iron_customer_id": workflow_input.iron_customer_id,
    }
    digest = {field: field_digest(workflow_id, field, values[field]) for field in DIGEST_FIELDS}
    if workflow_input.sub_partner_id:
        # Only when set, so a default-scope digest is what it always was; compared both ways.
        digest[SUB_PARTNER_FIELD] = field_digest(workflow_id, SUB_PARTNER_FIELD, workflow_input.sub_partner_id)
    digest["version"] = DIGEST_VERSION
    if workflow_input.iron_customer_id:
        # Started from Iron's own data (adopt, the receiver's adoption): a later start with the
        # partner's data is no contradiction of it.
        digest["adopted"] = "1"
    return digest


def amended_start_digest(
    digest: Mapping[str, str], external_id: str, amend: AmendRequest, *, sub_partner_id: str | None = None
) -> dict[str, str]:
    """The digest after an accepted `amend`: what a start with the corrected data would give,
    so starting again with the corrected data attaches instead of reporting a difference."""
    workflow_id = workflow_id_for(external_id, sub_partner_id)
    updated = dict(digest)
    if amend.email is not None:
        updated["email"] = field_digest(workflow_id, "email", amend.email)
    if amend.name is not None:
        updated["name"] = field_digest(workflow_id, "name", amend.name)
    if amend.customer_type is not None:
        updated["customer_type"] = field_digest(workflow_id, "customer_type", amend.customer_type.value)
    return updated


def differing_fields(running: Any, wanted: Mapping[str, str]) -> list[str] | None:
    """The fields in which a start differs from the running onboarding's start, or None when
    they cannot be compared: the running one carries no digest this code reads (started before
    digests), or was adopted from Iron's data."""
    if not isinstance(running, Mapping) or running.get("version") != wanted.get("version") or running.get("adopted"):
        return None
    differs = [f for f in DIGEST_FIELDS if f in running and running[f] != wanted.get(f)]
    if running.get(SUB_PARTNER_FIELD) != wanted.get(SUB_PARTNER_FIELD):
        differs.append(SUB_PARTNER_FIELD)
    return differs


# --- what the Web UI shows first -----------------------------------------------------------------


def static_summary(workflow_input: OnboardingInput, *, started_by: str | None = "starter") -> str:
    """One line for the UI's list and the workflow's first tab: who, which identification, how
    it began (None: not known). Ids and kinds only, never a name or an email."""
    kind = workflow_input.identification.kind.value
    scope = f" for sub-partner {workflow_input.sub_partner_id}" if workflow_input.sub_partner_id else ""
    origin = f" ({started_by})" if started_by else ""
    if workflow_input.iron_customer_id:
        text = f"Adopted Iron customer {workflow_input.iron_customer_id} as {workflow_input.external_id}{scope}{origin}"
    else:
        text = (
            f"Onboarding {workflow_input.external_id}{scope}: {workflow_input.customer_type.value}, "
            f"{kind} identification{origin}"
        )
    return _clip(text, SUMMARY_MAX_CHARS)


def static_details(workflow_input: OnboardingInput, *, started_by: str | None = "starter") -> str:
    """The story of this workflow for the person who opens it (markdown): what it does, where
    its live state is, and the commands that drive it."""
    external_id = workflow_input.external_id
    # Every command finds an onboarding by (sub-partner, external id).
    target = f"{external_id} --sub-partner {workflow_input.sub_partner_id}" if workflow_input.sub_partner_id else external_id
    scope = f" for sub-partner `{workflow_input.sub_partner_id}`" if workflow_input.sub_partner_id else ""
    kind = workflow_input.identification.kind.value
    begin = (
        f"Adopted the Iron customer `{workflow_input.iron_customer_id}`, starting from its current state at Iron."
        if workflow_input.iron_customer_id
        else f"Finds the Iron customer by external id `{external_id}`, creating it only if absent."
    )
    lines = [
        f"**Customer onboarding** for external id `{external_id}`{scope} ({workflow_input.customer_type.value})"
        + (f", started by {started_by}." if started_by else "."),
        "",
        f"1. {begin}",
        f"2. Creates a `{kind}` identification and waits for Iron's decision (webhooks, with polling as the fallback).",
        "3. Signs the documents Iron requires once the customer accepts them.",
        "4. Stays open while `Active`, and loops back whenever Iron's compliance reverts the customer.",
        "",
        "Where it stands: the search attributes `OnboardingPhase`, `IronCustomerStatus`, "
        f"`IronIdentificationStatus`, the current details line, and the `{QUERY_STATE}` query "
        "(Queries tab) with the reason of any `NeedsAttention` and the audit trail.",
        "",
        "Drive it:",
        f"- `python starter.py status {target}`",
        f"- `python starter.py sign {target} --all` (update `{UPDATE_ACCEPT_SIGNING}`)",
        f"- `python starter.py restart {target} --reason ...` (update `{UPDATE_RESTART_IDENTIFICATION}`, "
        "after `Declined` or `NeedsAttention`)",
        f"- `python starter.py amend {target} --email ...` (update `{UPDATE_AMEND}`, before the Iron customer exists)",
        f"- `python starter.py refresh {target}` (update `{UPDATE_REFRESH}`)",
    ]
    return _clip("\n".join(lines), DETAILS_MAX_CHARS)


def start_metadata(
    workflow_input: OnboardingInput, *, started_by: str = "starter", identification_content: Any = None
) -> dict[str, Any]:
    """Keyword arguments for `Client.start_workflow` beside the input: summary, details, memo."""
    return {
        "static_summary": static_summary(workflow_input, started_by=started_by),
        "static_details": static_details(workflow_input, started_by=started_by),
        "memo": {
            START_DIGEST_MEMO: start_digest(workflow_input, identification_content=identification_content),
            STARTED_BY_MEMO: started_by,
        },
    }


def start_options(
    workflow_input: OnboardingInput, *, started_by: str = "starter", identification_content: Any = None
) -> dict[str, Any]:
    """Every keyword argument of a start beside the input and the task queue: the workflow id,
    the search attributes and state view of the first state, the summary, details and memo.
    The starter, `adopt`, the backfill and the receiver's adoption all start with these, so an
    onboarding looks the same to operators and to itself however it began."""
    first = OnboardingState.first(workflow_input)
    options = start_metadata(workflow_input, started_by=started_by, identification_content=identification_content)
    options["memo"][STATE_MEMO] = OnboardingStateView.of(first).to_memo()
    attributes = search_attributes.at_start(first, engine_version=workflow_input.engine_version)
    return {"id": workflow_input.workflow_id, "search_attributes": attributes, **options}


def first_run_story(continued: OnboardingInput, *, started_by: Any, digest: Any) -> str:
    """The summary and details the onboarding was started with, told again for a run continued
    from it (markdown, for its current details): neither the continue-as-new command nor the
    server gives a new run the start's summary and details, so the UI's own fields stay empty.

    Rebuilt from the continued input and the start's memo: `started_by`, and the digest's
    `adopted` mark (a continued input names the Iron customer once it exists, adopted or not).
    A run whose memo lacks `started_by` (started before it was kept) leaves the origin out."""
    adopted = isinstance(digest, Mapping) and bool(digest.get("adopted"))
    first = continued.model_copy(update={"iron_customer_id": continued.iron_customer_id if adopted else None})
    origin = started_by if isinstance(started_by, str) and started_by else None
    summary = static_summary(first, started_by=origin)
    return f"**Summary**: {summary}\n\n{static_details(first, started_by=origin)}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"

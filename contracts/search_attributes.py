"""Search attributes the workflow keeps current, for operators' list filters in the Temporal UI.

Ids and statuses only: never names, emails or anything personal. Register them on a server
with `temporal operator search-attribute create` (or `start_local(search_attributes=...)`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

if TYPE_CHECKING:
    from contracts.messages import OnboardingState

IRON_CUSTOMER_ID = SearchAttributeKey.for_keyword("IronCustomerId")
IRON_CUSTOMER_STATUS = SearchAttributeKey.for_keyword("IronCustomerStatus")
IRON_IDENTIFICATION_STATUS = SearchAttributeKey.for_keyword("IronIdentificationStatus")
ONBOARDING_PHASE = SearchAttributeKey.for_keyword("OnboardingPhase")
ONBOARDING_CYCLE = SearchAttributeKey.for_int("OnboardingCycle")
# When the current phase began: "stuck since" as a visibility query (`starter.py report`).
ONBOARDING_PHASE_SINCE = SearchAttributeKey.for_datetime("OnboardingPhaseSince")
# True while the customer is past the SLA of its current wait (`OnboardingState.sla_breached`).
ONBOARDING_SLA_BREACHED = SearchAttributeKey.for_bool("OnboardingSlaBreached")

ALL = [
    IRON_CUSTOMER_ID, IRON_CUSTOMER_STATUS, IRON_IDENTIFICATION_STATUS, ONBOARDING_PHASE, ONBOARDING_CYCLE,
    ONBOARDING_PHASE_SINCE, ONBOARDING_SLA_BREACHED,
]
# The Iron sub-partner a customer is onboarded for; absent in the default scope.
IRON_SUB_PARTNER_ID = SearchAttributeKey.for_keyword("IronSubPartnerId")
ALL.append(IRON_SUB_PARTNER_ID)


def for_state(state: OnboardingState) -> dict[SearchAttributeKey[Any], Any]:
    """The value of each search attribute for this state (None: not known yet)."""
    return {
        IRON_CUSTOMER_ID: state.iron_customer_id,
        IRON_CUSTOMER_STATUS: state.customer_status,
        IRON_IDENTIFICATION_STATUS: state.identification_status,
        ONBOARDING_PHASE: state.phase.value,
        ONBOARDING_CYCLE: state.cycle,
        ONBOARDING_PHASE_SINCE: state.phase_since,
        # Only runs that watch SLAs set it: an upsert in a run from before would not replay.
        ONBOARDING_SLA_BREACHED: (state.sla_breached is not None) if state.requirements_and_slas else None,
        # Set at start and never changing: a default-scope customer has none, so its runs
        # upsert exactly what they did before.
        IRON_SUB_PARTNER_ID: state.sub_partner_id,
    }


def at_start(state: OnboardingState) -> TypedSearchAttributes:
    """What a workflow starting in `state` shows: given at start, so the workflow's first
    task has nothing to upsert (each upsert is a history event)."""
    return TypedSearchAttributes(
        [SearchAttributePair(key, value) for key, value in for_state(state).items() if value is not None]
    )

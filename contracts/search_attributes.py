"""Search attributes the workflow keeps current, for operators' list filters in the Temporal UI.

Ids and statuses only: never names, emails or anything personal. Register them on a server
with `temporal operator search-attribute create` (or `start_local(search_attributes=...)`).
"""

from __future__ import annotations

from datetime import datetime
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
# The engine version the current run executes (`contracts/engine.py`): given at each run's start
# (the first, and every continue-as-new), never upserted, so it costs nothing. `starter.py
# engines` counts open onboardings by it, which says when an engine's gates can be retired.
ONBOARDING_ENGINE_VERSION = SearchAttributeKey.for_int("OnboardingEngineVersion")
ALL.append(ONBOARDING_ENGINE_VERSION)
# Since when the partner's backend has been refusing this customer's events (engine 2; absent
# while deliveries succeed): `starter.py report` lists them under `events_failing`.
ONBOARDING_EVENTS_FAILING_SINCE = SearchAttributeKey.for_datetime("OnboardingEventsFailingSince")
ALL.append(ONBOARDING_EVENTS_FAILING_SINCE)


def for_state(state: OnboardingState) -> dict[SearchAttributeKey[Any], Any]:
    """The value of each search attribute for this state (None: not known yet)."""
    return {
        IRON_CUSTOMER_ID: state.iron_customer_id,
        IRON_CUSTOMER_STATUS: state.customer_status,
        IRON_IDENTIFICATION_STATUS: state.identification_status,
        ONBOARDING_PHASE: state.phase.value,
        ONBOARDING_CYCLE: state.cycle,
        ONBOARDING_PHASE_SINCE: state.phase_since,
        ONBOARDING_SLA_BREACHED: state.sla_breached is not None,
        # Set at start and never changing: a default-scope customer has none, so its runs
        # upsert exactly what they did before.
        IRON_SUB_PARTNER_ID: state.sub_partner_id,
        # None clears it (the only attribute that is ever removed).
        ONBOARDING_EVENTS_FAILING_SINCE: _datetime(state.outbox.failing_since),
    }


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None  # Python 3.11 reads the `Z` itself


def at_start(state: OnboardingState, *, engine_version: int | None = None) -> TypedSearchAttributes:
    """What a run starting in `state` on `engine_version` shows: given at its start (the first
    or a continue-as-new), so its first task has nothing to upsert (each upsert is a history
    event)."""
    values = {**for_state(state), ONBOARDING_ENGINE_VERSION: engine_version}
    return TypedSearchAttributes([SearchAttributePair(key, value) for key, value in values.items() if value is not None])

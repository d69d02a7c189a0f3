"""Where a customer's onboarding stands: the phase every part names (state, search attribute,
events, metrics). A leaf of its own, so the event contract can use it without the state."""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    """Where a customer's onboarding stands, as the Temporal UI and `state` show it."""

    FINDING_CUSTOMER = "FindingCustomer"
    CREATING_IDENTIFICATION = "CreatingIdentification"
    AWAITING_IDENTIFICATION = "AwaitingIdentification"
    AWAITING_SIGNINGS = "AwaitingSignings"
    ACTIVE = "Active"
    DECLINED = "Declined"
    SUSPENDED = "Suspended"
    USER_REQUIRED = "UserRequired"
    NEEDS_ATTENTION = "NeedsAttention"
    UNKNOWN_IRON_STATUS = "UnknownIronStatus"
    ARCHIVED = "Archived"


# The waits a customer can stay in for ever (`OnboardingTimings.idle_after_seconds` flags them).
PARKED_PHASES = (
    Phase.AWAITING_IDENTIFICATION, Phase.AWAITING_SIGNINGS, Phase.DECLINED, Phase.NEEDS_ATTENTION,
    Phase.SUSPENDED, Phase.USER_REQUIRED, Phase.UNKNOWN_IRON_STATUS,
)

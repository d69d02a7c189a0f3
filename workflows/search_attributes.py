"""Search attributes the workflow keeps current, for operators' list filters in the Temporal UI.

Ids and statuses only: never names, emails or anything personal. Register them on a server
with `temporal operator search-attribute create` (or `start_local(search_attributes=...)`).
"""

from temporalio.common import SearchAttributeKey

IRON_CUSTOMER_ID = SearchAttributeKey.for_keyword("IronCustomerId")
IRON_CUSTOMER_STATUS = SearchAttributeKey.for_keyword("IronCustomerStatus")
IRON_IDENTIFICATION_STATUS = SearchAttributeKey.for_keyword("IronIdentificationStatus")
ONBOARDING_PHASE = SearchAttributeKey.for_keyword("OnboardingPhase")
ONBOARDING_CYCLE = SearchAttributeKey.for_int("OnboardingCycle")

ALL = [IRON_CUSTOMER_ID, IRON_CUSTOMER_STATUS, IRON_IDENTIFICATION_STATUS, ONBOARDING_PHASE, ONBOARDING_CYCLE]

"""Which activity performs each Iron action `decide` chooses, with what input, and how its
result (or final rejection) becomes the next observation. No workflow code: the workflow
schedules the call.
Idempotency keys come from the workflow ID and counters in the state, never attempt numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from temporalio.exceptions import ApplicationError

from activities.iron_activities import IronActivities
from contracts import activity_models as am
from contracts.messages import OnboardingInput, OnboardingState
import workflows.decide as d
from workflows.idempotency import customer_key, identification_key, signing_key


# Requirements only inform the backend: an endpoint that keeps failing costs a few attempts,
# then the onboarding goes on without them (read again once Iron's state moves).
REQUIREMENTS_ATTEMPTS = 3


@dataclass(frozen=True)
class IronCall:
    # The activity, by method reference: Temporal names it and checks the argument against it.
    activity: Callable[[IronActivities, Any], Awaitable[Any]]
    arg: Any
    summary: str  # what the Temporal UI shows for the activity
    observed: Callable[[Any], d.Observation]
    # An informative read: a few attempts (0: retry until it succeeds), and any failure becomes
    # this observation instead of parking the customer or blocking the onboarding.
    maximum_attempts: int = 0
    unavailable: Callable[[str], d.Observation] | None = None


def iron_call(action: d.Action, state: OnboardingState, start: OnboardingInput, workflow_id: str) -> IronCall:
    # Every call goes out in the customer's own sub-partner scope; its keys come from the
    # workflow ID, which names that scope too.
    scope = state.sub_partner_id
    customer = am.CustomerRef(customer_id=state.iron_customer_id or "", sub_partner_id=scope)
    if isinstance(action, d.FindOrCreateCustomer):
        request = am.FindOrCreateCustomerInput(
            sub_partner_id=scope,
            external_id=state.external_id,
            email=start.email or "",
            customer_type=start.customer_type,
            name=start.name,
            contact_ref=start.contact_ref,
            idempotency_key=customer_key(workflow_id, action.attempt),
        )
        create = action.identify
        if create is None:
            return IronCall(IronActivities.find_or_create_customer, request, "find or create the customer", d.CustomerFound)
        kind = start.identification.kind.value
        onward = am.FindOrCreateAndIdentifyInput(
            **request.model_dump(),
            identification=start.identification,
            identification_key=identification_key(workflow_id, create.cycle, create.attempt),
            identify_if_customer=list(action.identify_if),
        )

        def found(result: am.CustomerIdentified) -> d.Observation:
            made = result.identification
            identified = None if made is None else _created(made, kind)
            return d.CustomerFound(result.customer, identified, identification_attempt=create.attempt)

        return IronCall(
            IronActivities.find_or_create_and_identify, onward,
            f"find or create the customer, and create its {kind} identification", found,
        )
    if isinstance(action, d.ReadCustomer):
        if action.signings_if:
            request = am.ReadOnwardInput(
                sub_partner_id=scope, customer_id=customer.customer_id, signings_if_customer=list(action.signings_if)
            )
            return IronCall(
                IronActivities.read_onward, request, f"read customer, and on: {action.cause}",
                lambda read: d.CustomerRead(read.customer, _signings(read)),
            )
        return IronCall(IronActivities.get_customer, customer, f"read customer: {action.cause}", d.CustomerRead)
    if isinstance(action, d.ReadIdentification):
        if action.customer_if:
            request = am.ReadOnwardInput(
                sub_partner_id=scope, customer_id=customer.customer_id, identification_id=action.identification_id,
                customer_if_identification=list(action.customer_if), signings_if_customer=list(action.signings_if),
            )
            return IronCall(
                IronActivities.read_onward, request, f"read identification, and on: {action.cause}",
                lambda read: d.IdentificationRead(read.identification, read.customer, _signings(read)),
            )
        ref = am.IdentificationRef(identification_id=action.identification_id, sub_partner_id=scope)
        summary = f"read identification: {action.cause}"
        return IronCall(IronActivities.get_identification, ref, summary, d.IdentificationRead)
    if isinstance(action, d.ReadLatestIdentification):
        return IronCall(
            IronActivities.latest_identification,
            customer,
            "read Iron's newest identification",
            lambda result: d.LatestIdentificationRead(result.identification),
        )
    if isinstance(action, d.CreateIdentification):
        kind = start.identification.kind.value
        request = am.CreateIdentificationInput(
            sub_partner_id=scope,
            customer_id=state.iron_customer_id or "",
            request=start.identification,
            idempotency_key=identification_key(workflow_id, action.cycle, action.attempt),
        )
        return IronCall(
            IronActivities.create_identification,
            request,
            f"create {kind} identification: {action.cause}",
            lambda result: _created(result, kind),
        )
    if isinstance(action, d.ReadSignings):
        return IronCall(
            IronActivities.get_required_signings,
            customer,
            "read required signings",
            lambda result: d.SigningsRead(tuple(result.signings)),
        )
    if isinstance(action, d.Sign):
        request = am.CreateSigningInput(
            sub_partner_id=scope,
            customer_id=state.iron_customer_id or "",
            content_id=action.content_id,
            idempotency_key=signing_key(workflow_id, action.cycle, action.content_id),
        )
        return IronCall(
            IronActivities.create_signing,
            request,
            f"sign {action.content_id}",
            lambda signing: d.Signed(action.content_id, signing),
        )
    if isinstance(action, d.ReadRequirements):
        return IronCall(
            IronActivities.get_requirements,
            customer,
            f"read requirements: {action.cause}",
            lambda result: d.RequirementsRead(result.requirements),
            maximum_attempts=REQUIREMENTS_ATTEMPTS,
            unavailable=d.RequirementsUnavailable,
        )
    raise TypeError(f"{type(action).__name__} is not an Iron call")


def _created(made: am.CreateIdentificationResult, kind: str) -> d.IdentificationCreated:
    return d.IdentificationCreated(made.identification, adopted=made.adopted, kind=kind)


def _signings(read: am.OnwardRead) -> tuple[am.RequiredSigningSnapshot, ...] | None:
    return None if read.signings is None else tuple(read.signings)


def step_of(call: IronCall) -> str:
    """The step a refusal names: the activity's name, which is its method's."""
    return call.activity.__name__


def refusal(call: IronCall, cause: BaseException | None) -> d.Observation | None:
    """A final rejection (the activity's non-retryable error) as the observation that parks the
    customer; None for anything else, which Temporal retries. An informative read's failure of
    any kind (refused, or its attempts spent) is its `unavailable` observation."""
    if call.unavailable is not None:
        return call.unavailable(str(getattr(cause, "message", None) or cause or "failed"))
    if not (isinstance(cause, ApplicationError) and cause.non_retryable):
        return None
    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    step = details.get("step") or step_of(call)  # the read refused, when one activity made several
    return d.IronRefused(step, cause.message, details.get("iron_error") or cause.type, details.get("status_code"))

"""Which activity performs each Iron action: called by method reference, so Temporal names the
activity from its definition; the step a refusal names is that same name, which operators and
events read (`needs_attention.step`)."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

import contracts.activity_models as am
from activities.iron_activities import IronActivities
import workflows.decide as d
from contracts.messages import OnboardingState
from operations.onboardings import build_onboarding_input
from workflows.iron_calls import iron_call, refusal, step_of

STEP_OF_ACTION = {
    d.FindOrCreateCustomer(attempt=0): am.FIND_OR_CREATE_CUSTOMER,
    d.ReadCustomer(cause="test"): am.GET_CUSTOMER,
    d.ReadIdentification(identification_id="i1", cause="test"): am.GET_IDENTIFICATION,
    d.ReadLatestIdentification(): am.LATEST_IDENTIFICATION,
    d.CreateIdentification(cycle=1, attempt=1, cause="test"): am.CREATE_IDENTIFICATION,
    d.ReadSignings(): am.GET_REQUIRED_SIGNINGS,
    d.Sign(content_id="doc-1", cycle=1): am.CREATE_SIGNING,
    d.ReadRequirements(cause="test"): am.GET_REQUIREMENTS,
}


def test_every_iron_action_calls_the_activity_of_its_step_and_a_refusal_names_it():
    start = build_onboarding_input("cust-42", email="a@example.com")
    state = OnboardingState.first(start).model_copy(update={"iron_customer_id": "c1"})
    rejected = ApplicationError("Iron said no", {"iron_error": "invalid", "status_code": 422}, non_retryable=True)
    for action, step in STEP_OF_ACTION.items():
        call = iron_call(action, state, start, start.workflow_id)
        assert step_of(call) == step, type(action).__name__
        assert call.activity is getattr(IronActivities, step)  # the method of the step's name
        observed = refusal(call, rejected)
        if call.unavailable is None:
            assert observed == d.IronRefused(step, "Iron said no", "invalid", 422)
        else:  # an informative read: any failure is its `unavailable` observation
            assert observed == call.unavailable("Iron said no")


def test_a_retryable_failure_is_no_refusal():
    start = build_onboarding_input("cust-42", email="a@example.com")
    call = iron_call(d.ReadCustomer(cause="test"), OnboardingState.first(start), start, start.workflow_id)
    assert refusal(call, ApplicationError("Iron is down")) is None

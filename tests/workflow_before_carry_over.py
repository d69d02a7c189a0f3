"""The first loop exactly as it ran before the current one existed: `CustomerOnboardingV1`
without its carry-over patch. The migration test runs customers on it, then hands them to
today's worker."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.messages import WORKFLOW_TYPE, OnboardingInput, OnboardingState
    from workflows.onboarding_v1 import CustomerOnboardingV1


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class OnboardingBeforeTheCarryOver(CustomerOnboardingV1):
    carry_over_to_current_engine = False

    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingState:
        return await super().run(input)

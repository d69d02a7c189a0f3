"""A deliberately incompatible edit of `CustomerOnboarding`, kept to prove the replay tests
catch one: it waits on a timer before its first Iron call, which recorded histories never did."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.messages import WORKFLOW_TYPE, OnboardingInput, OnboardingState
    from workflows.onboarding import CustomerOnboarding


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class OnboardingWithAnUnguardedChange(CustomerOnboarding):
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingState:
        await workflow.sleep(1)  # new command, not behind workflow.patched()
        return await super().run(input)

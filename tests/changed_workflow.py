"""Two edits of `CustomerOnboarding` that add the same command, kept to prove the replay tests
tell them apart: one for every run (recorded histories never gave it, so their replay fails),
and one behind the engine version, as `contracts/engine.py` asks (runs of the released engine
never take it, so their histories replay)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from contracts.engine import ENGINE_VERSION
    from contracts.messages import WORKFLOW_TYPE, OnboardingInput, OnboardingState
    from workflows.onboarding import CustomerOnboarding

# The engine version a change made after the release arrives with.
NEXT_ENGINE_VERSION = ENGINE_VERSION + 1


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class OnboardingWithAnUnguardedChange(CustomerOnboarding):
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingState:
        await workflow.sleep(1)  # a new command for every run
        return await super().run(input)


@workflow.defn(name=WORKFLOW_TYPE, failure_exception_types=[ValidationError])
class OnboardingWithAGatedChange(CustomerOnboarding):
    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingState:
        if input.engine_version >= NEXT_ENGINE_VERSION:  # `Features.of(version).<the change>`
            await workflow.sleep(1)
        return await super().run(input)

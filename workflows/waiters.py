"""The `wait_for` update: a caller waits inside the workflow until the onboarding reaches what it
asked for, so a backend or a script learns of it in one call instead of polling.

Each wait is durable (a Temporal timer for its timeout) and reads the state as the loop changes
it. A run that continues as new, or ends, lets its waiters go first (`ending`): they answer
`run_ending` and the caller asks the next run with the time that is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.messages import OnboardingState
    from contracts.start_metadata import START_DIGEST_MEMO, differing_fields
    from contracts.state_view import START_REQUEST_MEMO, OnboardingStateView, WaitForRequest, WaitForResult


class Waiters:
    def __init__(self) -> None:
        self.count = 0
        self.ending = False

    async def let_go(self, woken: Callable[[], bool]) -> bool:
        """Before continue-as-new: waiters answer (and ask the next run), every handler finishes.
        False when a wake came first: the run goes on, and so do the waits."""
        self.ending = True
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or woken())
        self.ending = not woken()
        return self.ending

    async def release(self) -> None:
        """Let every waiter answer (the run ends) and return once they have."""
        self.ending = True
        await workflow.wait_condition(lambda: self.count == 0)

    async def wait(self, request: WaitForRequest, state: Callable[[], OnboardingState]) -> WaitForResult:
        differs = None
        if request.start_digest is not None:  # a start that waits, attached to this onboarding
            differs = differing_fields(workflow.memo_value(START_DIGEST_MEMO, None, type_hint=dict), request.start_digest)
        started = bool(request.start_request) and workflow.memo_value(START_REQUEST_MEMO, None) == request.start_request
        if not differs and not self.ending and not request.reached_by(state()):
            self.count += 1
            wanted = ", ".join([p.value for p in request.phases] + (["identification url"] if request.identification_url else []))
            try:
                await workflow.wait_condition(
                    lambda: request.reached_by(state()) or self.ending,
                    timeout=timedelta(seconds=request.timeout_seconds),
                    timeout_summary=f"wait_for: {wanted}"[:200],
                )
            except asyncio.TimeoutError:
                pass
            finally:
                self.count -= 1
        s = state()
        reached = request.reached_by(s) and not differs
        return WaitForResult(
            reached=reached,
            state=OnboardingStateView.of(s),
            run_ending=self.ending and not reached,
            started=started,
            start_data_differs=differs,
        )

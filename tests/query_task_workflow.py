"""A workflow of the onboarding workflow's shape, small enough to script its history by hand:
an Iron call, then a wait with a poll timer, and an update (a signing) that makes an Iron call of
its own. Its module imports nothing but temporalio, so it runs in the workflow sandbox."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

ACTIVITY_TIMEOUT = timedelta(seconds=10)
POLL_EVERY = timedelta(minutes=5)


@workflow.defn
class SigningWorkflow:
    def __init__(self) -> None:
        self.phase = "creating"
        self.signed = False

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity("create_customer", start_to_close_timeout=ACTIVITY_TIMEOUT)
        self.phase = "awaiting_signing"
        await workflow.wait_condition(lambda: self.signed, timeout=POLL_EVERY)
        return self.phase

    @workflow.update
    async def accept_signing(self) -> str:
        await workflow.execute_activity("record_signing", start_to_close_timeout=ACTIVITY_TIMEOUT)
        self.signed = True
        return "signed"

    @workflow.query
    def state(self) -> str:
        return self.phase

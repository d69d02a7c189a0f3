"""Reading an onboarding's state off the hot path, and waiting for it to change, without polling.

- `view_from_memo`: the state view the workflow keeps in its memo (`contracts/state_view.py`),
  read through `describe`: no workflow query, no workflow task, however often it is read.
- `last_event_sequence`: where a new onboarding's event sequence goes on from, read from the
  view of the closed onboarding before it under the same workflow id.
- `wait`: the `wait_for` update, looped with the time that is left when the call's RPC deadline
  passes (the same update id, so the wait inside the workflow is the same) or the run continues
  as new; `start_and_wait` does the first round as update-with-start.

`starter.py` wraps these for backends (`get_state`, `wait_for`, `start_onboarding(wait=True)`)
and the command line; they take a workflow handle or client and raise Temporal's errors as they
come, which the starter turns into its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from contracts.messages import QUERY_STATE, QUERY_TASK_DID_WORK, UPDATE_WAIT_FOR, WORKFLOW_TYPE, OnboardingInput, OnboardingState, Phase
from contracts.state_view import (
    NO_URL_PHASES,
    START_REQUEST_MEMO,
    STATE_MEMO,
    WAIT_MAX_SECONDS,
    OnboardingStateView,
    WaitForRequest,
    WaitForResult,
)

# Each call to Temporal gives up after this long and is sent again (the same update), so a wait
# of any length outlives proxies' and load balancers' idle timeouts.
DEFAULT_RPC_TIMEOUT_SECONDS = 60.0
# Past the wait's own timeout the caller stops waiting this much later even when no worker
# answers (the workflow's timer cannot fire without one).
CLIENT_GRACE_SECONDS = 10.0
# A start that waits gives Iron this long to produce the identification url.
DEFAULT_START_WAIT_SECONDS = 60.0


class WaitTimedOut(TimeoutError):
    """The onboarding did not reach what was waited for in time; `state` is the last view."""

    def __init__(self, external_id: str, wanted: str, timeout: float, state: OnboardingStateView | None) -> None:
        phase = state.phase.value if state else "unknown"
        super().__init__(f"{external_id} did not reach {wanted} within {timeout:g} s (phase {phase})")
        self.external_id, self.wanted, self.timeout, self.state = external_id, wanted, timeout, state


class OnboardingClosed(Exception):
    """The onboarding ended (archived, terminated) without reaching what was waited for."""

    def __init__(self, external_id: str, wanted: str, state: OnboardingStateView | None) -> None:
        phase = state.phase.value if state else "unknown"
        super().__init__(f"{external_id} has ended in phase {phase} without reaching {wanted}")
        self.external_id, self.wanted, self.state = external_id, wanted, state


class NoStateView(LookupError):
    """The running onboarding keeps no state view in its memo: it was started by a client that
    bypassed this engine's start path (`contracts.start_metadata.start_options`), such as
    `temporal workflow start`, and its first run has not written one yet."""


@dataclass(frozen=True)
class WaitOutcome:
    result: WaitForResult
    run_id: str | None = None


def wanted_text(phases: Sequence[Phase], identification_url: bool) -> str:
    return " or ".join([p.value for p in phases] + (["an identification url"] if identification_url else []))


# --- reading -----------------------------------------------------------------------------------


async def view_from_memo(handle: WorkflowHandle) -> OnboardingStateView | None:
    """The view in the latest run's memo (one describe), or None when the run keeps none."""
    description = await handle.describe()
    value = await description.memo_value(STATE_MEMO, None, type_hint=dict)
    return OnboardingStateView.model_validate(value) if value else None


async def last_event_sequence(client: Client, workflow_id: str, *, rpc_timeout: timedelta | None = None) -> int:
    """The sequence of the last event the onboarding before this one under `workflow_id` made,
    from the state view its memo kept (one describe): what a new start passes as `events_after`.
    0 when there is none, it is still running (a start attaches to it) or it kept no view."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=rpc_timeout)
    except RPCError as err:
        if workflow_not_found(err):
            return 0
        raise
    if description.status == WorkflowExecutionStatus.RUNNING:
        return 0
    value = await description.memo_value(STATE_MEMO, None, type_hint=dict)
    return OnboardingStateView.model_validate(value).last_event_sequence if value else 0


def workflow_not_found(err: BaseException) -> bool:
    """NOT_FOUND about the workflow, not about the namespace (a configuration error)."""
    if not isinstance(err, RPCError) or err.status != RPCStatusCode.NOT_FOUND:
        return False
    details = getattr(err.grpc_status, "details", None) or []
    return not any("NamespaceNotFound" in getattr(d, "type_url", "") for d in details)


# A query that reached a worker by a query task which found new events is refused once, with
# "ask again", while the worker reloads the workflow (runtime.query_task_guard); the next is answered.
LIVE_STATE_ASKS = 3


async def live_state(handle: WorkflowHandle) -> OnboardingState:
    """The whole state through the `state` query: for people (the CLI's `--live`, the UI)."""
    ask = 1
    while True:
        try:
            return await handle.query(QUERY_STATE, result_type=OnboardingState)
        except WorkflowQueryFailedError as exc:
            if QUERY_TASK_DID_WORK not in str(exc) or ask >= LIVE_STATE_ASKS:
                raise
        await asyncio.sleep(0.1 * ask)
        ask += 1


# --- waiting -----------------------------------------------------------------------------------


async def wait(
    handle: WorkflowHandle,
    *,
    phases: Sequence[Phase] = (),
    identification_url: bool = False,
    timeout: float,
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT_SECONDS,
    external_id: str = "",
) -> WaitForResult:
    """Until the onboarding is in one of `phases` (or has its identification url): its result,
    `reached` False when `timeout` passed first. Raises OnboardingClosed when the workflow ended
    without reaching it; Temporal's errors otherwise (NOT_FOUND: no such onboarding)."""
    return (await _wait_rounds(handle, None, phases, identification_url, timeout, rpc_timeout, external_id)).result


async def start_and_wait(
    client: Client,
    workflow_input: OnboardingInput,
    *,
    task_queue: str,
    options: dict[str, Any],
    start_digest: dict[str, str] | None,
    timeout: float = DEFAULT_START_WAIT_SECONDS,
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT_SECONDS,
) -> WaitOutcome:
    """Start the onboarding, or attach to the running one (conflict policy USE_EXISTING), and
    wait in the same round trip until its identification url exists or it reached a phase
    where none will come (`NO_URL_PHASES`). The result says whether this call started it and
    in which start fields a running one differs. `options`: `contracts.start_metadata.start_options`."""
    start_request = str(uuid.uuid4())
    memo = {**options.get("memo", {}), START_REQUEST_MEMO: start_request}

    def operation() -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            workflow_input,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            **{**options, "memo": memo},
        )

    first = _FirstRound(client, operation, start_digest, start_request)
    handle = client.get_workflow_handle(options["id"])
    return await _wait_rounds(
        handle, first, NO_URL_PHASES, True, timeout, rpc_timeout, workflow_input.external_id
    )


@dataclass
class _FirstRound:
    """The first round of a start that waits: update-with-start, sent again on an RPC timeout
    with the same update id (a new operation object each time: one cannot be reused)."""

    client: Client
    operation: Any
    start_digest: dict[str, str] | None
    start_request: str
    run_id: str | None = None

    async def send(self, request: WaitForRequest, update_id: str, rpc_timeout: timedelta) -> WaitForResult:
        request = request.model_copy(update={"start_digest": self.start_digest, "start_request": self.start_request})
        op = self.operation()
        try:
            result = await self.client.execute_update_with_start_workflow(
                UPDATE_WAIT_FOR, request, start_workflow_operation=op, id=update_id,
                result_type=WaitForResult, rpc_timeout=rpc_timeout,
            )
        except BaseException:
            # The operation's handle holds the same error: take it, or asyncio reports it as
            # never retrieved (a traceback on the command line's stderr).
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(op.workflow_handle(), 1)
            raise
        self.run_id = (await op.workflow_handle()).result_run_id
        return result


async def _wait_rounds(
    handle: WorkflowHandle,
    first: _FirstRound | None,
    phases: Sequence[Phase],
    identification_url: bool,
    timeout: float,
    rpc_timeout: float,
    external_id: str,
) -> WaitOutcome:
    wanted = wanted_text(phases, identification_url)
    deadline = time.monotonic() + timeout
    give_up = deadline + CLIENT_GRACE_SECONDS
    started = False
    differs: list[str] | None = None
    run_id: str | None = None
    while True:
        remaining = deadline - time.monotonic()
        request = WaitForRequest(
            phases=list(phases), identification_url=identification_url,
            timeout_seconds=min(max(remaining, 0.001), WAIT_MAX_SECONDS),
        )
        update_id = str(uuid.uuid4())
        result = None
        while result is None:  # the same update until it answers
            left = give_up - time.monotonic()
            if left <= 0:
                raise WaitTimedOut(external_id, wanted, timeout, await _last_view(handle))
            call_timeout = timedelta(seconds=max(1.0, min(rpc_timeout, left)))
            try:
                if first is not None:
                    result = await first.send(request, update_id, call_timeout)
                else:
                    result = await handle.execute_update(
                        UPDATE_WAIT_FOR, request, id=update_id, result_type=WaitForResult, rpc_timeout=call_timeout
                    )
            except WorkflowUpdateRPCTimeoutOrCancelledError:
                continue
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                view = await _closed_view(handle)  # NOT_FOUND again when there is no workflow at all
                if view is not None and request.reached_by(view):
                    return WaitOutcome(WaitForResult(reached=True, state=view, started=started), run_id)
                raise OnboardingClosed(external_id, wanted, view) from None
        if first is not None:
            started, differs, run_id, first = result.started, result.start_data_differs, first.run_id, None
        result = result.model_copy(update={"started": started, "start_data_differs": differs})
        if result.reached or differs or not result.run_ending:
            return WaitOutcome(result, run_id)
        if time.monotonic() >= deadline:
            return WaitOutcome(result.model_copy(update={"run_ending": False}), run_id)
        await asyncio.sleep(0.2)  # the run continues as new: ask the next one


async def _closed_view(handle: WorkflowHandle) -> OnboardingStateView | None:
    """The last view of a workflow that is no longer running (NOT_FOUND when none exists)."""
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        raise RPCError("the onboarding is running but did not take the update", RPCStatusCode.UNAVAILABLE, b"")
    value = await description.memo_value(STATE_MEMO, None, type_hint=dict)
    return OnboardingStateView.model_validate(value) if value else None


async def _last_view(handle: WorkflowHandle) -> OnboardingStateView | None:
    try:
        return await view_from_memo(handle)
    except Exception:  # noqa: BLE001 - only for the message of a timeout
        return None

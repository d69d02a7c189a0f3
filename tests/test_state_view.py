"""The state view kept in the memo and the `wait_for` request, without a server."""

from __future__ import annotations

import pytest

from contracts.messages import AttentionView, OnboardingState, Phase, SigningView
from contracts.state_view import VIEW_MAX_BYTES, OnboardingStateView, WaitForRequest


def test_wait_requests_that_no_wait_can_use_are_refused():
    from pydantic import ValidationError


    for bad in ({"timeout_seconds": 5}, {"phases": ["Active"], "timeout_seconds": 0},
                {"phases": ["Active"], "timeout_seconds": 8 * 86400}, {"phases": ["Nope"], "timeout_seconds": 5}):
        with pytest.raises(ValidationError):
            WaitForRequest.model_validate(bad)



def test_the_view_stays_small_whatever_iron_sends():
    s = OnboardingState(
        external_id="x" * 200, phase=Phase.NEEDS_ATTENTION, identification_url="https://iron.example/" + "k" * 400,
        required_signings=[SigningView(id=f"content-{n:032d}", url="https://iron.example/" + "s" * 900,
                                       display_name="Terms " * 40) for n in range(25)],
        needs_attention=AttentionView(reason="r" * 5000, step="create_identification", since="2026-12-01T00:00:00Z"),
        outcome="o" * 2000, waiting_for="w" * 1000,
    )
    view = OnboardingStateView.of(s)
    assert len(view.to_memo_json().encode()) <= VIEW_MAX_BYTES
    assert view.truncated and view.phase == Phase.NEEDS_ATTENTION and view.needs_attention.step == "create_identification"
    assert OnboardingStateView.model_validate(view.to_memo()) == view


def test_events_pending_counts_only_what_waits_on_a_failing_backend():
    from contracts.outbox import Outbox
    from tests.test_outbox import phase_event

    queued = Outbox().append(phase_event(0)).append(phase_event(1))
    s = OnboardingState(external_id="c", phase=Phase.ACTIVE, outbox=queued)
    assert OnboardingStateView.of(s).events_pending == 0, "queued while deliveries succeed: on its way, not pending"
    assert OnboardingStateView.of(s, every_pending=True).events_pending == 2, "engine 1's count, kept for its replays"
    s.outbox = queued.failing()
    view = OnboardingStateView.of(s)
    assert view.events_pending == 2 and view.events_failing_since == queued.head.timestamp
    assert not view.same_as(OnboardingStateView.of(s.model_copy(update={"outbox": queued})))
    s.outbox = s.outbox.acknowledge(1)
    assert OnboardingStateView.of(s).events_pending == 0 and OnboardingStateView.of(s).events_failing_since is None


def test_a_note_in_the_audit_alone_writes_no_memo():
    s = OnboardingState(external_id="c", phase=Phase.ACTIVE, updated_at="2026-12-01T00:00:00Z")
    before = OnboardingStateView.of(s)
    s.updated_at = "2026-12-01T01:00:00Z"
    assert OnboardingStateView.of(s).same_as(before)
    s.customer_status = "Active"
    assert not OnboardingStateView.of(s).same_as(before)


def test_recorded_runs_with_the_state_memo_write_it_at_no_patch_cost():
    """The release's `state-memo/` histories (replayed by tests/test_replay.py with the rest):
    runs write the view without a patch marker; the run a cycle continues into starts with the
    view and writes none of its own until something changes."""
    from collections import Counter

    from temporalio.api.enums.v1 import EventType
    from temporalio.client import WorkflowHistory

    from tests.test_replay import LATEST_RELEASE

    folder = LATEST_RELEASE / "state-memo"

    def load(name: str) -> WorkflowHistory:
        return WorkflowHistory.from_json(name, (folder / name).read_text())

    def counts(name: str) -> Counter:
        return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in load(name).events)

    first, second = counts("wait_for_active.run1.json"), counts("wait_for_active.run2.json")
    assert first["MARKER_RECORDED"] == 0 and second["MARKER_RECORDED"] == 0
    assert first["WORKFLOW_PROPERTIES_MODIFIED"] >= 3  # the url, the signings, a signature
    assert second["WORKFLOW_PROPERTIES_MODIFIED"] == 0
    assert first["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"] >= 3  # waits and signings


class QueryAnswers:
    """A workflow handle's `query` answering from a script: an exception is raised, a state returned."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def query(self, name: str, result_type: type) -> object:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_live_state_asks_again_only_when_the_worker_said_ask_again():
    from temporalio.client import WorkflowQueryFailedError

    from contracts.messages import QUERY_TASK_DID_WORK
    from operations.state_access import LIVE_STATE_ASKS, live_state

    state = OnboardingState(external_id="ext-1", phase=Phase.ACTIVE)
    reloaded = QueryAnswers(WorkflowQueryFailedError(QUERY_TASK_DID_WORK), state)
    assert await live_state(reloaded) == state and reloaded.asked == 2

    broken = QueryAnswers(WorkflowQueryFailedError("state: boom"), state)
    with pytest.raises(WorkflowQueryFailedError, match="boom"):
        await live_state(broken)
    assert broken.asked == 1

    never = QueryAnswers(*[WorkflowQueryFailedError(QUERY_TASK_DID_WORK)] * LIVE_STATE_ASKS)
    with pytest.raises(WorkflowQueryFailedError, match="ask again"):
        await live_state(never)
    assert never.asked == LIVE_STATE_ASKS

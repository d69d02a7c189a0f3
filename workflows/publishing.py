"""What operators and machines see of a running onboarding: search attributes, the Temporal
UI's current-details line, the phase log line and the state view in the memo
(`contracts/state_view.py`), which backends read through describe instead of a query.

Kept beside the shell rather than in it: every upsert is a history event, so changes are noted
as they happen and sent together at the next flush (a wait, a phase change before a call that may
retry for long, or the end).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import contracts.search_attributes as sa
    import workflows.decide as d
    from contracts.messages import OnboardingState, Phase
    from contracts.state_view import STATE_MEMO, OnboardingStateView

# Runs that keep the state view in their memo (each memo write is a history event).
STATE_MEMO_PATCH = "state-memo-v1"

# A status read on the way is not worth an upsert of its own: it goes out with the next one.
_RIDES_ALONG = {sa.IRON_CUSTOMER_STATUS, sa.IRON_IDENTIFICATION_STATUS}


class Publisher:
    def __init__(self) -> None:
        self._published: dict[str, Any] = {}
        self._unpublished: dict[Any, Any] = {}
        self._memo = False
        self._view_published: OnboardingStateView | None = None
        self._view: OnboardingStateView | None = None

    def started(self, *, memo: bool = False) -> None:
        """What the run started with (given at start or carried through continue-as-new).
        `memo`: this run keeps the state view in its memo (patch `state-memo-v1`)."""
        self._published = {pair.key.name: pair.value for pair in workflow.info().typed_search_attributes}
        self._memo = memo
        if memo:
            given = workflow.memo_value(STATE_MEMO, None, type_hint=dict)
            try:
                self._view_published = OnboardingStateView.model_validate(given) if given else None
            except ValueError:  # a view this code cannot read is written anew
                self._view_published = None

    def note(self, state: OnboardingState, phase_before: Phase) -> None:
        """Note the search attributes that changed and refresh the one-line summary."""
        s = state
        if s.phase != phase_before:
            workflow.logger.info("onboarding phase %s: %s", s.phase.value, s.audit[-1].cause if s.audit else "")
            if s.phase == Phase.UNKNOWN_IRON_STATUS:
                workflow.logger.warning("waiting on an Iron status this engine does not know: %s", s.waiting_for)
        for key, value in sa.for_state(s).items():
            if value is not None and self._published.get(key.name) != value:
                self._unpublished[key] = value
            elif key in self._unpublished and self._published.get(key.name) == value:
                del self._unpublished[key]
        workflow.set_current_details(d.current_details(s))
        if self._memo:
            self._view = OnboardingStateView.of(s)

    def urgent(self) -> bool:
        """A change other than a status read is waiting to go out."""
        return bool(set(self._unpublished) - _RIDES_ALONG)

    def flush(self) -> None:
        """Send what changed: the search attributes and the state view, in this workflow task."""
        if self._unpublished:
            workflow.upsert_search_attributes([key.value_set(value) for key, value in self._unpublished.items()])
            self._published.update({key.name: value for key, value in self._unpublished.items()})
            self._unpublished = {}
        view = self._view
        if view is not None and not view.same_as(self._view_published):
            workflow.upsert_memo({STATE_MEMO: view.to_memo()})
            self._view_published = view

    def memo_at_continue_as_new(self, state: OnboardingState) -> dict[str, Any] | None:
        """The memo the next run starts with: what this run has, the view brought up to date."""
        if not self._memo:
            return None
        view = OnboardingStateView.of(state.model_copy(update={"runs": state.runs + 1}))
        return {**workflow.memo(), STATE_MEMO: view.to_memo()}

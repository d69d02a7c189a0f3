"""What operators and machines see of a running onboarding: search attributes, the Temporal
UI's current details (on a run continued as new, with the start's summary and details too),
the phase log line, the domain metrics and the state view in the
memo (`contracts/state_view.py`), which backends read through describe instead of a query.

Kept beside the shell rather than in it: every upsert is a history event, so changes are noted
as they happen and sent together at the next flush (a wait, a phase change before a call that may
retry for long, or the end).

Metrics go through `workflow.metric_meter()`, which records nothing while the workflow replays:
a transition is counted once, when it first happens, however often its history is replayed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import contracts.metrics as metric_names
    import contracts.search_attributes as sa
    import workflows.decide as d
    from contracts.engine import Features
    from contracts.messages import OnboardingInput, OnboardingState, Phase, SlaBreachView
    from contracts.start_metadata import START_DIGEST_MEMO, STARTED_BY_MEMO, first_run_story
    from contracts.state_view import STATE_MEMO, OnboardingStateView

# A status read on the way is not worth an upsert of its own: it goes out with the next one.
# So is the SLA flag, which changes only at a wait or a phase change, and both flush; and the
# phase's start, which changes with the phase itself, so it always goes out in the phase's upsert.
_RIDES_ALONG = frozenset({
    sa.IRON_CUSTOMER_STATUS, sa.IRON_IDENTIFICATION_STATUS, sa.ONBOARDING_SLA_BREACHED, sa.ONBOARDING_PHASE_SINCE,
})
# The attributes a run removes when their value goes (every other one only ever changes).
_REMOVABLE = frozenset({sa.ONBOARDING_EVENTS_FAILING_SINCE})


class Publisher:
    def __init__(self, features: Features) -> None:
        self._features = features
        self._published: dict[str, Any] = {}
        self._unpublished: dict[Any, Any] = {}
        self._phase: Phase | None = None
        self._phase_since: datetime | None = None
        self._metrics: dict[str, Any] = {}
        self._breach: SlaBreachView | None = None
        self._idle: SlaBreachView | None = None
        self._events_failing: str | None = None
        self._view_published: OnboardingStateView | None = None
        self._view: OnboardingStateView | None = None
        self._first_run_story: str | None = None

    def started(self, state: OnboardingState, input: OnboardingInput) -> None:
        """What the run started with (given at start or carried through continue-as-new). A new
        onboarding's first phase counts as a transition from `Started`: the funnel's top."""
        carried = input.carried
        self._published = {pair.key.name: pair.value for pair in workflow.info().typed_search_attributes}
        self._phase = None if carried is None else state.phase
        self._phase_since = state.phase_since
        self._breach = state.sla_breached  # noticed by the run before
        self._idle = state.idle
        self._events_failing = state.outbox.failing_since
        if carried is not None:
            # The UI's Summary and Details show only what a run was started with, and
            # continue-as-new carries neither: the current details tell them again. No command.
            self._first_run_story = first_run_story(
                input,
                started_by=workflow.memo_value(STARTED_BY_MEMO, None),
                digest=workflow.memo_value(START_DIGEST_MEMO, None),
            )
        given = workflow.memo_value(STATE_MEMO, None, type_hint=dict)
        try:
            self._view_published = OnboardingStateView.model_validate(given) if given else None
        except ValueError:  # a view this code cannot read is written anew
            self._view_published = None

    def note(self, state: OnboardingState, phase_before: Phase) -> None:
        """Note the search attributes that changed and refresh the one-line summary."""
        s = state
        if s.phase != self._phase:
            self._count_transition(s)
        self._phase, self._phase_since = s.phase, s.phase_since
        if s.phase != phase_before:
            workflow.logger.info("onboarding phase %s: %s", s.phase.value, s.audit[-1].cause if s.audit else "")
            if s.phase == Phase.UNKNOWN_IRON_STATUS:
                workflow.logger.warning("waiting on an Iron status this engine does not know: %s", s.waiting_for)
        for key, value in sa.for_state(s).items():
            published = self._published.get(key.name)
            if value != published and (value is not None or key in _REMOVABLE):
                self._unpublished[key] = value
            elif key in self._unpublished and published == value:
                del self._unpublished[key]
        if s.sla_breached is not None and s.sla_breached != self._breach:
            self.sla_breached(s, s.sla_breached)
        self._breach = s.sla_breached
        if s.idle is not None and s.idle != self._idle:  # counted with the SLAs, deadline `idle`
            self.sla_breached(s, s.idle)
        self._idle = s.idle
        failing = s.outbox.failing_since
        if failing is not None and failing != self._events_failing:
            self._events_backend_failing(s, failing)
        self._events_failing = failing
        details = d.current_details(s)
        workflow.set_current_details(f"{details}\n\n{self._first_run_story}" if self._first_run_story else details)
        self._view = self._view_of(s)

    def _view_of(self, s: OnboardingState) -> OnboardingStateView:
        return OnboardingStateView.of(s, every_pending=not self._features.flags_failing_backend)

    def _events_backend_failing(self, s: OnboardingState, since: str) -> None:
        """Once per outage, when the workflow learns its head could not be delivered in time."""
        workflow.logger.warning(
            "the partner's backend has refused this customer's events since %s (%d waiting)", since, len(s.outbox.pending)
        )
        self._counter(metric_names.EVENTS_BACKEND_FAILING, "Customers whose events the partner's backend refused past the window").add(
            1, _scope(s)
        )

    def _count_transition(self, s: OnboardingState) -> None:
        """One transition out of the phase last seen, and the time spent in it. Two phase changes
        within one step of `decide` (none today) would count as one, from the first to the last."""
        left = self._phase
        self._counter(metric_names.PHASE_TRANSITIONS, "Customers moving from one onboarding phase to another").add(
            1, {"from_phase": left.value if left else metric_names.STARTED, "to_phase": s.phase.value, **_scope(s)}
        )
        if left is not None and self._phase_since is not None and s.phase_since is not None:
            seconds = max((s.phase_since - self._phase_since).total_seconds(), 0.0)
            self._histogram(metric_names.TIME_IN_PHASE, "Time customers spent in a phase, recorded as they leave it").record(
                seconds, {"phase": left.value, **_scope(s)}
            )

    def sla_breached(self, state: OnboardingState, breach: SlaBreachView) -> None:
        """The one place a breach is noticed, once per breach, from workflow code: a replay logs
        and records nothing (the logger and the metric meter are replay-aware). Labels are the
        SLA's name, the phase and the sub-partner, bounded sets, never a customer's id."""
        workflow.logger.warning(
            "SLA %s breached: %s since %s (limit %g s)", breach.sla, breach.phase.value, breach.since, breach.limit_seconds
        )
        self._counter(metric_names.SLA_BREACHES, "Customers found past a per-phase deadline").add(
            1, {"phase": breach.phase.value, "deadline": breach.sla, **_scope(state)}
        )

    def _counter(self, name: str, description: str):
        if name not in self._metrics:
            self._metrics[name] = workflow.metric_meter().create_counter(name, description)
        return self._metrics[name]

    def _histogram(self, name: str, description: str):
        if name not in self._metrics:
            self._metrics[name] = workflow.metric_meter().create_histogram_float(name, description)
        return self._metrics[name]

    def urgent(self) -> bool:
        """A change other than a status read is waiting to go out."""
        return bool(set(self._unpublished) - _RIDES_ALONG)

    def flush(self) -> None:
        """Send what changed: the search attributes and the state view, in this workflow task."""
        self._flush_search_attributes()
        view = self._view
        if view is not None and not view.same_as(self._view_published):
            workflow.upsert_memo({STATE_MEMO: view.to_memo()})
            self._view_published = view

    def _flush_search_attributes(self) -> None:
        if not self._unpublished:
            return
        if set(self._unpublished) == {sa.ONBOARDING_PHASE_SINCE}:
            return  # it changes with the phase, so it always goes out in the phase's upsert
        workflow.upsert_search_attributes([
            key.value_unset() if value is None else key.value_set(value) for key, value in self._unpublished.items()
        ])
        for key, value in self._unpublished.items():
            if value is None:
                self._published.pop(key.name, None)
            else:
                self._published[key.name] = value
        self._unpublished = {}

    def memo_at_continue_as_new(self, state: OnboardingState) -> dict[str, Any]:
        """The memo the next run starts with: what this run has, the view brought up to date."""
        view = self._view_of(state.model_copy(update={"runs": state.runs + 1}))
        return {**workflow.memo(), STATE_MEMO: view.to_memo()}


def _scope(s: OnboardingState) -> dict[str, str]:
    """The `sub_partner` label: a partner's few sub-partners (their ids, a bounded set, never a
    customer's), `default` for customers onboarded without one."""
    return {metric_names.SUB_PARTNER_LABEL: s.sub_partner_id or metric_names.DEFAULT_SCOPE}

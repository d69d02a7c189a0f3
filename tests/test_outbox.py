"""The outbox: numbering, in-order delivery, acknowledgement and the backlog bound."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples
from pydantic import ValidationError

from contracts.events import Awaiting, EventType, OnboardingEvent, ReminderDue, phase_changed, reminder_due
from contracts.messages import OnboardingInput, OnboardingState, Phase
from contracts.outbox import Outbox

T0 = datetime(2026, 11, 30, tzinfo=timezone.utc)
STATE = OnboardingState(external_id="cust-7", phase=Phase.AWAITING_IDENTIFICATION, identification_url="https://kyc/1")


def phase_event(n: int = 0) -> OnboardingEvent:
    return phase_changed(STATE, previous_phase=Phase.CREATING_IDENTIFICATION, at=T0 + timedelta(minutes=n))


def reminder_event(n: int = 0) -> OnboardingEvent:
    reminder = ReminderDue(awaiting=Awaiting.IDENTIFICATION, number=1, of=3, waiting_since="2026-11-29T00:00:00Z",
                           after_seconds=86400)
    return reminder_due(STATE, reminder=reminder, at=T0 + timedelta(minutes=n))


def test_append_numbers_events_and_delivery_goes_head_first():
    outbox = Outbox()
    assert outbox.head is None and outbox.last_sequence == 0
    for n in range(3):
        outbox = outbox.append(phase_event(n))
    assert [e.sequence for e in outbox.pending] == [1, 2, 3]
    assert outbox.head.sequence == 1
    outbox = outbox.acknowledge(1)
    assert outbox.head.sequence == 2 and outbox.delivered_through == 1
    view = outbox.view()
    assert view.pending == 2 and view.last_sequence == 3 and view.head_webhook_id == outbox.head.webhook_id
    assert view.head_type == "onboarding.phase_changed" and view.dropped == 0


def test_a_failing_backend_is_flagged_from_its_head_until_the_next_delivery():
    outbox = Outbox().append(phase_event(0)).append(reminder_event(5))
    assert outbox.failing_since is None and outbox.waiting_on_failing_backend == 0, "queued is not failing"
    failing = outbox.failing()
    assert failing.failing_since == outbox.head.timestamp and failing.waiting_on_failing_backend == 2
    assert failing.append(phase_event(9)).failing().failing_since == outbox.head.timestamp, "kept, not moved"
    assert failing.view().failing_since == failing.failing_since
    delivered = failing.acknowledge(1)
    assert delivered.failing_since is None and delivered.waiting_on_failing_backend == 0
    assert failing.acknowledge(2) == failing, "a stray acknowledgement clears nothing"
    assert Outbox().failing() == Outbox(), "no head, nothing failing"


def test_appending_does_not_change_the_original():
    empty = Outbox()
    one = empty.append(phase_event())
    assert empty.pending == () and empty.next_sequence == 1
    assert one.pending[-1].sequence == 1


def test_only_the_head_can_be_acknowledged_and_repeats_change_nothing():
    outbox = Outbox().append(phase_event(0)).append(phase_event(1))
    assert outbox.acknowledge(2) == outbox  # not the head: nothing is lost undelivered
    assert outbox.acknowledge(99) == outbox
    once = outbox.acknowledge(1)
    assert once.acknowledge(1) == once  # an acknowledgement repeated
    assert once.acknowledge(2).pending == () and once.acknowledge(2).delivered_through == 2
    assert Outbox().acknowledge(1) == Outbox()


def test_sequences_keep_growing_after_everything_was_delivered_and_across_continue_as_new():
    outbox = Outbox().append(phase_event()).acknowledge(1)
    carried = Outbox.model_validate_json(outbox.model_dump_json())  # as the next run receives it
    assert carried == outbox
    assert carried.append(phase_event()).head.sequence == 2


def test_an_onboarding_started_after_a_closed_one_numbers_its_events_after_it():
    earlier = OnboardingInput(external_id="cust-7", email="c7@example.com", events_after=12)
    state = OnboardingState.first(earlier)
    assert state.outbox.last_sequence == 12 and state.outbox.pending == ()
    assert state.outbox.append(phase_event()).head.sequence == 13
    # Sent only when there is something before: a first onboarding's input is unchanged, and
    # workers that do not know the field keep reading it.
    first = OnboardingInput(external_id="cust-7", email="c7@example.com")
    assert "events_after" not in first.model_dump_json()
    assert OnboardingInput.model_validate_json(earlier.model_dump_json()).events_after == 12
    assert OnboardingState.first(first).outbox == Outbox()
    with pytest.raises(ValidationError):
        OnboardingInput(external_id="cust-7", email="c7@example.com", events_after=-1)


def test_bound_drops_the_oldest_but_keeps_head_newest_phase_change_and_newest():
    outbox = Outbox(max_pending=5)
    outbox = outbox.append(phase_event(0))  # 1: head
    outbox = outbox.append(phase_event(1))  # 2
    outbox = outbox.append(phase_event(2))  # 3: the newest phase change
    for n in range(3, 10):  # 4..10: reminders
        outbox = outbox.append(reminder_event(n))
    sequences = [e.sequence for e in outbox.pending]
    assert len(sequences) == 5
    assert sequences == [1, 3, 8, 9, 10]
    assert outbox.dropped == 5
    # The backend sees the gap and still gets the newest state.
    outbox = outbox.acknowledge(1)
    assert outbox.head.sequence == 3


def test_a_carried_outbox_that_is_out_of_order_is_refused():
    outbox = Outbox().append(phase_event(0)).append(phase_event(1))
    raw = outbox.model_dump(mode="json")
    raw["pending"] = list(reversed(raw["pending"]))
    with pytest.raises(ValidationError, match="strictly increasing"):
        Outbox.model_validate(raw)
    raw = outbox.model_dump(mode="json")
    raw["next_sequence"] = 2
    with pytest.raises(ValidationError, match="before next_sequence"):
        Outbox.model_validate(raw)
    with pytest.raises(ValidationError):
        Outbox(max_pending=2)


# --- properties --------------------------------------------------------------------------------

operation = st.one_of(
    st.tuples(st.just("phase"), st.none()),
    st.tuples(st.just("reminder"), st.none()),
    st.tuples(st.just("deliver"), st.none()),
    st.tuples(st.just("stray_ack"), st.integers(min_value=-2, max_value=400)),
    st.tuples(st.just("carry"), st.none()),
)


@settings(max_examples=examples(300), deadline=None)
@given(max_pending=st.integers(min_value=3, max_value=12), operations=st.lists(operation, max_size=200))
def test_outbox_properties(max_pending: int, operations: list[tuple[str, int | None]]):
    outbox = Outbox(max_pending=max_pending)
    appended: list[int] = []
    delivered: list[int] = []
    newest_phase_change: int | None = None
    for kind, argument in operations:
        if kind in ("phase", "reminder"):
            head_before = outbox.head
            outbox = outbox.append(phase_event() if kind == "phase" else reminder_event())
            newest = outbox.pending[-1]
            if appended:
                assert newest.sequence > appended[-1]  # sequences strictly increase
            appended.append(newest.sequence)
            if head_before is not None:  # the head may be on the wire: it stays the head
                assert outbox.head.sequence == head_before.sequence
            if kind == "phase":
                newest_phase_change = newest.sequence
            # The newest event is never dropped, nor the newest phase change while undelivered.
            assert outbox.pending[-1].sequence == appended[-1]
            if newest_phase_change is not None and newest_phase_change > outbox.delivered_through:
                assert newest_phase_change in [e.sequence for e in outbox.pending]
        elif kind == "deliver" and outbox.head is not None:
            head = outbox.head
            outbox = outbox.acknowledge(head.sequence)
            delivered.append(head.sequence)
        elif kind == "stray_ack":
            head = outbox.head
            if head is None or head.sequence != argument:
                assert outbox.acknowledge(argument) == outbox
        elif kind == "carry":
            outbox = Outbox.model_validate_json(outbox.model_dump_json())
        # The bound holds.
        assert len(outbox.pending) <= max_pending
        # Nothing is lost without being counted.
        assert len(appended) == len(delivered) + len(outbox.pending) + outbox.dropped
    # Delivery order is append order (a subsequence of it: dropped events leave gaps).
    remaining = [e.sequence for e in outbox.pending]
    assert delivered == sorted(delivered) and len(set(delivered)) == len(delivered)
    assert set(delivered) <= set(appended) and set(remaining) <= set(appended)
    assert all(d < r for d in delivered for r in remaining)
    # Draining delivers every remaining event, still in order.
    while outbox.head is not None:
        delivered.append(outbox.head.sequence)
        outbox = outbox.acknowledge(outbox.head.sequence)
    assert delivered == sorted(delivered)
    if appended:
        assert delivered[-1] == appended[-1]  # the newest event always arrives


@given(st.lists(st.sampled_from(["phase", "reminder"]), min_size=1, max_size=300))
def test_a_backend_down_for_ever_still_holds_the_latest_state(kinds: list[str]):
    """Nothing delivered at all: the state stays bounded and ends with the newest event."""
    outbox = Outbox(max_pending=10)
    for kind in kinds:
        outbox = outbox.append(phase_event() if kind == "phase" else reminder_event())
    assert len(outbox.pending) == min(len(kinds), 10)
    assert outbox.pending[0].sequence == 1  # the head, possibly on the wire, keeps its retries
    assert outbox.pending[-1].sequence == len(kinds)
    if "phase" in kinds:
        last_phase = len(kinds) - kinds[::-1].index("phase")
        assert last_phase in [e.sequence for e in outbox.pending]
    assert outbox.dropped == len(kinds) - len(outbox.pending)
    assert all(e.type in (EventType.PHASE_CHANGED, EventType.REMINDER_DUE) for e in outbox.pending)

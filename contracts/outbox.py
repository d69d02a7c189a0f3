"""The events a customer's workflow still has to deliver to the partner's backend.

`Outbox` is plain data in the workflow's state, so undelivered events survive worker crashes
and continue-as-new, and the `state` query shows them. Its operations are pure (no I/O, no
clock, no randomness) and return a new outbox, so workflow code and its tests call them alike:

    outbox = outbox.append(phase_changed(state, previous_phase=..., at=workflow.now()))
    head = outbox.head                      # the one event to deliver next, or None
    ... deliver_event(DeliverEventInput.of(head)), retried until it succeeds ...
    outbox = outbox.acknowledge(head.sequence)

Delivery is one event at a time, head first, so a backend receives each customer's events in
append order; an event is removed only once acknowledged, so it is delivered at least once,
under the same webhook-id every time.

The backlog bound. A backend that stays down for weeks must neither grow the workflow's state
without end (it is carried through every continue-as-new) nor lose the customer's latest
state. At most `max_pending` events wait. When an append goes past that, the oldest waiting
events are dropped, except three that are always kept:

- the head, which may already be on the wire (its retries keep their id);
- the newest `onboarding.phase_changed`, so the last phase change itself arrives;
- the newest event, which carries the customer's full current state.

`dropped` counts what was dropped. Every event's `data` carries the full state, so a backend
that comes back sees a gap in `sequence` (the dropped ones) and then the newest state: it
misses intermediate history, never the present. Sequences of dropped events are never reused.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events import EventType, OnboardingEvent

DEFAULT_MAX_PENDING = 50  # a few cycles of phase changes and reminders; about 1-2 KB each
MIN_MAX_PENDING = 3  # the head, the newest phase change and the newest event


class OutboxView(BaseModel):
    """What the state shows of the outbox: counts and ids, no event bodies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pending: int
    last_sequence: int
    delivered_through: int
    dropped: int
    head_sequence: int | None = None
    head_webhook_id: str | None = None
    head_type: str | None = None
    head_since: str | None = None
    failing_since: str | None = None


class Outbox(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The sequence the next appended event gets; only grows.
    next_sequence: int = Field(default=1, ge=1)
    # Undelivered events in append order (strictly increasing sequences).
    pending: tuple[OnboardingEvent, ...] = ()
    # Sequence of the last event the backend acknowledged (0: none yet).
    delivered_through: int = Field(default=0, ge=0)
    # Events dropped by the backlog bound, ever.
    dropped: int = Field(default=0, ge=0)
    max_pending: int = Field(default=DEFAULT_MAX_PENDING, ge=MIN_MAX_PENDING)
    # Since when the backend has been failing: the time of the head that could not be delivered
    # within the workflow's window (`OnboardingTimings.events_failing_after_seconds`); cleared by
    # the next delivery. None while deliveries succeed.
    failing_since: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Outbox":
        sequences = [event.sequence for event in self.pending]
        if any(b <= a for a, b in zip(sequences, sequences[1:])):
            raise ValueError("pending events must have strictly increasing sequences")
        if sequences and (sequences[0] <= self.delivered_through or sequences[-1] >= self.next_sequence):
            raise ValueError("pending sequences must lie after delivered_through and before next_sequence")
        return self

    # --- reading -------------------------------------------------------------------------------

    @property
    def head(self) -> OnboardingEvent | None:
        """The event to deliver next, or None when the backend has everything."""
        return self.pending[0] if self.pending else None

    @property
    def last_sequence(self) -> int:
        """The sequence of the newest event ever appended (0: none)."""
        return self.next_sequence - 1

    def view(self) -> OutboxView:
        head = self.head
        return OutboxView(
            pending=len(self.pending),
            last_sequence=self.last_sequence,
            delivered_through=self.delivered_through,
            dropped=self.dropped,
            head_sequence=head.sequence if head else None,
            head_webhook_id=head.webhook_id if head else None,
            head_type=head.type.value if head else None,
            head_since=head.timestamp if head else None,
            failing_since=self.failing_since,
        )

    # --- changing ------------------------------------------------------------------------------

    def append(self, draft: OnboardingEvent) -> "Outbox":
        """Number `draft` with the next sequence and queue it; the result's `pending[-1]` is
        the numbered event. Applies the backlog bound (see the module's docstring)."""
        event = draft.with_sequence(self.next_sequence)
        pending = list(self.pending) + [event]
        dropped = self.dropped
        if len(pending) > self.max_pending:
            keep = {pending[0].sequence, pending[-1].sequence}
            newest_phase_change = next(
                (e.sequence for e in reversed(pending) if e.type is EventType.PHASE_CHANGED), None
            )
            if newest_phase_change is not None:
                keep.add(newest_phase_change)
            excess = len(pending) - self.max_pending
            droppable = [e.sequence for e in pending if e.sequence not in keep][:excess]
            gone = set(droppable)
            pending = [e for e in pending if e.sequence not in gone]
            dropped += len(gone)
        return self.model_copy(
            update={"next_sequence": self.next_sequence + 1, "pending": tuple(pending), "dropped": dropped}
        )

    def acknowledge(self, sequence: int) -> "Outbox":
        """The backend has the head, numbered `sequence`: remove it. Anything else (an old
        acknowledgement repeated, a sequence that is not the head) changes nothing, so no
        event is ever removed undelivered by a stray acknowledgement."""
        head = self.head
        if head is None or head.sequence != sequence:
            return self
        return self.model_copy(update={"pending": self.pending[1:], "delivered_through": sequence, "failing_since": None})

    def failing(self) -> "Outbox":
        """The head could not be delivered within the window: the backend has been failing since
        the head was queued. Kept (not moved) while later heads fail too; no head, no change."""
        head = self.head
        if head is None or self.failing_since is not None:
            return self
        return self.model_copy(update={"failing_since": head.timestamp})

    @property
    def waiting_on_failing_backend(self) -> int:
        """Events waiting while the backend fails (0 while deliveries succeed)."""
        return len(self.pending) if self.failing_since is not None else 0

"""The workflow's inbox: what signal and update handlers recorded for the loop (webhook hints,
operator requests, signings), numbered as they come. Plain code, no Temporal.

A webhook is only a hint to read: one that arrived while its resource was being read again is
answered by that read and costs no second one (`decide.answered`). Operator requests always
reach the loop.
"""

from __future__ import annotations

from contracts.messages import OnboardingState
import workflows.decide as d


class Inbox:
    def __init__(self) -> None:
        self._wakes: list[tuple[int, d.Wake]] = []
        self.posted = 0  # wakes ever posted; a handler waits until `taken` reaches its number
        self.taken = 0
        self._customer_read_from = self._identification_read_from = 0

    def __bool__(self) -> bool:
        return bool(self._wakes)

    def post(self, wake: d.Wake) -> int:
        self.posted += 1
        self._wakes.append((self.posted, wake))
        return self.posted

    def has(self, kind: type) -> bool:
        return any(isinstance(wake, kind) for _, wake in self._wakes)

    def signings(self) -> list[str]:
        return [wake.content_id for _, wake in self._wakes if isinstance(wake, d.SigningRequested)]

    def reading(self, action: d.Action) -> None:
        """The loop starts `action`: a read of the customer or the identification answers every
        hint about it posted so far."""
        if isinstance(action, (d.ReadCustomer, d.FindOrCreateCustomer)):
            self._customer_read_from = self.posted
        elif isinstance(action, (d.ReadIdentification, d.ReadLatestIdentification)):
            self._identification_read_from = self.posted

    def customer_read(self, posted_before: int) -> None:
        """A read that began once `posted_before` wakes were posted went on to the customer."""
        self._customer_read_from = max(self._customer_read_from, posted_before)

    def drop_answered(self, state: OnboardingState | None = None) -> bool:
        """Drop the wakes a read answered already (`decide.answered`), judged against `state`
        (what the reads showed) for runs that check hints against reads; True if any was."""
        before = len(self._wakes)
        self._wakes = [
            (n, wake)
            for n, wake in self._wakes
            if not d.answered(
                wake, n, customer_read_from=self._customer_read_from, identification_read_from=self._identification_read_from,
                state=state,
            )
        ]
        return len(self._wakes) < before

    def take(self) -> tuple[d.Wake, ...]:
        wakes, self._wakes = tuple(wake for _, wake in self._wakes), []
        self.taken = self.posted
        return wakes

"""Which code runs a customer: the engine version, and what each version does.

Every run's input carries the engine version that started it (`OnboardingInput.engine_version`,
current by default), and every continue-as-new writes `ENGINE_VERSION`: a running customer takes
up a new behaviour at its next run, while the run already in progress keeps replaying the
commands its version gave. A behaviour that would change a running customer's commands is a
field of `Features`, on from the version that brought it; the workflow asks
`Features.of(input.engine_version)` and nothing else. A version gate costs no history event,
where a `workflow.patched` marker costs one in every run, and it reads as one line per change.

Release 1.0.0 is engine 1, with no gate: no deployment ran the code before it. Engine 2 brings
quiet waits (`quiet_waits`), the failing-backend flag (`flags_failing_backend`), reads in a
row as one activity (`reads_onward`), the first identification created with the customer
(`identifies_on_create`), a cycle's end without continue-as-new for a run that holds no
personal data (`keeps_run_at_cycle_end`) and no timer kept to fire far too early
(`replaces_early_timers`). The rule for adding and retiring a gate is in
docs/changing-the-workflow.md.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINE_VERSION = 2


@dataclass(frozen=True)
class Features:
    """What a run of engine `version` does differently from the release's baseline.

    A gated change adds a field here, `some_change: bool`, set in `of` as
    `version >= <the version that brought it>`, and raises `ENGINE_VERSION` to that version."""

    version: int
    # Engine 2: a wait reads Iron on its own only during a first window, then once per backstop;
    # reminders and SLAs wake it without a read; a customer in one wait too long is flagged idle.
    quiet_waits: bool = False
    # Engine 2: a head the backend refuses past `events_failing_after_seconds` flags the outbox
    # (the state view, the details line, `OnboardingEventsFailingSince`, a metric) until the next
    # delivery; the view's `events_pending` counts only events waiting on such a backend.
    flags_failing_backend: bool = False
    # Engine 2: reads one pass makes in a row (identification, then customer, then signings) go
    # out as one activity (`read_onward`), each read still made only when the one before asks.
    reads_onward: bool = False
    # Engine 2: a new onboarding finds or creates its customer and creates the identification in
    # one activity (`find_or_create_and_identify`), going from `FindingCustomer` straight to
    # `AwaitingIdentification`: an activity, a phase event and an upsert fewer.
    identifies_on_create: bool = False
    # Engine 2: a cycle's end continues as new only when the run's history holds the start's
    # email or name (given inline, or by an amend); a customer whose contact came by reference
    # (`OnboardingInput.contact_ref`) stays in its run: a start and its first task fewer.
    keeps_run_at_cycle_end: bool = False
    # Engine 2: a running timer due before the wait's earliest deadline stays only while firing
    # then is a little early (the deadline at most twice as far off as the timer); otherwise it
    # is replaced, so a minute-old poll timer does not make a year's reconcile read at once.
    replaces_early_timers: bool = False

    @classmethod
    def of(cls, version: int) -> "Features":
        # A run of a newer engine than this worker knows (a rollback in the middle of a deploy)
        # must not run on this code: the workflow task fails and retries until a worker that
        # knows it picks it up, and the customer's history stays as it was.
        if not 1 <= version <= ENGINE_VERSION:
            raise RuntimeError(f"engine version {version} is unknown to this worker (it knows 1 to {ENGINE_VERSION})")
        return cls(version=version, quiet_waits=version >= 2, flags_failing_backend=version >= 2,
                   reads_onward=version >= 2, identifies_on_create=version >= 2,
                   keeps_run_at_cycle_end=version >= 2, replaces_early_timers=version >= 2)

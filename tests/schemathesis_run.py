"""One schemathesis run over every phase with the project's checks, and the assertion that it was
clean: shared by the run of Iron's spec against the sandbox and of the HTTP API's own contract."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, StopReason, events, from_schema

PHASES = ("examples", "coverage", "fuzzing", "stateful")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "negative_data_rejection",
)


@dataclass
class Outcome:
    cases: Counter = field(default_factory=Counter)  # operation label -> cases run
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    phase_status: dict[str, Status] = field(default_factory=dict)
    finished: Any = None
    seconds: float = 0.0


def _failures(recorder) -> list[str]:
    out = []
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            interaction = recorder.interactions.get(case_id)
            request = ""
            if interaction is not None:
                response = interaction.response.status_code if interaction.response else None
                request = f"{interaction.request.method} {interaction.request.uri} -> {response}"
            first_line = str(check.failure_info.failure).strip().splitlines()
            out.append(f"[{recorder.label}] {check.name}: {' / '.join(first_line[:4])}\n    {request}")
    return out


def config(base_url: str, headers: dict[str, str], *, seed: int, max_examples: int) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "base-url": base_url,
        "headers": headers,
        "seed": seed,
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {name: {"enabled": True} for name in PHASES},
        "generation": {"max-examples": max_examples, "database": "none"},
    })


def run(schema: Any) -> Outcome:
    """Every phase of `schema` (a loaded schemathesis schema), recorded as it goes."""
    outcome = Outcome()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            outcome.cases[event.recorder.label] += len(event.recorder.cases)
            outcome.failures += _failures(event.recorder)
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"{event.label}: {event.value!r}"[:500])
        elif isinstance(event, events.FatalError):
            outcome.errors.append(f"fatal: {event.exception!r}"[:500])
        elif isinstance(event, events.PhaseFinished):
            name = event.phase.name.value if hasattr(event.phase.name, "value") else str(event.phase.name)
            outcome.phase_status[name] = event.status
        elif isinstance(event, events.EngineFinished):
            outcome.finished = event
    outcome.seconds = time.monotonic() - started
    return outcome


def assert_clean(outcome: Outcome, document: dict[str, Any]) -> None:
    """The run completed, every phase succeeded, no check failed and every operation of
    `document` was exercised."""
    finished = outcome.finished
    assert finished is not None and finished.stop_reason == StopReason.COMPLETED, finished
    assert not outcome.errors, "\n".join(outcome.errors)
    total = sum(outcome.cases.values())
    assert not outcome.failures, f"{len(outcome.failures)} failures in {total} cases:\n" + "\n".join(outcome.failures[:40])
    for phase in PHASES:
        assert outcome.phase_status.get(phase) == Status.SUCCESS, (phase, outcome.phase_status, dict(outcome.cases))
    operations = {f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item}
    assert operations <= set(outcome.cases), f"operations never exercised: {sorted(operations - set(outcome.cases))}"
    print(f"schemathesis: {total} cases, 0 failures, {outcome.seconds:.1f} s")



"""The HTTP API's served contract (`/openapi.json`) against the live API with schemathesis:
examples, coverage, fuzzing and the stateful phase (links inferred from the `Location` of each
start), over real HTTP, the API in its own process on a dev server with the Iron sandbox and a
worker. Checks: not_a_server_error, status_code_conformance, response_schema_conformance,
content_type_conformance and negative_data_rejection: no 5xx, no status the contract does not
list, no answer outside its schema, no input the schema forbids accepted. Zero failures.

Derandomized and bounded: a fixed seed (`SCHEMATHESIS_SEED`), `SCHEMATHESIS_MAX_EXAMPLES` (20) per
operation, and waits capped at 2 s (`ONBOARDING_API_WAIT_MAX_SECONDS`); about a minute here.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, StopReason, events, from_schema

from demo.stack import Stack, StackConfig
from tests.test_sandbox_schemathesis import _failures

PHASES = ("examples", "coverage", "fuzzing", "stateful")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "negative_data_rejection",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("schemathesis"), autopilot_seconds=1.0, persistent=False, events=False)
    with Stack(config) as running:
        running.start_temporal()
        running.start_sandbox("--log-level", "warning")
        running.start_worker()
        running.start_api(env={"ONBOARDING_API_WAIT_MAX_SECONDS": "2"})
        yield running


@pytest.mark.timeout(300)
def test_the_served_contract_holds_against_the_live_api(stack):
    max_examples = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"))
    seed = int(os.environ.get("SCHEMATHESIS_SEED", "20261205"))
    config = SchemathesisConfig.from_dict({
        "base-url": stack.api_url,
        "headers": {"Authorization": f"Bearer {stack.secrets['api_key']}"},
        "seed": seed,
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {name: {"enabled": True} for name in PHASES},
        "generation": {"max-examples": max_examples, "database": "none"},
    })
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json", config=config)
    started = time.monotonic()
    failures: list[str] = []
    errors: list[str] = []
    phase_status: dict[str, Status] = {}
    cases: Counter[str] = Counter()
    finished = None
    for event in from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            cases[event.recorder.label] += len(event.recorder.cases)
            failures += _failures(event.recorder)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.value!r}"[:500])
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}"[:500])
        elif isinstance(event, events.PhaseFinished):
            phase_status[event.phase.name.value if hasattr(event.phase.name, "value") else str(event.phase.name)] = event.status
        elif isinstance(event, events.EngineFinished):
            finished = event
    elapsed = time.monotonic() - started

    assert finished is not None and finished.stop_reason == StopReason.COMPLETED, finished
    assert not errors, "\n".join(errors)
    assert not failures, f"{len(failures)} failures in {sum(cases.values())} cases:\n" + "\n".join(failures[:40])
    for phase in PHASES:
        assert phase_status.get(phase) == Status.SUCCESS, (phase, phase_status, dict(cases))
    document = schema.raw_schema
    operations = {f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item}
    assert operations <= set(cases), f"operations never exercised: {sorted(operations - set(cases))}"
    print(f"schemathesis: {sum(cases.values())} cases, 0 failures, {elapsed:.1f} s")

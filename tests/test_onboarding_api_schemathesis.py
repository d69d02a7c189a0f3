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

import pytest
import schemathesis

from demo.stack import Stack, StackConfig
from tests import schemathesis_run

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
    headers = {"Authorization": f"Bearer {stack.secrets['api_key']}"}
    settings = schemathesis_run.config(stack.api_url, headers, seed=seed, max_examples=max_examples)
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json", config=settings)
    schemathesis_run.assert_clean(schemathesis_run.run(schema), schema.raw_schema)

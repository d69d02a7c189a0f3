"""Every curl line of docs/http-api.md ("Trying it with curl"), run exactly as written after the
documented setup (`source .demo/env.sh` from the repository root) against a live stack: the dev
server, the Iron sandbox (autopilot), the webhook receiver, the HTTP API and a worker, each its
own process. A line documenting `# exit 22` must answer a problem document; every other line
must succeed with JSON."""

from __future__ import annotations

import json
import shutil

import pytest

from demo.stack import Stack, StackConfig
from tests.readme import commands, documented_shell, placeholders, section, sh_blocks


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("http-api-docs"), autopilot_seconds=1.0, persistent=False, events=False)
    with Stack(config) as running:
        running.start_temporal()
        running.start_sandbox("--log-level", "warning")
        running.start_receiver()
        running.start_api()
        running.start_worker()
        running.write_env_file()
        yield running


def test_every_curl_line_runs_as_written(stack):
    assert shutil.which("curl"), "curl runs the documented lines"
    documented = [c for block in sh_blocks(section("Trying it with curl")) for c in commands(block)]
    assert len(documented) >= 10
    env_file = stack.config.state_dir / "env.sh"
    signed: list[str] = []
    for command in documented:
        line = command.line
        assert placeholders(line) <= {"CONTENT_ID"}, line
        if "CONTENT_ID" in line:  # the next document still unsigned, as the wait before listed them
            read = documented_shell(env_file, 'curl -sS -H "Authorization: Bearer $ONBOARDING_API_KEY" "$ONBOARDING_API_URL/v1/onboardings/cust-50"')
            unsigned = [s["id"] for s in json.loads(read.stdout)["required_signings"] if not s["signed"] and s["id"] not in signed]
            assert unsigned, read.stdout
            signed.append(unsigned[0])
            line = line.replace("CONTENT_ID", unsigned[0])
        run = documented_shell(env_file, line, timeout=120)
        assert run.returncode == command.expected_exit, f"{command.line!r} exited {run.returncode}:\n{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
        answer = json.loads(run.stdout)
        if command.expected_exit:
            assert answer["type"].startswith("urn:iron-onboarding:problem:") and answer["status"] >= 400, answer
        else:
            assert "type" not in answer or not str(answer["type"]).startswith("urn:"), answer
    final = documented_shell(env_file, 'curl -sS -H "Authorization: Bearer $ONBOARDING_API_KEY" "$ONBOARDING_API_URL/v1/onboardings/cust-50"')
    assert json.loads(final.stdout)["phase"] == "Active"

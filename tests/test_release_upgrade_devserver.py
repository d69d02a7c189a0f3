"""Customers parked by the last release's code are carried to `Active` by today's worker.

The release's code is its wheel, committed in `tests/releases/` when the release was cut (a clone
may come without tags, and a wheel is what a deployment of that release installed), and its own
`worker.py`, backend API and `starter.py` run as processes, as that deployment would: its API starts a
customer per kind of wait (with short polls, as the sandbox here sends no webhooks), the sandbox takes each to its wait, and `starter.py engines` counts
them on the release's engine. That worker stops, the dev server restarts on the same database
file, and today's worker (`worker.build_worker`) takes over on the same task queue: every
customer reaches `Active` through webhooks, signings and operator restarts, no workflow task
fails, every run replays on today's code, each customer that continued as new since runs today's
engine (the suspended one, back to `Active` within its cycle, goes on on the release's), and
Iron's side shows one customer per onboarding and no write twice under one idempotency key.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.worker import Replayer

from contracts.engine import ENGINE_VERSION
from contracts.messages import OnboardingInput, Phase, workflow_id_for
from operations.engines import count_by_engine
from runtime.temporal import data_converter
from runtime.workflow_sandbox import sandboxed_runner
from starter import get_live_state, restart_identification, sign_all
from tests.test_replay import RELEASES
from tests.workflow_harness import DEV_SERVER_TIMINGS, dev_server_env, running_worker, wait_for_state
from worker import WORKFLOWS

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = max(RELEASES, key=lambda r: tuple(int(n) for n in r.split(".")))
RELEASES_DIR = REPO_ROOT / "tests" / "releases"
# Polls stand in for most webhooks here; Active customers read Iron every few seconds.
TIMINGS = DEV_SERVER_TIMINGS.model_copy(update={"poll_max_seconds": 1, "parked_reconcile_seconds": 1, "max_expired_renewals": 0})
# The server refuses a task that would close the run (continue-as-new) while a signal arrived
# during it; the worker runs the task again with the signal. A race of timing, not of the code.
BENIGN_TASK_FAILURES = {WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND}
# A customer moves to today's engine at its next run (a continue-as-new): one the release took to
# Active and that comes back to Active within the same cycle has none.
STILL_ON_THE_RELEASES_RUN = {"suspended"}
KINDS = ("identification", "review", "signings", "active", "suspended", "declined", "attention")


def release_wheel(release: str) -> Path:
    return RELEASES_DIR / f"iron_onboarding-{release}-py3-none-any.whl"


def release_source(dest: Path) -> Path:
    """The release's files as its wheel holds them, unpacked (a pure-Python wheel runs from
    the unpacked folder on PYTHONPATH)."""
    with zipfile.ZipFile(release_wheel(RELEASE)) as wheel:
        wheel.extractall(dest)
    return dest


def test_every_release_has_its_wheel_of_that_version_on_that_engine():
    for release, engine in RELEASES.items():
        with zipfile.ZipFile(release_wheel(release)) as wheel:
            names = set(wheel.namelist())
            metadata = wheel.read(f"iron_onboarding-{release}.dist-info/METADATA").decode()
            engine_source = wheel.read("contracts/engine.py").decode()
        assert f"\nVersion: {release}\n" in metadata, metadata[:300]
        assert f"\nENGINE_VERSION = {engine}\n" in engine_source
        assert {"worker.py", "starter.py", "workflows/onboarding.py", "onboarding_api/app.py"} <= names


def release_env(source: Path, temporal_address: str, sandbox, documents: Path, task_queue: str) -> dict[str, str]:
    """What a deployment of the release would set: its code first on the path, payloads in
    clear so this test reads them, no fleet schedule."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_"))}
    env.update({
        "PYTHONPATH": str(source),
        "PYTHONUNBUFFERED": "1",
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "IRON_BASE_URL": sandbox.base_url,
        "IRON_API_KEY": sandbox.api_key,
        "ONBOARDING_TASK_QUEUE": task_queue,
        "ONBOARDING_DOCUMENT_DIR": str(documents),
        "ONBOARDING_ENCRYPTION_KEY_FILE": "",
        "ONBOARDING_FLEET_SCHEDULE": "off",
    })
    return env


# The release's backend API, as a backend of that release calls it.
START_WITH_THE_RELEASE = """
import asyncio, sys
from contracts.messages import OnboardingTimings
from runtime.process import exit_now
from runtime.temporal import connect
from starter import start_onboarding

async def main():
    client = await connect()
    timings = OnboardingTimings.model_validate_json(open(sys.argv[1]).read())
    for external_id in sys.argv[2:]:
        await start_onboarding(client, external_id, email=external_id + "@example.com", timings=timings)

asyncio.run(main())
exit_now(0)  # no interpreter finalization under the Temporal client's threads
"""


def release_python(source: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=source, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the release's {args[:2]}: exit {done.returncode}\n{done.stderr}"
    return done.stdout


async def phase(client, external_id: str, want: Phase, what: str, **fields) -> object:
    handle = client.get_workflow_handle(workflow_id_for(external_id))
    return await wait_for_state(handle, lambda s: s.phase == want and all(getattr(s, k) == v for k, v in fields.items()),
                                timeout=90, what=f"{external_id}: {what}")


async def run_inputs(client, workflow_id: str) -> list[OnboardingInput]:
    """The input of every run of a workflow, first to last."""
    converter = data_converter()
    inputs: list[OnboardingInput] = []
    run_id = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        [value] = await converter.decode(started.input.payloads, [OnboardingInput])
        inputs.insert(0, value)
        run_id = started.continued_execution_run_id
        if not run_id:
            return inputs


async def eventually(read, predicate, what: str, timeout: float = 30.0):
    """Visibility trails the workflows by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value}")
        await asyncio.sleep(0.5)


async def test_customers_parked_by_the_release_reach_active_on_todays_worker_with_nothing_twice(
    temporal_cli_path, sandbox, tmp_path
):
    source = release_source(tmp_path / "release")
    documents, database = tmp_path / "documents", str(tmp_path / "temporal.db")
    queue = f"upgrade-{uuid.uuid4().hex[:6]}"
    ids = {kind: f"upgrade-{kind}-{uuid.uuid4().hex[:6]}" for kind in KINDS}
    control = sandbox.control
    timings_file = tmp_path / "timings.json"
    timings_file.write_text(TIMINGS.model_dump_json(exclude_unset=True))  # what the release knows: its own fields

    # --- the release's worker and starter park a customer in each kind of wait ---------------
    async with dev_server_env(temporal_cli_path, dev_server_database_filename=database) as env:
        client = env.client
        process_env = release_env(source, env.client.service_client.config.target_host, sandbox, documents, queue)
        probe = subprocess.run([sys.executable, "-c", "import workflows.onboarding as w; print(w.__file__)"],
                               cwd=source, env=process_env, capture_output=True, text=True, check=True)
        assert probe.stdout.strip().startswith(str(source)), f"the release's code is not the one imported: {probe.stdout}"
        log = open(tmp_path / "release-worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "worker.py"], cwd=source, env=process_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            await asyncio.sleep(1)
            assert worker.poll() is None, "the release's worker exited at start:\n" + (tmp_path / "release-worker.log").read_text()[-3000:]
            release_python(source, process_env, "-c", START_WITH_THE_RELEASE, str(timings_file), *ids.values())
            waiting = {kind: await phase(client, ext, Phase.AWAITING_IDENTIFICATION, "identification") for kind, ext in ids.items()}
            await control.set_identification_status(waiting["review"].identification_id, "PendingReview")
            for kind in ("signings", "active", "suspended"):
                await control.set_identification_status(waiting[kind].identification_id, "Approved")
            await control.set_identification_status(waiting["declined"].identification_id, "Declined")
            await control.set_identification_status(waiting["attention"].identification_id, "Expired")
            for kind in ("active", "suspended"):
                await phase(client, ids[kind], Phase.AWAITING_SIGNINGS, "signings")
                await sign_all(client, ids[kind])
                await phase(client, ids[kind], Phase.ACTIVE, "Active")
            suspended = await get_live_state(client, ids["suspended"])
            await control.set_customer_status(suspended.iron_customer_id, "Suspended")
            await phase(client, ids["suspended"], Phase.SUSPENDED, "Suspended")
            await phase(client, ids["review"], Phase.AWAITING_IDENTIFICATION, "under review", identification_status="PendingReview")
            await phase(client, ids["signings"], Phase.AWAITING_SIGNINGS, "signings")
            await phase(client, ids["declined"], Phase.DECLINED, "Declined")
            await phase(client, ids["attention"], Phase.NEEDS_ATTENTION, "renewals exhausted")
            counted = json.loads(release_python(source, process_env, "starter.py", "engines", "--json"))
            assert counted["by_version"][str(RELEASES[RELEASE])] == len(KINDS), counted
        finally:
            worker.terminate()
            code = worker.wait(timeout=60)
            log.close()
        assert code == 0, (tmp_path / "release-worker.log").read_text()[-3000:]

    # --- the server restarts on its database; today's worker takes over ---------------------
    async with dev_server_env(temporal_cli_path, dev_server_database_filename=database) as env:
        client = env.client
        async with running_worker(client, sandbox, documents, task_queue=queue):
            review = await get_live_state(client, ids["review"])
            await control.set_identification_status(review.identification_id, "Approved")
            state = await get_live_state(client, ids["identification"])
            await control.set_identification_status(state.identification_id, "Approved")
            for kind in ("identification", "review", "signings"):
                await phase(client, ids[kind], Phase.AWAITING_SIGNINGS, "signings")
                await sign_all(client, ids[kind])
            active = await get_live_state(client, ids["active"])
            await control.set_customer_status(active.iron_customer_id, "SigningsRequired")
            await phase(client, ids["active"], Phase.AWAITING_SIGNINGS, "signings of cycle 2", cycle=2)
            await sign_all(client, ids["active"])
            await control.set_customer_status(suspended.iron_customer_id, "Active")
            for kind in ("declined", "attention"):
                await restart_identification(client, ids[kind], reason="upgrade test")
                state = await wait_for_state(
                    client.get_workflow_handle(workflow_id_for(ids[kind])),
                    lambda s, old=waiting[kind].identification_id: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id != old,
                    timeout=90, what=f"{kind}: a new identification",
                )
                await control.set_identification_status(state.identification_id, "Approved")
                await phase(client, ids[kind], Phase.AWAITING_SIGNINGS, "signings")
                await sign_all(client, ids[kind])
            replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(), workflow_runner=sandboxed_runner())
            for kind, ext in ids.items():
                await phase(client, ext, Phase.ACTIVE, "Active", cycle=2 if kind == "active" else 1)
                inputs = await run_inputs(client, workflow_id_for(ext))
                assert inputs[0].engine_version == RELEASES[RELEASE], f"{kind}: started by the release"
                if kind in STILL_ON_THE_RELEASES_RUN:
                    # Back to Active within its cycle: no new run yet, so the release's engine goes on.
                    assert [i.engine_version for i in inputs] == [RELEASES[RELEASE]] * len(inputs), f"{kind}: its run goes on"
                else:
                    assert inputs[-1].engine_version == ENGINE_VERSION, f"{kind}: carried to today's engine at its next run"
                async for run in client.list_workflows(f'WorkflowId = "{workflow_id_for(ext)}"'):
                    history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
                    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                              and e.workflow_task_failed_event_attributes.cause not in BENIGN_TASK_FAILURES]
                    assert not failed, f"{kind}: a workflow task failed in run {run.run_id}: {failed}"
                    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                    assert replayed.replay_failure is None, f"{kind}: run {run.run_id} does not replay on today's code"
            moved = len(KINDS) - len(STILL_ON_THE_RELEASES_RUN)
            counts = await eventually(
                lambda: count_by_engine(client),
                lambda c: c.by_version.get(ENGINE_VERSION, 0) == moved and c.by_version.get(RELEASES[RELEASE], 0) == len(STILL_ON_THE_RELEASES_RUN),
                "the open onboardings counted by engine",
            )
            assert counts.unknown == 0 and counts.newer == 0, counts

    # --- Iron's side: nothing twice ------------------------------------------------------------
    customers = await control.customers()
    for kind, ext in ids.items():
        mine = [c for c in customers if c.get("external_id") == ext]
        assert len(mine) == 1, f"{kind}: {len(mine)} Iron customers"
        content = [s["content_id"] for s in mine[0]["signings"]]
        assert len(content) == len(set(content)), f"{kind}: a document signed twice"
        expected = 2 if kind in ("declined", "attention") else 1
        assert len(mine[0]["identifications"]) == expected, f"{kind}: {len(mine[0]['identifications'])} identifications"
    writes = [r for r in await control.requests() if r["method"] == "POST" and 200 <= int(r["status_code"] or 0) < 300
              and r["idempotency_key"] and not r.get("replayed")]
    keys = [r["idempotency_key"] for r in writes]
    assert len(keys) == len(set(keys)), "a write reached Iron twice under one key"

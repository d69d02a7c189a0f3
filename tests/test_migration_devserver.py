"""Customers started by the first loop are carried over to today's loop with nothing done twice.

Customers run on the first loop's code (`tests/workflow_before_carry_over.py`, inputs without an
engine version, as that code started them) against a dev server with a database file, and are
parked in each phase. That worker stops, the server restarts on the same database, and today's
worker (`worker.build_worker`) takes over: each customer continues to its expected end, its run
chain shows the carry-over, and Iron's side shows no duplicate customer, identification or
signing.
"""

from __future__ import annotations

import contextlib
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer, Worker

from contracts import search_attributes as sa
from contracts.messages import (
    ENGINE_VERSION,
    WORKFLOW_TYPE,
    OnboardingInput,
    OnboardingState,
    Phase,
    workflow_id_for,
)
from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from activities.iron_activities import IronActivities
from data_protection.documents import FilesystemDocumentStore
from starter import get_state, restart_identification, sign_all
from runtime.temporal import data_converter
from tests.workflow_before_carry_over import OnboardingBeforeTheCarryOver
from workflows.onboarding import CustomerOnboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, dev_server_env, iron_settings_for, running_worker, wait_for_state

TIMINGS = DEV_SERVER_TIMINGS.model_copy(update={"poll_max_seconds": 1, "parked_reconcile_seconds": 1, "max_expired_renewals": 0})
TASK_QUEUE = "migration"


@contextlib.asynccontextmanager
async def old_worker(client, sandbox, documents):
    async with IronClient(iron_settings_for(sandbox)) as iron:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[OnboardingBeforeTheCarryOver],
            activities=IronActivities(iron, FilesystemDocumentStore(documents)).all(),
        )
        async with worker:
            yield worker


async def start_as_before(client, external_id: str) -> None:
    """As the starter of the first loop did: no engine version in the input."""
    workflow_input = OnboardingInput(external_id=external_id, email=f"{external_id}@example.com", timings=TIMINGS)
    assert "engine_version" not in workflow_input.model_dump(exclude_defaults=True)
    await client.start_workflow(
        WORKFLOW_TYPE,
        workflow_input,
        id=workflow_id_for(external_id),
        task_queue=TASK_QUEUE,
        search_attributes=sa.at_start(OnboardingState.first(workflow_input)),
    )


async def phase(client, external_id: str, want: Phase, what: str, **kwargs) -> OnboardingState:
    handle = client.get_workflow_handle(workflow_id_for(external_id))
    return await wait_for_state(handle, lambda s: s.phase == want and all(getattr(s, k) == v for k, v in kwargs.items()), timeout=60, what=f"{external_id}: {what}")


async def run_inputs(client, workflow_id: str) -> list[OnboardingInput]:
    """The input of every run of a workflow, first to last."""
    converter = data_converter()
    inputs: list[OnboardingInput] = []
    run_id = None
    handle = client.get_workflow_handle(workflow_id)
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history() if run_id else await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        [value] = await converter.decode(started.input.payloads, [OnboardingInput])
        inputs.insert(0, value)
        run_id = started.continued_execution_run_id
        if not run_id:
            return inputs


async def test_customers_parked_by_the_first_loop_finish_on_todays_loop_with_nothing_twice(temporal_cli_path, tmp_path):
    documents = tmp_path / "documents"
    database = str(tmp_path / "temporal.db")
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"mig-{name}-{tag}" for name in ("identification", "signings", "active", "declined", "attention")}
    with SandboxServer() as sandbox:
        control = sandbox.control
        # --- today's code before the change: park a customer in each phase -------------------
        async with dev_server_env(temporal_cli_path, dev_server_database_filename=database) as env:
            client = env.client
            async with old_worker(client, sandbox, documents):
                for external_id in ids.values():
                    await start_as_before(client, external_id)
                waiting = {name: await phase(client, ext, Phase.AWAITING_IDENTIFICATION, "identification") for name, ext in ids.items()}
                for name in ("signings", "active"):
                    await control.set_identification_status(waiting[name].identification_id, "Approved")
                await control.set_identification_status(waiting["declined"].identification_id, "Declined")
                await control.set_identification_status(waiting["attention"].identification_id, "Expired")
                await phase(client, ids["signings"], Phase.AWAITING_SIGNINGS, "signings")
                await phase(client, ids["active"], Phase.AWAITING_SIGNINGS, "signings")
                await sign_all(client, ids["active"])
                await phase(client, ids["active"], Phase.ACTIVE, "Active")
                await phase(client, ids["declined"], Phase.DECLINED, "Declined")
                await phase(client, ids["attention"], Phase.NEEDS_ATTENTION, "renewals exhausted")
        # --- the server restarts on its database; today's worker takes over -----------------
        async with dev_server_env(temporal_cli_path, dev_server_database_filename=database) as env:
            client = env.client
            async with running_worker(client, sandbox, documents, task_queue=TASK_QUEUE):
                state = await phase(client, ids["identification"], Phase.AWAITING_IDENTIFICATION, "identification")
                await control.set_identification_status(state.identification_id, "Approved")
                for name in ("identification", "signings"):
                    await phase(client, ids[name], Phase.AWAITING_SIGNINGS, "signings")
                    await sign_all(client, ids[name])
                active = await get_state(client, ids["active"])
                await control.set_customer_status(active.iron_customer_id, "SigningsRequired")
                await phase(client, ids["active"], Phase.AWAITING_SIGNINGS, "signings of cycle 2", cycle=2)
                await sign_all(client, ids["active"])
                for name in ("declined", "attention"):
                    await restart_identification(client, ids[name], reason="migration test")
                    state = await wait_for_state(
                        client.get_workflow_handle(workflow_id_for(ids[name])),
                        lambda s, old=waiting[name].identification_id: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id != old,
                        timeout=60,
                        what=f"{name}: a new identification",
                    )
                    await control.set_identification_status(state.identification_id, "Approved")
                    await phase(client, ids[name], Phase.AWAITING_SIGNINGS, "signings")
                    await sign_all(client, ids[name])
                finals = {}
                for name, ext in ids.items():
                    finals[name] = await phase(client, ext, Phase.ACTIVE, "Active", cycle=2 if name == "active" else 1)
                    inputs = await run_inputs(client, workflow_id_for(ext))
                    assert inputs[0].engine_version == 1, "started by the first loop"
                    assert inputs[-1].engine_version == ENGINE_VERSION, f"{name}: carried over to today's loop"
                    history = await client.get_workflow_handle(workflow_id_for(ext)).fetch_history()
                    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
                    assert not failed, f"{name}: a workflow task failed (nondeterminism?)"
                    # Every run, the one that carried over included, replays on today's code.
                    async for run in client.list_workflows(f'WorkflowId = "{workflow_id_for(ext)}"'):
                        run_history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
                        replayed = await Replayer(workflows=[CustomerOnboarding], data_converter=data_converter()).replay_workflow(
                            run_history, raise_on_replay_failure=False
                        )
                        assert replayed.replay_failure is None, f"{name}: run {run.run_id} does not replay"

        # --- Iron's side: nothing twice ------------------------------------------------------
        customers = {c.get("external_id"): c for c in await control.customers()}
        for name, ext in ids.items():
            customer = customers[ext]
            assert sum(1 for c in await control.customers() if c.get("external_id") == ext) == 1
            content = [s["content_id"] for s in customer["signings"]]
            assert len(content) == len(set(content)), f"{name}: a document signed twice"
            expected = {"identification": 1, "signings": 1, "active": 1, "declined": 2, "attention": 2}[name]
            assert len(customer["identifications"]) == expected, f"{name}: {len(customer['identifications'])} identifications"
        log = await control.requests()
        posts = [r for r in log if r["method"] == "POST" and 200 <= int(r["status_code"] or 0) < 300 and r["idempotency_key"]]
        fresh = [r for r in posts if not r.get("replayed")]
        keys = [r["idempotency_key"] for r in fresh]
        assert len(keys) == len(set(keys)), "a write reached Iron twice under one key"

"""`starter.py adopt --all` over the real Iron sandbox and a real dev server: a thousand
customers adopted once each across a SIGKILL and a rerun, a 429 burst honoured, archived
customers left alone; and, in process, a cancelled backfill finished by a second one, a shared
external id reported, a status filter, and a worker taking every adopted customer on from its
real state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime

import pytest

from contracts import search_attributes as sa
from temporalio.common import WorkflowIDConflictPolicy

from contracts.messages import WORKFLOW_TYPE, OnboardingInput, Phase, external_id_for_customer, workflow_id_for
from contracts.start_metadata import start_options
from contracts.state_view import STATE_MEMO
from iron_client.errors import IronServerError
from iron_sandbox import schemas
from iron_sandbox.testing import SandboxServer
from operations.backfill import Backfill, BackfillSummary, backfill
from operations.onboardings import build_onboarding_input
from starter import adopt_customer
from tests.conftest import REPO_ROOT
from tests.sandbox_helpers import fast_config
from tests.workflow_harness import DEV_SERVER_TIMINGS, current_state, running_worker, wait_for_state

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]

WORKFLOWS = 'WorkflowType = "CustomerOnboarding"'


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(fast_config()) as server:
        yield server


def seed(sandbox: SandboxServer, prefix: str, statuses: list[str], *, external_ids: list[str | None] | None = None) -> list[dict]:
    """Customers made straight in the sandbox's state (no HTTP: a thousand take a moment),
    then moved to `statuses` the way Iron's compliance would."""
    state = sandbox.sandbox.state
    made = []
    for i, status in enumerate(statuses):
        external_id = external_ids[i] if external_ids is not None else f"{prefix}-{i}"
        customer = state.create_customer(
            schemas.CreateCustomerParams(
                customer_type="Business" if i % 4 == 0 else "Person", email=f"{prefix}-{i}@example.com",
                external_id=external_id,
            ),
            None,
        )
        if status != "IdentificationRequired":
            customer = state.sim_set_customer_status(customer["id"], status, base_url=sandbox.root_url)["customer"]
        made.append(customer)
    return made


def workflow_id_of(customer: dict) -> str:
    return workflow_id_for(external_id_for_customer(customer["id"], customer.get("external_id")))


async def executions(client, query: str = WORKFLOWS, *, settle_at: int | None = None) -> list:
    """Every execution the query finds; with `settle_at`, once visibility (which lags the
    starts by a moment) shows that many, or what it shows after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        found = [e async for e in client.list_workflows(query)]
        if settle_at is None or len(found) >= settle_at or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


def starter_env(env, sandbox: SandboxServer, task_queue: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("ONBOARDING_", "TEMPORAL_", "IRON_"))}
    values.update(
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host, TEMPORAL_NAMESPACE=env.client.namespace,
        IRON_BASE_URL=sandbox.base_url, IRON_API_KEY=sandbox.api_key, ONBOARDING_TASK_QUEUE=task_queue,
    )
    return values


def adopt_all(environ: dict[str, str], *flags: str) -> list[str]:
    return [sys.executable, "starter.py", "adopt", "--all", "--json", *flags]


async def test_a_thousand_customers_are_adopted_once_across_a_kill_and_a_rerun(env, sandbox):
    await sandbox.control.reset()
    statuses = ["Archived" if i % 20 == 0 else ("Active" if i % 3 == 0 else "IdentificationRequired") for i in range(1000)]
    # Every tenth customer has no external id at Iron: its onboarding is named after its Iron id.
    external_ids = [None if i % 10 == 1 else f"bulk-{uuid.uuid4().hex[:8]}-{i}" for i in range(1000)]
    customers = seed(sandbox, "bulk", statuses, external_ids=external_ids)
    live = [c for c in customers if c["status"] != "Archived"]
    archived = [c for c in customers if c["status"] == "Archived"]
    assert len(live) == 950 and len(archived) == 50
    task_queue = f"backfill-{uuid.uuid4().hex[:8]}"
    environ = starter_env(env, sandbox, task_queue)

    # One of them was adopted by hand before: the backfill must attach, not start a second one.
    async with sandbox.client() as iron:
        by_hand = await adopt_customer(env.client, iron, live[500]["id"], task_queue=task_queue)
    assert by_hand.started

    first = subprocess.Popen(
        adopt_all(environ, "--rate", "60"), cwd=REPO_ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 90
        while (await env.client.count_workflows(WORKFLOWS)).count < 250:
            assert first.poll() is None, f"the first run ended before the kill: {first.communicate()}"
            assert time.monotonic() < deadline, "the first run adopted too slowly"
            await asyncio.sleep(0.1)
        first.send_signal(signal.SIGKILL)
    finally:
        first_out, _ = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL and first_out == b""  # killed mid-run, no summary
    started_before_rerun = len({e.id for e in await executions(env.client)})
    assert 250 <= started_before_rerun < 951

    # Iron rate-limits the rerun's first listing three times, asking for a second each time.
    await sandbox.control.clear_requests()
    await sandbox.control.set_faults(
        fail_next=3, error_statuses=[429], retry_after_seconds=1, paths=["/api/customers"], methods=["GET"]
    )
    second = await asyncio.to_thread(
        subprocess.run, adopt_all(environ, "--rate", "200", "--concurrency", "16"), cwd=REPO_ROOT, env=environ,
        capture_output=True, text=True, timeout=150,
    )
    await sandbox.control.clear_faults()
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["complete"] and summary["failed"] == [] and summary["pages"] == 10
    assert summary["archived_skipped"] == 50
    assert summary["adopted"] + summary["already_running"] == 950
    assert summary["already_running"] >= 250 and summary["adopted"] > 0
    assert summary["iron_waits"] == 3 and summary["iron_waited_seconds"] >= 3

    listing = [r for r in await sandbox.control.requests() if r["method"] == "GET" and r["path"] == "/api/customers"]
    assert [r["status_code"] for r in listing[:4]] == [429, 429, 429, 200]
    times = [datetime.fromisoformat(r["at"].replace("Z", "+00:00")) for r in listing[:4]]
    assert all((later - earlier).total_seconds() >= 0.95 for earlier, later in zip(times, times[1:]))
    assert len(listing) == 13  # ten pages of 100, three of them asked again

    # Temporal's side: one workflow per live customer, ever, named after it and owned by it.
    runs = await executions(env.client, settle_at=950)
    await asyncio.sleep(1)  # one more look: nothing beyond 950 arrives late either
    runs = await executions(env.client)
    assert len(runs) == 950, Counter(e.id for e in runs).most_common(3)
    by_id = {e.id: e for e in runs}
    assert set(by_id) == {workflow_id_of(c) for c in live}
    assert all(by_id[workflow_id_of(c)].typed_search_attributes.get(sa.IRON_CUSTOMER_ID) == c["id"] for c in live)
    assert not {workflow_id_of(c) for c in archived} & set(by_id)
    assert by_id[by_hand.workflow_id].run_id == by_hand.run_id  # attached to, not replaced

    # Running it once more changes nothing and starts nothing.
    third = await asyncio.to_thread(
        subprocess.run, adopt_all(environ), cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=120
    )
    assert third.returncode == 0, third.stderr
    again = json.loads(third.stdout)
    assert (again["adopted"], again["already_running"], again["archived_skipped"]) == (0, 950, 50)
    await asyncio.sleep(1)
    assert len(await executions(env.client)) == 950
    # Without a terminal, progress is a line per page on stderr.
    assert third.stderr.count("page ") == 10


async def test_a_cancelled_backfill_is_finished_by_the_next_and_a_worker_takes_them_on(env, sandbox, tmp_path):
    await sandbox.control.reset()
    prefix = f"mix-{uuid.uuid4().hex[:6]}"
    statuses = ["IdentificationRequired"] * 10 + ["SigningsRequired"] * 5 + ["Active"] * 5 + ["Archived"] * 3
    customers = seed(sandbox, prefix, statuses)
    # Two customers share an external id at Iron: the second cannot have the name too.
    shared = seed(sandbox, prefix, ["IdentificationRequired"] * 2, external_ids=[f"{prefix}-shared"] * 2)
    task_queue = f"backfill-{uuid.uuid4().hex[:8]}"
    query = f'{WORKFLOWS} AND TaskQueue = "{task_queue}"'

    async with sandbox.client() as iron:
        partial = BackfillSummary()
        run = asyncio.create_task(
            backfill(env.client, iron, rate=4, summary=partial, task_queue=task_queue, timings=DEV_SERVER_TIMINGS)
        )
        while partial.adopted < 5:
            assert not run.done(), run
            await asyncio.sleep(0.05)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert not partial.complete and partial.adopted < 22

        summary = await backfill(env.client, iron, rate=100, task_queue=task_queue, timings=DEV_SERVER_TIMINGS)
        assert summary.complete and summary.archived_skipped == 3
        assert summary.adopted + summary.already_running == 21  # 20 + the first of the shared pair
        assert summary.already_running >= partial.adopted
        (conflict,) = summary.failed
        assert conflict.iron_customer_id == shared[1]["id"]
        assert f"belongs to Iron customer {shared[0]['id']}" in conflict.reason

        only_active = await backfill(env.client, iron, statuses=["Active"], task_queue=task_queue)
        assert (only_active.listed, only_active.already_running, only_active.adopted) == (5, 5, 0)

        # A sub-partner's backfill lists that sub-partner's customers only (none here).
        sub_partner = str(uuid.uuid4())
        await sandbox.control.clear_requests()
        scoped = await backfill(env.client, iron, sub_partner_id=sub_partner, task_queue=task_queue)
        assert scoped.complete and scoped.listed == 0
        assert [r["sub_partner_id"] for r in await sandbox.control.requests()] == [sub_partner]

    runs = await executions(env.client, query, settle_at=21)
    assert len(runs) == 21 and len({e.id for e in runs}) == 21

    # A worker takes each adopted customer on from where Iron has it.
    expected = {"IdentificationRequired": Phase.AWAITING_IDENTIFICATION, "SigningsRequired": Phase.AWAITING_SIGNINGS,
                "Active": Phase.ACTIVE}
    async with running_worker(env.client, sandbox, tmp_path, task_queue=task_queue):
        for customer in [c for c in customers if c["status"] != "Archived"] + shared[:1]:
            handle = env.client.get_workflow_handle(workflow_id_of(customer))
            state = await wait_for_state(
                handle, lambda s, want=expected[customer["status"]]: s.phase == want, timeout=60,
                what=f"{customer['status']} customer in {expected[customer['status']].value}",
            )
            assert state.iron_customer_id == customer["id"]
        shared_state = await current_state(env.client.get_workflow_handle(workflow_id_of(shared[0])))
        assert shared_state.iron_customer_id == shared[0]["id"]
    # Nothing was created twice at Iron: one identification for each customer that needed one.
    dump = {c["id"]: c for c in await sandbox.control.customers()}
    for customer in customers + shared[:1]:
        wanted = 1 if customer["status"] == "IdentificationRequired" else 0
        assert len(dump[customer["id"]]["identification_ids"]) == wanted, customer["status"]
    assert dump[shared[1]["id"]]["identification_ids"] == []


async def test_iron_failing_past_the_retries_stops_the_run_and_says_what_was_done(env, sandbox):
    await sandbox.control.reset()
    seed(sandbox, f"down-{uuid.uuid4().hex[:6]}", ["Active"] * 3)
    await sandbox.control.set_faults(fail_next=5, error_statuses=[503], paths=["/api/customers"], methods=["GET"])
    async with sandbox.client() as iron:
        summary = BackfillSummary()
        with pytest.raises(IronServerError) as raised:
            await backfill(env.client, iron, summary=summary, max_attempts=2, task_queue="nobody")
    await sandbox.control.clear_faults()
    assert raised.value.status_code == 503 and raised.value.retryable  # the starter: exit 5, "check IRON_BASE_URL"
    assert not summary.complete and summary.listed == 0 and summary.iron_waits == 1


async def test_a_closed_onboarding_is_adopted_again_its_events_numbered_after_it(env, sandbox):
    """Only an id with a closed onboarding is looked at before its start: the new run goes on
    from the old one's last event sequence; the rest start from the listing alone."""
    await sandbox.control.reset()
    customers = seed(sandbox, f"closed-{uuid.uuid4().hex[:6]}", ["IdentificationRequired"] * 3)
    task_queue = f"backfill-{uuid.uuid4().hex[:8]}"
    earlier = customers[0]
    old_input = build_onboarding_input(
        external_id_for_customer(earlier["id"], earlier["external_id"]), iron_customer_id=earlier["id"]
    )
    options = start_options(old_input, started_by="an earlier onboarding")
    options["memo"][STATE_MEMO] = {**options["memo"][STATE_MEMO], "last_event_sequence": 7}
    old = await env.client.start_workflow(
        WORKFLOW_TYPE, old_input, task_queue="nobody-polls", id_conflict_policy=WorkflowIDConflictPolicy.FAIL, **options
    )
    await old.terminate(reason="closed by an operator")
    await executions(env.client, f'WorkflowId = "{old.id}" AND ExecutionStatus = "Terminated"', settle_at=1)

    async with sandbox.client() as iron:
        summary = await backfill(env.client, iron, task_queue=task_queue)
    assert summary.complete and (summary.adopted, summary.already_running, summary.failed) == (3, 0, [])

    async def first_input(workflow_id: str) -> OnboardingInput:
        history = await env.client.get_workflow_handle(workflow_id).fetch_history()
        payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
        (value,) = await env.client.data_converter.decode(payloads, [OnboardingInput])
        return value

    again = await first_input(old.id)
    assert again.events_after == 7 and again.iron_customer_id == earlier["id"]
    assert [(await first_input(workflow_id_of(c))).events_after for c in customers[1:]] == [0, 0]
    assert (await env.client.get_workflow_handle(old.id).describe()).run_id != old.result_run_id

    # Visibility answered the page's one list (a store that cannot would make every start look first).
    ids = [workflow_id_of(c) for c in customers]
    await executions(env.client, f'{WORKFLOWS} AND TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"', settle_at=3)
    async with sandbox.client() as iron:
        probe = Backfill(env.client, iron)
        seen = await probe._seen(ids)
    assert probe._visibility_ok and sorted(seen) == sorted(ids) and all(s.running for s in seen.values())
    assert seen[old.id].owner == earlier["id"]

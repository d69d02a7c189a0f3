"""Two sub-partners and the default scope on one engine, on a real `temporal server start-dev`:
the production worker with its activities over HTTP to the Iron sandbox, the sandbox sending
its signed webhooks to a real `python -m webhook_receiver` process, which routes them.

Three customers share one external id: one for sub-partner A, one for sub-partner B, one in
the default scope. Each gets its own workflow and its own Iron customer, visible only in its own
scope; every Iron call made for it carries its own `X-SUB-PARTNER-ID` (or none); and the
webhooks Iron sends about each reach its own workflow (the polls are an hour apart, so what
moves a customer within seconds came through the receiver).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from contracts import search_attributes as sa
from contracts.messages import OnboardingState, Phase, workflow_id_for
from iron_client.errors import IronNotFound
from iron_sandbox.testing import SandboxServer
from operations.backfill import backfill
from operations.report import build_report, default_rules, format_report
from starter import UnknownIronCustomer, adopt_customer, get_state, sign_all, start_onboarding
from tests.conftest import REPO_ROOT
from tests.test_webhook_receiver_e2e import ReceiverProcess, creation_answered, receiver_process, sandbox_delivering_to
from tests.workflow_harness import WEBHOOK_ONLY_TIMINGS, current_state, running_worker
from workflows.idempotency import customer_key, identification_key

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUB_PARTNER_A = str(uuid.uuid4())
SUB_PARTNER_B = str(uuid.uuid4())
DEFAULT = None
SCOPES = (SUB_PARTNER_A, SUB_PARTNER_B, DEFAULT)
QUEUE = f"sub-partners-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(env, sandbox, documents_dir):
    # The worker has no IRON_SUB_PARTNER_ID: each customer's scope comes from its own input.
    async with running_worker(env.client, sandbox, documents_dir, task_queue=QUEUE) as w:
        yield w


@pytest.fixture(scope="module")
def receiver(env, sandbox, worker, tmp_path_factory) -> Iterator[ReceiverProcess]:
    process_env = {
        **sandbox.env(),
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "ONBOARDING_TASK_QUEUE": QUEUE,
        # Upper case on purpose: the receiver reads them as the canonical UUIDs the workflows use.
        "IRON_SUB_PARTNER_IDS": f"{SUB_PARTNER_A.upper()},{SUB_PARTNER_B}",
    }
    with receiver_process(process_env, tmp_path_factory.mktemp("receiver") / "receiver.log") as process:
        yield process


async def wait_for(handle: WorkflowHandle, predicate, *, what: str, timeout: float = 30.0) -> OnboardingState:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await current_state(handle)
            if predicate(last):
                return last
        except Exception:  # not started its first task yet
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id}: timed out waiting for {what}; last state {last.summary() if last else None}")


def webhook_seen(state: OnboardingState, type_: str, status: str | None = None) -> bool:
    return any(e.type == type_ and (status is None or e.status == status) for e in state.recent_events)


def scope_name(sub_partner_id: str | None) -> str:
    return {SUB_PARTNER_A: "A", SUB_PARTNER_B: "B", None: "default"}[sub_partner_id]


async def test_two_sub_partners_and_the_default_scope_onboard_one_external_id_apart(env, worker, receiver, sandbox):
    external_id = f"shared-{uuid.uuid4().hex[:10]}"
    client = env.client
    handles: dict[str | None, WorkflowHandle] = {}
    async with sandbox_delivering_to(sandbox, receiver.webhook_url):
        for scope in SCOPES:
            result = await start_onboarding(
                client, external_id, email=f"{external_id}@example.com", timings=WEBHOOK_ONLY_TIMINGS,
                task_queue=QUEUE, sub_partner_id=scope,
            )
            assert result.started and result.workflow_id == workflow_id_for(external_id, scope)
            handles[scope] = client.get_workflow_handle(result.workflow_id)
        assert handles[DEFAULT].id == f"onboarding-{external_id}", "the default scope keeps its workflow ids"
        assert handles[SUB_PARTNER_A].id == f"onboarding-sp-{SUB_PARTNER_A}-{external_id}"

        first: dict[str | None, OnboardingState] = {}
        for scope, handle in handles.items():
            first[scope] = await wait_for(
                handle,
                lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id is not None
                and webhook_seen(s, "identification_status"),
                what="its identification, and the webhook of its creation",
            )
            await creation_answered(sandbox, first[scope].iron_customer_id)
        assert len({s.iron_customer_id for s in first.values()}) == 3, "three Iron customers"

        # Approvals: the next poll is an hour away, only the webhook brings the news.
        for scope, handle in handles.items():
            await sandbox.control.set_identification_status(first[scope].identification_id, "Approved")
            await wait_for(
                handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS and webhook_seen(s, "identification_status", "Approved"),
                what="the approval's webhook", timeout=20,
            )
            await sign_all(client, external_id, sub_partner_id=scope)
            await wait_for(handle, lambda s: s.phase == Phase.ACTIVE and s.cycle == 1, what="Active")

        # Iron's compliance reverts A's customer alone; Iron opens a step-up identification.
        await sandbox.control.set_customer_status(first[SUB_PARTNER_A].iron_customer_id, "IdentificationRequired")
        step_up = await wait_for(
            handles[SUB_PARTNER_A],
            lambda s: s.cycle == 2 and s.phase == Phase.AWAITING_IDENTIFICATION
            and s.identification_id != first[SUB_PARTNER_A].identification_id,
            what="the reversion's webhook and the step-up identification", timeout=20,
        )
        await sandbox.control.set_identification_status(step_up.identification_id, "Approved")
        await wait_for(
            handles[SUB_PARTNER_A], lambda s: s.cycle == 2 and s.phase == Phase.ACTIVE, what="Active again", timeout=20,
        )

    final = {scope: await current_state(handle) for scope, handle in handles.items()}
    assert [(final[s].phase, final[s].cycle) for s in SCOPES] == [(Phase.ACTIVE, 2), (Phase.ACTIVE, 1), (Phase.ACTIVE, 1)]
    assert [final[s].sub_partner_id for s in SCOPES] == list(SCOPES)
    customer_of = {scope: final[scope].iron_customer_id for scope in SCOPES}

    # --- Iron's side: three customers, each visible in its own scope only -------------------
    dump = [c for c in await sandbox.control.customers() if c.get("external_id") == external_id]
    assert {c["id"]: c["sub_partner_id"] for c in dump} == {customer_of[s]: s for s in SCOPES}
    identifications_of = {
        scope: {i["id"] for c in dump if c["id"] == customer_of[scope] for i in c["identifications"]} for scope in SCOPES
    }
    assert len(identifications_of[SUB_PARTNER_A]) == 2 and len(identifications_of[SUB_PARTNER_B]) == 1
    for scope in SCOPES:
        async with sandbox.client(sub_partner_id=scope) as iron:
            assert (await iron.find_customer_by_external_id(external_id)).id == customer_of[scope]
            for other in SCOPES:
                if other == scope:
                    assert (await iron.get_customer(customer_of[other])).status == "Active"
                else:
                    with pytest.raises(IronNotFound):
                        await iron.get_customer(customer_of[other])

    # --- every Iron request for a customer carries its own scope ----------------------------
    log = await sandbox.control.requests()
    assert {r["sub_partner_id"] for r in log} <= {SUB_PARTNER_A, SUB_PARTNER_B, None}
    for scope in SCOPES:
        name = scope_name(scope)
        workflow_id = workflow_id_for(external_id, scope)
        mine = [
            r for r in log
            if customer_of[scope] in r["path"] or any(i in r["path"] for i in identifications_of[scope])
        ]
        # The worker's calls for the customer: reads, the identification and the signings.
        answered = [r for r in mine if 200 <= int(r["status_code"] or 0) < 300]
        assert answered and all(r["sub_partner_id"] == scope for r in answered), (name, answered)
        # The only ones without its header: the receiver asking the scopes before its own,
        # which Iron answered 404 (nothing of one scope shows in another).
        foreign = [r for r in mine if r["sub_partner_id"] != scope]
        assert all(r["method"] == "GET" and r["status_code"] == 404 for r in foreign), (name, foreign)
        creates = [r for r in log if r["method"] == "POST" and r["path"] == "/api/customers"
                   and r["idempotency_key"] == customer_key(workflow_id)]
        assert creates and {r["sub_partner_id"] for r in creates} == {scope}, (name, creates)
        identification_posts = [r for r in mine if r["method"] == "POST" and "/identifications" in r["path"]]
        assert {r["idempotency_key"] for r in identification_posts} == {identification_key(workflow_id, 1, 1)}
        signing_posts = [r for r in mine if r["method"] == "POST" and r["path"].endswith("/signings")]
        assert len(signing_posts) >= 2 and {r["sub_partner_id"] for r in signing_posts} == {scope}
    lookups = [r for r in log if r["path"] == f"/api/customers/{external_id}/external"]
    assert {r["sub_partner_id"] for r in lookups} == set(SCOPES), "each workflow looked up its own scope"
    # Idempotency keys never meet across scopes; the default scope's are those it always had.
    keys = {scope: customer_key(workflow_id_for(external_id, scope)) for scope in SCOPES}
    assert len(set(keys.values())) == 3
    assert keys[DEFAULT] == customer_key(f"onboarding-{external_id}")

    # --- each workflow heard only of its own customer ----------------------------------------
    for scope in SCOPES:
        own = {customer_of[scope], *identifications_of[scope]}
        entities = {e.entity_id for e in final[scope].recent_events}
        assert entities and entities <= own, (scope_name(scope), entities - own)
    deliveries = [d for d in await sandbox.control.deliveries() if d["customer_id"] in customer_of.values()]
    assert deliveries and all(d["outcome"] == "delivered" and d["status_code"] == 200 for d in deliveries)
    lines = [e for e in receiver.log_events() if e.get("event") == "webhook" and e.get("customer_id") in customer_of.values()]
    for scope in SCOPES:
        routed = [e for e in lines if e["customer_id"] == customer_of[scope]]
        assert routed and {e["workflow_id"] for e in routed} == {workflow_id_for(external_id, scope)}
        assert {e.get("sub_partner_id") for e in routed} == {scope}
        # Signalled, or (its creation, which the onboarding made itself) acknowledged: never adopted twice.
        assert "signalled" in {e["outcome"] for e in routed} and {e["outcome"] for e in routed} <= {"signalled", "ignored"}

    # --- what operators see -----------------------------------------------------------------
    for scope, handle in handles.items():
        attributes = {p.key.name: p.value for p in (await handle.describe()).typed_search_attributes}
        assert attributes.get(sa.IRON_SUB_PARTNER_ID.name) == scope
        assert attributes[sa.IRON_CUSTOMER_ID.name] == customer_of[scope]
    listed = [w.id async for w in client.list_workflows(f'IronSubPartnerId = "{SUB_PARTNER_B}" AND ExecutionStatus = "Running"')]
    assert listed == [handles[SUB_PARTNER_B].id]
    prefixed = {w.id async for w in client.list_workflows(f'WorkflowId STARTS_WITH "onboarding-sp-{SUB_PARTNER_A}-"')}
    assert handles[SUB_PARTNER_A].id in prefixed, "one sub-partner's onboardings share a prefix"
    assert not prefixed & {handles[SUB_PARTNER_B].id, handles[DEFAULT].id}
    state_b = await get_state(client, external_id, sub_partner_id=SUB_PARTNER_B.upper())
    assert state_b.iron_customer_id == customer_of[SUB_PARTNER_B]


async def test_a_sub_partners_reversion_is_routed_from_the_engines_index_with_no_scope_list(env, worker, receiver, sandbox, tmp_path):
    """A receiver with `IRON_SUB_PARTNER_IDS` unset and a cold cache routes the reversion webhook
    of sub-partner A's customer to its workflow from Temporal's visibility (`IronCustomerId`):
    Iron hears nothing from it, so nothing for that customer goes out in another scope's name."""
    external_id = f"no-scope-list-{uuid.uuid4().hex[:10]}"
    client = env.client
    async with sandbox_delivering_to(sandbox, receiver.webhook_url):
        await start_onboarding(client, external_id, email=f"{external_id}@example.com", timings=WEBHOOK_ONLY_TIMINGS,
                               task_queue=QUEUE, sub_partner_id=SUB_PARTNER_A)
        handle = client.get_workflow_handle(workflow_id_for(external_id, SUB_PARTNER_A))
        first = await wait_for(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION and s.identification_id is not None,
                               what="its identification")
        await sandbox.control.set_identification_status(first.identification_id, "Approved")
        await wait_for(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, what="signings")
        await sign_all(client, external_id, sub_partner_id=SUB_PARTNER_A)
        await wait_for(handle, lambda s: s.phase == Phase.ACTIVE, what="Active")

    process_env = {
        **sandbox.env(),
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
        "ONBOARDING_TASK_QUEUE": QUEUE,
    }
    with receiver_process(process_env, tmp_path / "receiver.log") as unlisted:
        await sandbox.control.clear_requests()
        async with sandbox_delivering_to(sandbox, unlisted.webhook_url):
            await sandbox.control.set_customer_status(first.iron_customer_id, "SigningsRequired")
            await wait_for(handle, lambda s: s.cycle == 2 and s.phase == Phase.AWAITING_SIGNINGS,
                           what="the reversion's webhook, routed", timeout=20)
        routed = [e for e in unlisted.log_events() if e.get("event") == "webhook" and e.get("customer_id") == first.iron_customer_id]
    assert routed and {e["outcome"] for e in routed} == {"signalled"}, routed
    assert {e["workflow_id"] for e in routed} == {handle.id} and {e.get("sub_partner_id") for e in routed} == {SUB_PARTNER_A}
    log = await sandbox.control.requests()
    about_it = [r for r in log if first.iron_customer_id in r["path"]]
    assert about_it, "the workflow read its customer after the webhook"
    assert {r["sub_partner_id"] for r in about_it} == {SUB_PARTNER_A}, [r for r in about_it if r["sub_partner_id"] != SUB_PARTNER_A]


async def test_a_customer_created_at_iron_for_a_sub_partner_is_adopted_into_its_scope(env, worker, receiver, sandbox):
    external_id = f"made-at-iron-{uuid.uuid4().hex[:10]}"
    async with sandbox_delivering_to(sandbox, receiver.webhook_url):
        async with sandbox.client(sub_partner_id=SUB_PARTNER_B) as iron:
            customer = await iron.create_customer(
                customer_type="Person", email=f"{external_id}@example.com", idempotency_key=str(uuid.uuid4()),
                external_id=external_id,
            )
        handle = env.client.get_workflow_handle(workflow_id_for(external_id, SUB_PARTNER_B))
        state = await wait_for(
            handle, lambda s: s.iron_customer_id == customer.id and s.identification_id is not None,
            what="the adopted workflow to create the identification",
        )
    assert state.sub_partner_id == SUB_PARTNER_B
    adopted = [e for e in receiver.log_events() if e.get("customer_id") == customer.id and e.get("outcome") == "adopted"]
    assert len(adopted) == 1 and adopted[0]["workflow_id"] == handle.id
    posts = [r for r in await sandbox.control.requests()
             if r["method"] == "POST" and r["path"] == f"/api/customers/{customer.id}/identifications/v2"]
    assert posts and {r["sub_partner_id"] for r in posts} == {SUB_PARTNER_B}
    attributes = {p.key.name: p.value for p in (await handle.describe()).typed_search_attributes}
    assert attributes[sa.IRON_SUB_PARTNER_ID.name] == SUB_PARTNER_B
    # No workflow was named after the customer in another scope.
    for other in (SUB_PARTNER_A, None):
        assert not [w async for w in env.client.list_workflows(f'WorkflowId = "{workflow_id_for(external_id, other)}"')]


async def test_adopt_reads_the_customer_in_the_sub_partners_scope(env, worker, sandbox):
    external_id = f"adopt-{uuid.uuid4().hex[:10]}"
    async with sandbox.client(sub_partner_id=SUB_PARTNER_A) as scoped:
        customer = await scoped.create_customer(
            customer_type="Person", email=f"{external_id}@example.com", idempotency_key=str(uuid.uuid4()),
            external_id=external_id,
        )
    async with sandbox.client() as iron:
        with pytest.raises(UnknownIronCustomer):  # the default scope cannot see it
            await adopt_customer(env.client, iron, customer.id, timings=WEBHOOK_ONLY_TIMINGS, task_queue=QUEUE)
        with pytest.raises(UnknownIronCustomer):  # nor another sub-partner's
            await adopt_customer(env.client, iron, customer.id, task_queue=QUEUE, sub_partner_id=SUB_PARTNER_B)
        result = await adopt_customer(
            env.client, iron, customer.id, timings=WEBHOOK_ONLY_TIMINGS, task_queue=QUEUE, sub_partner_id=SUB_PARTNER_A
        )
    assert result.started and result.workflow_id == workflow_id_for(external_id, SUB_PARTNER_A)
    state = await wait_for(
        env.client.get_workflow_handle(result.workflow_id), lambda s: s.identification_id is not None,
        what="the adopted customer's identification",
    )
    assert state.iron_customer_id == customer.id and state.sub_partner_id == SUB_PARTNER_A


def _starter(env, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python starter.py ...` in a shell that has only the dev server's address."""
    # The payload keys this test process uses (another module may have set some) go along.
    shell = {k: v for k, v in os.environ.items()
             if not k.startswith(("TEMPORAL_", "IRON_", "ONBOARDING_")) or k.startswith("ONBOARDING_ENCRYPTION_")}
    shell.update(TEMPORAL_ADDRESS=env.client.service_client.config.target_host, TEMPORAL_NAMESPACE="default",
                 ONBOARDING_TASK_QUEUE=QUEUE, **(extra_env or {}))
    return subprocess.run([sys.executable, "starter.py", *args], cwd=REPO_ROOT, env=shell, capture_output=True,
                          text=True, timeout=60)


async def test_the_cli_finds_an_onboarding_by_sub_partner_and_external_id(env, worker, documents_dir):
    external_id = f"cli-{uuid.uuid4().hex[:10]}"
    shared = {"ONBOARDING_DOCUMENT_DIR": str(documents_dir)}  # the worker's store, where the contact goes
    started = await asyncio.to_thread(
        _starter, env, "start", external_id, "--email", f"{external_id}@example.com", "--sub-partner", SUB_PARTNER_A.upper(),
        extra_env=shared,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith(f"started onboarding-sp-{SUB_PARTNER_A}-{external_id}")
    handle = env.client.get_workflow_handle(workflow_id_for(external_id, SUB_PARTNER_A))
    await wait_for(handle, lambda s: s.identification_id is not None, what="its identification")

    status = await asyncio.to_thread(_starter, env, "status", external_id, "--sub-partner", SUB_PARTNER_A, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["sub_partner_id"] == SUB_PARTNER_A
    text = await asyncio.to_thread(_starter, env, "status", external_id, "--sub-partner", SUB_PARTNER_A)
    assert f"sub-partner      {SUB_PARTNER_A}" in text.stdout
    waited = await asyncio.to_thread(
        _starter, env, "wait", external_id, "--sub-partner", SUB_PARTNER_A, "--phase", "AwaitingIdentification",
        "--timeout", "30", "--json",
    )
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["sub_partner_id"] == SUB_PARTNER_A
    # The same external id in another scope, or in the default one, is another onboarding.
    for other in (["--sub-partner", SUB_PARTNER_B], []):
        missing = await asyncio.to_thread(_starter, env, "status", external_id, *other)
        assert missing.returncode == 3, missing.stderr
    # Starting again with other data in its scope changes nothing (exit 6), as for the default scope.
    again = await asyncio.to_thread(
        _starter, env, "start", external_id, "--email", "other@example.com", "--sub-partner", SUB_PARTNER_A,
        extra_env=shared,
    )
    assert again.returncode == 6 and "--email" in again.stderr

    # The report names the customer by its external id and sub-partner, not the workflow id's form.
    report = await build_report(env.client, default_rules(waiting_on_customer=timedelta(0)))
    [mine] = [c for c in report.stuck() if c.workflow_id == handle.id]
    assert (mine.external_id, mine.sub_partner_id) == (external_id, SUB_PARTNER_A)
    assert mine.as_json(report.at)["sub_partner_id"] == SUB_PARTNER_A
    assert f"{external_id} --sub-partner {SUB_PARTNER_A}" in format_report(report)

    # Broken down by sub-partner: its customer counts in its own scope only.
    def scoped_report(*scope: str) -> dict:
        run = _starter(env, "report", "--json", "--waiting-on-customer", "0s", *scope)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    own = await asyncio.to_thread(scoped_report, "--sub-partner", SUB_PARTNER_A)
    assert own["sub_partner"] == SUB_PARTNER_A and own["running"] >= 1
    assert handle.id in {c["workflow_id"] for c in own["stuck"]}
    for other in (["--sub-partner", SUB_PARTNER_B], ["--sub-partner", "default"]):
        elsewhere = await asyncio.to_thread(scoped_report, *other)
        assert handle.id not in {c["workflow_id"] for c in elsewhere["stuck"]}
    everyone = await asyncio.to_thread(scoped_report)
    assert "sub_partner" not in everyone and everyone["running"] >= own["running"]
    refused = await asyncio.to_thread(_starter, env, "report", "--sub-partner", "not-a-uuid")
    assert refused.returncode == 2 and "--sub-partner" in refused.stderr


async def test_adopt_all_adopts_a_sub_partners_customers_into_its_scope(env, worker, sandbox):
    sub_partner = str(uuid.uuid4())  # a scope of its own: nothing else of this module lives there
    async with sandbox.client(sub_partner_id=sub_partner) as scoped:
        made = [
            await scoped.create_customer(
                customer_type="Person", email=f"bf{n}@example.com", idempotency_key=str(uuid.uuid4()),
                external_id=f"backfill-{n}-{uuid.uuid4().hex[:8]}",
            )
            for n in range(2)
        ]
    async with sandbox.client() as iron:
        summary = await backfill(env.client, iron, sub_partner_id=sub_partner, task_queue=QUEUE, timings=WEBHOOK_ONLY_TIMINGS)
    assert (summary.adopted, summary.failed) == (2, [])
    for customer in made:
        handle = env.client.get_workflow_handle(workflow_id_for(customer.external_id, sub_partner))
        state = await wait_for(handle, lambda s: s.identification_id is not None, what="the adopted customer's identification")
        assert (state.iron_customer_id, state.sub_partner_id) == (customer.id, sub_partner)
    # Run again from the command line: each is found running under its own scope's id.
    shell_env = {**sandbox.env()}
    again = await asyncio.to_thread(
        _starter, env, "adopt", "--all", "--sub-partner", sub_partner.upper(), "--json", extra_env=shell_env,
    )
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout)
    assert (counts["adopted"], counts["already_running"], counts["failed"]) == (0, 2, [])

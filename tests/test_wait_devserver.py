"""Start-and-wait, `wait` and the state view in the memo, on a real `temporal server start-dev`
(updates need it) with the production worker and the Iron sandbox over HTTP.

The command line runs in-process (`starter.main`, in a thread: it runs its own event loop)
against the same dev server and task queue as the worker."""

from __future__ import annotations

import asyncio
import contextlib
import base64
import os
import io
import json
import time
import uuid

import pytest
from temporalio.client import Client, Interceptor, OutboundInterceptor, QueryWorkflowInput

import starter
from contracts.messages import Phase, workflow_id_for
from contracts.state_view import STATE_MEMO
from starter import WaitTimedOut, get_live_state, get_state, sign_all, start_onboarding, wait_for
from tests.workflow_harness import DEV_SERVER_TIMINGS, RECORDING_DIR, running_worker, wait_for_state

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def cli(env, worker, documents_dir, monkeypatch):
    """`python starter.py ...` in-process, pointed at the test's server, task queue and the
    worker's document store."""
    monkeypatch.setenv("ONBOARDING_DOCUMENT_DIR", str(documents_dir))
    monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", env.client.namespace)
    monkeypatch.setenv("ONBOARDING_TASK_QUEUE", worker.task_queue)

    async def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(starter.main, list(args), out, err)
        return code, out.getvalue(), err.getvalue()

    return run


class CountQueries(Interceptor):
    def __init__(self) -> None:
        self.queries = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Counting(OutboundInterceptor):
            async def query_workflow(self, input: QueryWorkflowInput):
                counter.queries += 1
                return await super().query_workflow(input)

        return Counting(next)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_start_wait_prints_the_url_in_one_call_and_a_second_start_attaches(env, worker, cli):
    external_id = new_id("start-wait")
    email = f"{external_id}@example.com"
    began = time.monotonic()
    code, out, err = await cli("start", external_id, "--email", email, "--wait", "--json")
    assert code == 0, err
    state = json.loads(out)  # the state JSON alone
    assert state["phase"] == "AwaitingIdentification" and state["identification_url"], state
    assert time.monotonic() - began < 30

    code, out, err = await cli("start", external_id, "--email", email, "--wait")
    assert code == 0, err
    assert out.startswith(f"already running with the same start data, attached to {workflow_id_for(external_id)}")
    assert f"identification url {state['identification_url']}" in out

    code, out, err = await cli("start", external_id, "--email", f"other-{email}", "--wait")
    assert code == starter.EXIT_START_DATA_DIFFERS, (code, out, err)
    assert "--email" in err

    # One workflow, whose history shows the waits as updates, no second start.
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    history = await handle.fetch_history()
    accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 3


async def test_start_onboarding_with_wait_returns_the_state_view(env, worker):
    external_id = new_id("api-wait")
    first = await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS,
        task_queue=worker.task_queue, wait=True,
    )
    assert first.started and first.reached and first.state.identification_url
    again = await start_onboarding(
        env.client, external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS,
        task_queue=worker.task_queue, wait=True,
    )
    assert not again.started and again.compared and again.reached
    assert again.state.identification_id == first.state.identification_id
    with pytest.raises(starter.StartDataDiffers):
        await start_onboarding(env.client, external_id, email=f"x-{external_id}@example.com", task_queue=worker.task_queue, wait=True)


async def test_wait_for_active_returns_after_the_signings(env, worker, sandbox, cli):
    external_id = new_id("wait-active")
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS,
                           task_queue=worker.task_queue)
    waiting = asyncio.ensure_future(cli("wait", external_id, "--phase", "Active", "--timeout", "90", "--json"))
    # The same, through the library, with a one-second RPC deadline: the wait is sent again
    # (the same update) until the workflow answers.
    library = asyncio.ensure_future(wait_for(env.client, external_id, phases=["Active"], timeout=90, rpc_timeout=1))
    at_kyc = await wait_for(env.client, external_id, phases=[Phase.AWAITING_IDENTIFICATION], timeout=60)
    await asyncio.sleep(2)
    assert not waiting.done() and not library.done()
    await sandbox.control.set_identification_status(at_kyc.identification_id, "Approved")
    await wait_for(env.client, external_id, phases=[Phase.AWAITING_SIGNINGS], timeout=60)
    await asyncio.sleep(1.5)
    assert not waiting.done() and not library.done(), "returned before the signings"
    await sign_all(env.client, external_id)
    code, out, err = await asyncio.wait_for(waiting, 60)
    assert code == 0, err
    assert json.loads(out)["phase"] == "Active"
    assert (await asyncio.wait_for(library, 60)).phase == Phase.ACTIVE
    await record_history(env.client, external_id, "wait_for_active")


async def record_history(client, external_id: str, name: str) -> None:
    """With RECORD_HISTORIES=1, keep this lifecycle's runs (memo writes, wait_for updates) for
    the replay tests, beside the other branches' histories."""
    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    folder = RECORDING_DIR / "state-memo"
    folder.mkdir(parents=True, exist_ok=True)
    await asyncio.sleep(2)  # the continue-as-new at Active has its first task
    runs = [e async for e in client.list_workflows(f'WorkflowId = "{workflow_id_for(external_id)}"')]
    for index, execution in enumerate(sorted(runs, key=lambda e: e.start_time), start=1):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        (folder / f"{name}.run{index}.json").write_text(history.to_json())


async def test_a_start_that_waits_in_vain_exits_8_with_the_onboarding_started(env, cli, monkeypatch):
    """No worker polls the queue: the update is never taken, the client gives up after its
    timeout and a grace period, and says so; the onboarding is started all the same."""
    monkeypatch.setenv("ONBOARDING_TASK_QUEUE", f"nobody-{uuid.uuid4()}")
    external_id = new_id("start-in-vain")
    began = time.monotonic()
    code, out, err = await cli("start", external_id, "--email", f"{external_id}@example.com", "--wait", "--timeout", "1")
    assert code == starter.EXIT_WAIT_TIMED_OUT, (code, out, err)
    assert time.monotonic() - began < 30 and "timed out" in err and "FindingCustomer" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    assert (await handle.describe()).status.name == "RUNNING"
    await handle.terminate("test over")


async def test_a_wait_that_times_out_exits_8(env, worker, cli):
    external_id = new_id("wait-timeout")
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS,
                           task_queue=worker.task_queue)
    began = time.monotonic()
    code, out, err = await cli("wait", external_id, "--phase", "Active", "--phase", "Declined", "--timeout", "3")
    assert code == starter.EXIT_WAIT_TIMED_OUT == 8, (code, out, err)
    assert 3 <= time.monotonic() - began < 20
    assert err.startswith("timed out:") and "Active or Declined" in err
    with pytest.raises(WaitTimedOut) as timed_out:
        await wait_for(env.client, external_id, phases=["Active"], timeout=2.5, rpc_timeout=1)
    assert timed_out.value.state.phase == Phase.AWAITING_IDENTIFICATION
    code, _, err = await cli("wait", external_id, "--phase", "Bogus")
    assert code == starter.EXIT_BAD_INPUT, err


async def test_get_state_reads_the_memo_and_sends_no_query(env, worker):
    counter = CountQueries()
    client = Client(**{**env.client.config(), "interceptors": [counter]})
    external_id = new_id("memo")
    await start_onboarding(client, external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS,
                           task_queue=worker.task_queue, wait=True)
    view = await get_state(client, external_id)
    assert view.phase == Phase.AWAITING_IDENTIFICATION and view.identification_url
    assert counter.queries == 0
    live = await get_live_state(client, external_id)  # the counter does count queries
    assert counter.queries == 1
    assert (view.identification_id, view.iron_customer_id, view.identification_url) == (
        live.identification_id, live.iron_customer_id, live.identification_url)

    # No worker polls this queue: a query could not be answered, the memo given at start is.
    idle = new_id("memo-idle")
    await start_onboarding(client, idle, email=f"{idle}@example.com", task_queue=f"nobody-{uuid.uuid4()}")
    idle_view = await asyncio.wait_for(get_state(client, idle, fallback_to_query=False), 10)
    assert idle_view.phase == Phase.FINDING_CUSTOMER and idle_view.external_id == idle
    assert counter.queries == 1
    await client.get_workflow_handle(workflow_id_for(idle)).terminate("test over")


async def test_the_memo_view_follows_continue_as_new(env, worker, sandbox):
    timings = DEV_SERVER_TIMINGS.model_copy(update={"continue_as_new_after_events": 40, "poll_max_seconds": 0.5})
    external_id = new_id("memo-can")
    await start_onboarding(env.client, external_id, email=f"{external_id}@example.com", timings=timings,
                           task_queue=worker.task_queue)
    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
    await wait_for_state(handle, lambda s: s.runs >= 3, timeout=60, what="two continue-as-new")
    view = await get_state(env.client, external_id, fallback_to_query=False)
    live = await get_live_state(env.client, external_id)
    assert view.runs >= 3
    assert (view.phase, view.identification_id, view.iron_customer_id, view.identification_url) == (
        live.phase, live.identification_id, live.iron_customer_id, live.identification_url)
    # Waiting across the continue-as-new that comes next: the wait goes on in the next run.
    await sandbox.control.set_identification_status(live.identification_id, "Approved")
    signings = await wait_for(env.client, external_id, phases=[Phase.AWAITING_SIGNINGS], timeout=60)
    assert signings.required_signings and not any(s.signed for s in signings.required_signings)
    # The whole memo (start digest, start request, view) stays below the server's 2 KiB warning.
    raw = (await handle.describe()).raw_description.workflow_execution_info.memo
    assert STATE_MEMO in raw.fields and len(raw.SerializeToString()) < 2048


async def test_the_memo_is_encrypted_by_the_payload_codec(env, sandbox, tmp_path):
    """Memos are payloads: the starter's and the worker's go through the codec, so with keys
    configured the server holds ciphertext, and the view still reads."""
    from data_protection.codec import ENCODING, EncryptionCodec
    from data_protection.keys import KeyRing
    from runtime.temporal import converter_with_codec

    keyring = KeyRing.from_spec(f"memo-key:{base64.b64encode(os.urandom(32)).decode()}")
    client = Client(**{**env.client.config(), "data_converter": converter_with_codec(EncryptionCodec(keyring))})
    async with running_worker(client, sandbox, tmp_path) as encrypted_worker:
        external_id = new_id("memo-encrypted")
        started = await start_onboarding(client, external_id, email=f"{external_id}@example.com",
                                         timings=DEV_SERVER_TIMINGS, task_queue=encrypted_worker.task_queue, wait=True)
        assert started.reached and started.state.identification_url
        handle = client.get_workflow_handle(workflow_id_for(external_id))
        history = await handle.fetch_history()
        upserts = [e.workflow_properties_modified_event_attributes.upserted_memo for e in history.events
                   if e.HasField("workflow_properties_modified_event_attributes")]
        assert upserts, "the worker wrote the view"
        raw = (await handle.describe()).raw_description.workflow_execution_info.memo.fields
        for memo in [raw, *[u.fields for u in upserts]]:
            assert memo and all(p.metadata["encoding"] == ENCODING for p in memo.values())
        assert external_id.encode() not in b"".join(p.data for p in raw.values())
        view = await get_state(client, external_id, fallback_to_query=False)
        assert view.identification_url == started.state.identification_url
        await handle.terminate("test over")



async def test_a_wait_on_an_onboarding_that_ended_or_never_was_says_so(env, cli):
    ended = new_id("wait-ended")
    await start_onboarding(env.client, ended, email=f"{ended}@example.com", task_queue=f"nobody-{uuid.uuid4()}")
    await env.client.get_workflow_handle(workflow_id_for(ended)).terminate("test over")
    with pytest.raises(starter.OnboardingClosed) as closed:
        await wait_for(env.client, ended, phases=["Active"], timeout=5)
    assert closed.value.state.phase == Phase.FINDING_CUSTOMER
    code, _, err = await cli("wait", ended, "--phase", "Active", "--timeout", "5")
    assert code == starter.EXIT_REJECTED and "has ended in phase FindingCustomer" in err, err
    code, _, err = await cli("wait", new_id("nobody"), "--phase", "Active", "--timeout", "5")
    assert code == starter.EXIT_NOT_FOUND and "no onboarding" in err, err


async def test_a_run_started_past_the_start_path_is_read_through_the_query(env, sandbox, tmp_path):
    """An onboarding started by a bare client (no state view in its start memo) keeps no view
    until its first workflow task writes one: `get_state` refuses to guess with
    `fallback_to_query=False`, and answers through the query or the view once a worker runs it."""
    from contracts import search_attributes as sa
    from contracts.messages import WORKFLOW_TYPE, OnboardingInput, OnboardingState

    queue = f"bare-start-{uuid.uuid4()}"
    external_id = new_id("bare-start")
    workflow_input = OnboardingInput(external_id=external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS)
    await env.client.start_workflow(WORKFLOW_TYPE, workflow_input, id=workflow_id_for(external_id), task_queue=queue,
                                    search_attributes=sa.at_start(OnboardingState.first(workflow_input)))
    with pytest.raises(starter.NoStateView, match="started past the engine's start path"):
        await get_state(env.client, external_id, fallback_to_query=False)
    async with running_worker(env.client, sandbox, tmp_path, task_queue=queue):
        handle = env.client.get_workflow_handle(workflow_id_for(external_id))
        await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification")
        view = await get_state(env.client, external_id)
        assert view.phase == Phase.AWAITING_IDENTIFICATION and view.identification_url
        await handle.terminate("test over")


async def test_waiters_hear_of_an_archived_customer(env, worker, sandbox):
    """The workflow completes at Archived: a wait for it answers, a wait for another phase ends
    with the customer's last view instead of running into its timeout."""
    from starter import refresh

    external_id = new_id("wait-archived")
    started = await start_onboarding(env.client, external_id, email=f"{external_id}@example.com",
                                     timings=DEV_SERVER_TIMINGS, task_queue=worker.task_queue, wait=True)
    for_active = asyncio.ensure_future(wait_for(env.client, external_id, phases=["Active"], timeout=120))
    for_archived = asyncio.ensure_future(wait_for(env.client, external_id, phases=["Archived"], timeout=120))
    await asyncio.sleep(1)
    began = time.monotonic()
    await sandbox.control.set_customer_status(started.state.iron_customer_id, "Archived")
    with contextlib.suppress(Exception):  # the read that sees it may end the workflow first
        await refresh(env.client, external_id)
    assert (await asyncio.wait_for(for_archived, 60)).phase == Phase.ARCHIVED
    with pytest.raises(starter.OnboardingClosed) as closed:
        await asyncio.wait_for(for_active, 60)
    assert closed.value.state.phase == Phase.ARCHIVED and time.monotonic() - began < 60

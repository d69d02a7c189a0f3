"""The start's email and name by reference (`OnboardingInput.contact_ref`): only the activity
that creates the Iron customer reads them from the document store, no history holds them, and
the customer reaches `Active` in the run that created it. Real HTTP to the sandbox; the
lifecycle on a real dev server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.iron_activities import INVALID_START_DATA, IronActivities
from contracts.activity_models import FindOrCreateCustomerInput
from contracts.messages import OnboardingInput, OnboardingTimings, Phase, workflow_id_for
from data_protection.contact import read_contact, store_contact
from data_protection.documents import DocumentNotFound, FilesystemDocumentStore
from iron_client import IronClient
from iron_sandbox.testing import SandboxServer
from starter import sign_all, start_onboarding
from tests.sandbox_helpers import iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)
from tests.test_data_protection_e2e import readable_text
from tests.workflow_harness import dev_server_env, running_worker, save_histories, wait_for_state

EMAIL = "octavia.butterworth@example.org"
NAME = "Octavia Butterworth"
TIMINGS = OnboardingTimings(
    poll_initial_seconds=0.5, poll_max_seconds=1, activity_timeout_seconds=5,
    activity_retry_initial_seconds=0.1, activity_retry_max_seconds=0.5,
)


def create(external_id: str, contact_ref: str, **inline) -> FindOrCreateCustomerInput:
    return FindOrCreateCustomerInput(external_id=external_id, email=inline.pop("email", ""), customer_type="Person",
                                     contact_ref=contact_ref, idempotency_key=new_key(), **inline)


async def iron_customer(sandbox: SandboxServer, external_id: str) -> dict:
    return next(c for c in await sandbox.control.customers() if c.get("external_id") == external_id)


def test_an_input_without_contact_ref_is_written_as_before() -> None:
    inline = OnboardingInput(external_id="c-1", email=EMAIL)
    assert "contact_ref" not in inline.model_dump(mode="json")
    assert OnboardingInput(external_id="c-1", contact_ref="fs:" + "0" * 32).model_dump(mode="json")["contact_ref"]
    with pytest.raises(ValueError, match="contact_ref"):
        OnboardingInput(external_id="c-1")


async def test_the_customer_is_created_with_the_contact_the_store_holds(
    sandbox: SandboxServer, iron: IronClient, tmp_path: Path
) -> None:
    store = FilesystemDocumentStore(tmp_path)
    ref = await store_contact(store, EMAIL, NAME)
    external_id = f"contact-{uuid.uuid4().hex[:8]}"
    created = await ActivityEnvironment().run(IronActivities(iron, store).find_or_create_customer, create(external_id, ref))
    assert created.created
    at_iron = await iron_customer(sandbox, external_id)
    assert (at_iron["email"], at_iron["name"]) == (EMAIL, NAME)
    assert await store.exists(ref), "kept unless the deployment deletes documents once Iron has them"


async def test_an_amended_email_wins_over_the_stored_one_and_the_name_still_comes_from_the_store(
    sandbox: SandboxServer, iron: IronClient, tmp_path: Path
) -> None:
    store = FilesystemDocumentStore(tmp_path)
    ref = await store_contact(store, "octavia@exmaple.org", NAME)
    external_id = f"contact-{uuid.uuid4().hex[:8]}"
    await ActivityEnvironment().run(IronActivities(iron, store).find_or_create_customer, create(external_id, ref, email=EMAIL))
    at_iron = await iron_customer(sandbox, external_id)
    assert (at_iron["email"], at_iron["name"]) == (EMAIL, NAME)


async def test_a_contact_the_store_does_not_have_is_refused_for_good_and_nothing_reaches_iron(
    sandbox: SandboxServer, iron: IronClient, tmp_path: Path
) -> None:
    store = FilesystemDocumentStore(tmp_path)
    missing = await store_contact(store, EMAIL, NAME)
    await store.delete(missing)
    await sandbox.control.clear_requests()
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            IronActivities(iron, store).find_or_create_customer, create(f"contact-{uuid.uuid4().hex[:8]}", missing)
        )
    assert refused.value.non_retryable and refused.value.type == INVALID_START_DATA
    assert EMAIL not in str(refused.value) and NAME not in str(refused.value)
    posted = [r for r in await sandbox.control.requests(clear=True) if r["method"] == "POST"]
    assert posted == [], "no customer created without its email"


async def test_the_contact_goes_once_iron_has_it_when_the_deployment_says_so(
    sandbox: SandboxServer, iron: IronClient, tmp_path: Path
) -> None:
    store = FilesystemDocumentStore(tmp_path)
    ref = await store_contact(store, EMAIL, NAME)
    activities = IronActivities(iron, store, delete_documents_after_submission=True)
    req = create(f"contact-{uuid.uuid4().hex[:8]}", ref)
    first = await ActivityEnvironment().run(activities.find_or_create_customer, req)
    with pytest.raises(DocumentNotFound):
        await read_contact(store, ref)
    # A retry after a lost answer finds the customer: the contact is not needed again.
    again = await ActivityEnvironment().run(activities.find_or_create_customer, req)
    assert again.id == first.id and not again.created


async def test_a_lifecycle_by_reference_holds_no_contact_in_history_and_stays_in_one_run(
    temporal_cli_path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    store = FilesystemDocumentStore(tmp_path / "documents")
    external_id = f"contact-{uuid.uuid4().hex[:8]}"
    async with dev_server_env(temporal_cli_path) as env:
        async with running_worker(env.client, sandbox, tmp_path / "documents", task_queue="contact") as _:
            started = await start_onboarding(env.client, external_id, email=EMAIL, name=NAME, timings=TIMINGS,
                                             task_queue="contact", documents=store)
            assert started.started
            stored = set((tmp_path / "documents").rglob("*.doc"))
            assert len(stored) == 1, "the contact, once"
            # The same start again attaches, and keeps no second copy of the contact.
            again = await start_onboarding(env.client, external_id, email=EMAIL, name=NAME, timings=TIMINGS,
                                           task_queue="contact", documents=store)
            assert not again.started and set((tmp_path / "documents").rglob("*.doc")) == stored

            handle = env.client.get_workflow_handle(workflow_id_for(external_id))
            first_run_id = (await handle.describe()).run_id
            waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60,
                                           what="identification")
            await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
            await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
            await sign_all(env.client, external_id)
            active = await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=60, what="Active")
            assert active.runs == 1 and active.cycle_completed, "Active in the run that created the customer"
            # For tests/test_replay.py (RECORD_HISTORIES=1): the branch that stays in its run.
            await save_histories(env.client, handle.id, first_run_id, "lifecycle/contact_by_reference")

        at_iron = await iron_customer(sandbox, external_id)
        assert (at_iron["email"], at_iron["name"]) == (EMAIL, NAME)
        runs = [e async for e in env.client.list_workflows(f'WorkflowId = "{workflow_id_for(external_id)}"')]
        assert len(runs) == 1
        history = readable_text((await handle.fetch_history()).to_json())
    assert "contact_ref" in history, "the history was read, payloads decoded"
    assert EMAIL not in history and NAME not in history

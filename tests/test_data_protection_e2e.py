"""Where personal data goes in a real lifecycle: a `Person` customer onboarded on a real dev
server with encryption on, then the raw history (read without the codec) and the captured logs
searched for every personal value of the input and the secrets."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from data_protection.documents import FilesystemDocumentStore
from iron_client.models import IdentificationKind
from iron_sandbox.config import SandboxConfig
from iron_sandbox.testing import SandboxServer
from runtime.logging import configure_logging, reset_logging
from starter import sign_all, start_onboarding
from contracts.messages import IdentificationRequest, OnboardingTimings, Phase, workflow_id_for
from activities.iron_activities import IronActivities
from iron_client import IronClient
from tests.workflow_harness import dev_server_env, iron_settings_for, wait_for_state
from webhook_receiver.settings import ReceiverSettings
from worker import build_worker

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "person_identification.json"
API_KEY = "iron-live-key-7Q3ZK9XW2M"
WEBHOOK_SECRET = "whsec-recognisable-5T8R1V"
NAME = "Zebediah Quillfeather"
EMAIL = "zebediah.quillfeather@example.org"

TIMINGS = OnboardingTimings(
    poll_initial_seconds=0.5, poll_max_seconds=1, activity_timeout_seconds=5,
    activity_retry_initial_seconds=0.1, activity_retry_max_seconds=0.5,
)


def readable_text(history_json: str) -> str:
    """The history as an attacker would read it: the JSON plus every base64 value decoded
    (payload data and metadata are bytes, base64 in JSON)."""
    parts = [history_json]

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and len(node) >= 4:
            try:
                parts.append(base64.b64decode(node, validate=True).decode("utf-8", "replace"))
            except ValueError:
                pass

    walk(json.loads(history_json))
    return "\n".join(parts)


def appears(value: str, text: str) -> bool:
    """`value` in `text`; a short one only as a whole token, since random ciphertext in base64
    holds any three letters somewhere ("Ada" was found inside an encrypted payload)."""
    if len(value) >= 16:
        return value in text
    return re.search(rf"(?<![A-Za-z0-9+/]){re.escape(value)}(?![A-Za-z0-9+/])", text) is not None


def personal_values() -> dict[str, str]:
    person = json.loads(SAMPLE.read_text())
    return {
        "name": NAME,
        "email": EMAIL,
        "first name": person["first_name"],
        "last name": person["last_name"],
        "document email": person["email_address"],
        "date of birth": person["date_of_birth"],
        "phone": person["phone_number"],
        "street": person["address"]["street_1"],
        "document bytes (base64)": person["identity"]["identity_document_front"][:80],
        "selfie (base64)": person["identity"]["selfie"][:80],
    }


@pytest.fixture
def encryption(monkeypatch):
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("ONBOARDING_ENCRYPTION_KEYS", f"e2e-key:{key}")
    monkeypatch.setenv("IRON_API_KEY", API_KEY)
    monkeypatch.setenv("IRON_WEBHOOK_SECRETS", WEBHOOK_SECRET)
    # Loaded as the processes load their settings at start: from then on no log shows its secrets.
    return ReceiverSettings.load().keyring()


@pytest.fixture
def production_logging():
    configure_logging("DEBUG", json=True)  # what a person debugging reads must not leak either
    yield
    reset_logging()


async def test_person_lifecycle_leaves_no_personal_data_in_history_or_logs(
    encryption, production_logging, temporal_cli_path, tmp_path, capfd
):
    config = SandboxConfig(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    store = FilesystemDocumentStore(tmp_path / "documents", keyring=encryption)
    ref = await store.put(SAMPLE.read_bytes())
    external_id = f"pii-{uuid.uuid4().hex[:8]}"

    with SandboxServer(config) as sandbox:
        async with dev_server_env(temporal_cli_path) as env:
            # The worker reads documents encrypted at rest, as the production worker does.
            async with IronClient(iron_settings_for(sandbox)) as iron:
                async with build_worker(env.client, IronActivities(iron, store), task_queue="pii"):
                    await start_onboarding(
                        env.client,
                        external_id,
                        email=EMAIL,
                        name=NAME,
                        identification=IdentificationRequest(kind=IdentificationKind.PERSON, document_ref=ref),
                        timings=TIMINGS,
                        task_queue="pii",
                    )
                    handle = env.client.get_workflow_handle(workflow_id_for(external_id))
                    waiting = await wait_for_state(
                        handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification"
                    )
                    await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
                    await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=60, what="signings")
                    await sign_all(env.client, external_id)
                    await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE, timeout=60, what="Active")

            # What anyone with access to the cluster sees: the raw history, no codec.
            raw_client = await Client.connect(
                env.client.service_client.config.target_host, data_converter=pydantic_data_converter
            )
            histories = []
            async for execution in raw_client.list_workflows(f'WorkflowId = "{workflow_id_for(external_id)}"'):
                history = await raw_client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
                histories.append(readable_text(history.to_json()))
            assert histories, "the lifecycle's runs are listed"
            raw = "\n".join(histories)
            assert "binary/encrypted" in raw, "payloads are encrypted"

    found_in_history = [what for what, value in personal_values().items() if appears(value, raw)]
    assert found_in_history == [], f"personal data in plaintext history: {found_in_history}"
    assert API_KEY not in raw

    captured = capfd.readouterr()
    logs = captured.out + captured.err
    assert "iron_request_ok" in logs, "the lifecycle's activity logs were captured"
    leaked = [what for what, value in {**personal_values(), "API key": API_KEY, "webhook secret": WEBHOOK_SECRET}.items() if value in logs]
    assert leaked == [], f"found in logs: {leaked}"

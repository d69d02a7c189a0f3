"""What the customer must fix, end to end on a real dev server: Iron declines an identification
with a step the customer can redo; the workflow reads Iron's requirements, keeps their codes in
its state and current details, and the `Declined` event the backend verifies carries them."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

from contracts.messages import Phase
from demo.partner_backend import PartnerBackend, PartnerBackendThread
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from starter import format_state
from tests.workflow_harness import DEV_SERVER_TIMINGS, dev_server_env, onboarding_with_events, save_histories, wait_for_state
import workflows.decide as d

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


class RecordingBackend(PartnerBackend):
    """The demo's verifying backend, keeping each verified event's `data` as well."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.data: list[dict[str, Any]] = []

    def _sign_what_is_required(self, external_id: str, data: dict[str, Any]) -> None:
        self.data.append(data)
        super()._sign_what_is_required(external_id, data)


async def test_a_declined_step_to_redo_shows_its_codes_in_state_and_in_the_delivered_event(temporal_cli_path, tmp_path):
    external_id = f"requirements-{uuid.uuid4().hex[:8]}"
    backend_app = RecordingBackend([SECRET], out=lambda line: None)
    with SandboxServer() as sandbox, PartnerBackendThread(backend_app) as backend:
        async with dev_server_env(temporal_cli_path) as env:
            events = EventsSettings(url=backend.events_url, secret=SECRET, timeout_seconds=2)
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="requirements", timings=DEV_SERVER_TIMINGS
            ) as handle:
                first_run_id = (await handle.describe()).run_id
                waiting = await wait_for_state(
                    handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, timeout=60, what="identification"
                )
                assert waiting.requirements is None, "a plain hosted link is not worth a read"
                await sandbox.control.set_identification_status(
                    waiting.identification_id, "Declined", retry=True, comment="Dora's passport photo is blurred"
                )
                declined = await wait_for_state(
                    handle, lambda s: s.phase == Phase.DECLINED and not s.outbox.pending, timeout=60,
                    what="Declined with its event delivered",
                )
                await save_histories(env.client, handle.id, first_run_id, "requirements-and-slas/declined_with_requirements")

    assert declined.requirements is not None
    (missing,) = declined.requirements.missing
    assert (missing.code, missing.retryable, missing.reject_labels) == ("kyc_identity", True, ["UNSATISFACTORY_PHOTOS"])
    assert missing.identification_id == waiting.identification_id
    assert "Iron requires: missing kyc_identity (UNSATISFACTORY_PHOTOS)." in d.current_details(declined)
    assert "iron requires    missing kyc_identity (UNSATISFACTORY_PHOTOS)" in format_state(declined)

    (event,) = [x for x in backend_app.data if x["phase"] == "Declined"]
    (item,) = event["requirements"]["missing"]
    assert (item["code"], item["retryable"], item["reject_labels"]) == ("kyc_identity", True, ["UNSATISFACTORY_PHOTOS"])
    assert event["requirements"]["requirements_due"] == ["kyc"]
    assert "Dora" not in repr(event) and "passport" not in repr(event), "Iron's free text stays out"
    earlier = [x for x in backend_app.data if x["phase"] != "Declined"]
    assert earlier and all(x["requirements"] is None for x in earlier)

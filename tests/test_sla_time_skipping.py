"""SLAs on the time-skipping server, with real deliveries to a backend that verifies them: a
customer who leaves the hosted KYC untouched past the 7-day SLA is flagged in its state, its
current details and the `OnboardingSlaBreached` search attribute, announced once with
`onboarding.sla_breached`, and cleared when the phase changes."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta

from contracts.messages import Phase
from demo.partner_backend import PartnerBackend, PartnerBackendThread
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from tests.workflow_harness import (
    FAST_TIMINGS,
    onboarding_with_events,
    save_histories,
    signal_event,
    time_skipping_env,
    until,
    wait_for_state,
)
import workflows.decide as d

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
# Polls back off to a day, so the days skipped here are not spent reading Iron every minute.
TIMINGS = FAST_TIMINGS.model_copy(update={"poll_max_seconds": 24 * 3600})



async def sla_attribute(handle) -> bool | None:
    description = await handle.describe()
    return {pair.key.name: pair.value for pair in description.typed_search_attributes}.get("OnboardingSlaBreached")


async def test_a_customer_past_the_seven_day_sla_is_flagged_announced_once_and_cleared(temporal_test_server_path, tmp_path):
    external_id = f"sla-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lambda line: None)) as server:
        backend = server.backend

        def breaches() -> list:
            return [e for e in backend.events_for(external_id) if e.type == "onboarding.sla_breached"]

        async with time_skipping_env(temporal_test_server_path) as env:
            events = EventsSettings(url=server.events_url, secret=SECRET, timeout_seconds=5)
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="sla", timings=TIMINGS
            ) as handle:
                first_run_id = (await handle.describe()).run_id
                waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, what="link")
                assert waiting.sla_breached is None and waiting.deadlines["sla"] == waiting.sla_since + timedelta(days=7)
                assert await sla_attribute(handle) is False

                await env.sleep(timedelta(days=6, hours=23))
                assert breaches() == [] and (await wait_for_state(handle, lambda s: True)).sla_breached is None

                await env.sleep(timedelta(hours=1, minutes=5))
                flagged = await wait_for_state(handle, lambda s: s.sla_breached is not None, what="the breach")
                await until("the sla_breached event", lambda: len(breaches()) == 1)
                breach = flagged.sla_breached
                assert (breach.sla, breach.phase, breach.limit_seconds) == ("customer", Phase.AWAITING_IDENTIFICATION, 7 * 86400)
                assert "SLA customer breached: AwaitingIdentification since" in d.current_details(flagged)
                assert await sla_attribute(handle) is True

                await env.sleep(timedelta(days=3))
                assert len(breaches()) == 1, "announced once per breach"
                assert (await wait_for_state(handle, lambda s: True)).sla_breached == breach

                await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
                await signal_event(handle, "identification_status", customer_id=waiting.iron_customer_id,
                                   entity_id=waiting.identification_id, status="Approved")
                signing = await wait_for_state(
                    handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS and not s.outbox.pending, what="signings"
                )
                assert signing.sla_breached is None, "the phase changed: the flag clears"
                assert signing.deadlines["sla"] == signing.sla_since + timedelta(days=7), "a new SLA for the new wait"
                assert "SLA" not in d.current_details(signing)
                assert await sla_attribute(handle) is False
                await save_histories(env.client, handle.id, first_run_id, "requirements-and-slas/sla_breached_then_cleared")

    (announced,) = breaches()
    phases = [e.phase for e in backend.events_for(external_id)]
    assert announced.phase == "AwaitingIdentification" and phases[-1] == "AwaitingSignings"

"""Reminders for an abandoned onboarding, on the time-skipping server with real deliveries to a
backend that verifies them: one, three and seven days after the customer was given the hosted
KYC link (on a quiet wait: no read of Iron for them), none once the customer moved on, and a new
schedule for the documents to sign."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta

from contracts.messages import Phase
from demo.partner_backend import PartnerBackend, PartnerBackendThread
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from starter import sign_all
from tests.workflow_harness import FAST_TIMINGS, onboarding_with_events, signal_event, time_skipping_env, until, wait_for_state

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
# Polls back off to a day, so the days skipped here are not spent reading Iron every minute.
TIMINGS = FAST_TIMINGS.model_copy(update={"poll_max_seconds": 24 * 3600})


def reminders(backend: PartnerBackend, external_id: str) -> list:
    return [e for e in backend.events_for(external_id) if e.type == "onboarding.reminder_due"]



async def test_reminders_at_one_three_and_seven_days_then_a_new_schedule_for_signings(temporal_test_server_path, tmp_path):
    external_id = f"remind-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lambda line: None)) as server:
        backend = server.backend
        async with time_skipping_env(temporal_test_server_path) as env:
            events = EventsSettings(url=server.events_url, secret=SECRET, timeout_seconds=5)
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="reminders", timings=TIMINGS
            ) as handle:
                waiting = await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, what="link")
                await until("the phase event", lambda: len(backend.events_for(external_id)) >= 1)
                assert reminders(backend, external_id) == []

                for count, days in ((1, 1), (2, 2), (3, 4)):  # at day 1, 3 and 7
                    await env.sleep(timedelta(days=days, minutes=5))
                    await until(f"reminder {count}", lambda c=count: len(reminders(backend, external_id)) >= c)
                    assert len(reminders(backend, external_id)) == count
                await env.sleep(timedelta(days=5))
                assert len(reminders(backend, external_id)) == 3, "three reminders for one wait"

                await sandbox.control.set_identification_status(waiting.identification_id, "Approved")
                await signal_event(handle, "identification_status", customer_id=waiting.iron_customer_id,
                                   entity_id=waiting.identification_id, status="Approved")
                await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, what="signings")
                await env.sleep(timedelta(days=1, minutes=5))
                await until("a reminder to sign", lambda: len(reminders(backend, external_id)) >= 4)
                await sign_all(env.client, external_id)
                await wait_for_state(handle, lambda s: s.phase == Phase.ACTIVE and not s.outbox.pending, what="Active, delivered")

    sent = reminders(backend, external_id)
    assert len(sent) == 4, "none once the customer moved on"
    sequences = [e.sequence for e in backend.events_for(external_id)]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)

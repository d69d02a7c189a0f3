"""What a backend outage costs, on the time-skipping server with real deliveries: a backend that
answers 503 for six hours gets each pending event on the production schedule (5 s, 5 min, 30 min,
then hourly), not every two minutes, and once it answers again the backlog arrives within the
hour, in order, none lost."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import timedelta

from contracts.messages import Phase
from demo.partner_backend import PartnerBackend, PartnerBackendThread
from iron_sandbox.testing import SandboxServer
from runtime.events_settings import EventsSettings
from tests.workflow_harness import FAST_TIMINGS, onboarding_with_events, time_skipping_env, until, wait_for_state

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OUTAGE = timedelta(hours=6)
# The bound on what one pending event may cost during a six-hour outage (each attempt is
# a billable action).
MOST_ATTEMPTS_IN_OUTAGE = 15


def attempts_on_schedule(settings: EventsSettings, within: timedelta) -> int:
    """Attempts the schedule makes within `within` of the first (which counts)."""
    attempts, elapsed = 1, settings.retry_delay(1)
    while elapsed <= within.total_seconds():
        attempts += 1
        elapsed += settings.retry_delay(attempts)
    return attempts


def test_the_production_schedule_keeps_a_six_hour_outage_within_its_bound():
    settings = EventsSettings(url="http://backend.example/events", secret=SECRET)
    assert [settings.retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [5, 300, 1800, 3600, 3600, 3600]
    assert attempts_on_schedule(settings, OUTAGE) == 9 <= MOST_ATTEMPTS_IN_OUTAGE


async def test_a_six_hour_outage_costs_each_pending_event_its_schedule_and_loses_nothing(temporal_test_server_path, tmp_path):
    external_id = f"outage-{uuid.uuid4().hex[:8]}"
    with SandboxServer() as sandbox, PartnerBackendThread(PartnerBackend([SECRET], out=lambda line: None)) as server:
        backend = server.backend
        backend.refuse("error", status=503)
        async with time_skipping_env(temporal_test_server_path) as env:
            events = EventsSettings(url=server.events_url, secret=SECRET, timeout_seconds=5)  # production's schedule
            async with onboarding_with_events(
                env.client, sandbox, tmp_path / "documents", external_id, events=events, task_queue="outage", timings=FAST_TIMINGS
            ) as handle:
                await wait_for_state(handle, lambda s: s.phase == Phase.AWAITING_IDENTIFICATION, what="link")
                await until("the first refusal", lambda: bool(backend.refused_ids))
                head = backend.refused_ids[0]
                await env.sleep(OUTAGE)
                attempts = backend.refused_ids.count(head)
                assert attempts_on_schedule(events, OUTAGE) - 1 <= attempts <= MOST_ATTEMPTS_IN_OUTAGE, backend.refused_ids
                assert set(backend.refused_ids) == {head}, "one event at a time: the head, never the next"

                backend.accept()
                await env.sleep(timedelta(hours=1))
                state = await wait_for_state(handle, lambda s: s.outbox.head is None, what="the backlog delivered")
                received = backend.sequences(external_id)
                assert received == list(range(1, state.outbox.last_sequence + 1)), "in order, none lost"
                assert backend.events_for(external_id)[0].webhook_id == head

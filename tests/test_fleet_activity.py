"""The fleet pass's page activity against the real sandbox over HTTP: what it reads from Iron,
and how Iron's failures reach Temporal (an outage retries, with Iron's Retry-After; a refused
key fails the pass at once, visibly). Temporal's visibility is not needed for Iron's side."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.fleet import FleetActivities, onboardings_query
from contracts.fleet import FleetPageInput
from iron_client import IronClient, IronSettings
from tests.workflow_harness import iron_settings_for


class NoOnboardings(FleetActivities):
    """Iron's side alone: every customer reads as one without an onboarding."""

    async def published_statuses(self, customer_ids):
        self.asked = list(customer_ids)
        return {}


async def test_a_page_of_iron_customers_is_counted_and_the_cursor_handed_on(sandbox):
    async with IronClient(iron_settings_for(sandbox)) as iron:
        created = {
            (await iron.create_customer(
                customer_type="Person", email=f"fleet{n}@example.com", external_id=f"fleet-act-{n}",
                idempotency_key=str(uuid.uuid4()),
            )).id
            for n in range(3)
        }
        activities = NoOnboardings(None, iron)  # type: ignore[arg-type]
        first = await ActivityEnvironment().run(activities.reconcile_fleet_page, FleetPageInput(page_size=2))
        assert first.counts.customers == 2 and first.counts.without_workflow == 2 and first.next_cursor
        seen = set(activities.asked)
        rest = await ActivityEnvironment().run(activities.reconcile_fleet_page, FleetPageInput(page_size=2, cursor=first.next_cursor))
        assert rest.counts.customers == 1 and rest.next_cursor is None, "the last page ends the pass"
        assert seen | set(activities.asked) == created and not seen & set(activities.asked)


async def test_an_iron_outage_is_retried_after_irons_retry_after(sandbox):
    await sandbox.control.set_faults(error_rate=1.0, error_statuses=[429], retry_after_seconds=7, paths=["/customers"])
    try:
        async with IronClient(iron_settings_for(sandbox)) as iron:
            with pytest.raises(ApplicationError) as raised:
                await ActivityEnvironment().run(NoOnboardings(None, iron).reconcile_fleet_page, FleetPageInput())  # type: ignore[arg-type]
    finally:
        await sandbox.control.clear_faults()
    assert not raised.value.non_retryable and raised.value.next_retry_delay == timedelta(seconds=7)


async def test_a_refused_key_fails_the_pass_instead_of_retrying_forever(sandbox):
    settings = IronSettings(base_url=sandbox.base_url, api_key=SecretStr("not-the-key"), timeout_seconds=5)
    async with IronClient(settings) as iron:
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(NoOnboardings(None, iron).reconcile_fleet_page, FleetPageInput())  # type: ignore[arg-type]
    assert raised.value.non_retryable and raised.value.type == "IronUnauthorized"


def test_the_visibility_query_names_running_onboardings_of_the_page_only():
    query = onboardings_query(["a-1", "b-2"])
    assert query == 'WorkflowType = "CustomerOnboarding" AND ExecutionStatus = "Running" AND IronCustomerId IN ("a-1", "b-2")'


class CountingNoOnboardings(FleetActivities):
    """Every customer without an onboarding; remembers every customer id compared."""

    compared: list[str]

    async def published_statuses(self, customer_ids):
        self.compared = getattr(self, "compared", []) + list(customer_ids)
        return {}

    async def sub_partner_scopes(self):
        return []


async def test_one_activity_pages_on_heartbeating_its_cursor_and_a_retry_resumes_there(sandbox):
    import dataclasses

    async with IronClient(iron_settings_for(sandbox)) as iron:
        for n in range(5):
            await iron.create_customer(customer_type="Person", email=f"beat{n}@example.com", external_id=f"fleet-beat-{n}",
                                       idempotency_key=str(uuid.uuid4()))
        activities = CountingNoOnboardings(None, iron)  # type: ignore[arg-type]
        env, beats = ActivityEnvironment(), []
        env.on_heartbeat = lambda *details: beats.append(details[0])
        whole = await env.run(activities.reconcile_fleet_page, FleetPageInput(page_size=2, max_pages=10))
        total = whole.counts.customers  # these five, and any an earlier test of the module made
        pages = (total + 1) // 2
        assert total >= 5 and (whole.counts.pages, whole.next_cursor) == (pages, None), "one activity, every page"
        assert [beat["counts"]["pages"] for beat in beats] == list(range(1, pages + 1)) and beats[-1]["next_cursor"] is None
        assert len(activities.compared) == total

        bounded = await ActivityEnvironment().run(activities.reconcile_fleet_page, FleetPageInput(page_size=2, max_pages=2))
        assert bounded.counts.pages == 2 and bounded.next_cursor, "max_pages bounds one activity; the cursor goes on"

        # The worker died after the first page: the retry gets that heartbeat and resumes there.
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[beats[0]])
        activities.compared = []
        resumed = await retry.run(activities.reconcile_fleet_page, FleetPageInput(page_size=2, max_pages=10))
        assert (resumed.counts.pages, resumed.counts.customers, resumed.next_cursor) == (pages, total, None), "counts carried on"
        assert len(activities.compared) == total - 2, "only the pages after the heartbeat were read again"

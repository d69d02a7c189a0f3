"""Iron's webhooks API on the sandbox, driven through `IronClient`: list, change and ping webhooks,
and the deliveries follow what the registered webhook says (enabled, topics, url)."""

from __future__ import annotations

import json
import uuid

import pytest

from iron_client import IronClient, IronNotFound
from iron_client.errors import IronBadRequest
from iron_client.models import ONBOARDING_TOPICS, WebhookEventType
from iron_client.webhooks import parse_event, verify
from iron_sandbox.testing import SandboxServer, WebhookCollector
from tests.sandbox_helpers import (  # noqa: F401  (fixtures)
    WEBHOOK_SECRET,
    collector,
    collector_server,
    iron,
    new_key,
    sandbox,
    sandbox_server,
)


async def _only_webhook(iron: IronClient):
    (webhook,) = await iron.all_webhooks()
    return webhook


async def test_a_configured_target_is_a_registered_enabled_webhook(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    assert (await iron.list_webhooks()).items == []
    await sandbox.control.set_webhooks(targets=[collector.url])
    webhook = await _only_webhook(iron)
    assert webhook.url == collector.url and webhook.enabled
    assert set(webhook.topics) == set(ONBOARDING_TOPICS)
    assert webhook.partner_id and webhook.unknown_values() == []


async def test_ping_delivers_a_signed_ping_naming_the_customer(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    await sandbox.control.set_webhooks(targets=[collector.url])
    webhook = await _only_webhook(iron)
    nonce = str(uuid.uuid4())
    key = new_key()
    assert await iron.ping_webhook(webhook.id, customer_id=nonce, idempotency_key=key) is True
    assert await iron.ping_webhook(webhook.id, customer_id=nonce, idempotency_key=key) is True  # replayed
    await sandbox.control.flush_webhooks()
    (delivery,) = collector.received
    verify(delivery["body"], delivery["headers"], [WEBHOOK_SECRET])
    event = parse_event(delivery["body"])
    assert (event.type, event.customer_id, event.variant) == ("ping", nonce, "Ping")
    assert uuid.UUID(event.entity_id)
    with pytest.raises(IronNotFound):
        await iron.ping_webhook(str(uuid.uuid4()), customer_id=nonce, idempotency_key=new_key())


async def test_deliveries_follow_enabled_topics_and_url(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    control = sandbox.control
    other = WebhookCollector()
    with other:
        await control.set_webhooks(targets=[collector.url])
        webhook = await _only_webhook(iron)

        disabled = await iron.update_webhook(webhook.id, enabled=False)
        assert disabled.enabled is False and disabled.url == collector.url  # the rest unchanged
        customer = await iron.create_customer(customer_type="Person", email="w@example.com", idempotency_key=new_key())
        await control.flush_webhooks()
        assert collector.received == []

        await iron.update_webhook(webhook.id, enabled=True, topics=[WebhookEventType.CUSTOMER_STATUS])
        identification = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
        await control.set_identification_status(identification.id, "Approved")
        await control.flush_webhooks()
        assert {json.loads(d["body"])["type"] for d in collector.received} == {"customer_status"}

        moved = await iron.update_webhook(webhook.id, url=other.url, topics=list(ONBOARDING_TOPICS), label="new home")
        assert (moved.url, moved.label) == (other.url, "new home")
        collector.clear()
        await control.set_customer_status(customer.id, "Suspended")
        await control.flush_webhooks()
        assert collector.received == [] and len(other.received) == 1
        assert (await control.webhooks())["targets"] == [other.url]

        with pytest.raises(IronBadRequest):
            await iron._request("PATCH", f"/webhooks/{webhook.id}", body=None)  # no body at all
        with pytest.raises(IronNotFound):
            await iron.update_webhook(str(uuid.uuid4()), enabled=True)


async def test_a_failing_target_shows_its_last_failure(
    sandbox: SandboxServer, iron: IronClient, collector: WebhookCollector
) -> None:
    collector.responses.extend([503] * 10)
    await sandbox.control.set_webhooks(targets=[collector.url], max_attempts=1)
    webhook = await _only_webhook(iron)
    assert webhook.last_failure is None
    await iron.ping_webhook(webhook.id, customer_id=str(uuid.uuid4()), idempotency_key=new_key())
    await sandbox.control.flush_webhooks()
    failed = await _only_webhook(iron)
    assert failed.last_failure is not None and failed.last_failure_reason == "HTTP 503"


async def test_webhooks_page_with_cursors(sandbox: SandboxServer, iron: IronClient) -> None:
    urls = [f"http://127.0.0.1:9/hook-{n}" for n in range(5)]
    await sandbox.control.set_webhooks(targets=urls)
    first = await iron.list_webhooks(page_size=2)
    assert [w.url for w in first.items] == urls[:2] and first.cursor
    second = await iron.list_webhooks(page_size=2, cursor=first.cursor)
    assert [w.url for w in second.items] == urls[2:4] and second.prev_cursor
    assert [w.url for w in await iron.all_webhooks()] == urls

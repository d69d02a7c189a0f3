"""Activity `deliver_event` over real HTTP to a loopback endpoint that verifies every delivery
with the `standardwebhooks` library, one secret at a time; then under a real Temporal server,
which retries it with backoff until the backend answers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import structlog
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.events import EVENT_DELIVERY_FAILED, EventDelivery
from contracts.events import ACTIVITY_DELIVER_EVENT, DeliverEventInput, DeliverEventResult, phase_changed
from contracts.messages import OnboardingState, Phase, SigningView
from contracts.outbox import Outbox
from iron_sandbox.testing import ServerThread
from runtime.events_settings import EventsSettings
from runtime.temporal import data_converter


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET_NEW, SECRET_OLD = new_secret(), new_secret()
AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
STATE = OnboardingState(
    external_id="cust-9",
    phase=Phase.AWAITING_SIGNINGS,
    iron_customer_id="c0ffee00-0000-4000-8000-000000000009",
    identification_url="https://kyc.example/private-link-4711",
    required_signings=[SigningView(id="terms", url="https://docs.example/t", display_name="Terms")],
)


def numbered(sequence: int):
    outbox = Outbox()
    for _ in range(sequence):
        outbox = outbox.append(phase_changed(STATE, previous_phase=Phase.AWAITING_IDENTIFICATION, at=AT))
    return outbox.pending[-1]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified_by: list[int]  # indexes into VerifyingEndpoint.secrets that verify it


@dataclass
class VerifyingEndpoint:
    secrets: list[str]
    statuses: list[int] = field(default_factory=list)  # answers in order, then 200
    delay: float = 0.0
    retry_after: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            verified = []
            for index, secret in enumerate(self.secrets):
                try:
                    Webhook(secret).verify(body, headers)
                    verified.append(index)
                except WebhookVerificationError:
                    pass
            self.deliveries.append(Delivery(headers, body, verified))
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.statuses.pop(0) if self.statuses else 200
            extra = {"retry-after": self.retry_after} if self.retry_after else {}
            return Response(status_code=status, headers=extra)

        return Starlette(routes=[Route("/events", receive, methods=["POST"])])


@pytest.fixture
def endpoint():
    target = VerifyingEndpoint(secrets=[SECRET_NEW, SECRET_OLD, new_secret()])
    with ServerThread(target.app()) as server:
        target.url = f"{server.root_url}/events"
        yield target


def delivery(url: str, *secrets: str, timeout: float = 5.0) -> EventDelivery:
    return EventDelivery(EventsSettings(url=url, secret=",".join(secrets), timeout_seconds=timeout))


async def run(activities: EventDelivery, req: DeliverEventInput) -> DeliverEventResult:
    try:
        return await ActivityEnvironment().run(activities.deliver_event, req)
    finally:
        await activities.aclose()


def assert_retryable(error: ApplicationError) -> None:
    assert error.type == EVENT_DELIVERY_FAILED
    assert not error.non_retryable


async def test_signed_once_per_secret_and_each_verifies(endpoint):
    event = numbered(1)
    result = await run(delivery(endpoint.url, SECRET_NEW, SECRET_OLD), DeliverEventInput.of(event))
    assert result.outcome == "delivered" and result.status_code == 200 and result.sequence == 1
    [got] = endpoint.deliveries
    # Verified separately with each configured secret; not with a third, unrelated one.
    assert got.verified_by == [0, 1]
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert got.headers["webhook-id"] == event.webhook_id == result.webhook_id
    assert abs(int(got.headers["webhook-timestamp"]) - datetime.now(timezone.utc).timestamp()) < 30
    assert got.headers["content-type"] == "application/json"
    assert got.body == event.body()
    assert json.loads(got.body)["data"]["sequence"] == 1


async def test_one_secret_one_signature(endpoint):
    await run(delivery(endpoint.url, SECRET_OLD), DeliverEventInput.of(numbered(1)))
    [got] = endpoint.deliveries
    assert got.verified_by == [1] and len(got.headers["webhook-signature"].split(" ")) == 1


async def test_a_retry_carries_the_same_id_and_another_event_a_new_one(endpoint):
    endpoint.statuses = [500]
    first = numbered(1)
    with pytest.raises(ApplicationError) as failed:
        await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(first))
    assert_retryable(failed.value)
    assert failed.value.details[0]["status_code"] == 500
    await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(first))
    await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(numbered(2)))
    ids = [d.headers["webhook-id"] for d in endpoint.deliveries]
    assert ids[0] == ids[1] != ids[2]
    assert endpoint.deliveries[0].body == endpoint.deliveries[1].body
    assert all(d.verified_by == [0] for d in endpoint.deliveries)


@pytest.mark.parametrize("status", [500, 503, 404, 400, 401, 302])
async def test_every_non_2xx_but_410_raises_retryably(endpoint, status):
    endpoint.statuses = [status]
    with pytest.raises(ApplicationError) as failed:
        await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(numbered(1)))
    assert_retryable(failed.value)


async def test_410_gone_is_final_and_not_retried(endpoint):
    endpoint.statuses = [410]
    result = await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(numbered(3)))
    assert result.outcome == "gone" and result.status_code == 410


async def test_429_retries_after_the_backend_s_retry_after(endpoint):
    endpoint.statuses, endpoint.retry_after = [429], "7"
    with pytest.raises(ApplicationError) as failed:
        await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(numbered(1)))
    assert_retryable(failed.value)
    assert failed.value.next_retry_delay == timedelta(seconds=7)


async def test_refused_connection_raises_retryably():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(ApplicationError) as failed:
            await run(delivery(f"http://127.0.0.1:{port}/events", SECRET_NEW), DeliverEventInput.of(numbered(1)))
    assert_retryable(failed.value)
    assert "ConnectError" in str(failed.value)


async def test_timeout_raises_retryably(endpoint):
    endpoint.delay = 2.0
    with pytest.raises(ApplicationError) as failed:
        await run(delivery(endpoint.url, SECRET_NEW, timeout=0.3), DeliverEventInput.of(numbered(1)))
    assert_retryable(failed.value)
    assert "Timeout" in str(failed.value)


async def test_without_a_url_nothing_is_sent(endpoint):
    activities = EventDelivery(EventsSettings(url=None, secret=None))
    result = await run(activities, DeliverEventInput.of(numbered(1)))
    assert result.outcome == "disabled" and endpoint.deliveries == []


async def test_logs_name_the_event_never_its_values_or_the_secret(endpoint):
    endpoint.statuses = [500]
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(ApplicationError):
            await run(delivery(endpoint.url, SECRET_NEW, SECRET_OLD), DeliverEventInput.of(numbered(1)))
        await run(delivery(endpoint.url, SECRET_NEW, SECRET_OLD), DeliverEventInput.of(numbered(1)))
    # A failure is a warning; a delivery is a debug line (counted by the metric), kept or not by
    # the logging this process configured.
    assert [entry["event"] for entry in logs][:1] == ["event_delivery_failed"] and logs[0]["http_status"] == 500
    delivered = [entry for entry in logs if entry["event"] == "event_delivered"]
    assert all(e["log_level"] == "debug" and e["webhook_id"] == numbered(1).webhook_id for e in delivered)
    text = json.dumps(logs, default=str)
    for value in (SECRET_NEW, SECRET_NEW[6:], SECRET_OLD[6:], "private-link-4711", "docs.example", STATE.iron_customer_id):
        assert value not in text
    signature = endpoint.deliveries[0].headers["webhook-signature"]
    assert signature.split(" ")[0][3:] not in text


# --- under Temporal: retried with backoff until the backend answers -----------------------------


@workflow.defn(sandboxed=False)
class DeliverOne:
    @workflow.run
    async def run(self, req: DeliverEventInput) -> DeliverEventResult:
        return await workflow.execute_activity(
            ACTIVITY_DELIVER_EVENT,
            req,
            result_type=DeliverEventResult,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_interval=timedelta(milliseconds=200)),
        )


async def test_temporal_retries_until_delivered_under_one_id(endpoint, temporal_test_server_path):
    endpoint.statuses = [500, 503, 502, 500]
    event = numbered(5)
    activities = delivery(endpoint.url, SECRET_NEW, SECRET_OLD)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server_path, data_converter=data_converter()
    )
    async with env, activities.http:
        async with Worker(
            env.client, task_queue="events-test", workflows=[DeliverOne], activities=activities.all(),
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            result = await env.client.execute_workflow(
                DeliverOne.run, DeliverEventInput.of(event), id="deliver-one", task_queue="events-test"
            )
    assert result.outcome == "delivered" and result.attempt == 5
    assert [d.headers["webhook-id"] for d in endpoint.deliveries] == [event.webhook_id] * 5
    assert all(d.verified_by == [0, 1] for d in endpoint.deliveries)
    assert len({d.body for d in endpoint.deliveries}) == 1


# --- the README's verification snippet works on what the activity sends --------------------------


def readme_snippet() -> str:
    from tests.readme import section

    text = section("Verifying an event", level=3)
    return text[text.index("```python\n") + len("```python\n"):text.index("\n```", text.index("```python"))]


async def test_the_readme_snippet_verifies_what_is_sent(endpoint, monkeypatch):
    await run(delivery(endpoint.url, SECRET_NEW, SECRET_OLD), DeliverEventInput.of(numbered(1)))
    await run(delivery(endpoint.url, SECRET_NEW, SECRET_OLD), DeliverEventInput.of(numbered(1)))
    await run(delivery(endpoint.url, SECRET_NEW), DeliverEventInput.of(numbered(2)))
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", f"{SECRET_OLD}, {SECRET_NEW}")
    namespace: dict = {}
    exec(compile(readme_snippet(), "README.md", "exec"), namespace)
    receive = namespace["receive"]
    answers = [receive(d.body, d.headers) for d in endpoint.deliveries]
    assert answers == [200, 200, 200]
    assert namespace["seen"] == {numbered(1).webhook_id, numbered(2).webhook_id}
    assert namespace["newest"] == {"cust-9": 2}
    first = endpoint.deliveries[0]
    assert receive(first.body.replace(b"cust-9", b"cust-8"), first.headers) == 401
    assert receive(first.body, {**first.headers, "webhook-signature": "garbage"}) == 401
    monkeypatch.setenv("ONBOARDING_EVENTS_SECRET", new_secret())
    exec(compile(readme_snippet(), "README.md", "exec"), namespace)
    assert namespace["receive"](first.body, first.headers) == 401

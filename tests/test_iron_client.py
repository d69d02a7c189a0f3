"""The typed client: how every kind of answer (or no answer) maps to an error class, which headers
go out, that the API key never shows up in any text, and the webhook signature helpers."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import socket
import time
import traceback
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from iron_client import (
    IronBadRequest,
    IronClient,
    IronConflict,
    IronError,
    IronFinalError,
    IronHasPendingIdentification,
    IronIdempotencyConflict,
    IronNotFound,
    IronRateLimited,
    IronRetryableError,
    IronServerError,
    IronSettings,
    IronUnauthorized,
    IronUnavailable,
)
from iron_client.client import _retry_after_seconds
from iron_client.errors import IronFinalError
from iron_client.spec import PINNED_API_VERSION, SPEC_PATH
from iron_client.webhooks import (
    WebhookFormatError,
    WebhookVerificationError,
    build_container,
    parse_event,
    parse_secrets,
    sign,
    verify,
)
from iron_sandbox.testing import SandboxServer, ServerThread
from tests.sandbox_helpers import API_KEY, iron, new_key, sandbox, sandbox_server  # noqa: F401  (fixtures)

SECRET_KEY = "sk-live-DO-NOT-LEAK-8f3a1c"


class Scripted:
    """A tiny real HTTP server answering scripted responses and recording what it received."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
        self.received: list[dict[str, Any]] = []

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               content_type: str = "application/json; charset=utf-8") -> None:
        raw = [(b"content-type", content_type.encode())] if content_type else []
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.answers.append((status, raw, body))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append({
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope.get("raw_path"),
            "query": scope["query_string"].decode(),
            "headers": {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            "body": body,
        })
        status, headers, payload = self.answers.pop(0) if self.answers else (200, [], b"{}")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def scripted_server():
    app = Scripted()
    with ServerThread(app) as server:
        server.script = app
        yield server


@pytest.fixture
def scripted(scripted_server):
    scripted_server.script.answers.clear()
    scripted_server.script.received.clear()
    yield scripted_server.script, scripted_server.root_url + "/api"


def client_for(base_url: str, **kw: Any) -> IronClient:
    return IronClient(IronSettings(base_url=base_url, api_key=SecretStr(kw.pop("api_key", SECRET_KEY)), **kw))


CUSTOMER = {
    "id": "01a200b0-babd-7221-8ad4-bf95474087d9", "customer_type": "Person", "status": "IdentificationRequired",
    "name": "", "email": "a@example.com", "partner_id": "5b0ad8a2-3f7e-4c1d-9a41-6f0c2d8e7b13",
    "identification_ids": [], "signing_ids": [], "created_at": "2025-01-01T00:00:00Z",
    "updated_at": "2025-01-01T00:00:00Z",
}


# --- error mapping ---------------------------------------------------------------------------------


async def test_server_errors_are_retryable_and_carry_the_trace_id(sandbox: SandboxServer, iron: IronClient) -> None:
    await sandbox.control.set_faults(fail_next=3, error_statuses=[500, 502, 503])
    for status in (500, 502, 503):
        with pytest.raises(IronServerError) as error:
            await iron.list_customers()
        assert error.value.status_code == status
        assert error.value.retryable and isinstance(error.value, IronRetryableError)
        assert error.value.trace_id and error.value.trace_id in str(error.value)
        assert "injected fault" in error.value.message
    assert (await iron.list_customers()).items == []


async def test_rate_limits_carry_retry_after_in_seconds_or_as_a_date(sandbox: SandboxServer, iron: IronClient) -> None:
    control = sandbox.control
    await control.set_faults(fail_next=1, error_statuses=[429], retry_after_seconds=7)
    with pytest.raises(IronRateLimited) as error:
        await iron.create_identification(new_key(), {"type": "Link"}, idempotency_key=new_key())
    assert error.value.retry_after == 7 and error.value.retryable
    assert error.value.message == "Creation Rate Limit Exceeded"

    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    await control.set_faults(fail_next=1, error_statuses=[429], retry_after=when)
    with pytest.raises(IronRateLimited) as error:
        await iron.list_customers()
    assert 100 <= error.value.retry_after <= 121

    await control.set_faults(fail_next=1, error_statuses=[429])
    with pytest.raises(IronRateLimited) as error:
        await iron.list_customers()
    assert error.value.retry_after is None


def test_retry_after_parsing() -> None:
    assert _retry_after_seconds("5") == 5
    assert _retry_after_seconds(" 1.5 ") == 1.5
    assert _retry_after_seconds("-3") == 0
    assert _retry_after_seconds(None) is None and _retry_after_seconds("") is None
    assert _retry_after_seconds("soon") is None
    assert _retry_after_seconds("inf") is None and _retry_after_seconds("nan") is None
    assert _retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0
    ahead = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= _retry_after_seconds(ahead) <= 61
    # The obsolete "-0000" zone parses as a naive datetime; it still means UTC.
    naive_form = ahead.replace("GMT", "-0000")
    assert 55 <= _retry_after_seconds(naive_form) <= 61


async def test_timeouts_and_lost_responses_are_unavailable(sandbox: SandboxServer) -> None:
    control = sandbox.control
    async with sandbox.client(timeout_seconds=0.3) as impatient:
        await control.set_faults(latency_ms=1500, fail_next=0, paths=["/customers"])
        with pytest.raises(IronUnavailable) as error:
            await impatient.list_customers()
        assert "timed out" in error.value.message and error.value.retryable
    # The sandbox still answers the abandoned request once its latency is over; wait for that, so
    # nothing of this test lands in the next one's request log.
    deadline = time.monotonic() + 10
    while not any(e["path"] == "/api/customers" for e in await control.requests()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await control.set_faults(lose_response_next=1)
    async with sandbox.client() as iron_:
        with pytest.raises(IronUnavailable) as error:
            await iron_.create_customer(customer_type="Person", email="l@example.com", idempotency_key=new_key())
        assert "RemoteProtocolError" in error.value.message
        assert error.value.status_code is None


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        async with client_for(f"http://127.0.0.1:{port}/api") as iron_:
            with pytest.raises(IronUnavailable) as error:
                await iron_.get_customer(new_key())
    assert "ConnectError" in error.value.message


async def test_a_base_url_without_a_scheme_is_a_final_error() -> None:
    async with client_for("localhost:9/api") as iron_:
        with pytest.raises(IronFinalError) as error:
            await iron_.list_customers()
    assert "IRON_BASE_URL" in error.value.message


async def test_final_errors_by_status(sandbox: SandboxServer, iron: IronClient) -> None:
    customer = await iron.create_customer(customer_type="Person", email="f@example.com", idempotency_key=new_key())
    with pytest.raises(IronBadRequest) as error:  # 400: a Business identification for a Person
        await iron.create_identification(customer.id, {"type": "Business", "company_data": {}, "phone": "+491",
                                                       "ip_address": "1.2.3.4", "questionnaire": {}},
                                         idempotency_key=new_key())
    assert error.value.status_code == 400 and not error.value.retryable
    with pytest.raises(IronBadRequest) as error:  # 422 from the signings endpoint
        await iron.create_signing(customer.id, content_id=new_key(), idempotency_key=new_key())
    assert error.value.status_code == 422
    with pytest.raises(IronNotFound):
        await iron.get_identification(new_key())
    async with sandbox.client(api_key="not-the-key") as intruder:
        with pytest.raises(IronUnauthorized) as error:
            await intruder.get_customer(customer.id)
    assert error.value.status_code == 401 and error.value.message == "authorization error"
    await sandbox.control.set_customer_status(customer.id, "Suspended")
    with pytest.raises(IronUnauthorized) as error:
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    assert error.value.status_code == 403
    await sandbox.control.set_customer_status(customer.id, "Active")
    first = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    with pytest.raises(IronHasPendingIdentification):
        await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    key = new_key()
    await iron.create_customer(customer_type="Person", email="one@example.com", idempotency_key=key)
    with pytest.raises(IronIdempotencyConflict):
        await iron.create_customer(customer_type="Person", email="two@example.com", idempotency_key=key)
    await sandbox.control.set_faults(fail_next=1, error_statuses=[409])
    with pytest.raises(IronConflict) as error:
        await iron.get_required_signings(customer.id)
    assert type(error.value) is IronConflict and isinstance(error.value, IronFinalError)
    assert first.status == "Pending"


@pytest.mark.parametrize(
    "status, body, content_type, expected, message",
    [
        (409, b"Has Pending Identification", "text/plain", IronHasPendingIdentification, "Has Pending Identification"),
        (409, b'"Idempotency key reused with a different request body"', None, IronIdempotencyConflict, None),
        (409, b'"Conflict"', None, IronConflict, "Conflict"),
        (404, b'"Customer not found"', None, IronNotFound, "Customer not found"),
        (403, b'"Forbidden"', None, IronUnauthorized, "Forbidden"),
        (401, b"authorization error", "text/plain", IronUnauthorized, "authorization error"),
        (413, b"", None, IronBadRequest, "Request Entity Too Large"),
        (500, b'{"message":"boom","trace_id":"t-1"}', None, IronServerError, "boom"),
        (503, b"<html>upstream down</html>", "text/html", IronServerError, "<html>upstream down</html>"),
        (302, b"", None, IronServerError, None),
    ],
)
async def test_error_bodies_in_every_form(scripted, status, body, content_type, expected, message) -> None:
    script, base_url = scripted
    script.answer(status, body, content_type=content_type or "application/json; charset=utf-8",
                  headers={"location": "/elsewhere"} if status == 302 else None)
    async with client_for(base_url) as iron_:
        with pytest.raises(expected) as error:
            await iron_.get_customer(new_key())
    assert type(error.value) is expected
    assert error.value.status_code == status
    if message is not None:
        assert error.value.message == message
    if status == 500:
        assert error.value.trace_id == "t-1"


async def test_unusable_success_answers(scripted) -> None:
    script, base_url = scripted
    script.answer(200, b"not json", content_type="text/plain")
    script.answer(200, b"\x1f\x8b garbage", headers={"content-encoding": "gzip"})
    script.answer(200, gzip.compress(json.dumps(CUSTOMER).encode()), headers={"content-encoding": "gzip"})
    script.answer(204, b"")
    async with client_for(base_url) as iron_:
        with pytest.raises(IronServerError):
            await iron_.get_customer(new_key())
        with pytest.raises(IronUnavailable):  # a body that cannot be decoded is no answer
            await iron_.get_customer(new_key())
        assert (await iron_.get_customer(new_key())).id == CUSTOMER["id"]
        assert await iron_.update_customer(new_key(), email="x@example.com") is None


def test_the_error_tree() -> None:
    for cls in (IronServerError, IronRateLimited, IronUnavailable):
        assert issubclass(cls, IronRetryableError) and cls.retryable
    for cls in (IronBadRequest, IronUnauthorized, IronNotFound, IronConflict, IronIdempotencyConflict,
                IronHasPendingIdentification):
        assert issubclass(cls, IronFinalError) and not cls.retryable
    assert issubclass(IronHasPendingIdentification, IronConflict)


# --- headers ---------------------------------------------------------------------------------------


async def test_headers_sent(scripted) -> None:
    script, base_url = scripted
    sub_partner = new_key()
    script.answer(201, json.dumps(CUSTOMER).encode())
    script.answer(200, json.dumps(CUSTOMER).encode())
    script.answer(200, b'{"items":[]}')
    async with client_for(base_url, sub_partner_id=sub_partner, api_version="2026-07-01") as iron_:
        await iron_.create_customer(customer_type="Person", email="h@example.com", idempotency_key="key-1", name=None)
        await iron_.get_customer_by_external_id("a b/c?d")
        await iron_.list_customers(status=["Active", "Suspended"], page_size=5)
    create, lookup, listing = script.received
    assert create["method"] == "POST" and create["path"] == "/api/customers"
    assert create["headers"]["x-api-key"] == SECRET_KEY
    assert create["headers"]["idempotency-key"] == "key-1"
    assert create["headers"]["x-sub-partner-id"] == sub_partner
    assert create["headers"]["x-api-version"] == "2026-07-01"
    assert create["headers"]["content-type"] == "application/json; charset=utf-8"
    assert json.loads(create["body"]) == {"customer_type": "Person", "email": "h@example.com"}  # no nulls
    assert "idempotency-key" not in lookup["headers"] and "content-type" not in lookup["headers"]
    assert lookup["raw_path"] == b"/api/customers/a%20b%2Fc%3Fd/external"  # one segment, percent-encoded
    assert listing["query"] == "page_size=5&status=Active&status=Suspended"

    script.answer(200, b'{"items":[]}')
    async with client_for(base_url) as plain:
        await plain.list_customers()
        with pytest.raises(ValueError):
            await plain.create_customer(customer_type="Person", email="h@example.com", idempotency_key="")
    (bare,) = script.received[3:]
    assert "x-sub-partner-id" not in bare["headers"]
    assert bare["headers"]["x-api-version"] == PINNED_API_VERSION  # pinned even when not configured
    assert "idempotency-key" not in bare["headers"]
    assert len(script.received) == 4, "an empty idempotency key is refused before sending"


@pytest.mark.parametrize("dots", [".", ".."])
async def test_a_dot_segment_id_stays_one_segment_of_its_route(sandbox: SandboxServer, iron: IronClient, dots) -> None:
    """Before: `..` was resolved against the path (`GET /api/external`) and `.` dropped
    (`GET /api/customers/external`), so the look-up never reached the look-up route."""
    made = await iron.create_customer(customer_type="Person", email="d@example.com", idempotency_key=new_key(),
                                      external_id=dots)
    await sandbox.control.requests(clear=True)
    assert (await iron.get_customer_by_external_id(dots)).id == made.id
    with pytest.raises(IronNotFound):
        await iron.get_customer(dots)
    lookup, read = await sandbox.control.requests()
    assert lookup["path"] == f"/api/customers/{dots}/external"
    assert read["path"] == f"/api/customers/{dots}"


async def test_every_path_segment_is_percent_encoded(scripted) -> None:
    script, base_url = scripted
    ids = ["..", ".", "../x?y#z", "a b/c"]
    async with client_for(base_url) as iron_:
        with pytest.raises(ValueError):
            await iron_.get_customer("")  # `/customers/` is another route: the list
        for identifier in ids:
            for call in (iron_.get_customer, iron_.get_identification, iron_.get_required_signings):
                script.answer(404, b'{"message": "not found"}')
                with pytest.raises(IronNotFound):
                    await call(identifier)
    encoded = [b"%2E%2E", b"%2E", b"..%2Fx%3Fy%23z", b"a%20b%2Fc"]
    assert [r["raw_path"] for r in script.received] == [
        path
        for segment in encoded
        for path in (
            b"/api/customers/" + segment,
            b"/api/identifications/" + segment,
            b"/api/customers/" + segment + b"/required-signings",
        )
    ]


async def test_sub_partner_and_version_reach_the_sandbox(sandbox: SandboxServer) -> None:
    sub_partner = new_key()
    async with sandbox.client(sub_partner_id=sub_partner, api_version="2025-03-13") as scoped:
        created = await scoped.create_customer(customer_type="Person", email="s@example.com", idempotency_key=new_key())
        assert (await scoped.get_customer(created.id)).partner_id == sub_partner
    async with sandbox.client() as unscoped:
        with pytest.raises(IronNotFound):
            await unscoped.get_customer(created.id)
    async with sandbox.client(api_version="2019-01-01") as outdated:
        # GET /customers lists no 400: the sandbox refuses with the client error it does list.
        with pytest.raises(IronFinalError, match="X-API-Version"):
            await outdated.list_customers()
    log = await sandbox.control.requests()
    (create,) = [e for e in log if e["method"] == "POST"]
    assert create["sub_partner_id"] == sub_partner and create["api_version"] == "2025-03-13"
    assert create["authorized"] is True
    assert all(e["idempotency_key"] is None for e in log if e["method"] == "GET")


# --- the key stays secret --------------------------------------------------------------------------


async def test_the_api_key_never_appears_in_any_text(sandbox: SandboxServer, scripted) -> None:
    script, base_url = scripted
    errors: list[IronError] = []
    with structlog.testing.capture_logs() as sandbox_logs:
        async with sandbox.client(api_key=SECRET_KEY) as wrong_key:
            with pytest.raises(IronError) as error:
                await wrong_key.list_customers()
            errors.append(error.value)
            assert repr(wrong_key) and SECRET_KEY not in repr(wrong_key)
            assert SECRET_KEY not in repr(wrong_key.settings) and SECRET_KEY not in str(wrong_key.settings)
    script.answer(500, json.dumps({"message": "boom", "trace_id": "t"}).encode())
    script.answer(404, b'"nope"')
    script.answer(429, b'"slow down"', headers={"retry-after": "3"})
    script.answer(409, b'"Has Pending Identification"')
    async with client_for(base_url) as iron_:
        for _ in range(4):
            with pytest.raises(IronError) as error:
                await iron_.create_customer(customer_type="Person", email="k@example.com", idempotency_key=new_key())
            errors.append(error.value)
    async with client_for("http://127.0.0.1:9/api", timeout_seconds=0.5) as refused:
        with pytest.raises(IronError) as error:
            await refused.list_customers()
        errors.append(error.value)
    assert {type(e) for e in errors} >= {IronUnauthorized, IronServerError, IronNotFound, IronRateLimited,
                                          IronHasPendingIdentification, IronUnavailable}
    for err in errors:
        texts = [str(err), repr(err), err.message, err.body or "", repr(err.args),
                 "".join(traceback.format_exception(err))]
        assert not any(SECRET_KEY in text for text in texts), type(err)
    assert any(entry.get("status") == 401 for entry in sandbox_logs), "the sandbox logged the refused request"
    assert SECRET_KEY not in repr(sandbox_logs)
    assert SECRET_KEY not in json.dumps(await sandbox.control.requests())
    assert API_KEY not in json.dumps(await sandbox.control.requests())


# --- webhook helpers -------------------------------------------------------------------------------

BODY = json.dumps(build_container(
    "customer_status", "c-1", "CustomerStatus", {"id": "c-1", "status": "Active"}, timestamp="2025-01-01T00:00:00Z"
)).encode()


def test_sign_and_verify_round_trip() -> None:
    headers = sign("s1", BODY)
    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1=")
    verify(BODY, headers, ["s1"])
    verify(BODY, {k.upper(): v for k, v in headers.items()}, ["s1"])  # header names in any case
    with pytest.raises(WebhookVerificationError):
        verify(BODY + b" ", headers, ["s1"])
    with pytest.raises(WebhookVerificationError):
        verify(BODY, headers, ["s2"])
    with pytest.raises(WebhookVerificationError):
        verify(BODY, headers, [])
    assert sign("s1", BODY)["webhook-id"] != sign("s1", BODY)["webhook-id"]


def test_verify_with_rotated_secrets() -> None:
    new_headers = sign("new", BODY)
    old_headers = sign("old", BODY)
    secrets = parse_secrets(" new , old ,,")
    assert secrets == ["new", "old"]
    verify(BODY, new_headers, secrets)
    verify(BODY, old_headers, secrets)
    with pytest.raises(WebhookVerificationError):
        verify(BODY, old_headers, ["new"])
    # A sender mid-rotation may send both signatures in one header.
    both = dict(new_headers)
    both["webhook-signature"] = f"v1={'0' * 64} {new_headers['webhook-signature']}"
    verify(BODY, both, ["new"])


def test_verify_tolerance_window() -> None:
    now = 1_750_000_000
    for offset, ok in ((0, True), (299, True), (-299, True), (301, False), (-301, False), (3600, False)):
        headers = sign("s", BODY, timestamp=now - offset)
        if ok:
            verify(BODY, headers, ["s"], now=now)
        else:
            with pytest.raises(WebhookVerificationError):
                verify(BODY, headers, ["s"], now=now)
    verify(BODY, sign("s", BODY, timestamp=now - 900), ["s"], now=now, tolerance_seconds=1000)
    for bad in ({"webhook-timestamp": "yesterday"}, {"webhook-timestamp": ""}, {"webhook-signature": "v2=abc"},
                {"webhook-signature": ""}):
        headers = dict(sign("s", BODY, timestamp=now), **bad)
        with pytest.raises(WebhookVerificationError):
            verify(BODY, headers, ["s"], now=now)


def test_parse_wrapped_and_bare_events() -> None:
    wrapped = parse_event(BODY)
    assert (wrapped.type, wrapped.customer_id, wrapped.entity_id, wrapped.status, wrapped.variant) == (
        "customer_status", "c-1", "c-1", "Active", "CustomerStatus")
    bare = parse_event(build_container("identification_status", "c-1", "IdentificationStatus",
                                       {"id": "i-1", "status": "Approved"}, timestamp="t", wrapped=False))
    assert (bare.type, bare.entity_id, bare.status, bare.variant) == ("identification_status", "i-1", "Approved", None)
    created = parse_event(build_container("customer_created", "c-1", "Event", {"id": "c-1", "kind": "CustomerCreated"},
                                          timestamp="t"))
    assert created.is_onboarding and created.variant == "Event" and created.raw_message["kind"] == "CustomerCreated"
    # A variant-named type is normalised to Iron's snake_case.
    odd = parse_event({"type": "CustomerStatus", "timestamp": "t",
                       "data": {"customer_id": "c", "message": {"CustomerStatus": {"id": "c", "status": "Active"}}}})
    assert odd.type == "customer_status"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b"{}",
        b'{"type": "", "timestamp": "t", "data": {}}',
        b'{"type": "customer_status", "data": {}}',
        b'{"type": "customer_status", "timestamp": "t"}',
        b'{"type": "customer_status", "timestamp": "t", "data": []}',
        b'{"type": "customer_status", "timestamp": "t", "data": {"customer_id": 5, "message": {}}}',
        b'{"type": "customer_status", "timestamp": "t", "data": {"customer_id": "c", "message": []}}',
        b'{"type": "customer_status", "timestamp": "t", "data": {"customer_id": "c", "message": {"id": 7}}}',
        b'{"type": "customer_status", "timestamp": "t", "data": {"message": {"CustomerStatus": {"status": 1}}}}',
    ],
)
def test_malformed_webhook_bodies(body: bytes) -> None:
    with pytest.raises(WebhookFormatError):
        parse_event(body)


# --- the API version and schema drift --------------------------------------------------------------


def test_the_pinned_api_version_is_the_newest_the_spec_copy_documents(openapi_spec_path) -> None:
    import re

    import yaml

    spec = yaml.safe_load(SPEC_PATH.read_text())
    description = spec["components"]["parameters"]["XApiVersion"]["description"]
    supported = re.search(r"Supported versions: ([0-9, -]+)", description).group(1)
    versions = sorted(v.strip() for v in supported.split(",") if v.strip())
    assert versions and PINNED_API_VERSION == versions[-1], (PINNED_API_VERSION, versions)
    from runtime.settings import ProcessSettings

    def iron_settings(environ: dict[str, str]) -> IronSettings:
        return ProcessSettings.load(environ).iron_settings()  # the one reader of IRON_*

    assert iron_settings({}).api_version == PINNED_API_VERSION
    assert iron_settings({"IRON_API_VERSION": "2025-03-13"}).api_version == "2025-03-13"
    assert iron_settings({"IRON_API_VERSION": "  "}).api_version == PINNED_API_VERSION


async def test_the_client_sends_the_pinned_version_to_iron(sandbox: SandboxServer) -> None:
    from runtime.settings import ProcessSettings

    async with IronClient(ProcessSettings.load(sandbox.env()).iron_settings()) as iron_:
        await iron_.list_customers()
    (listing,) = [e for e in await sandbox.control.requests() if e["path"] == "/api/customers"]
    assert listing["api_version"] == PINNED_API_VERSION


def test_unknown_enum_values_are_kept_as_iron_sent_them() -> None:
    from iron_client.models import Customer, CustomerRequirements, CustomerStatus, Identification, Webhook, wire

    known = Customer.model_validate(CUSTOMER)
    assert known.status is CustomerStatus.IDENTIFICATION_REQUIRED and known.unknown_values() == []
    drifted = Customer.model_validate(dict(CUSTOMER, status="Frozen", identification_status="OnHold", novel={"a": 1}))
    assert drifted.status == "Frozen" and wire(drifted.status) == "Frozen"
    assert drifted.unknown_values() == [("status", "Frozen"), ("identification_status", "OnHold")]

    identification = Identification.model_validate({
        "id": "01a200b0-babd-7221-8ad4-bf95474087d9", "status": "OnHold", "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        "step_status": {"identity": {"result": "Approved", "retry": False},
                        "selfie": {"result": "Reconsidering", "retry": False},
                        "liveness": {"result": "Pending", "retry": True}},
    })
    assert identification.status == "OnHold"
    assert identification.step_status.retryable_steps() == ["liveness"]
    assert identification.unknown_values() == [
        ("status", "OnHold"), ("step_status.selfie.result", "Reconsidering"), ("step_status.step", "liveness"),
    ]

    requirements = CustomerRequirements.model_validate({
        "requirements_due": ["kyc", "kyt"], "complete": [], "pending": [], "issues": [],
        "missing": [{"code": "kyc_liveness", "reject_labels": [], "reject_reasons": [], "missing_questions": []},
                    {"code": "kyc_selfie", "reject_labels": [], "reject_reasons": [], "missing_questions": []}],
    })
    assert [wire(item.code) for item in requirements.missing] == ["kyc_liveness", "kyc_selfie"]
    assert requirements.unknown_values() == [("requirements_due", "kyt"), ("missing[0].code", "kyc_liveness")]

    webhook = Webhook.model_validate({
        "id": "01a200b0-babd-7221-8ad4-bf95474087d9", "label": "", "url": "https://x.example/webhooks/iron",
        "partner_id": "5b0ad8a2-3f7e-4c1d-9a41-6f0c2d8e7b13", "topics": ["CustomerStatus", "CustomerDeleted"],
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "enabled": True,
    })
    assert webhook.unknown_values() == [("topics", "CustomerDeleted")]

"""The sandbox speaks Iron's contract: every onboarding operation, driven through `IronClient`,
answers a status the spec lists, with a body that validates against the spec's schema; bad
input of any kind answers 4xx with a JSON-string body, never a 5xx."""

from __future__ import annotations

import json
import string
import urllib.parse
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

from iron_client import IronClient, IronNotFound
from iron_client.errors import IronBadRequest, IronHasPendingIdentification, IronUnauthorized
from iron_sandbox.testing import SandboxServer
from tests.sandbox_helpers import (  # noqa: F401  (fixtures)
    API_KEY,
    JSON_TYPE,
    Spec,
    business_identification,
    iron,
    new_key,
    person_identification,
    sandbox,
    sandbox_server,
    token_identification,
)


@pytest.fixture(scope="module")
def spec(openapi_spec_path) -> Spec:
    return Spec(openapi_spec_path)


class Recorder:
    """Keeps every raw exchange an `IronClient` makes."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self.http_clients: list[httpx.AsyncClient] = []

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        raw_path = response.request.url.raw_path.decode().split("?")[0]
        self.exchanges.append(
            {
                "method": response.request.method,
                "path": raw_path.removeprefix("/api"),
                "status": response.status_code,
                "content_type": response.headers.get("content-type"),
                "body": response.content,
            }
        )

    def client(self, server: SandboxServer, **overrides: Any) -> IronClient:
        settings_ = server.settings(**overrides)
        http = httpx.AsyncClient(base_url=settings_.base_url, event_hooks={"response": [self.hook]}, timeout=10)
        self.http_clients.append(http)
        return IronClient(settings_, http_client=http)

    async def aclose(self) -> None:
        for http in self.http_clients:
            await http.aclose()


def check_exchange(spec: Spec, exchange: dict[str, Any]) -> str:
    """Validate one raw response against the spec; returns the operation it belongs to."""
    template, operation = spec.operation(exchange["method"], exchange["path"])
    status = str(exchange["status"])
    where = f"{exchange['method']} {exchange['path']} -> {status}"
    assert status in operation["responses"], f"{where}: status not in the spec ({sorted(operation['responses'])})"
    if status == "401":
        # FACTS.md: the auth layer answers text/plain "authorization error".
        assert exchange["content_type"].startswith("text/plain"), where
        assert exchange["body"] == b"authorization error", where
        return f"{exchange['method']} {template}"
    content = operation["responses"][status].get("content")
    if status == "204":
        assert exchange["body"] == b"", f"{where}: a 204 has no body"
        return f"{exchange['method']} {template}"
    assert content is not None, where
    assert exchange["content_type"] == JSON_TYPE, f"{where}: content-type {exchange['content_type']}"
    schema = content[JSON_TYPE]["schema"]
    body = json.loads(exchange["body"])
    errors = sorted(spec.validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].path)}\n{json.dumps(body)[:800]}"
    return f"{exchange['method']} {template}"


async def test_every_onboarding_operation_answers_per_the_spec(sandbox: SandboxServer, spec: Spec) -> None:
    recorder = Recorder()
    control = sandbox.control
    async with recorder.client(sandbox) as iron, recorder.client(sandbox, api_key="wrong-key") as intruder:
        person = await iron.create_customer(
            customer_type="Person", email="ada@example.com", name="Ada", external_id="ext-ada", idempotency_key=new_key()
        )
        business = await iron.create_customer(customer_type="Business", email="office@acme.example", idempotency_key=new_key())
        assert business.name == ""
        for _ in range(3):
            await iron.create_customer(customer_type="Person", email="x@example.com", idempotency_key=new_key())
        assert (await iron.get_customer(person.id)).external_id == "ext-ada"
        assert (await iron.get_customer_by_external_id("ext-ada")).id == person.id
        await iron.update_customer(person.id, email="ada@lovelace.example", external_id="ext-ada")
        assert (await iron.get_customer(person.id)).email == "ada@lovelace.example"

        # Paging and filters.
        first = await iron.list_customers(page_size=2, sort_order="asc")
        assert [c.id for c in first.items][:1] == [person.id] and first.cursor
        second = await iron.list_customers(page_size=2, sort_order="asc", cursor=first.cursor)
        assert second.items and second.items[0].id not in {c.id for c in first.items}
        assert [c.id async for c in iron.iter_customers(page_size=2)].__len__() == 5
        only_business = await iron.list_customers(customer_type=["Business"])
        assert [c.id for c in only_business.items] == [business.id]
        found = await iron.list_customers(search_term="LOVELACE")
        assert [c.id for c in found.items] == [person.id]

        # Requirements before anything, a Link identification, the pending conflict.
        assert (await iron.get_customer_requirements(person.id)).requirements_due == ["kyc"]
        link = await iron.create_identification(person.id, {"type": "Link", "with_edd": False}, idempotency_key=new_key())
        assert link.url and link.status == "Pending"
        with pytest.raises(IronHasPendingIdentification):
            await iron.create_identification(person.id, {"type": "Link"}, idempotency_key=new_key())
        assert (await iron.get_customer_requirements(person.id)).missing
        await control.set_identification_status(link.id, "Processed")
        await control.set_identification_status(link.id, "PendingReview")
        assert (await iron.get_customer_requirements(person.id)).pending
        pending = await iron.list_customers(identification_status=["PendingReview"])
        assert [c.id for c in pending.items] == [person.id]
        decided = await iron.decide_sandbox_identification(link.id, approved=True, idempotency_key=new_key())
        assert decided.status == "Approved"
        assert (await iron.get_identification(link.id)).residence_country
        page = await iron.list_identifications(person.id)
        assert [i.id for i in page.items] == [link.id]

        # Signings.
        required = await iron.get_required_signings(person.id)
        assert len(required) == 2
        for item in required:
            await iron.create_signing(person.id, content_id=item.id, idempotency_key=new_key())
        assert (await iron.get_customer(person.id)).status == "Active"
        assert len((await iron.list_signings(person.id)).items) == 2
        assert (await iron.get_customer_requirements(person.id)).requirements_due == []
        with pytest.raises(IronBadRequest) as signing_error:
            await iron.create_signing(person.id, content_id=required[0].id, idempotency_key=new_key())
        assert signing_error.value.status_code == 422

        # The other kinds of identification.
        business_ident = await iron.create_identification(
            business.id, business_identification(documents=False), idempotency_key=new_key()
        )
        assert business_ident.url and business_ident.step_status and business_ident.step_status.company_documents
        await control.set_identification_status(business_ident.id, "Declined")
        assert (await iron.get_customer_requirements(business.id)).missing
        archived_ident = await iron.archive_identification(business_ident.id)
        assert archived_ident.status == "Archived"
        other = await iron.create_customer(customer_type="Person", email="p@example.com", idempotency_key=new_key())
        person_ident = await iron.create_identification(other.id, person_identification(), idempotency_key=new_key())
        assert person_ident.step_status and person_ident.step_status.identity
        await control.set_identification_status(person_ident.id, "Expired")
        token_ident = await iron.create_identification(
            other.id, token_identification("incomplete-token"), idempotency_key=new_key()
        )
        assert token_ident.url and "missing" in token_ident.url
        assert (await iron.get_customer_requirements(other.id)).missing[0].missing_questions

        # Errors the spec lists.
        with pytest.raises(IronNotFound):
            await iron.get_customer(str(uuid.uuid4()))
        with pytest.raises(IronNotFound):
            await iron.get_customer_by_external_id("nobody")
        with pytest.raises(IronUnauthorized):
            await intruder.list_customers()
        await control.set_customer_status(other.id, "Suspended")
        with pytest.raises(IronUnauthorized) as forbidden:  # 403 maps to IronUnauthorized
            await iron.create_identification(other.id, {"type": "Link"}, idempotency_key=new_key())
        assert forbidden.value.status_code == 403

        archived = await iron.archive_customer(person.id)
        assert archived.status == "Archived"
        with pytest.raises(IronBadRequest):
            await iron.create_identification(person.id, {"type": "Link"}, idempotency_key=new_key())

        # The sandbox reset has no client method: call it through the same recorded connection.
        response = await iron._http.post("/sandbox/reset", headers={"X-API-Key": API_KEY, "IDEMPOTENCY-KEY": new_key()})
        assert response.json() is True
        assert (await iron.list_customers()).items == []

    await recorder.aclose()
    covered = {check_exchange(spec, exchange) for exchange in recorder.exchanges}
    successes = {
        f"{e['method']} {spec.template_for(e['path'])}" for e in recorder.exchanges if 200 <= e["status"] < 300
    }
    expected = {f"{m} {t}" for m, t in spec.onboarding_operations()}
    assert expected <= successes, f"operations never answered 2xx: {sorted(expected - successes)}"
    assert expected <= covered


async def test_webhook_bodies_follow_the_spec(sandbox: SandboxServer, iron: IronClient, spec: Spec) -> None:
    """The bare form validates as `WebhookContainer`; the wrapped form carries the same message
    under its variant name."""
    control = sandbox.control
    customer = await iron.create_customer(customer_type="Person", email="a@example.com", idempotency_key=new_key())
    await control.set_webhooks(wrapped=False)
    ident = await iron.create_identification(customer.id, {"type": "Link"}, idempotency_key=new_key())
    await control.set_webhooks(wrapped=True)
    await control.set_identification_status(ident.id, "Approved")
    events = await control.events()
    assert [e["type"] for e in events] == [
        "customer_created", "identification_status", "identification_status", "customer_status"
    ]
    container = spec.component("WebhookContainer")
    message_schemas = {
        "CustomerStatus": spec.component("WebhookCustomerStatusMessage"),
        "IdentificationStatus": spec.component("WebhookIdentificationStatusMessage"),
        "Event": spec.component("WebhookEventMessage"),
    }
    bare = [e["body"] for e in events[1:2]]
    for body in bare:
        container.validate(body)
        assert body["data"]["message"] == {"id": ident.id, "status": "Pending"}
    for event in [events[0], *events[2:]]:
        body = event["body"]
        (variant, message), = body["data"]["message"].items()
        message_schemas[variant].validate(message)
        bare_body = dict(body, data=dict(body["data"], message=message))
        container.validate(bare_body)
    assert events[0]["body"]["data"]["message"] == {"Event": {"id": customer.id, "kind": "CustomerCreated"}}
    assert events[3]["body"]["data"]["message"] == {"CustomerStatus": {"id": customer.id, "status": "SigningsRequired"}}


# --- bad input -------------------------------------------------------------------------------------


def raw(server: SandboxServer, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None,
        content: bytes | None = None) -> httpx.Response:
    base = {"X-API-Key": API_KEY, "IDEMPOTENCY-KEY": new_key()}
    base.update(headers or {})
    base = {k: v for k, v in base.items() if v is not None}
    if body is not None:
        return _http().request(method, server.base_url + path, json=body, headers=base)
    return _http().request(method, server.base_url + path, content=content, headers=base)


_shared: list[httpx.Client] = []


@pytest.fixture(scope="module", autouse=True)
def _close_shared_client():
    yield
    while _shared:
        _shared.pop().close()


def _http() -> httpx.Client:
    """One connection pool for the whole module (building a client per request is slow)."""
    if not _shared:
        _shared.append(httpx.Client(timeout=10))
    return _shared[0]


def assert_string_error(response: httpx.Response, *statuses: int) -> str:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == JSON_TYPE
    message = response.json()
    assert isinstance(message, str) and message
    return message


def test_every_refusal_uses_a_documented_status(sandbox_server: SandboxServer, spec: Spec) -> None:
    """Bad input answers 400 where the operation's spec lists 400, else the closest client error it
    lists (422, then 401); a path id that is not a UUID answers 404 where listed. Always a JSON
    string saying what was wrong."""
    sb = sandbox_server
    customer = raw(sb, "POST", "/customers", body={"customer_type": "Person", "email": "a@example.com"}).json()
    cid = customer["id"]
    cases = [
        ("POST", "/customers", {"customer_type": "Robot", "email": "a@example.com"}, {}),
        ("POST", "/customers", {"customer_type": "Person"}, {}),
        ("POST", "/customers", {"customer_type": "Person", "email": 5}, {}),
        ("POST", "/customers", {"customer_type": "Person", "email": "not-an-email"}, {}),
        ("POST", "/customers", {"customer_type": "Person", "email": "a@example.com"}, {"IDEMPOTENCY-KEY": None}),
        ("POST", "/customers", {"customer_type": "Person", "email": "a@example.com"}, {"X-API-Version": "2024-01-01"}),
        ("POST", "/customers", {"customer_type": "Person", "email": "a@example.com"}, {"X-SUB-PARTNER-ID": "nope"}),
        ("PUT", f"/customers/{cid}", {"email": ""}, {}),
        ("PUT", "/customers/not-a-uuid", {"email": "a@example.com"}, {}),
        ("GET", "/customers/not-a-uuid", None, {}),
        ("GET", "/customers", None, {"X-API-Version": "2024-01-01"}),
        ("GET", f"/customers/{cid}", None, {"X-SUB-PARTNER-ID": "nope"}),
        ("POST", f"/sandbox/identification/{uuid.uuid4()}", {"approved": True}, {"IDEMPOTENCY-KEY": ""}),
        ("POST", f"/customers/{cid}/signings", {"signed": True, "content_id": str(uuid.uuid4())},
         {"IDEMPOTENCY-KEY": None}),
        ("GET", "/customers?page_size=101", None, {}),
        ("GET", "/customers?page_size=0", None, {}),
        ("GET", "/customers?status=Happy", None, {}),
        ("GET", "/customers?cursor=xyz", None, {}),
        ("GET", "/customers?sort_order=sideways", None, {}),
        ("GET", f"/customers/{cid}/identifications?page_size=abc", None, {}),
        ("POST", f"/customers/{cid}/identifications/v2", {"type": "Direct"}, {}),
        ("POST", f"/customers/{cid}/identifications/v2", {"with_edd": True}, {}),
        ("POST", f"/customers/{cid}/identifications/v2", {"type": "Link", "with_edd": "yes"}, {}),
        ("POST", f"/customers/{cid}/identifications/v2", token_identification(intended_use="Gambling"), {}),
        ("POST", f"/customers/{cid}/identifications/v2", person_identification(phone_number="0151 123"), {}),
        ("POST", f"/customers/{cid}/identifications/v2", person_identification(sharing_consent=False), {}),
        ("POST", f"/customers/{cid}/identifications/v2", person_identification(date_of_birth="10.12.1990"), {}),
        ("POST", f"/customers/{cid}/identifications/v2", business_identification(), {}),  # Person customer
        ("POST", f"/customers/{cid}/identifications/v2", {"type": "Link"}, {"IDEMPOTENCY-KEY": None}),
        ("POST", "/customers/123/identifications/v2", {"type": "Link"}, {}),
        ("POST", f"/sandbox/identification/{uuid.uuid4()}", {"approved": "yes"}, {}),
        ("POST", "/sandbox/reset", None, {"IDEMPOTENCY-KEY": None}),
        ("PUT", "/identifications/nope/archive", None, {}),
    ]
    for method, path, body, headers in cases:
        response = raw(sb, method, path, body=body, headers=headers)
        listed = {int(code) for code in spec.operation(method, path.split("?")[0])[1]["responses"]}
        natural = 404 if "not-a-uuid" in path or "/123/" in path or "/nope/" in path else 400
        expected = natural if natural in listed else next(c for c in (400, 422, 401) if c in listed)
        message = assert_string_error(response, expected)
        assert (method, path, response.status_code) and message
    # Raw bytes that are not JSON, or not an object, or sent as another media type.
    for content, content_type in ((b"{", "application/json"), (b"[]", "application/json"),
                                  (b'{"customer_type":"Person","email":"a@example.com"}', "text/plain"),
                                  (b"\xff\xfe", "application/json"), (b"", "application/json"),
                                  (b"[" * 100_000 + b"]" * 100_000, "application/json")):
        response = raw(sb, "POST", "/customers", content=content, headers={"Content-Type": content_type})
        assert_string_error(response, 400)


def test_signing_validation_errors_answer_422(sandbox_server: SandboxServer) -> None:
    sb = sandbox_server
    cid = raw(sb, "POST", "/customers", body={"customer_type": "Person", "email": "a@example.com"}).json()["id"]
    for body in ({"signed": "true"}, {"content_id": str(uuid.uuid4())}, {"signed": True, "content_id": "nope"},
                 {"signed": False, "content_id": str(uuid.uuid4())}, {"signed": True}):
        assert_string_error(raw(sb, "POST", f"/customers/{cid}/signings", body=body), 422)
    # Not in SigningsRequired: a validation error too.
    response = raw(sb, "POST", f"/customers/{cid}/signings", body={"signed": True, "content_id": str(uuid.uuid4())})
    assert "SigningsRequired" in assert_string_error(response, 422)
    assert_string_error(raw(sb, "POST", f"/customers/{uuid.uuid4()}/signings",
                            body={"signed": True, "content_id": str(uuid.uuid4())}), 404)


def test_authorization_comes_first_and_is_plain_text(sandbox_server: SandboxServer) -> None:
    sb = sandbox_server
    for headers in ({"X-API-Key": None}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        for method, path in (("GET", "/customers"), ("POST", "/customers"), ("GET", "/no/such/path"),
                             ("GET", "/customers/not-a-uuid")):
            response = raw(sb, method, path, headers=headers, body={"customer_type": "Person"} if method == "POST" else None)
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("text/plain")
            assert response.text == "authorization error"
    assert_string_error(raw(sb, "GET", "/no/such/path"), 404)
    assert_string_error(raw(sb, "DELETE", "/customers"), 405)


def test_api_versions_and_sub_partner_scoping(sandbox_server: SandboxServer) -> None:
    sb = sandbox_server
    for version in ("2025-03-13", "2026-07-01"):
        assert raw(sb, "GET", "/customers", headers={"X-API-Version": version}).status_code == 200
    partner_a, partner_b = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"customer_type": "Person", "email": "scoped@example.com", "external_id": f"scoped-{partner_a}"}
    created = raw(sb, "POST", "/customers", body=body, headers={"X-SUB-PARTNER-ID": partner_a})
    assert created.status_code == 201
    cid = created.json()["id"]
    assert created.json()["partner_id"] == partner_a
    assert raw(sb, "GET", f"/customers/{cid}", headers={"X-SUB-PARTNER-ID": partner_a}).status_code == 200
    assert raw(sb, "GET", f"/customers/{cid}").status_code == 404
    assert raw(sb, "GET", f"/customers/{cid}", headers={"X-SUB-PARTNER-ID": partner_b}).status_code == 404
    assert raw(sb, "GET", f"/customers/{body['external_id']}/external").status_code == 404
    listed = raw(sb, "GET", "/customers", headers={"X-SUB-PARTNER-ID": partner_a}).json()["items"]
    assert [c["id"] for c in listed] == [cid]
    assert cid not in {c["id"] for c in raw(sb, "GET", "/customers?page_size=100").json()["items"]}
    link = raw(sb, "POST", f"/customers/{cid}/identifications/v2", body={"type": "Link"})
    assert link.status_code == 404
    link = raw(sb, "POST", f"/customers/{cid}/identifications/v2", body={"type": "Link"},
               headers={"X-SUB-PARTNER-ID": partner_a})
    assert link.status_code == 201
    # A reset under one sub-partner leaves everyone else alone.
    assert raw(sb, "POST", "/sandbox/reset", headers={"X-SUB-PARTNER-ID": partner_b}).json() is True
    assert raw(sb, "GET", f"/customers/{cid}", headers={"X-SUB-PARTNER-ID": partner_a}).status_code == 200


def test_list_filters_accept_repeated_and_comma_separated_values(sandbox_server: SandboxServer) -> None:
    sb = sandbox_server
    scope = {"X-SUB-PARTNER-ID": str(uuid.uuid4())}
    ids = [raw(sb, "POST", "/customers", body={"customer_type": t, "email": "f@example.com"}, headers=scope).json()["id"]
           for t in ("Person", "Business", "Person")]
    with httpx.Client(timeout=10) as http:

        def listed(params: Any) -> list[str]:
            response = http.get(sb.base_url + "/customers", params=params, headers={"X-API-Key": API_KEY, **scope})
            assert response.status_code == 200, response.text
            return [c["id"] for c in response.json()["items"]]

        assert listed([("customer_type", "Person"), ("customer_type", "Business")]) == ids[::-1]
        assert listed({"customer_type": "Person,Business"}) == ids[::-1]
        assert listed({"customer_type[]": "Business"}) == [ids[1]]
        assert listed({"status": "IdentificationRequired,Active", "sort_order": "asc"}) == ids
        assert listed({"status": "Active"}) == []
        assert listed({"has_transactions": "true"}) == []
        back = http.get(sb.base_url + "/customers", params={"page_size": 1, "sort_order": "asc"},
                        headers={"X-API-Key": API_KEY, **scope}).json()
        nxt = http.get(sb.base_url + "/customers", params={"page_size": 1, "sort_order": "asc", "cursor": back["cursor"]},
                       headers={"X-API-Key": API_KEY, **scope}).json()
        assert [c["id"] for c in nxt["items"]] == [ids[1]] and nxt["prev_cursor"] == ids[1]
        # A cursor keeps its place when the next page asks with other filters.
        only_people = http.get(sb.base_url + "/customers",
                               params={"page_size": 5, "sort_order": "asc", "cursor": ids[0], "customer_type": "Person"},
                               headers={"X-API-Key": API_KEY, **scope}).json()
        assert [c["id"] for c in only_people["items"]] == [ids[2]] and "cursor" not in only_people
        prev = http.get(sb.base_url + "/customers",
                        params={"page_size": 1, "sort_order": "asc", "prev_cursor": nxt["prev_cursor"]},
                        headers={"X-API-Key": API_KEY, **scope}).json()
        assert [c["id"] for c in prev["items"]] == [ids[0]]


# --- fuzzing every POST and PUT ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
header_text = st.text(alphabet=string.ascii_letters + string.digits + "-_:.", max_size=40)


def _mutations(valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid body with one field removed, retyped, or replaced by random JSON."""
    keys = sorted(valid)

    def mutate(args: tuple[str, int, Any]) -> dict[str, Any]:
        key, how, value = args
        body = dict(valid)
        if how == 0:
            body.pop(key, None)
        else:
            body[key] = value
        return body

    return st.tuples(st.sampled_from(keys), st.integers(0, 1), json_values).map(mutate)


@pytest.fixture(scope="module")
def fuzz_world(sandbox_server: SandboxServer) -> dict[str, str]:
    sb = sandbox_server
    scope = str(uuid.uuid4())
    headers = {"X-SUB-PARTNER-ID": scope}
    person = raw(sb, "POST", "/customers", body={"customer_type": "Person", "email": "fz@example.com"}, headers=headers)
    business = raw(sb, "POST", "/customers", body={"customer_type": "Business", "email": "fz@example.com"}, headers=headers)
    ident = raw(sb, "POST", f"/customers/{person.json()['id']}/identifications/v2", body={"type": "Link"}, headers=headers)
    return {"scope": scope, "person": person.json()["id"], "business": business.json()["id"], "ident": ident.json()["id"]}


OPERATIONS = {
    "create_customer": ("POST", "/customers", lambda w: {"customer_type": "Person", "email": "a@example.com"}),
    "update_customer": ("PUT", "/customers/{person}", lambda w: {"email": "b@example.com"}),
    "create_identification": ("POST", "/customers/{person}/identifications/v2", lambda w: person_identification()),
    "create_business_identification": (
        "POST", "/customers/{business}/identifications/v2", lambda w: business_identification()
    ),
    "create_signing": ("POST", "/customers/{person}/signings", lambda w: {"signed": True, "content_id": w["ident"]}),
    "archive_customer": ("PUT", "/customers/{business}/archive", lambda w: {}),
    "archive_identification": ("PUT", "/identifications/{ident}/archive", lambda w: {}),
    "decide_identification": ("POST", "/sandbox/identification/{ident}", lambda w: {"approved": True}),
    "reset": ("POST", "/sandbox/reset", lambda w: {}),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_and_malformed_input_never_causes_a_5xx(
    operation: str, data: st.DataObject, sandbox_server: SandboxServer, fuzz_world: dict[str, str]
) -> None:
    method, template, valid = OPERATIONS[operation]
    world = fuzz_world
    path_ids = {k: world[k] for k in ("person", "business", "ident")}
    bad_segment = data.draw(st.sampled_from(["valid", "random-uuid", "garbage"]), label="path")
    if bad_segment == "random-uuid":
        path_ids = {k: str(uuid.uuid4()) for k in path_ids}
    elif bad_segment == "garbage":
        junk = data.draw(st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=30))
        path_ids = {k: junk for k in path_ids}
    path = template.format(**path_ids)
    body_kind = data.draw(st.sampled_from(["mutated", "json", "bytes"]), label="body kind")
    if body_kind == "mutated" and valid(world):
        content = json.dumps(data.draw(_mutations(valid(world)))).encode()
    elif body_kind == "bytes":
        content = data.draw(st.binary(max_size=300))
    else:
        content = json.dumps(data.draw(json_values)).encode()
    headers = {"X-API-Key": API_KEY, "X-SUB-PARTNER-ID": world["scope"]}
    headers["Content-Type"] = data.draw(st.sampled_from([JSON_TYPE, "application/json", "text/plain", "application/xml"]))
    if data.draw(st.booleans(), label="idempotency key"):
        headers["IDEMPOTENCY-KEY"] = data.draw(header_text)
    if data.draw(st.booleans(), label="api version"):
        headers["X-API-Version"] = data.draw(st.sampled_from(["2025-03-13", "2026-07-01", "2030-01-01", "v1"]))
    if operation == "reset":  # a reset only ever wipes a scope of its own
        headers["X-SUB-PARTNER-ID"] = str(uuid.uuid4())
    if data.draw(st.booleans(), label="sub-partner garbage"):
        headers["X-SUB-PARTNER-ID"] = data.draw(header_text)
    response = _http().request(method, sandbox_server.base_url + path, content=content, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert_string_error(response, response.status_code)
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    body_required = operation not in ("archive_customer", "archive_identification", "reset")
    if body_required and not isinstance(parsed, dict):
        assert 400 <= response.status_code < 500


async def test_external_ids_with_any_characters_round_trip(sandbox: SandboxServer, iron: IronClient) -> None:
    for external_id in ("team a/42?x=1#frag", "ümlaut-ß", "100%", "a%2Fb", "dots..and~tilde"):
        created = await iron.create_customer(
            customer_type="Person", email="e@example.com", external_id=external_id, idempotency_key=new_key()
        )
        found = await iron.get_customer_by_external_id(external_id)
        assert (found.id, found.external_id) == (created.id, external_id)


query_values = st.text(alphabet=string.printable, max_size=30)


@settings(max_examples=examples(80), deadline=None)
@given(
    path=st.sampled_from(["/customers", "/customers/{person}/identifications", "/customers/{person}/signings",
                          "/customers/{person}/requirements", "/customers/{person}/required-signings",
                          "/identifications/{ident}", "/customers/{text}/external"]),
    params=st.lists(
        st.tuples(st.sampled_from(["cursor", "prev_cursor", "page_size", "status", "status[]", "identification_status",
                                   "customer_type", "search_term", "sort_order", "has_transactions", "other"]),
                  query_values),
        max_size=5,
    ),
    text=query_values,
)
def test_random_queries_never_cause_a_5xx(
    path: str, params: list[tuple[str, str]], text: str, sandbox_server: SandboxServer, fuzz_world: dict[str, str]
) -> None:
    url = sandbox_server.base_url + path.format(person=fuzz_world["person"], ident=fuzz_world["ident"],
                                                text=urllib.parse.quote(text, safe=""))
    response = _http().get(url, params=params, headers={"X-API-Key": API_KEY, "X-SUB-PARTNER-ID": fuzz_world["scope"]})
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert_string_error(response, response.status_code)


def test_each_operation_answers_only_what_its_spec_lists(spec: Spec) -> None:
    from iron_sandbox.app import operations

    served = {(method, path): op for method, path, op in operations()}
    for method, path, op in operations():
        listed = {int(code) for code in spec.document["paths"][path][method.lower()]["responses"]}
        assert set(op.statuses) == listed, f"{method} {path}: sandbox {sorted(op.statuses)}, spec {sorted(listed)}"
    in_spec = {(m.upper(), p) for p, item in spec.document["paths"].items() for m in item}
    assert in_spec - set(served) == {("GET", "/terms-and-conditions")}, sorted(in_spec - set(served))


def test_empty_optional_headers_count_as_absent(sandbox_server: SandboxServer) -> None:
    sb = sandbox_server
    empty = {"X-SUB-PARTNER-ID": "", "X-API-Version": ""}
    created = raw(sb, "POST", "/customers", body={"customer_type": "Person", "email": "e@example.com"}, headers=empty)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    for path in (f"/customers/{cid}", "/customers", f"/customers/{cid}/requirements", "/webhooks"):
        response = raw(sb, "GET", path, headers=empty)
        assert response.status_code == 200, (path, response.text)
    # Unscoped: the customer made with an empty sub-partner header is the partner's own.
    assert raw(sb, "GET", f"/customers/{cid}").status_code == 200

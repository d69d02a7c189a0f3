"""The onboarding HTTP API in-process (`create_app` with its dependencies) against a real dev
server, the Iron sandbox over HTTP and the production worker:

* a customer from start (with `?wait=identification_url`) through signing to `Active`, every step
  through the API, nothing but the API's answers read;
* a repeated POST under one `Idempotency-Key` starts nothing twice (one workflow, one run, one
  Iron customer, one document stored), its answer is the first one's, another body is 422;
  a signing retried under one key is one update, signed once;
* keys scoped to a sub-partner see and touch only their scope (another scope's onboarding is a
  404, as one that does not exist), and list only their scope's customers;
* every endpoint answers bad input with a problem document (never a 500, never a traceback);
* 401 without a valid key, the listing's cursor, a wait's 408 with the state, the probes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus

from contracts.messages import workflow_id_for
from data_protection.documents import FilesystemDocumentStore
from onboarding_api.app import create_app
from onboarding_api.auth import ApiKeyRing, key_sha256
from onboarding_api.problems import MEDIA_TYPE, TYPE_PREFIX
from onboarding_api.settings import ApiSettings
from tests.conftest import REPO_ROOT
from tests.workflow_harness import eventually

SUB_PARTNER_A = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"
SUB_PARTNER_B = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e60"
KEYS = {"partner": "oak_partner-key", "brand-a": "oak_brand-a-key", "brand-b": "oak_brand-b-key"}
PERSON = json.loads((REPO_ROOT / "samples" / "person_identification.json").read_text())

pytestmark = pytest.mark.asyncio(loop_scope="module")


def key_ring() -> ApiKeyRing:
    return ApiKeyRing.from_document({"keys": [
        {"name": "partner", "sha256": key_sha256(KEYS["partner"]), "sub_partner_id": None},
        {"name": "brand-a", "sha256": key_sha256(KEYS["brand-a"]), "sub_partner_id": SUB_PARTNER_A},
        {"name": "brand-b", "sha256": key_sha256(KEYS["brand-b"]), "sub_partner_id": SUB_PARTNER_B},
    ]})


@pytest.fixture(scope="module")
def documents_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("documents")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(env, sandbox, documents_dir):
    """The worker, reading identification data where the API writes it."""
    from tests.workflow_harness import running_worker

    async with running_worker(env.client, sandbox, documents_dir) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(env, sandbox, worker, documents_dir):
    """The API on the worker's task queue and document directory, as `python -m onboarding_api`
    builds it, with a client per key."""
    documents = FilesystemDocumentStore(documents_dir)
    settings = ApiSettings(keys_file="unused", task_queue=worker.task_queue, wait_max_seconds=120,
                           iron_base_url=sandbox.base_url, iron_api_key=sandbox.api_key)
    app = create_app(settings, env.client, key_ring(), documents=documents, iron=sandbox.settings())
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                headers={"Authorization": f"Bearer {key}"}, timeout=180)
        for name, key in KEYS.items()
    }
    clients["anonymous"] = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30)
    clients["documents"] = documents  # type: ignore[assignment]
    yield clients
    for name, client in clients.items():
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()


def new_id(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(MEDIA_TYPE), response.headers
    body = response.json()
    assert body["type"] == TYPE_PREFIX + kind, body
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


async def start(client: httpx.AsyncClient, external_id: str, **body: Any) -> httpx.Response:
    return await client.post("/v1/onboardings", json={"external_id": external_id, "email": f"{external_id}@example.com", **body})


async def test_a_customer_goes_from_start_to_active_through_the_api(api, sandbox):
    partner = api["partner"]
    external_id = new_id("lifecycle")
    started = await partner.post("/v1/onboardings?wait=identification_url&timeout=60",
                                 json={"external_id": external_id, "email": "ada@example.com", "name": "Ada"})
    assert started.status_code == 201, started.text
    answer = started.json()
    assert answer["started"] is True and answer["reached"] is True
    assert answer["onboarding"]["identification_url"].startswith("http")
    assert started.headers["location"] == f"/v1/onboardings/{external_id}"

    read = await partner.get(f"/v1/onboardings/{external_id}")
    assert read.status_code == 200 and read.json()["phase"] == "AwaitingIdentification"
    await sandbox.control.set_identification_status(read.json()["identification_id"], "Approved")
    refreshed = await partner.post(f"/v1/onboardings/{external_id}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    waited = await partner.post(f"/v1/onboardings/{external_id}/wait", json={"phases": ["AwaitingSignings"], "timeout": 60})
    assert waited.status_code == 200, waited.text
    signings = [s["id"] for s in waited.json()["required_signings"] if not s["signed"]]
    assert signings
    first = signings[0]
    signed = await partner.post(f"/v1/onboardings/{external_id}/signings/{first}", headers={"Idempotency-Key": f"sign-{first}"})
    assert signed.status_code == 200 and signed.json()["content_id"] == first, signed.text
    # Retried under its key (the answer was lost, say): the first try's answer, nothing signed again.
    again = await partner.post(f"/v1/onboardings/{external_id}/signings/{first}", headers={"Idempotency-Key": f"sign-{first}"})
    assert again.status_code == 200 and again.json() == signed.json()
    if len(signings) > 1:  # the key of one document used for another
        reused = await partner.post(f"/v1/onboardings/{external_id}/signings/{signings[1]}",
                                    headers={"Idempotency-Key": f"sign-{first}"})
        assert_problem(reused, 422, "idempotency-key-reused")
    # Without a key a signed document is refused, naming why.
    assert_problem(await partner.post(f"/v1/onboardings/{external_id}/signings/{first}"), 409, "rejected")
    for content_id in signings[1:]:
        signed = await partner.post(f"/v1/onboardings/{external_id}/signings/{content_id}",
                                    headers={"Idempotency-Key": f"sign-{content_id}"})
        assert signed.status_code == 200 and signed.json()["content_id"] == content_id, signed.text
    active = await partner.post(f"/v1/onboardings/{external_id}/wait", json={"phases": ["Active"], "timeout": 60})
    assert active.status_code == 200 and active.json()["phase"] == "Active", active.text
    signed_at_iron = [r for r in await sandbox.control.requests()
                      if r["method"] == "POST" and r["path"].endswith("/signings") and str(r["status_code"]).startswith("2")
                      and active.json()["iron_customer_id"] in r["path"]]
    assert len(signed_at_iron) == len(signings), "each document signed once at Iron"


async def test_a_repeated_post_under_one_idempotency_key_starts_nothing_twice(api, env, sandbox):
    partner = api["partner"]
    external_id = new_id("idem")
    body = {"external_id": external_id, "email": "grace@example.com", "customer_type": "Person",
            "identification": {"kind": "Person", "data": PERSON}}
    headers = {"Idempotency-Key": f"key-{external_id}"}
    documents: FilesystemDocumentStore = api["documents"]  # type: ignore[assignment]
    before = set(documents.root.rglob("*.doc"))
    answers = await asyncio.gather(*(partner.post("/v1/onboardings", json=body, headers=headers) for _ in range(3)))
    answers.append(await partner.post("/v1/onboardings", json=body, headers=headers))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert sum(a.json()["started"] for a in answers) == 4  # each the first try's answer
    assert any(a.headers.get("idempotent-replayed") == "true" for a in answers)

    async def runs_listed() -> list:  # visibility trails a start by a moment
        return [w async for w in env.client.list_workflows(f'WorkflowId = "{workflow_id_for(external_id)}"')]

    runs = await eventually("the onboarding listed", runs_listed, 30)
    assert len(runs) == 1 and runs[0].status == WorkflowExecutionStatus.RUNNING
    assert len(set(documents.root.rglob("*.doc")) - before) == 2, "the contact and the identification stored once, not once per try"
    other = await partner.post("/v1/onboardings", json={**body, "email": "someone-else@example.com"}, headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")
    # Without the key, other data is a conflict naming the field; the same data attaches.
    differs = assert_problem(await partner.post("/v1/onboardings", json={**body, "email": "x@example.com"}), 409,
                             "start-data-differs")
    assert differs["fields"] == ["email"]
    attached = await partner.post("/v1/onboardings", json=body)
    assert attached.status_code == 200 and attached.json()["started"] is False
    await asyncio.sleep(1)
    created = [r for r in await sandbox.control.requests() if r["method"] == "POST" and r["path"].endswith("/customers")
               and external_id in json.dumps(r)]
    assert len(created) <= 1


async def test_keys_scoped_to_a_sub_partner_see_and_touch_only_their_scope(api):
    brand_a, brand_b, partner = api["brand-a"], api["brand-b"], api["partner"]
    shared = new_id("scoped")
    a = await start(brand_a, shared)
    assert a.status_code == 201, a.text
    assert a.json()["onboarding"]["sub_partner_id"] == SUB_PARTNER_A
    assert a.headers["location"] == f"/v1/onboardings/{shared}?sub_partner_id={SUB_PARTNER_A}"
    # Brand B does not see brand A's customer, whether it names the scope or not.
    for path in (f"/v1/onboardings/{shared}", f"/v1/onboardings/{shared}?sub_partner_id={SUB_PARTNER_A}"):
        assert_problem(await brand_b.get(path), 404, "not-found")
    for method, path, body in [
        ("POST", f"/v1/onboardings/{shared}/refresh", None),
        ("POST", f"/v1/onboardings/{shared}/wait", {"phases": ["Active"], "timeout": 1}),
        ("POST", f"/v1/onboardings/{shared}/signings/terms", None),
        ("POST", f"/v1/onboardings/{shared}/restart", {"reason": "not yours"}),
        ("PATCH", f"/v1/onboardings/{shared}", {"email": "b@example.com"}),
    ]:
        assert_problem(await brand_b.request(method, path, json=body), 404, "not-found")
    assert_problem(await start(brand_b, new_id(), sub_partner_id=SUB_PARTNER_A), 403, "forbidden-scope")
    # The same external id in brand B's scope is another customer.
    b = await start(brand_b, shared)
    assert b.status_code == 201 and b.json()["onboarding"]["workflow_id"] != a.json()["onboarding"]["workflow_id"]
    # The partner reaches both by naming the scope, and its own default scope has no such customer.
    assert (await partner.get(f"/v1/onboardings/{shared}?sub_partner_id={SUB_PARTNER_A}")).status_code == 200
    assert_problem(await partner.get(f"/v1/onboardings/{shared}"), 404, "not-found")

    async def listed(client: httpx.AsyncClient) -> set[tuple[str, str | None]]:
        for _ in range(50):  # visibility is eventually consistent
            page = (await client.get("/v1/onboardings", params={"limit": 100})).json()
            found = {(o["external_id"], o["sub_partner_id"]) for o in page["items"]}
            if (shared, SUB_PARTNER_A) in found or (shared, SUB_PARTNER_B) in found:
                return found
            await asyncio.sleep(0.2)
        return found

    seen_by_a = await listed(brand_a)
    assert (shared, SUB_PARTNER_A) in seen_by_a and all(scope == SUB_PARTNER_A for _, scope in seen_by_a)
    seen_by_b = await listed(brand_b)
    assert all(scope == SUB_PARTNER_B for _, scope in seen_by_b)


async def test_the_listing_pages_with_an_opaque_cursor_and_filters_by_phase(api):
    partner = api["partner"]
    ids = {new_id("page") for _ in range(5)}
    for external_id in ids:
        assert (await start(partner, external_id)).status_code == 201
    seen: set[str] = set()
    for _ in range(100):  # until visibility has all five
        seen, cursor, pages = set(), None, 0
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await partner.get("/v1/onboardings", params=params)
            assert page.status_code == 200, page.text
            seen |= {o["external_id"] for o in page.json()["items"]}
            pages += 1
            cursor = page.json().get("next_cursor")
            if not cursor:
                break
        if ids <= seen:
            break
        await asyncio.sleep(0.2)
    assert ids <= seen and pages >= 3
    first = (await partner.get("/v1/onboardings", params={"limit": 1})).json()
    assert first["next_cursor"]
    assert_problem(await partner.get("/v1/onboardings", params={"limit": 1, "phase": "Active", "cursor": first["next_cursor"]}),
                   400, "bad-input")
    assert_problem(await partner.get("/v1/onboardings", params={"cursor": "not-a-cursor"}), 400, "bad-input")
    active = (await partner.get("/v1/onboardings", params={"phase": "Declined"})).json()
    assert all(o["phase"] == "Declined" for o in active["items"])


async def test_a_wait_that_times_out_answers_408_with_the_state(api):
    partner = api["partner"]
    external_id = new_id("wait")
    assert (await start(partner, external_id)).status_code == 201
    timed_out = assert_problem(
        await partner.post(f"/v1/onboardings/{external_id}/wait", json={"phases": ["Declined"], "timeout": 1}), 408, "wait-timed-out")
    assert timed_out["state"]["external_id"] == external_id and timed_out["state"]["phase"] != "Declined"
    too_long = await partner.post(f"/v1/onboardings/{external_id}/wait", json={"phases": ["Active"], "timeout": 3000})
    assert_problem(too_long, 400, "bad-input")


async def test_amend_restart_and_adoption_answer_as_the_command_line_does(api, sandbox):
    partner = api["partner"]
    external_id = new_id("amend")
    started = await partner.post("/v1/onboardings?wait=identification_url", json={"external_id": external_id, "email": "a@example.com"})
    assert started.status_code == 201
    # The Iron customer exists: an amend is refused, naming the reason; a restart needs Declined.
    assert_problem(await partner.patch(f"/v1/onboardings/{external_id}", json={"email": "b@example.com"}), 409, "rejected")
    assert_problem(await partner.post(f"/v1/onboardings/{external_id}/restart", json={"reason": "why not"}), 409, "rejected")
    assert_problem(await partner.patch(f"/v1/onboardings/{external_id}", json={}), 400, "bad-input")

    async with sandbox.client() as iron:
        made = await iron.create_customer(customer_type="Person", email="elsewhere@example.com",
                                          idempotency_key=str(uuid.uuid4()), external_id=new_id("elsewhere"))
    adopted = await partner.post("/v1/adoptions", json={"iron_customer_id": made.id})
    assert adopted.status_code == 201, adopted.text
    assert adopted.json()["onboarding"]["iron_customer_id"] == made.id
    again = await partner.post("/v1/adoptions", json={"iron_customer_id": made.id})
    assert again.status_code == 200 and again.json()["started"] is False
    assert_problem(await partner.post("/v1/adoptions", json={"iron_customer_id": str(uuid.uuid4())}), 404, "iron-customer-not-found")


async def test_no_valid_key_is_401_and_the_probes_need_none(api):
    anonymous = api["anonymous"]
    for method, path in [("GET", "/v1/onboardings"), ("POST", "/v1/onboardings"), ("GET", "/v1/onboardings/x"),
                         ("POST", "/v1/adoptions"), ("GET", "/nowhere")]:
        answer = await anonymous.request(method, path)
        assert_problem(answer, 401, "unauthorized")
        assert answer.headers["www-authenticate"].startswith("Bearer")
    for header in ("Bearer wrong", "Basic " + KEYS["partner"], KEYS["partner"], "Bearer " + "x" * 5000, "Bearer "):
        assert_problem(await anonymous.get("/v1/onboardings", headers={"Authorization": header}), 401, "unauthorized")
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
    assert (await anonymous.get("/openapi.json")).json()["openapi"].startswith("3.1")


BAD_INPUT = [
    # (method, path, json body or raw, headers) -> 400 bad-input at every endpoint
    ("POST", "/v1/onboardings", {"external_id": "", "email": "a@example.com"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "not an email"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "has space", "email": "a@example.com"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "..", "email": "a@example.com"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "unknown": 1}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "name": "line\nbreak"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "customer_type": "Robot"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "identification": {"kind": "Person"}}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com",
                                 "identification": {"kind": "Person", "data": {"first_name": "only"}}}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com",
                                 "identification": {"kind": "Person", "data": {"identity": {"identity_document_front": "data:x"}}}}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "identification": {"kind": "Token"}}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "identification": {"kind": "Link", "data": {}}}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com", "sub_partner_id": "nope"}, {}),
    ("POST", "/v1/onboardings", b"{not json", {}),
    ("POST", "/v1/onboardings", b"[1, 2]", {}),
    ("POST", "/v1/onboardings", b"[" * 10000, {}),
    ("POST", "/v1/onboardings", b"", {}),
    ("POST", "/v1/onboardings?wait=soon", {"external_id": "ok", "email": "a@example.com"}, {}),
    ("POST", "/v1/onboardings?timeout=5", {"external_id": "ok", "email": "a@example.com"}, {}),
    ("POST", "/v1/onboardings?wait=identification_url&timeout=-1", {"external_id": "ok", "email": "a@example.com"}, {}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com"}, {"Idempotency-Key": ""}),
    ("POST", "/v1/onboardings", {"external_id": "ok", "email": "a@example.com"}, {"Idempotency-Key": "k" * 300}),
    ("GET", "/v1/onboardings?limit=0", None, {}),
    ("GET", "/v1/onboardings?limit=many", None, {}),
    ("GET", "/v1/onboardings?phase=Sleeping", None, {}),
    ("GET", "/v1/onboardings?sub_partner_id=x", None, {}),
    ("GET", "/v1/onboardings/has%20space", None, {}),
    ("GET", "/v1/onboardings/%2E%2E", None, {}),
    ("GET", "/v1/onboardings/ok?sub_partner_id=nope", None, {}),
    ("POST", "/v1/onboardings/ok/wait", {"phases": [], "timeout": 5}, {}),
    ("POST", "/v1/onboardings/ok/wait", {"phases": ["Sleeping"]}, {}),
    ("POST", "/v1/onboardings/ok/wait", {"phases": ["Active"], "timeout": 0}, {}),
    ("POST", "/v1/onboardings/ok/wait", {"phases": ["Active"], "timeout": "soon"}, {}),
    ("POST", "/v1/onboardings/ok/wait", None, {}),
    ("POST", "/v1/onboardings/ok/signings/has%20space", None, {}),
    ("POST", "/v1/onboardings/has%0Aline/signings/terms", None, {}),
    ("POST", "/v1/onboardings/ok/restart", {"reason": ""}, {}),
    ("POST", "/v1/onboardings/ok/restart", {"reason": "x" * 600}, {}),
    ("POST", "/v1/onboardings/ok/restart", {"identification": {"kind": "Business"}}, {}),
    ("PATCH", "/v1/onboardings/ok", {"email": "nope"}, {}),
    ("PATCH", "/v1/onboardings/ok", {"customer_type": "Robot"}, {}),
    ("POST", "/v1/onboardings/has%20space/refresh", None, {}),
    ("POST", "/v1/adoptions", {"iron_customer_id": "not-a-uuid"}, {}),
    ("POST", "/v1/adoptions", {}, {}),
]


@pytest.mark.parametrize("method,path,body,headers", BAD_INPUT, ids=[f"{m} {p} {str(b)[:40]}" for m, p, b, _ in BAD_INPUT])
async def test_bad_input_at_every_endpoint_is_a_problem_document_never_a_500(api, method, path, body, headers):
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["content"] = body
        kwargs["headers"] = {**headers, "Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    answer = await api["partner"].request(method, path, **kwargs)
    problem = assert_problem(answer, 400, "bad-input")
    assert problem["errors"] and all(e["field"] and e["rule"] for e in problem["errors"])


async def test_bodies_that_are_not_json_or_too_large_are_refused_before_they_are_read(api):
    partner = api["partner"]
    assert_problem(await partner.post("/v1/onboardings", content=b"external_id=x", headers={"Content-Type": "text/plain"}),
                   415, "unsupported-media-type")
    assert_problem(await partner.post("/v1/onboardings", content=b"{}", headers={"Content-Type": "application/json",
                                                                                 "Content-Length": str(10**9)}),
                   413, "payload-too-large")
    assert_problem(await partner.delete("/v1/onboardings"), 405, "method-not-allowed")
    assert_problem(await partner.get("/v2/nothing"), 404, "route-not-found")


async def test_an_external_id_with_a_slash_is_one_path_segment(api):
    partner = api["partner"]
    external_id = f"acme/{uuid.uuid4().hex[:6]}%x"
    assert (await start(partner, external_id)).status_code == 201
    from urllib.parse import quote

    read = await partner.get(f"/v1/onboardings/{quote(external_id, safe='')}")
    assert read.status_code == 200 and read.json()["external_id"] == external_id

"""The onboarding HTTP API: FastAPI on the same library functions as the command line
(`operations/onboardings.py`), for backends in any language. `create_app` takes what it
depends on (settings, a Temporal client or provider, the API keys, the document store, Iron),
so tests build it in-process; `python -m onboarding_api` serves it.

It keeps no state of its own: Temporal is the store, so any number of replicas serve one URL.

**Idempotency without a store of our own.**

* `POST /v1/onboardings` with `Idempotency-Key`: the start puts a record in the workflow's memo,
  `api_request` = the SHA-256 of the key (salted with the workflow id) and of the request body,
  which continue-as-new carries on. A request with a key first reads the onboarding its body
  names (one describe): the same key with the same body is answered as the first try was
  (201, `Idempotent-Replayed: true`) and starts nothing; the same key with another body is 422.
  A first try whose answer was lost has either started the workflow (the retry finds the record)
  or not (the retry starts it); two tries racing both reach Temporal's start, which lets one
  workflow start and the other attach, and the one that attached finds the record and answers
  201 as well. The workflow id is the only index Temporal offers without a store of keys, so a
  key is remembered by the onboarding it started: reusing a key for another external id is not
  recognised (use one key per request, as the header asks). Without a key a repeated start is
  still never a second workflow: the same data attaches (200), other data is 409.
* `POST .../signings/{content_id}` with `Idempotency-Key`: the key (hashed with the workflow id)
  is the id of the `accept_signing` update. Temporal deduplicates updates by id: a retry while
  the first try runs waits for its answer, a retry after it gets the same answer, and nothing
  is signed twice. The answer names the content it signed, so a key reused for another
  document is 422. Without a key a second signing of a signed document is refused (409).
* Restart, amend and refresh need no key: a restart is accepted only in `Declined` or
  `NeedsAttention`, which it leaves, so a repeated one is refused rather than done twice; an
  amend sets the same values again; a refresh reads Iron.

**Listing.** `GET /v1/onboardings` asks Temporal's visibility store (`list_workflows`, one
page of `limit`), filtered on the search attributes `OnboardingPhase` and `IronSubPartnerId`
(the key's scope), and reads each onboarding's state view from its memo: no workflow is asked.
The cursor is Temporal's page token, wrapped with a digest of the query it belongs to, so a
cursor used with another filter or scope is refused rather than read against the wrong query.

**Scope.** A key scoped to a sub-partner names that scope for every call: an onboarding of
another scope answers 404 as one that does not exist would. A partner key reaches the default
scope, and a sub-partner's customers with `sub_partner_id`.
"""


import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import time
from datetime import timedelta
from typing import Annotated, Any, AsyncIterator, Callable
from urllib.parse import quote, unquote, unquote_to_bytes

import httpx
from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import MetricMeter

import operations.state_access as state_access
from contracts import metrics as metric_names
from contracts import search_attributes
from contracts.messages import WORKFLOW_TYPE, IdentificationRequest, Phase, workflow_id_for
from contracts.workflow_ids import scope_of_workflow_id
from contracts.state_view import STATE_MEMO, OnboardingStateView
from data_protection.documents import DocumentStore, forget_document
from iron_client import IronClient, IronSettings
from iron_client.models import IdentificationKind
from onboarding_api.auth import ApiKey, ApiKeyRing
from onboarding_api.models import (
    AdoptionRequest,
    AmendAnswer,
    AmendRequest,
    Health,
    IdentificationInput,
    Onboarding,
    OnboardingPage,
    ProblemDetails,
    RestartAnswer,
    RestartRequest,
    SigningAnswer,
    StartAnswer,
    StartRequest,
    UUID_PATTERN,
    WaitRequest,
)
from onboarding_api.problems import MEDIA_TYPE, Problem, bad_input, explain
from onboarding_api.settings import ApiSettings
from operations.onboardings import (
    NAME_MAX_LENGTH,
    TEXT_MAX_LENGTH,
    OnboardingNotFound,
    accept_signing,
    adopt_customer,
    amend_onboarding,
    build_onboarding_input,
    check_external_id,
    check_identification_data,
    check_printable,
    check_sub_partner_id,
    check_token,
    get_state,
    not_found_as_lookup,
    onboarding_handle,
    refresh,
    restart_identification,
    start_onboarding,
    using_settings,
    wait_for,
)
from runtime.logging import get_logger
from runtime.temporal import ClientProvider, as_provider

API_VERSION = "1.0.0"
# The memo entry a start under an Idempotency-Key leaves on its workflow.
API_REQUEST_MEMO = "api_request"
IDEMPOTENCY_VERSION = "1"
IDEMPOTENCY_KEY_MAX_LENGTH = 255
LIST_LIMIT_MAX = 100
# Paths anyone may ask: probes, the scrape and the contract.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
STARTED_BY = "http api"

log = get_logger("onboarding_api")


# --- idempotency ---------------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()


def idempotency_record(workflow_id: str, key: str, body: dict[str, Any]) -> dict[str, str]:
    """What a start under `key` leaves in its workflow's memo: digests only, never the key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {
        "version": IDEMPOTENCY_VERSION,
        "idempotency_key_sha256": _digest("idempotency-key", IDEMPOTENCY_VERSION, workflow_id, key),
        "body_sha256": _digest("body", IDEMPOTENCY_VERSION, canonical),
    }


def signing_update_id(workflow_id: str, key: str) -> str:
    """The `accept_signing` update id a signing under `key` is sent with (Temporal dedupes it)."""
    return "api-signing-" + _digest("signing", IDEMPOTENCY_VERSION, workflow_id, key)[:40]


# --- the listing's cursor ------------------------------------------------------------------------


def encode_cursor(query: str, token: bytes) -> str:
    wrapped = json.dumps({"q": _digest("list", query)[:16], "t": base64.b64encode(token).decode()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(wrapped.encode()).decode().rstrip("=")


def decode_cursor(query: str, cursor: str) -> bytes:
    try:
        wrapped = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        token = base64.b64decode(wrapped["t"], validate=True)
        belongs = wrapped["q"] == _digest("list", query)[:16]
    except (ValueError, TypeError, KeyError, binascii.Error, RecursionError):
        raise bad_input("cursor", "is not a cursor this API gave") from None
    if not belongs or not token:
        raise bad_input("cursor", "belongs to another listing (another phase filter or scope)")
    return token


def list_query(phase: Phase | None, scope: str | None, partner_wide: bool, default_scope_only: bool) -> str:
    parts = [f'WorkflowType = "{WORKFLOW_TYPE}"']
    # Archived customers' workflows have completed; every other phase is a running one (closed
    # runs left by continue-as-new are not customers).
    parts.append('ExecutionStatus = "Completed"' if phase == Phase.ARCHIVED else 'ExecutionStatus = "Running"')
    if phase is not None:
        parts.append(f'{search_attributes.ONBOARDING_PHASE.name} = "{phase.value}"')
    name = search_attributes.IRON_SUB_PARTNER_ID.name
    if scope is not None:
        parts.append(f'{name} = "{scope}"')
    elif not partner_wide or default_scope_only:
        parts.append(f"{name} IS NULL")
    return " AND ".join(parts)


# --- the request guard: path, key, body ----------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class _BodyTooSlow(Exception):
    pass


def _problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(problem.document(instance), status_code=problem.status, media_type=MEDIA_TYPE,
                        headers=problem.headers)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _segments_path(raw_path: bytes) -> str | None:
    """The request path with each segment percent-decoded but a `/` or `%` inside one kept
    escaped, so an external id holding `/` (percent-encoded by the client) stays one segment.
    None when the path is not UTF-8."""
    try:
        segments = [unquote_to_bytes(part).decode("utf-8") for part in raw_path.split(b"/")]
    except UnicodeDecodeError:
        return None
    return "/".join(s.replace("%", "%25").replace("/", "%2F") for s in segments)


class RequestGuard:
    """ASGI wrapper around the app: per request, the path's segments, the caller's key (401
    before anything is read), the body's media type, size and time, one log line and the
    metrics; the API's defaults come from its settings (`using_settings`)."""

    def __init__(self, app: Any, *, settings: ApiSettings, keys: ApiKeyRing, metrics: "ApiMetrics") -> None:
        self.app = app
        self.settings = settings
        self.keys = keys
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        raw_path = scope.get("raw_path")
        if raw_path:
            path = _segments_path(raw_path.split(b"?", 1)[0])
            if path is not None:
                scope["path"] = path
        answered: dict[str, Any] = {"status": 500}

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        caller = None
        problem: Problem | None = None
        if scope["path"] not in PUBLIC_PATHS:
            caller = self.keys.caller(headers.get("authorization"))
            if caller is None:
                problem = Problem("unauthorized", "send Authorization: Bearer <API key>",
                                  headers={"WWW-Authenticate": 'Bearer realm="onboarding"'})
        scope.setdefault("state", {})["caller"] = caller
        if problem is None and scope["method"] in ("POST", "PUT", "PATCH"):
            problem = self._body_problem(headers)
        try:
            if problem is not None:
                await _problem_response(problem, scope["path"])(scope, receive, observed_send)
            else:
                with using_settings(self.settings):
                    await self.app(scope, self._bounded(receive), observed_send)
        finally:
            route = scope.get("route")
            operation = getattr(route, "name", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.request(operation, answered["status"], elapsed)
            fields = {"external_id": (scope.get("path_params") or {}).get("external_id")}
            log.info("api_request", method=scope["method"], operation=operation, http_status=answered["status"],
                     duration_ms=round(elapsed * 1000, 1), key=caller.name if caller else None,
                     **{k: unquote(v) for k, v in fields.items() if v})

    def _body_problem(self, headers: dict[str, str]) -> Problem | None:
        declared = headers.get("content-length")
        has_body = "transfer-encoding" in headers
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return bad_input("Content-Length", "is not a number")
            if length < 0:
                return bad_input("Content-Length", "is negative")
            if length > self.settings.max_body_bytes:
                return Problem("payload-too-large", f"the body is {length} bytes, above the limit of {self.settings.max_body_bytes}")
            has_body = has_body or length > 0
        if has_body and not _is_json(headers.get("content-type")):
            return Problem("unsupported-media-type", "send the body as application/json")
        return None

    def _bounded(self, receive: Callable) -> Callable:
        """`receive`, counting the body against the limit and its arrival against the deadline."""
        limit = self.settings.max_body_bytes
        deadline = time.monotonic() + self.settings.body_timeout_seconds
        seen = 0

        async def bounded_receive() -> dict:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise _BodyTooSlow() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
                if not message.get("more_body", False):
                    return message
            return message

        return bounded_receive


# --- metrics -------------------------------------------------------------------------------------


class ApiMetrics:
    """Requests by operation (the route's name) and HTTP status, and their duration, on the
    Temporal runtime's meter like every process's (`runtime/metrics.py`). Bounded labels only."""

    def __init__(self, meter: MetricMeter | None = None) -> None:
        meter = meter or MetricMeter.noop
        self._requests = meter.create_counter(metric_names.API_REQUESTS, "HTTP API requests by operation and status")
        self._duration = meter.create_histogram_float(metric_names.API_REQUEST_DURATION, "HTTP API request duration")

    def request(self, operation: str, http_status: int, seconds: float) -> None:
        self._requests.add(1, {"operation": operation, "http_status": str(http_status)})
        self._duration.record(max(seconds, 0.0), {"operation": operation})


# --- errors as problems --------------------------------------------------------------------------


def answer_error(exc: BaseException, request: Request) -> JSONResponse:
    """The problem document for an error raised while serving `request`; anything unforeseen is
    logged with its traceback and answered 500 without it."""
    if isinstance(exc, RequestValidationError):
        problem = _validation_problem(exc)
    elif isinstance(exc, StarletteHTTPException):
        problem = _http_problem(exc)
    else:
        problem = explain(exc)
    if problem is None:
        log.error("api_internal_error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        problem = Problem("internal", "the API failed to serve this request; it is logged")
    elif problem.status >= 500:
        log.warning("api_unavailable", path=request.url.path, kind=problem.kind, error=type(exc).__name__,
                    detail=problem.detail)
    return _problem_response(problem, request.url.path)


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        if loc[:1] == ["body"]:
            loc = loc[1:]
        field = ".".join(loc) or "body"
        rule = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            field, rule = "body", "is not valid JSON"
        errors.append({"field": field, "rule": rule.replace("\n", " ")[:300]})
    detail = "; ".join(f"{e['field']}: {e['rule']}" for e in errors[:5]) or "invalid request"
    return Problem("bad-input", detail, errors=errors)


def _http_problem(exc: StarletteHTTPException) -> Problem:
    cause = exc.__cause__
    if isinstance(cause, _BodyTooLarge):
        return Problem("payload-too-large", "the body is above the API's limit")
    if isinstance(cause, _BodyTooSlow):
        return Problem("body-timeout", "the body did not arrive in time")
    if exc.status_code == 404:
        return Problem("route-not-found", "no such resource")
    if exc.status_code == 405:
        return Problem("method-not-allowed", "this resource does not take that method")
    return bad_input("body", str(exc.detail) if isinstance(exc.detail, str) else "cannot be read")


class ProblemRoute(APIRoute):
    """A route whose every error is answered as a problem document, never raised further."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - each one answered as its problem
                return answer_error(exc, request)

        return guarded


# --- the app -------------------------------------------------------------------------------------


_problem = {"model": ProblemDetails}


def _responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    titles = {400: "Bad input", 401: "No valid API key", 403: "Another sub-partner's scope", 404: "Not found (or another scope's)",
              408: "Timed out", 409: "Conflict", 413: "Body too large", 415: "Not JSON", 422: "Idempotency-Key reused",
              429: "Too many updates in flight for this onboarding", 502: "Iron refused",
              503: "Temporal, Iron or the document store unavailable"}
    return {code: {**_problem, "description": described.get(f"d{code}", titles[code])} for code in codes}


def _path_value(text: str) -> str:
    return unquote(text)


def create_app(
    settings: ApiSettings,
    temporal: Client | ClientProvider,
    keys: ApiKeyRing,
    *,
    documents: DocumentStore,
    iron: IronClient | IronSettings | None = None,
    metric_meter: MetricMeter | None = None,
    metrics_url: str | None = None,
) -> Any:
    """The API as an ASGI app. `temporal`: a connected `Client` or an async callable returning
    one (connected lazily, so the API starts while Temporal is away). `documents`: where
    identification data goes (the workers read it there). `iron`: for adoptions, an
    `IronClient` used as it is or `IronSettings` (default: the settings' `IRON_*`), opened
    with the app. `metric_meter` records the requests; `metrics_url`, the runtime exporter's
    `/metrics`, is what `GET /metrics` serves."""
    provider = as_provider(temporal)
    metrics = ApiMetrics(metric_meter)
    resources: dict[str, Any] = {}

    owned = contextlib.AsyncExitStack()

    async def resource(name: str) -> Any:
        """The Iron client (adoptions) and the scrape's HTTP client, made on first use and
        closed with the app."""
        if name not in resources:
            if name == "iron":
                made = iron if isinstance(iron, IronClient) else await owned.enter_async_context(
                    IronClient(iron or settings.iron_settings()))
            else:
                made = await owned.enter_async_context(httpx.AsyncClient(timeout=5))
            resources.setdefault(name, made)
        return resources[name]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("onboarding api starting", keys=len(keys.keys), task_queue=settings.task_queue)
        try:
            yield
        finally:
            await owned.aclose()

    app = FastAPI(
        title="Iron customer onboarding API",
        version=API_VERSION,
        summary="Start, inspect and drive customers' Iron onboardings (docs/http-api.md)",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.router.route_class = ProblemRoute
    bearer = HTTPBearer(auto_error=False, scheme_name="apiKey", description="An API key (python -m onboarding_api new-key)")

    async def authenticated(request: Request,
                            _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:
        caller = request.scope.get("state", {}).get("caller")
        if caller is None:  # the guard answered already; here for an app served without it
            raise Problem("unauthorized", "send Authorization: Bearer <API key>")
        return caller

    Caller = Annotated[ApiKey, Depends(authenticated)]
    ExternalId = Annotated[str, Path(min_length=1, description="The customer's external id (percent-encoded)")]
    SubPartner = Annotated[str | None, Query(pattern=UUID_PATTERN, description="A partner key's way to another scope")]
    IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
                                                  pattern=r"^[\x20-\x7e]+$", description="Makes a retry safe")]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return answer_error(exc, request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer_error(exc, request)

    async def client() -> Client:
        return await provider()

    def scope_of(caller: ApiKey, named: str | None, *, starting: bool = False) -> str | None:
        """The sub-partner scope a call acts in (None: the default scope)."""
        if named is None:
            return caller.sub_partner_id
        wanted = check_sub_partner_id(named, "sub_partner_id")
        if caller.scoped and wanted != caller.sub_partner_id:
            if starting:
                raise Problem("forbidden-scope", "this key starts onboardings of its own sub-partner only")
            raise Problem("not-found", "no such onboarding in this key's scope")
        return wanted

    async def memo_of(temporal_client: Client, external_id: str, scope: str | None) -> tuple[Any, dict[str, Any]]:
        handle = onboarding_handle(temporal_client, external_id, scope)
        description = await not_found_as_lookup(external_id, handle.describe(), scope)
        return description, await description.memo()

    def view_from(memo: dict[str, Any]) -> OnboardingStateView | None:
        value = memo.get(STATE_MEMO)
        return OnboardingStateView.model_validate(value) if isinstance(value, dict) and value else None

    def checked(identification: IdentificationInput | None, field: str) -> tuple[IdentificationInput, bytes | None] | None:
        """The identification a request asks for, every rule checked (nothing stored yet), with
        its inline data as the bytes to store."""
        if identification is None:
            return None
        kind = identification.kind
        with_data = kind in (IdentificationKind.PERSON, IdentificationKind.BUSINESS)
        if with_data and identification.data is None:
            raise bad_input(f"{field}.data", f"is required with kind {kind.value}: the identification data (as in samples/)")
        if not with_data and identification.data is not None:
            raise bad_input(f"{field}.data", "goes with kind Person or Business only")
        if kind == IdentificationKind.TOKEN:
            if identification.token is None or identification.intended_use is None:
                raise bad_input(f"{field}.token", "a Token identification needs token and intended_use")
            check_token(identification.token, f"{field}.token")
        elif identification.token is not None or identification.intended_use is not None:
            raise bad_input(f"{field}.token", "token and intended_use go with kind Token only")
        raw = check_identification_data(identification.data, kind, f"{field}.data") if with_data else None
        return identification, raw

    async def stored(choice: tuple[IdentificationInput, bytes | None] | None) -> tuple[IdentificationRequest | None, Any]:
        """The identification request, its inline data put in the document store: (request,
        parsed data); the data stands for the document when starts are compared."""
        if choice is None:
            return None, None
        identification, raw = choice
        ref = await documents.put(raw, content_type="application/json") if raw is not None else None
        request = IdentificationRequest(kind=identification.kind, token=identification.token,
                                        intended_use=identification.intended_use, document_ref=ref)
        return request, identification.data

    async def forget(request: IdentificationRequest | None) -> None:
        await forget_document(documents, request.document_ref if request is not None else None)

    def start_response(status: int, started: bool, reached: bool | None, view: OnboardingStateView,
                       replayed: bool = False) -> JSONResponse:
        answer = StartAnswer(started=started, reached=reached, onboarding=Onboarding.of(view))
        headers = {"Location": f"/v1/onboardings/{quote(view.external_id, safe='')}"
                               + (f"?sub_partner_id={view.sub_partner_id}" if view.sub_partner_id else "")}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(answer.model_dump(mode="json"), status_code=status, headers=headers)

    # --- onboardings -------------------------------------------------------------------------

    @app.post(
        "/v1/onboardings", name="start_onboarding", operation_id="startOnboarding", tags=["onboardings"],
        status_code=201, response_model=StartAnswer,
        responses={200: {"model": StartAnswer, "description": "Already running with the same start data: attached"},
                   201: {"description": "Started (or the first try under this Idempotency-Key did)"},
                   **_responses(400, 401, 403, 408, 409, 413, 415, 422, 429, 503,
                                d408="The body did not arrive in time")},
    )
    async def start(
        caller: Caller,
        body: StartRequest,
        idempotency_key: IdempotencyKey = None,
        wait: Annotated[str | None, Query(pattern="^identification_url$",
                                          description="identification_url: answer once the url exists (or none will come)")] = None,
        timeout: Annotated[float | None, Query(gt=0, le=3600, description="With wait: seconds (60)")] = None,
    ) -> JSONResponse:
        """Start a customer's onboarding, or attach to the one running for its external id."""
        scope = scope_of(caller, body.sub_partner_id, starting=True)
        check_external_id(body.external_id, "external_id")
        if timeout is not None and wait is None:
            raise bad_input("timeout", "goes with wait=identification_url")
        wait_timeout = timeout if timeout is not None else min(state_access.DEFAULT_START_WAIT_SECONDS, settings.wait_max_seconds)
        if wait_timeout > settings.wait_max_seconds:
            raise bad_input("timeout", f"must be at most {settings.wait_max_seconds:g} seconds (ONBOARDING_API_WAIT_MAX_SECONDS)")
        name = check_printable(body.name, "name", max_length=NAME_MAX_LENGTH, what="a name") if body.name is not None else None
        choice = checked(body.identification, "identification")  # everything checked before anything is stored
        build_onboarding_input(body.external_id, email=body.email, customer_type=body.customer_type, name=name,
                               sub_partner_id=scope)
        temporal_client = await client()
        workflow_id = workflow_id_for(body.external_id, scope)
        record = idempotency_record(workflow_id, idempotency_key, body.model_dump(mode="json")) if idempotency_key else None
        if record is not None:
            replayed = await replay(temporal_client, body.external_id, scope, record, wait is not None, wait_timeout)
            if replayed is not None:
                return replayed
        identification, content = await stored(choice)
        try:
            result = await start_onboarding(
                temporal_client, body.external_id, email=body.email, customer_type=body.customer_type, name=name,
                identification=identification, identification_content=content, started_by=STARTED_BY,
                wait=wait is not None, wait_timeout=wait_timeout, sub_partner_id=scope,
                memo={API_REQUEST_MEMO: record} if record else None, documents=documents,
            )
        except BaseException:
            await forget(identification)
            raise
        if not result.started:
            await forget(identification)
        started, view = result.started, result.state
        if not started or view is None:
            _, memo = await memo_of(temporal_client, body.external_id, scope)
            # Two tries under one key raced: the one that attached answers as the first.
            started = started or (record is not None and _same_key(memo.get(API_REQUEST_MEMO), record))
            view = view or view_from(memo) or await get_state(temporal_client, body.external_id, sub_partner_id=scope)
        return start_response(201 if started else 200, started, result.reached, view)

    async def replay(temporal_client: Client, external_id: str, scope: str | None, record: dict[str, str],
                     wait: bool, wait_timeout: float) -> JSONResponse | None:
        """The answer to a start whose key an earlier try used: None when no onboarding carries it."""
        try:
            description, memo = await memo_of(temporal_client, external_id, scope)
        except OnboardingNotFound:  # no such onboarding yet: a first try
            return None
        earlier = memo.get(API_REQUEST_MEMO)
        if not _same_key(earlier, record):
            return None
        if earlier.get("body_sha256") != record["body_sha256"]:
            raise Problem("idempotency-key-reused",
                          "this Idempotency-Key started this onboarding with another body: use a new key for a new request")
        view, reached = view_from(memo), None
        if wait and description.status == WorkflowExecutionStatus.RUNNING:
            waited = await state_access.wait(
                onboarding_handle(temporal_client, external_id, scope), phases=state_access.NO_URL_PHASES,
                identification_url=True, timeout=wait_timeout, external_id=external_id,
            )
            view, reached = waited.state, waited.reached
        if view is None:
            view = await get_state(temporal_client, external_id, sub_partner_id=scope)
        return start_response(201, True, reached, view, replayed=True)

    @app.get("/v1/onboardings", name="list_onboardings", operation_id="listOnboardings", tags=["onboardings"],
             response_model=OnboardingPage, responses=_responses(400, 401, 503))
    async def list_onboardings(
        caller: Caller,
        phase: Annotated[Phase | None, Query(description="Only onboardings in this phase")] = None,
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
        cursor: Annotated[str | None, Query(min_length=1, max_length=4096, description="next_cursor of the page before")] = None,
        sub_partner_id: Annotated[str | None, Query(
            pattern=UUID_PATTERN + "|^default$", description="A partner key: one sub-partner's customers, or `default`")] = None,
    ) -> OnboardingPage:
        """The onboardings this key may see, newest first, a page at a time (running ones, or
        archived ones with phase=Archived)."""
        default_only = sub_partner_id == "default"
        scope = scope_of(caller, None if default_only else sub_partner_id)
        if caller.scoped and default_only and caller.sub_partner_id is not None:
            raise Problem("not-found", "no such onboardings in this key's scope")
        query = list_query(phase, scope, not caller.scoped, default_only)
        token = decode_cursor(query, cursor) if cursor else None
        temporal_client = await client()
        page = temporal_client.list_workflows(query, page_size=limit, next_page_token=token)
        await page.fetch_next_page()
        items = []
        for execution in page.current_page or []:
            memo = await execution.memo()
            view = view_from(memo)
            if view is None:
                named = scope_of_workflow_id(execution.id)
                phase_now = (execution.typed_search_attributes.get(search_attributes.ONBOARDING_PHASE)
                             or Phase.FINDING_CUSTOMER.value)
                if named is None:
                    continue
                view = OnboardingStateView(external_id=named[1], sub_partner_id=named[0], phase=Phase(phase_now))
            items.append(Onboarding.of(view))
        next_token = page.next_page_token
        return OnboardingPage(items=items, next_cursor=encode_cursor(query, next_token) if next_token and items else None)

    @app.get("/v1/onboardings/{external_id}", name="get_onboarding", operation_id="getOnboarding", tags=["onboardings"],
             response_model=Onboarding, responses=_responses(400, 401, 404, 409, 503))
    async def get_onboarding(caller: Caller, external_id: ExternalId, sub_partner_id: SubPartner = None) -> Onboarding:
        """Where the onboarding stands: the state view in its memo (no workflow query)."""
        external_id = check_external_id(_path_value(external_id), "external_id")
        scope = scope_of(caller, sub_partner_id)
        view = await get_state(await client(), external_id, fallback_to_query=False, sub_partner_id=scope)
        return Onboarding.of(view)

    @app.post("/v1/onboardings/{external_id}/wait", name="wait_for_onboarding", operation_id="waitForOnboarding",
              tags=["onboardings"], response_model=Onboarding,
              responses=_responses(400, 401, 404, 408, 409, 413, 415, 429, 503,
                                   d408="Not there within the timeout: `state` says where it stands",
                                   d409="The onboarding ended elsewhere"))
    async def wait(caller: Caller, external_id: ExternalId, body: WaitRequest, sub_partner_id: SubPartner = None) -> Onboarding:
        """Answer once the onboarding is in one of `phases` (the workflow answers; nothing polls)."""
        external_id = check_external_id(_path_value(external_id), "external_id")
        scope = scope_of(caller, sub_partner_id)
        if body.timeout > settings.wait_max_seconds:
            raise bad_input("timeout", f"must be at most {settings.wait_max_seconds:g} seconds (ONBOARDING_API_WAIT_MAX_SECONDS)")
        view = await wait_for(await client(), external_id, phases=body.phases, timeout=body.timeout, sub_partner_id=scope)
        return Onboarding.of(view)

    @app.post("/v1/onboardings/{external_id}/signings/{content_id}", name="accept_signing", operation_id="acceptSigning",
              tags=["onboardings"], response_model=SigningAnswer,
              responses=_responses(400, 401, 404, 409, 422, 429, 503,
                                   d409="Refused: already signed, not required, or being signed by a try without the key"))
    async def sign(caller: Caller, external_id: ExternalId,
                   content_id: Annotated[str, Path(min_length=1, max_length=2048)],
                   idempotency_key: IdempotencyKey = None, sub_partner_id: SubPartner = None) -> SigningAnswer:
        """The customer accepted this document: sign it at Iron."""
        external_id = check_external_id(_path_value(external_id), "external_id")
        content_id = check_token(_path_value(content_id), "content_id")
        scope = scope_of(caller, sub_partner_id)
        request_id = signing_update_id(workflow_id_for(external_id, scope), idempotency_key) if idempotency_key else None
        result = await accept_signing(await client(), external_id, content_id, request_id=request_id, sub_partner_id=scope)
        if result.content_id != content_id:
            raise Problem("idempotency-key-reused",
                          f"this Idempotency-Key signed {result.content_id!r}: use a new key for another document")
        return SigningAnswer(**result.model_dump())

    @app.post("/v1/onboardings/{external_id}/restart", name="restart_identification", operation_id="restartIdentification",
              tags=["onboardings"], response_model=RestartAnswer,
              responses=_responses(400, 401, 404, 408, 409, 413, 415, 429, 503,
                                   d409="Refused: only after Declined or NeedsAttention"))
    async def restart(caller: Caller, external_id: ExternalId,
                      body: Annotated[RestartRequest | None, Body()] = None, sub_partner_id: SubPartner = None) -> RestartAnswer:
        """A new identification after Declined or NeedsAttention (the original request, or a new one)."""
        external_id = check_external_id(_path_value(external_id), "external_id")
        body = body or RestartRequest()
        reason = check_printable(body.reason, "reason", max_length=TEXT_MAX_LENGTH)
        scope = scope_of(caller, sub_partner_id)
        choice = checked(body.identification, "identification")
        temporal_client = await client()
        await get_state(temporal_client, external_id, sub_partner_id=scope)  # 404 before anything is stored
        identification, _ = await stored(choice)
        try:
            result = await restart_identification(temporal_client, external_id, reason=reason,
                                                  identification=identification, sub_partner_id=scope)
        except BaseException:
            await forget(identification)
            raise
        return RestartAnswer(phase=result.phase, cycle=result.cycle)

    @app.patch("/v1/onboardings/{external_id}", name="amend_onboarding", operation_id="amendOnboarding",
               tags=["onboardings"], response_model=AmendAnswer,
               responses=_responses(400, 401, 404, 408, 409, 413, 415, 429, 503,
                                    d409="Refused: the Iron customer exists already"))
    async def amend(caller: Caller, external_id: ExternalId, body: AmendRequest, sub_partner_id: SubPartner = None) -> AmendAnswer:
        """Correct the start data while the Iron customer does not exist yet."""
        external_id = check_external_id(_path_value(external_id), "external_id")
        scope = scope_of(caller, sub_partner_id)
        result = await amend_onboarding(await client(), external_id, email=body.email, name=body.name,
                                        customer_type=body.customer_type, sub_partner_id=scope)
        return AmendAnswer(amended=result.amended, phase=result.phase)

    @app.post("/v1/onboardings/{external_id}/refresh", name="refresh_onboarding", operation_id="refreshOnboarding",
              tags=["onboardings"], response_model=Onboarding, responses=_responses(400, 401, 404, 409, 429, 503))
    async def refresh_now(caller: Caller, external_id: ExternalId, sub_partner_id: SubPartner = None) -> Onboarding:
        """Read Iron now instead of waiting for a webhook or a timer."""
        external_id = check_external_id(_path_value(external_id), "external_id")
        scope = scope_of(caller, sub_partner_id)
        return Onboarding.of(await refresh(await client(), external_id, sub_partner_id=scope))

    @app.post("/v1/adoptions", name="adopt_customer", operation_id="adoptCustomer", tags=["onboardings"],
              status_code=201, response_model=StartAnswer,
              responses={200: {"model": StartAnswer, "description": "Already onboarding: attached"},
                         201: {"description": "Adopted: its onboarding started"},
                         **_responses(400, 401, 403, 404, 408, 409, 413, 415, 502, 503,
                                      d404="Iron has no such customer (in this scope)")})
    async def adopt(caller: Caller, body: AdoptionRequest) -> JSONResponse:
        """Take over an Iron customer created elsewhere, from its current state at Iron."""
        scope = scope_of(caller, body.sub_partner_id, starting=True)
        temporal_client = await client()
        result = await adopt_customer(temporal_client, await resource("iron"), body.iron_customer_id, sub_partner_id=scope)
        named = scope_of_workflow_id(result.workflow_id)
        external_id = named[1] if named else body.iron_customer_id
        _, memo = await memo_of(temporal_client, external_id, scope)
        view = view_from(memo) or await get_state(temporal_client, external_id, sub_partner_id=scope)
        return start_response(201 if result.started else 200, result.started, None, view)

    # --- operations --------------------------------------------------------------------------

    @app.get("/healthz", name="healthz", operation_id="healthz", tags=["operations"], response_model=Health)
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/readyz", name="readyz", operation_id="readyz", tags=["operations"], response_model=Health,
             responses=_responses(503, d503="Temporal does not answer"))
    async def readyz() -> Health:
        """Readiness: Temporal answers."""
        timeout = settings.ready_timeout_seconds
        try:
            temporal_client = await asyncio.wait_for(client(), timeout)
            await asyncio.wait_for(temporal_client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=timeout)), timeout + 0.5)
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            log.warning("not ready", reason=reason)
            raise Problem("not-ready", f"Temporal does not answer: {reason}") from None
        return Health(status="ready")

    @app.get("/metrics", name="metrics", operation_id="metrics", tags=["operations"],
             response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                                       "description": "Prometheus text format"},
                                                  **_responses(503, d503="The metrics exporter does not answer")})
    async def metrics_text() -> Response:
        """The API's metrics and its Temporal client's, in Prometheus' text format."""
        if metrics_url is None:
            raise Problem("unavailable", "this API serves no metrics")
        try:
            scraped = await (await resource("http")).get(metrics_url)
        except httpx.HTTPError as exc:
            raise Problem("unavailable", f"the metrics exporter does not answer ({type(exc).__name__})") from None
        return Response(scraped.content, media_type=scraped.headers.get("content-type", "text/plain; version=0.0.4"))

    app.openapi = lambda: contract(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.keys = keys
    return RequestGuard(app, settings=settings, keys=keys, metrics=metrics)


def _same_key(earlier: Any, record: dict[str, str]) -> bool:
    return isinstance(earlier, dict) and earlier.get("idempotency_key_sha256") == record["idempotency_key_sha256"]


# --- the contract --------------------------------------------------------------------------------


def contract(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3.1 document: FastAPI's, with problems as `application/problem+json` and
    none of FastAPI's own 422 validation answers (bad input is a 400 problem here)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes,
                           tags=[{"name": "onboardings", "description": "Customers' onboardings"},
                                 {"name": "operations", "description": "Probes and metrics"}])
    problem_ref = "#/components/schemas/ProblemDetails"
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if default_422.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for response in responses.values():
                content = response.get("content", {})
                if content.get("application/json", {}).get("schema", {}).get("$ref") == problem_ref:
                    content[MEDIA_TYPE] = content.pop("application/json")
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = document
    return document


def openapi_document() -> dict[str, Any]:
    """The contract as the API serves it at `/openapi.json` (what `make api-spec` commits),
    built without any configuration or connection."""
    from data_protection.documents import FilesystemDocumentStore

    async def unconnected() -> Client:
        raise RuntimeError("not connected")

    keys = ApiKeyRing.from_document({"keys": [{"name": "contract", "sha256": "0" * 64, "sub_partner_id": None}]})
    settings = ApiSettings(keys_file="unused")
    guard = create_app(settings, unconnected, keys, documents=FilesystemDocumentStore("unused"))
    return guard.app.openapi()


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"

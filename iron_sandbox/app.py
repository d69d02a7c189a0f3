"""The sandbox as an ASGI app: Iron's onboarding API under `/api`, the control surface under `/_sim`,
and the hosted pages the identification and document urls point at.

Answers follow the spec: creates answer 201, `PUT /customers/{id}` 204, 4xx bodies are JSON
strings (`application/json; charset=utf-8`), 5xx bodies `{message, trace_id}`, and a missing or
wrong `X-API-Key` answers 401 `text/plain` "authorization error". Every operation answers only
statuses its spec lists (`Op.statuses`): refused input (bodies, query values, headers, a missing
`IDEMPOTENCY-KEY`) answers 400 where the operation lists it, else 422, else 401, always with a
JSON string saying what was wrong; a path id that is not a UUID names no resource (404 where
listed). An empty optional header counts as absent. Bad input never causes a 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.parse
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from iron_sandbox import schemas
from iron_sandbox.autopilot import Autopilot, AutopilotSettings
from iron_sandbox.config import SUPPORTED_API_VERSIONS, SandboxConfig
from iron_sandbox.faults import FaultMiddleware, Faults, RequestLog
from iron_sandbox.idempotency import IdempotencyStore, Outcome, fingerprint
from iron_sandbox.sim import sim_routes
from iron_sandbox.state import (
    CUSTOMER_STATUSES,
    CUSTOMER_TYPES,
    IDENTIFICATION_STATUSES,
    NON_TERMINAL,
    ApiError,
    SandboxState,
)
from iron_sandbox.webhooks import WebhookDispatcher, WebhookSettings

JSON_TYPE = "application/json; charset=utf-8"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
log = structlog.get_logger("iron_sandbox")


class Sandbox:
    """Everything one running sandbox holds."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.state = SandboxState(clock=self.clock, partner_id=config.partner_id)
        self.idempotency = IdempotencyStore(self.clock)
        self.faults = Faults(seed=config.seed)
        self.requests = RequestLog()
        self.webhooks = WebhookDispatcher(
            WebhookSettings(
                targets=list(config.webhook_urls),
                secret=config.webhook_secret,
                wrapped=config.webhook_wrapped,
                max_attempts=config.webhook_max_attempts,
                initial_backoff_ms=config.webhook_initial_backoff_seconds * 1000,
                max_backoff_ms=config.webhook_max_backoff_seconds * 1000,
                timeout_seconds=config.webhook_timeout_seconds,
                concurrency=config.webhook_concurrency,
                seed=config.seed,
            )
        )
        self.state.event_listeners.append(self.webhooks.emit)
        self.autopilot = Autopilot(
            self.state,
            AutopilotSettings(
                enabled=config.autopilot,
                complete_after_seconds=config.autopilot_after_seconds,
                step_gap_seconds=config.autopilot_step_gap_seconds,
                decision=config.autopilot_decision,
            ),
            self.base_url,
        )
        self._seen_base_url: str | None = None
        self._key_digest = _digest(config.api_key)

    def base_url(self, request: Request | None = None) -> str:
        """Where the hosted pages are: the configured public url, else the address in use."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        if request is not None:
            self._seen_base_url = f"{request.url.scheme}://{request.url.netloc}"
        return self._seen_base_url or f"http://{self.config.host}:{self.config.port}"

    def remember_base_url(self, url: str) -> None:
        self._seen_base_url = url.rstrip("/")

    def authorized(self, request: Request) -> bool:
        given = request.headers.get("x-api-key")
        if not given:
            return False
        return hmac.compare_digest(_digest(given), self._key_digest)

    async def reset(self) -> None:
        self.state.clear()
        self.idempotency.clear()
        self.faults.clear()
        self.requests.clear()
        self.clock.reset()
        await self.webhooks.reset()
        await self.autopilot.reset()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


# --- responses ---------------------------------------------------------------------------------------


def json_response(status: int, payload: Any) -> Response:
    if status == 204:
        return Response(status_code=204)
    return Response(json.dumps(payload, separators=(",", ":")).encode(), status_code=status, media_type=JSON_TYPE)


# Iron's spec lists no 400 on most reads; a refusal there takes the closest client error the
# operation does list. Never 404 as a stand-in: that would claim the resource does not exist.
_REFUSAL_FALLBACKS = (400, 422, 401)


def documented_status(status: int, statuses: frozenset[int]) -> int:
    """`status` if the operation's spec lists it, else the closest client error it lists."""
    if not statuses or status in statuses or status >= 500:
        return status
    for candidate in _REFUSAL_FALLBACKS:
        if candidate in statuses:
            return candidate
    return status


def error_response(status: int, message: str) -> Response:
    if status >= 500:
        return json_response(status, {"message": message, "trace_id": uuid.uuid4().hex})
    return json_response(status, message)


def unauthorized() -> Response:
    return PlainTextResponse("authorization error", status_code=401)


class BodyError(Exception):
    pass


# --- the API endpoint wrapper -----------------------------------------------------------------------


@dataclass
class Ctx:
    request: Request
    sb: Sandbox
    scope: str | None
    path: dict[str, str]
    body: Any
    base_url: str


Handler = Callable[[Ctx], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Op:
    handler: Handler
    body: type[schemas.Body] | None = None
    idempotent: bool = False
    scoped: bool = True
    body_status: int = 400  # the status for an invalid body on this operation
    uuid_params: tuple[str, ...] = ()
    # The statuses the operation's spec lists; every answer is one of them (a test checks the spec).
    statuses: frozenset[int] = frozenset()


def _uuid(value: str, what: str, *, status: int = 400) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError):
        raise ApiError(status, f"Invalid {what}: not a UUID") from None


def _optional_header(request: Request, name: str) -> str | None:
    """An optional header's value; sent empty (`Name:` with nothing after it) it counts as absent."""
    value = request.headers.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, "Request body too large")
        except ValueError:
            raise ApiError(400, "Invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "Request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_body(raw: bytes, request: Request, model: type[schemas.Body], status: int) -> Any:
    content_type = request.headers.get("content-type", "")
    if not raw:
        raise ApiError(status, "Missing request body: expected application/json")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(status, "Unsupported Content-Type: expected application/json; charset=utf-8")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(status, f"Invalid JSON body: {str(exc)[:200]}") from None
    except RecursionError:
        raise ApiError(status, "Invalid JSON body: nested too deeply") from None
    if not isinstance(payload, dict):
        raise ApiError(status, "Invalid request body: expected a JSON object")
    try:
        if model is schemas.IdentificationBody:
            return schemas.validate(model, {"params": payload}).params  # type: ignore[attr-defined]
        return schemas.validate(model, payload)
    except ValidationError as exc:
        strip = "params" if model is schemas.IdentificationBody else None
        raise ApiError(status, f"Invalid request body: {schemas.describe(exc, strip_prefix=strip)}") from None
    except (RecursionError, ValueError) as exc:  # pathological nesting or values pydantic refuses outright
        raise ApiError(status, f"Invalid request body: {str(exc)[:200]}") from None


def api(sb: Sandbox, op: Op) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        note = request.scope.setdefault("sandbox.note", {})
        response: Response
        try:
            response = await _serve(sb, op, request, note)
        except ApiError as exc:
            response = error_response(documented_status(exc.status, op.statuses), exc.message)
        except ClientDisconnect:
            response = error_response(documented_status(400, op.statuses), "Client disconnected")
        except Exception:  # a bug, never bad input: answer like Iron and keep serving
            trace_id = uuid.uuid4().hex
            log.exception("unhandled error", path=request.url.path, trace_id=trace_id)
            response = json_response(500, {"message": "Internal error", "trace_id": trace_id})
        log.info(
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            replayed=bool(note.get("replayed")),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    return endpoint


async def _serve(sb: Sandbox, op: Op, request: Request, note: dict[str, Any]) -> Response:
    if not sb.authorized(request):
        note["authorized"] = False
        return unauthorized()
    note["authorized"] = True
    version = _optional_header(request, "x-api-version")
    if version is not None and version not in SUPPORTED_API_VERSIONS:
        raise ApiError(400, f"Unsupported X-API-Version {version[:40]!r}: supported {', '.join(SUPPORTED_API_VERSIONS)}")
    sub_partner = _optional_header(request, "x-sub-partner-id")
    if sub_partner is not None:
        sub_partner = _uuid(sub_partner, "X-SUB-PARTNER-ID")
    path = dict(request.path_params)
    for name in op.uuid_params:
        # A path id that is not a UUID can name no resource.
        path[name] = _uuid(path[name], f"{name} in path", status=404)
    idempotency_key = None
    if op.idempotent:
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is None or not idempotency_key.strip():
            raise ApiError(400, "Missing IDEMPOTENCY-KEY header")
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ApiError(400, "IDEMPOTENCY-KEY is too long")
    raw = await _read_body(request, sb.config.max_body_bytes) if (op.body is not None or op.idempotent) else b""
    ctx_scope = sub_partner if op.scoped else None
    base_url = sb.base_url(request)

    async def execute() -> Outcome:
        try:
            body = _parse_body(raw, request, op.body, op.body_status) if op.body is not None else None
            status, payload = await op.handler(Ctx(request, sb, ctx_scope, path, body, base_url))
        except ApiError as exc:
            response = error_response(documented_status(exc.status, op.statuses), exc.message)
            return Outcome(response.status_code, response.body, JSON_TYPE)
        if status == 204:
            return Outcome(204, b"", JSON_TYPE)
        return Outcome(status, json.dumps(payload, separators=(",", ":")).encode(), JSON_TYPE)

    if idempotency_key is None:
        outcome = await execute()
    else:
        key = (sb._key_digest, request.method, request.url.path, idempotency_key)
        outcome = await sb.idempotency.run(key, fingerprint(raw, scope=sub_partner), execute)
        if outcome.replayed:
            note["replayed"] = True
    if outcome.status == 204:
        return Response(status_code=204)
    response = Response(outcome.body, status_code=outcome.status, media_type=outcome.media_type)
    if outcome.replayed:
        response.headers["idempotent-replayed"] = "true"
    return response


# --- query parameters ------------------------------------------------------------------------------


def _page_size(request: Request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return 10
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "page_size must be an integer") from None
    if not 1 <= value <= 100:
        raise ApiError(400, "page_size must be between 1 and 100")
    return value


def _cursor(request: Request, name: str = "cursor") -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    return _uuid(raw, name)  # an empty cursor is not a UUID either


def _enum_list(request: Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    values: list[str] = []
    for raw in request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]"):
        values += [v.strip() for v in raw.split(",")]  # an empty value is no status either
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ApiError(400, f"Invalid {name} value {bad[0][:40]!r}: expected one of {', '.join(allowed)}")
    return values


# --- the API handlers ------------------------------------------------------------------------------


async def list_customers(ctx: Ctx) -> tuple[int, Any]:
    q = ctx.request.query_params
    search_term = q.get("search_term")
    if search_term is not None and len(search_term) > 256:
        raise ApiError(400, "search_term is longer than 256 characters")
    sort_order = q.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise ApiError(400, "sort_order must be asc or desc")
    has_transactions = q.get("has_transactions")
    if has_transactions not in (None, "true", "false"):
        raise ApiError(400, "has_transactions must be true or false")
    cursor, prev_cursor = _cursor(ctx.request), _cursor(ctx.request, "prev_cursor")
    if cursor and prev_cursor:
        raise ApiError(400, "Give cursor or prev_cursor, not both")
    page = ctx.sb.state.list_customers(
        ctx.scope,
        cursor=cursor,
        prev_cursor=prev_cursor,
        page_size=_page_size(ctx.request),
        search_term=search_term,
        statuses=_enum_list(ctx.request, "status", CUSTOMER_STATUSES),
        identification_statuses=_enum_list(ctx.request, "identification_status", IDENTIFICATION_STATUSES),
        customer_types=_enum_list(ctx.request, "customer_type", CUSTOMER_TYPES),
        has_transactions=None if not has_transactions else has_transactions == "true",
        sort_order=sort_order,
    )
    return 200, page


async def create_customer(ctx: Ctx) -> tuple[int, Any]:
    return 201, ctx.sb.state.create_customer(ctx.body, ctx.scope)


async def get_customer(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.get_customer(ctx.path["id"], ctx.scope)


async def get_customer_by_external_id(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.get_customer_by_external_id(ctx.path["external_id"], ctx.scope)


async def update_customer(ctx: Ctx) -> tuple[int, Any]:
    ctx.sb.state.update_customer(ctx.path["id"], ctx.scope, ctx.body)
    return 204, None


async def list_identifications(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.list_identifications(
        ctx.path["id"], ctx.scope, cursor=_cursor(ctx.request), page_size=_page_size(ctx.request)
    )


async def create_identification(ctx: Ctx) -> tuple[int, Any]:
    return 201, ctx.sb.state.create_identification(ctx.path["id"], ctx.scope, ctx.body, base_url=ctx.base_url)


async def required_signings(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.required_signings(ctx.path["id"], ctx.scope)


async def list_signings(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.list_signings(
        ctx.path["id"], ctx.scope, cursor=_cursor(ctx.request), page_size=_page_size(ctx.request)
    )


async def create_signing(ctx: Ctx) -> tuple[int, Any]:
    return 201, ctx.sb.state.create_signing(ctx.path["id"], ctx.scope, ctx.body)


async def requirements(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.requirements(ctx.path["id"], ctx.scope)


async def archive_customer(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.archive_customer(ctx.path["id"])


async def get_identification(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.get_identification(ctx.path["id"])


async def archive_identification(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.state.archive_identification(ctx.path["id"])


async def decide_identification(ctx: Ctx) -> tuple[int, Any]:
    return 201, ctx.sb.state.decide_identification(ctx.path["id"], ctx.body.approved, base_url=ctx.base_url)


async def reset_sandbox(ctx: Ctx) -> tuple[int, Any]:
    ctx.sb.state.reset(ctx.scope)
    return 200, True


async def list_webhooks(ctx: Ctx) -> tuple[int, Any]:
    return 200, ctx.sb.webhooks.registry_page(
        cursor=_cursor(ctx.request), page_size=_page_size(ctx.request), partner_id=ctx.sb.state.partner_id
    )


async def update_webhook(ctx: Ctx) -> tuple[int, Any]:
    body = ctx.body
    webhook = ctx.sb.webhooks.update_webhook(
        ctx.path["id"], url=body.url, enabled=body.enabled, topics=body.topics, label=body.label
    )
    return 200, webhook.to_api(ctx.sb.state.partner_id)


async def ping_webhook(ctx: Ctx) -> tuple[int, Any]:
    ctx.sb.webhooks.ping(ctx.path["id"], ctx.body.customer_id)
    return 200, True


def _statuses(*codes: int) -> frozenset[int]:
    return frozenset(codes)


def operations() -> list[tuple[str, str, Op]]:
    """Every API operation: (method, spec path, Op). The statuses are those Iron's spec lists."""
    ident = ("id",)
    read = _statuses(200, 401, 404, 500)
    return [
        ("GET", "/customers", Op(list_customers, statuses=_statuses(200, 401, 500))),
        ("POST", "/customers", Op(create_customer, body=schemas.CreateCustomerParams, idempotent=True,
                                  statuses=_statuses(201, 400, 401, 500))),
        ("GET", "/customers/{external_id}/external", Op(get_customer_by_external_id, statuses=read)),
        ("GET", "/customers/{id}", Op(get_customer, uuid_params=ident, statuses=read)),
        ("PUT", "/customers/{id}", Op(update_customer, body=schemas.UpdateCustomerParams, uuid_params=ident,
                                      statuses=_statuses(204, 400, 401, 500))),
        ("GET", "/customers/{id}/identifications", Op(list_identifications, uuid_params=ident, statuses=read)),
        ("POST", "/customers/{id}/identifications/v2",
         Op(create_identification, body=schemas.IdentificationBody, idempotent=True, uuid_params=ident,
            statuses=_statuses(201, 400, 401, 403, 404, 409, 429, 500))),
        ("GET", "/customers/{id}/required-signings",
         Op(required_signings, uuid_params=ident, statuses=_statuses(200, 401, 403, 404, 409, 500))),
        ("GET", "/customers/{id}/signings", Op(list_signings, uuid_params=ident, statuses=read)),
        ("POST", "/customers/{id}/signings",
         Op(create_signing, body=schemas.SigningCreateParams, idempotent=True, uuid_params=ident, body_status=422,
            statuses=_statuses(201, 401, 403, 404, 422, 500))),
        ("GET", "/customers/{id}/requirements", Op(requirements, uuid_params=ident, statuses=read)),
        ("PUT", "/customers/{id}/archive", Op(archive_customer, scoped=False, uuid_params=ident,
                                              statuses=_statuses(200, 400, 401, 500))),
        ("GET", "/identifications/{id}", Op(get_identification, scoped=False, uuid_params=ident,
                                            statuses=_statuses(200, 401, 403, 404, 500))),
        ("PUT", "/identifications/{id}/archive", Op(archive_identification, scoped=False, uuid_params=ident,
                                                    statuses=read)),
        ("POST", "/sandbox/identification/{id}",
         Op(decide_identification, body=schemas.UpdatePendingIdentificationParams, idempotent=True,
            scoped=False, uuid_params=ident, statuses=_statuses(201, 401, 404, 500))),
        ("POST", "/sandbox/reset", Op(reset_sandbox, idempotent=True, statuses=_statuses(200, 401, 500))),
        ("GET", "/webhooks", Op(list_webhooks, scoped=False, statuses=_statuses(200, 401, 500))),
        ("PATCH", "/webhooks/{id}", Op(update_webhook, body=schemas.UpdateWebhookRequest, scoped=False,
                                       uuid_params=ident, statuses=_statuses(200, 400, 401, 404, 500))),
        ("POST", "/webhooks/{id}/ping", Op(ping_webhook, body=schemas.PingWebhookParams, idempotent=True,
                                           scoped=False, uuid_params=ident, statuses=read)),
    ]


def api_routes(sb: Sandbox) -> list[Route]:
    # Starlette matches in order: the free-form external-id path goes after the id paths it could shadow.
    routes = []
    for method, path, op in operations():
        template = path.replace("{external_id}", "{external_id:path}")
        routes.append(Route("/api" + template, api(sb, op), methods=[method]))
    return routes


# --- hosted pages ----------------------------------------------------------------------------------

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>{title}</h1>{content}<p><small>Iron sandbox</small></p></body></html>"""


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def hosted_routes(sb: Sandbox) -> list[Route]:
    async def kyc_page(request: Request) -> Response:
        identification = sb.state.identifications.get(request.path_params["id"])
        if identification is None:
            return HTMLResponse(_PAGE.format(title="Unknown identification", content=""), status_code=404)
        content = f"<p>Status: <b>{_html_escape(identification.status)}</b></p>"
        if identification.status in NON_TERMINAL:
            content += (
                f'<form method="post" action="/hosted/kyc/{identification.id}/complete">'
                '<button name="decision" value="approve">Complete and approve</button> '
                '<button name="decision" value="decline">Complete and decline</button></form>'
            )
        return HTMLResponse(_PAGE.format(title="Identity verification", content=content))

    async def kyc_complete(request: Request) -> Response:
        identification_id = request.path_params["id"]
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        decision = "Declined" if form.get("decision", [""])[0] == "decline" else "Approved"
        base = sb.base_url(request)
        try:
            for expect, status in (("Pending", "Processed"), ("Processed", "PendingReview"), ("PendingReview", decision)):
                if sb.state.identification_snapshot(identification_id) is None:
                    raise ApiError(404, "Identification not found")
                if sb.state.identification_snapshot(identification_id)[0] == expect:
                    sb.state.sim_set_identification_status(identification_id, status, base_url=base, expect=expect)
        except ApiError as exc:
            return HTMLResponse(_PAGE.format(title="Not possible", content=f"<p>{_html_escape(exc.message)}</p>"),
                                status_code=exc.status)
        return HTMLResponse(_PAGE.format(title="Thank you", content=f"<p>Identification {decision.lower()}.</p>"))

    async def document_page(request: Request) -> Response:
        content_id = request.path_params["content_id"]
        for customer in list(sb.state.customers.values()):
            for document in customer.documents:
                if document.content_id == content_id:
                    return HTMLResponse(_PAGE.format(
                        title=_html_escape(document.display_name),
                        content=f"<p>Version {document.version}. The partner records the customer's acceptance "
                                "with <code>POST /customers/{id}/signings</code>.</p>",
                    ))
        return HTMLResponse(_PAGE.format(title="Unknown document", content=""), status_code=404)

    return [
        Route("/hosted/kyc/{id}", kyc_page, methods=["GET"]),
        Route("/hosted/kyc/{id}/complete", kyc_complete, methods=["POST"]),
        Route("/hosted/documents/{content_id}", document_page, methods=["GET"]),
    ]


# --- the app ---------------------------------------------------------------------------------------


class _LostResponseFilter(logging.Filter):
    """A lost response is deliberate here; uvicorn's complaint about it is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def _quiet_lost_responses() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _LostResponseFilter) for f in logger.filters):
        logger.addFilter(_LostResponseFilter())


def create_app(config: SandboxConfig | None = None) -> Any:
    """The sandbox as an ASGI app. `app.state.sandbox` is the running `Sandbox`."""
    config = config or SandboxConfig()
    sb = Sandbox(config)
    _quiet_lost_responses()

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        path = request.url.path
        if path == "/api" or path.startswith("/api/"):
            if not sb.authorized(request):
                request.scope.setdefault("sandbox.note", {})["authorized"] = False
                return unauthorized()
            return error_response(status, "Not Found" if status == 404 else "Method Not Allowed")
        if path.startswith("/_sim"):
            return json_response(status, {"error": "not found" if status == 404 else "method not allowed"})
        return PlainTextResponse("Not Found" if status == 404 else "Method Not Allowed", status_code=status)

    async def root(request: Request) -> Response:
        return json_response(200, {"service": "iron-sandbox", "api": "/api", "control": "/_sim"})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await sb.webhooks.start()
        await sb.autopilot.start()
        log.info("sandbox started", webhook_targets=len(config.webhook_urls), autopilot=config.autopilot)
        try:
            yield
        finally:
            await sb.autopilot.close()
            await sb.webhooks.close()

    app = Starlette(
        routes=[Route("/", root, methods=["GET"]), *api_routes(sb), *sim_routes(sb), *hosted_routes(sb)],
        exception_handlers={HTTPException: not_found},
        lifespan=lifespan,
    )
    app.state.sandbox = sb
    app.add_middleware(FaultMiddleware, faults=sb.faults, log=sb.requests)
    return app

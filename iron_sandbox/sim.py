"""The control surface under `/_sim`: compliance actions, the request log, faults, webhook and
autopilot settings, the clock. No API key; JSON in, JSON out; errors are `{"error": ...}`.

    GET    /_sim/health
    POST   /_sim/reset
    GET    /_sim/customers                     POST /_sim/customers {"count", "customer_type"?, "sub_partner_id"?, "prefix"?}
    POST   /_sim/customers/{id}/status         {"status", "documents"?, "comment"?}
    POST   /_sim/identifications/{id}/status   {"status", "retry"?, "comment"?}
    POST   /_sim/customers/{id}/drift          {"status"?, "requirement_code"?, "bucket"?}
    POST   /_sim/identifications/{id}/drift    {"status"?, "step"?, "step_result"?, "retry"?}
    GET    /_sim/requests[?clear=true]         DELETE /_sim/requests
    GET|POST|DELETE /_sim/faults
    GET|POST /_sim/webhooks                    GET /_sim/webhooks/deliveries, /_sim/webhooks/events
    POST   /_sim/webhooks/flush                {"timeout": seconds}
    GET|POST /_sim/autopilot
    GET|POST /_sim/clock                       {"advance_seconds": n}
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import uuid

from iron_sandbox.faults import FaultConfig
from iron_sandbox.state import REQUIREMENT_BUCKETS, ApiError

if TYPE_CHECKING:
    from iron_sandbox.app import Sandbox


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload).encode(), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


# The clock moves forward by at most ten years at a time: further than any rule of Iron's
# (24-hour idempotency keys) needs, and well inside what timestamps can represent.
MAX_CLOCK_ADVANCE_SECONDS = 10 * 366 * 24 * 3600


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"body is not JSON: {name} is not a number the sandbox can apply")


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        # NaN and Infinity are not JSON, though Python's parser accepts them: refuse them here,
        # once, so no setting downstream ever holds one.
        payload = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ValueError(str(exc) if "NaN" in str(exc) or "Infinity" in str(exc) else "body is not JSON") from None
    except RecursionError:
        raise ValueError("body is not JSON") from None
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    return payload


MAX_DRIFT_VALUE_LENGTH = 64
# The most customers one `POST /_sim/customers` makes (a million is some seconds of the sandbox).
MAX_ADDED_CUSTOMERS = 1_000_000


def _drift_value(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_DRIFT_VALUE_LENGTH or not value.isprintable():
        raise ValueError(f"{name} must be a non-empty printable string of at most {MAX_DRIFT_VALUE_LENGTH} characters")
    return value


def _known_fields(body: dict[str, Any], known: set[str]) -> None:
    unknown = set(body) - known
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}; known: {sorted(known)}")


def sim_routes(sb: "Sandbox") -> list[Route]:
    def handler(fn):
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except ApiError as exc:
                return _error(exc.status, exc.message)
            except ValueError as exc:
                return _error(400, str(exc))

        return endpoint

    @handler
    async def health(request: Request) -> Response:
        return _json({"ok": True, "pending_webhooks": sb.webhooks.pending, "idempotency_keys": len(sb.idempotency)})

    @handler
    async def reset(request: Request) -> Response:
        await sb.reset()
        return _json({"ok": True})

    @handler
    async def customers(request: Request) -> Response:
        if request.method == "GET":
            return _json(sb.state.dump())
        body = await _body(request)
        _known_fields(body, {"count", "customer_type", "sub_partner_id", "prefix"})
        count = body.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ADDED_CUSTOMERS:
            raise ValueError(f"count must be a whole number from 1 to {MAX_ADDED_CUSTOMERS}")
        scope = body.get("sub_partner_id")
        if scope is not None:
            try:
                scope = str(uuid.UUID(str(scope)))
            except ValueError:
                raise ValueError("sub_partner_id must be a UUID") from None
        prefix = _drift_value(body, "prefix") or f"added-{uuid.uuid4().hex[:8]}"
        customer_type = body.get("customer_type", "Person")
        return _json(sb.state.sim_add_customers(count, scope=scope, customer_type=customer_type, prefix=prefix), 201)

    @handler
    async def customer_status(request: Request) -> Response:
        body = await _body(request)
        status = body.get("status")
        if not isinstance(status, str):
            raise ValueError("status is required")
        documents = body.get("documents")
        if documents is not None and (
            not isinstance(documents, list) or not documents or not all(isinstance(d, str) and d for d in documents)
        ):
            raise ValueError("documents must be a non-empty list of display names")
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ValueError("comment must be a string")
        result = sb.state.sim_set_customer_status(
            request.path_params["id"], status, base_url=sb.base_url(request), documents=documents, comment=comment
        )
        return _json(result)

    @handler
    async def identification_status(request: Request) -> Response:
        body = await _body(request)
        status = body.get("status")
        if not isinstance(status, str):
            raise ValueError("status is required")
        retry = body.get("retry", True)
        if not isinstance(retry, bool):
            raise ValueError("retry must be a boolean")
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ValueError("comment must be a string")
        result = sb.state.sim_set_identification_status(
            request.path_params["id"], status, base_url=sb.base_url(request), retry=retry, comment=comment
        )
        return _json(result)

    @handler
    async def customer_drift(request: Request) -> Response:
        body = await _body(request)
        _known_fields(body, {"status", "requirement_code", "bucket"})
        status = _drift_value(body, "status")
        code = _drift_value(body, "requirement_code")
        bucket = body.get("bucket", "missing")
        if bucket not in REQUIREMENT_BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(REQUIREMENT_BUCKETS)}")
        clear = "requirement_code" in body and body["requirement_code"] is None
        if status is None and code is None and not clear:
            raise ValueError("give status and/or requirement_code (null clears the drifted requirement)")
        result = sb.state.sim_drift_customer(
            request.path_params["id"], status=status, requirement=(bucket, code) if code else None,
            clear_requirement=clear,
        )
        return _json(result)

    @handler
    async def identification_drift(request: Request) -> Response:
        body = await _body(request)
        _known_fields(body, {"status", "step", "step_result", "retry"})
        status = _drift_value(body, "status")
        step = _drift_value(body, "step")
        step_result = _drift_value(body, "step_result") or "Pending"
        retry = body.get("retry", True)
        if not isinstance(retry, bool):
            raise ValueError("retry must be a boolean")
        if status is None and step is None:
            raise ValueError("give status and/or step")
        result = sb.state.sim_drift_identification(
            request.path_params["id"], status=status, step=(step, step_result, retry) if step else None
        )
        return _json(result)

    @handler
    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            sb.requests.clear()
            return _json({"ok": True})
        clear = request.query_params.get("clear", "").lower() in ("1", "true", "yes")
        return _json(sb.requests.list(clear=clear))

    @handler
    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            sb.faults.clear()
        elif request.method == "POST":
            sb.faults.set(FaultConfig.parse(await _body(request)))
        return _json(sb.faults.config.to_json())

    @handler
    async def webhooks(request: Request) -> Response:
        if request.method == "POST":
            sb.webhooks.configure(await _body(request))
        registered = [w.to_api(sb.state.partner_id) for w in sb.webhooks.registered()]
        return _json(dict(sb.webhooks.settings.to_json(), pending=sb.webhooks.pending, registered=registered))

    @handler
    async def deliveries(request: Request) -> Response:
        return _json(sb.webhooks.deliveries())

    @handler
    async def events(request: Request) -> Response:
        return _json(sb.webhooks.events())

    @handler
    async def flush(request: Request) -> Response:
        body = await _body(request)
        timeout = body.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError("timeout must be a non-negative number of seconds")
        pending = await sb.webhooks.flush(float(timeout))
        return _json({"pending": pending, "flushed": pending == 0})

    @handler
    async def autopilot(request: Request) -> Response:
        if request.method == "POST":
            sb.autopilot.configure(await _body(request))
        return _json(sb.autopilot.settings.to_json())

    @handler
    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            seconds = body.get("advance_seconds")
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds)
                or not 0 <= seconds <= MAX_CLOCK_ADVANCE_SECONDS
            ):
                raise ValueError(
                    f"advance_seconds must be a number of seconds from 0 to {MAX_CLOCK_ADVANCE_SECONDS} "
                    "(the clock only moves forward)"
                )
            sb.clock.advance(seconds)
        return _json({"now": sb.clock.now_dt().isoformat(), "offset_seconds": sb.clock.offset})

    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/customers", customers, methods=["GET", "POST"]),
        Route("/_sim/customers/{id}/status", customer_status, methods=["POST"]),
        Route("/_sim/identifications/{id}/status", identification_status, methods=["POST"]),
        Route("/_sim/customers/{id}/drift", customer_drift, methods=["POST"]),
        Route("/_sim/identifications/{id}/drift", identification_drift, methods=["POST"]),
        Route("/_sim/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/_sim/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/webhooks", webhooks, methods=["GET", "POST"]),
        Route("/_sim/webhooks/deliveries", deliveries, methods=["GET"]),
        Route("/_sim/webhooks/events", events, methods=["GET"]),
        Route("/_sim/webhooks/flush", flush, methods=["POST"]),
        Route("/_sim/autopilot", autopilot, methods=["GET", "POST"]),
        Route("/_sim/clock", clock, methods=["GET", "POST"]),
    ]

"""The only door from Iron into Temporal.

`POST /webhooks/iron` takes one delivery through these gates, in this order, and answers at the
first that fails:

    413  body larger than the limit (by Content-Length before reading, or counted while reading)
    408  body not received within the body timeout (a slow sender holds nothing for long)
    401  signature missing, stale or wrong (checked on the raw bytes, before anything is parsed;
         a timestamp that is not a plain Unix time of at most 20 digits is simply wrong)
    415  not application/json
    400  not JSON (or nested deeper than MAX_JSON_DEPTH), not an Iron webhook container, or an
         id that is not an Iron id (ids go into URL paths and workflow ids only once validated)
    200  ping (remembered for `GET /webhooks/iron/pings/{customer_id}`), or an event type the
         onboarding does not use: acknowledged, nothing signalled
    (the workflow: from the cache, else Temporal's visibility by `IronCustomerId` for a customer
    the engine onboards, else a read of Iron for one it never saw)
    200  Iron does not know the customer: acknowledged, nothing signalled (a retry cannot help)
    200  `customer_created` for a customer whose onboarding the index shows: acknowledged,
         nothing signalled (the onboarding made or found the customer itself)
    503  Iron (or, for the index, Temporal) cannot be asked now: Iron retries the delivery later
    409  the workflow named after the customer's external id belongs to another Iron customer
         (an external id shared with, or equal to the Iron id of, another customer): refused,
         nothing signalled, logged as an error for an operator
    200  signalled (or adopted: this delivery's signal-with-start started the workflow; one of
         several racing for a new customer signals the workflow another one started) once
         Temporal durably accepted the signal
    503  Temporal unreachable or refused: Iron retries the delivery later

The receiver keeps no state besides a cache that may be lost at any time, so any number of
replicas can share one URL. It never logs the body, the signature or a secret.
"""

from __future__ import annotations

from contracts.quoting import quoted

import asyncio
import collections
import contextlib
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import httpx

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route as HttpRoute
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import MetricMeter, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from iron_client import IronClient, IronSettings
from iron_client.webhooks import (
    ID_HEADER,
    TIMESTAMP_HEADER,
    WebhookEvent,
    WebhookFormatError,
    WebhookVerificationError,
    parse_event,
    verify,
)
from runtime.logging import get_logger
from runtime.temporal import ClientProvider, TemporalClientProvider, as_provider
from webhook_receiver.metrics import ReceiverMetrics
from webhook_receiver.routing import CustomerRouter, IronLookupFailed, Route, UnknownCustomer, is_iron_id
from webhook_receiver.settings import IRON_POOL_SIZE, ReceiverSettings
from contracts import search_attributes
from contracts.start_metadata import start_options
from contracts.workflow_ids import scope_of_workflow_id
from contracts.messages import SIGNAL_IRON_EVENT, WORKFLOW_TYPE, IronEventSignal
from operations.state_access import last_event_sequence, workflow_not_found

WEBHOOK_PATH = "/webhooks/iron"
ONBOARDING_TYPES = frozenset({"customer_status", "identification_status", "customer_created"})
# `customer_created` for a customer the engine just created arrives while the workflow is still
# about to publish its `IronCustomerId`: the index is asked again after these pauses (about 2 s
# in all; visibility trails by about a second) before Iron is read, so the engine's own new
# customers cost no Iron read, no signal and no workflow task. An adoption waits that long.
INDEX_CATCH_UP_SECONDS = (0.25, 0.5, 1.0)
# Types whose message id is the customer itself, so it can stand in for a missing data.customer_id.
_CUSTOMER_MESSAGE_TYPES = frozenset({"customer_status", "customer_created"})

# Iron's webhook container is three levels deep; anything far deeper is not Iron's, and the JSON
# parser must never get to recurse on it.
MAX_JSON_DEPTH = 32
# A Unix time in seconds has 10 digits until the year 2286; 20 leaves room for nothing absurd.
_UNIX_TIME = re.compile(r"-?[0-9]{1,20}")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")

log = get_logger("webhook_receiver")
T = TypeVar("T")


@dataclass
class Outcome:
    """What one delivery came to: the HTTP answer and what the log line says about it."""

    http_status: int
    status: str
    reason: str | None = None
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)

    def response(self, webhook_id: str | None) -> JSONResponse:
        body: dict[str, Any] = {"status": self.status}
        if self.reason:
            body["reason"] = self.reason
        if "workflow_id" in self.fields:
            body["workflow_id"] = self.fields["workflow_id"]
        if webhook_id:
            body["webhook_id"] = webhook_id
        return JSONResponse(body, status_code=self.http_status)


class _TooLarge(Exception):
    pass


class _BadRequest(Exception):
    pass


class _SlowBody(Exception):
    pass


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `body` nests arrays/objects deeper than `limit` (strings are skipped)."""
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def plain_unix_time(value: str | None) -> bool:
    """A `webhook-timestamp` the signature check can compare without overflowing."""
    return value is not None and _UNIX_TIME.fullmatch(value.strip()) is not None


def _header_value(value: str | None, limit: int = 128) -> str | None:
    """A header fit for a log line: bounded and printable."""
    if not value:
        return None
    cleaned = "".join(ch for ch in value[:limit] if ch.isprintable())
    return cleaned or None


def _is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    media_type, _, params = value.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def started_by_signal_with_start(handle: WorkflowHandle) -> bool:
    """Whether the signal-with-start that returned `handle` started the workflow, rather than
    signalled one already running. Temporal answers it (the response's `started`); the SDK
    keeps the response on the handle but offers no accessor for it. Should it ever stop keeping
    it, every adoption counts as a start, and
    `test_a_signal_with_start_tells_whether_it_started_the_workflow` fails."""
    response = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(response, "started", True))


def _normalised_type(event: WebhookEvent) -> str:
    """Iron's `customer_created` may also arrive as a generic event of kind CustomerCreated."""
    if event.type.lower() == "event" and (event.raw_message or {}).get("kind") == "CustomerCreated":
        return "customer_created"
    return event.type


class RecentPings:
    """The last verified pings this process received, by the customer id the ping named, so
    `python -m webhook_receiver check` can confirm its own ping arrived. Bounded, in memory: a
    ping is a test, not an event anyone must keep."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._pings: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def record(self, customer_id: str, webhook_id: str | None) -> None:
        self._pings.pop(customer_id, None)
        self._pings[customer_id] = {"customer_id": customer_id, "webhook_id": webhook_id, "received_at": time.time()}
        while len(self._pings) > self._size:
            self._pings.popitem(last=False)

    def get(self, customer_id: str) -> dict[str, Any] | None:
        return self._pings.get(customer_id)


def temporal_unavailable(exc: BaseException) -> Outcome:
    """Anything short of Temporal's durable answer: Iron retries the delivery later."""
    detail = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
    return Outcome(503, "retry", "Temporal unavailable", "error", {"detail": detail})


class WebhookReceiver:
    def __init__(self, settings: ReceiverSettings, provider: ClientProvider, router: CustomerRouter) -> None:
        self.settings = settings
        self.provider = provider
        self.router = router
        self._finding: dict[str, asyncio.Task[Route | Outcome]] = {}
        self.pings = RecentPings()
        # The SDK's deadline (which also bounds its retries) should fire first; this one only
        # guards against a call that never returns.
        self._guard_timeout = settings.temporal_timeout_seconds + 0.5
        self._owner_checks: dict[tuple[str, str], asyncio.Task[tuple[bool, str | None]]] = {}
        # Temporal calls in flight at once. A burst beyond what the server absorbs queues here
        # rather than as hundreds of calls that each time out after the server did their work.
        self._temporal_slots = asyncio.Semaphore(settings.temporal_max_concurrent_calls)

    async def _temporal(self, call: Callable[[timedelta], Awaitable[T]]) -> T:
        """One Temporal call, within the delivery's Temporal budget (slot wait included)."""
        deadline = time.monotonic() + self.settings.temporal_timeout_seconds
        async with asyncio.timeout(self._guard_timeout):
            async with self._temporal_slots:
                remaining = max(0.05, deadline - time.monotonic())
                return await call(timedelta(seconds=remaining))

    # --- body --------------------------------------------------------------------------------

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise _BadRequest("Content-Length is not a number") from None
            if length < 0:
                raise _BadRequest("Content-Length is negative")
            if length > limit:
                raise _TooLarge()
        chunks: list[bytes] = []
        size = 0
        try:
            # Waiting on the ASGI receive channel only: cancelling it touches no connection pool.
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge()
                    chunks.append(chunk)
        except TimeoutError:
            raise _SlowBody() from None
        return b"".join(chunks)

    # --- the delivery ------------------------------------------------------------------------

    async def handle(self, request: Request, ctx: dict[str, Any]) -> Outcome:
        try:
            body = await self._read_body(request)
        except _TooLarge:
            return Outcome(413, "rejected", f"body larger than {self.settings.max_body_bytes} bytes", "warning")
        except _BadRequest as exc:
            return Outcome(400, "rejected", str(exc), "warning")
        except _SlowBody:
            return Outcome(
                408, "rejected", f"body not received within {self.settings.body_timeout_seconds:g}s", "warning"
            )
        ctx["bytes"] = len(body)

        if request.headers.get(TIMESTAMP_HEADER) is not None and not plain_unix_time(request.headers.get(TIMESTAMP_HEADER)):
            return Outcome(401, "rejected", "invalid signature", "warning", {"detail": "webhook-timestamp is not a Unix time"})
        try:
            verify(body, request.headers, self.settings.webhook_secrets, tolerance_seconds=self.settings.tolerance_seconds)
        except (WebhookVerificationError, ValueError, OverflowError) as exc:
            # The caller learns only that it failed; the log says why.
            return Outcome(401, "rejected", "invalid signature", "warning", {"detail": str(exc)})

        if not _is_json_content_type(request.headers.get("content-type")):
            return Outcome(415, "rejected", "content type must be application/json", "warning")

        if json_too_deep(body):
            return Outcome(400, "rejected", f"not an Iron webhook: JSON nested deeper than {MAX_JSON_DEPTH}", "warning")
        try:
            event = parse_event(body)
        except (WebhookFormatError, RecursionError) as exc:
            detail = exc if isinstance(exc, WebhookFormatError) else "JSON nested too deep"
            return Outcome(400, "rejected", f"not an Iron webhook: {detail}", "warning")
        event_type = _normalised_type(event)
        ctx["event_type"] = _header_value(event_type, 64)
        if event.entity_id is not None and not is_iron_id(event.entity_id):
            return Outcome(400, "rejected", "not an Iron webhook: message id is not an Iron id", "warning")
        ctx.update(entity_id=event.entity_id, iron_status=_header_value(event.status, 64))

        if event_type == "ping":
            if event.customer_id:
                self.pings.record(event.customer_id, ctx.get("webhook_id"))
            return Outcome(200, "ignored", "ping")
        if event_type not in ONBOARDING_TYPES:
            return Outcome(200, "ignored", f"event type {quoted(event_type)} is not used by onboarding")

        customer_id = event.customer_id or (event.entity_id if event_type in _CUSTOMER_MESSAGE_TYPES else None)
        if not customer_id:
            return Outcome(400, "rejected", "not an Iron webhook: no customer id", "warning")
        if not is_iron_id(customer_id):
            return Outcome(400, "rejected", "not an Iron webhook: customer id is not an Iron id", "warning")
        ctx["customer_id"] = customer_id

        signal = IronEventSignal(
            type=event_type,
            timestamp=event.timestamp,
            customer_id=customer_id,
            entity_id=event.entity_id,
            status=event.status,
            webhook_id=ctx.get("webhook_id"),
        )
        return await self._deliver(customer_id, event_type, signal, ctx)

    async def _route(self, customer_id: str, *, fresh: bool = False) -> Route | Outcome:
        try:
            return await self.router.route(customer_id, fresh=fresh)
        except UnknownCustomer as exc:
            return Outcome(200, "ignored", "customer unknown to Iron", "warning", {"detail": str(exc)})
        except IronLookupFailed as exc:
            return Outcome(503, "retry", "Iron unavailable for the customer lookup", "error", {"detail": str(exc)})

    async def _indexed_route(self, client: Client, customer_id: str) -> Route | None:
        """The running onboarding that owns this Iron customer, from Temporal's visibility
        (`IronCustomerId`, set by the workflow once it knows its customer): no Iron read and no
        scope list, the workflow's own `IronSubPartnerId` naming the scope. None when the index
        has none yet: a customer the engine never saw, or one whose workflow's attribute is not
        visible yet (visibility trails by about a second), and Iron is read as before."""
        query = (f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" '
                 f'AND {search_attributes.IRON_CUSTOMER_ID.name} = "{customer_id}"')

        async def first_two(budget: timedelta) -> list[Any]:
            return [w async for w in client.list_workflows(query, limit=2, rpc_timeout=budget)]

        found = await self._temporal(first_two)
        if len(found) != 1:  # none yet, or (never by design) two claiming one customer: Iron decides
            return None
        scope = scope_of_workflow_id(found[0].id)
        if scope is None:
            return None
        sub_partner_id, external_id = scope
        # As a cached route: not a fresh read of Iron, so a workflow gone by the time it is
        # signalled sends the delivery to Iron's read (and adoption) as a stale cache entry does.
        route = Route(
            customer_id, external_id, found[0].id, from_cache=True, verified=True, sub_partner_id=sub_partner_id, owned=True,
        )
        self.router.remember(route)
        return route

    async def _find_route(self, client: Client, customer_id: str, *, patient: bool = False) -> Route | Outcome:
        """The cached route, else the index's, else Iron's: one search per customer at a time,
        so a burst for a new customer shares one index query and one Iron read, and every
        delivery of it gets the same answer. `patient`: give the index a moment to catch up
        before asking Iron (`INDEX_CATCH_UP_SECONDS`)."""
        cached = self.router.cached_route(customer_id)
        if cached is not None:
            return cached
        task = self._finding.get(customer_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._search(client, customer_id, patient=patient))
            self._finding[customer_id] = task
            task.add_done_callback(lambda t, cid=customer_id: self._finding.pop(cid) if self._finding.get(cid) is t else None)
        return await asyncio.shield(task)

    async def _search(self, client: Client, customer_id: str, *, patient: bool = False) -> Route | Outcome:
        try:
            indexed = await self._indexed_route(client, customer_id)
            for pause in INDEX_CATCH_UP_SECONDS if patient else ():
                if indexed is not None:
                    break
                await asyncio.sleep(pause)
                indexed = await self._indexed_route(client, customer_id)
        except Exception as exc:  # Temporal unreachable: Iron retries the webhook
            return temporal_unavailable(exc)
        return indexed or await self._route(customer_id)

    async def _deliver(self, customer_id: str, event_type: str, signal: IronEventSignal, ctx: dict[str, Any]) -> Outcome:
        try:
            client = await asyncio.wait_for(self.provider(), self._guard_timeout)
        except Exception as exc:
            return temporal_unavailable(exc)
        created = event_type == "customer_created"
        route = await self._find_route(client, customer_id, patient=created)
        if isinstance(route, Outcome):
            return route
        ctx["workflow_id"] = route.workflow_id
        ctx["sub_partner_id"] = route.sub_partner_id  # left out of the log line for the default scope
        if created and route.owned:
            return Outcome(200, "ignored", "its onboarding already knows the customer", fields={"workflow_id": route.workflow_id})
        try:
            exists = await self._check_owner(client, route)
            if isinstance(exists, Outcome):
                return exists
            # A workflow just seen missing is not signalled first: straight to adoption.
            if exists and await self._signal(client, route, signal):
                return Outcome(200, "signalled", fields={"workflow_id": route.workflow_id})
            if route.from_cache:
                # The remembered workflow is gone; Iron may name another one now.
                self.router.forget(customer_id)
                route = await self._route(customer_id, fresh=True)
                if isinstance(route, Outcome):
                    return route
                ctx["workflow_id"] = route.workflow_id
                ctx["sub_partner_id"] = route.sub_partner_id
                exists = await self._check_owner(client, route)
                if isinstance(exists, Outcome):
                    return exists
                if exists and await self._signal(client, route, signal):
                    return Outcome(200, "signalled", fields={"workflow_id": route.workflow_id})
            if not self.settings.adopt_unknown_customers:
                return Outcome(
                    200, "ignored", "no running workflow and adoption is off", "warning",
                    {"workflow_id": route.workflow_id},
                )
            if route.archived or (event_type == "customer_status" and signal.status == "Archived"):
                return Outcome(
                    200, "ignored", "no running workflow for an archived customer", "info",
                    {"workflow_id": route.workflow_id},
                )
            started = await self._signal_with_start(client, route, signal)
            self.router.mark_verified(route)
            # Deliveries racing for a new customer (or a retry of one that was answered 503
            # after its start) all get here; one started the workflow, the others signalled it.
            return Outcome(200, "adopted" if started else "signalled", fields={"workflow_id": route.workflow_id})
        except Exception as exc:  # anything short of durable acceptance: make Iron retry
            return temporal_unavailable(exc)

    async def _check_owner(self, client: Client, route: Route) -> Outcome | bool:
        """Refuse when the workflow this route names already belongs to another Iron customer.

        Workflows are named after the partner's external id, or after the Iron id when there
        is no usable one; an external id that another customer shares, or that equals another
        customer's Iron id, names someone else's workflow. The workflow's `IronCustomerId`
        search attribute says whose it is. Checked once per customer while the route is cached,
        and concurrent deliveries for one customer share the check.

        Returns the refusal, or whether the workflow exists (True when not checked).
        """
        if route.verified:
            return True
        key = (route.customer_id, route.workflow_id)
        task = self._owner_checks.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._describe_owner(client, route.workflow_id))
            self._owner_checks[key] = task
            task.add_done_callback(lambda _t: self._owner_checks.pop(key, None))
        exists, owner = await asyncio.wait_for(asyncio.shield(task), self._guard_timeout)
        if not exists or owner is None:
            # Nobody's yet (adoption starts the customer's own), or the workflow has not found
            # its Iron customer yet: no owner to contradict.
            return exists
        if owner != route.customer_id:
            self.router.forget(route.customer_id)
            return Outcome(
                409, "refused", "the workflow for this customer belongs to another Iron customer", "error",
                {"workflow_id": route.workflow_id, "owner_customer_id": owner},
            )
        self.router.mark_verified(route)
        return True

    async def _describe_owner(self, client: Client, workflow_id: str) -> tuple[bool, str | None]:
        """(whether the workflow exists, its IronCustomerId if it has one)."""
        try:
            description = await self._temporal(
                lambda budget: client.get_workflow_handle(workflow_id).describe(rpc_timeout=budget)
            )
        except RPCError as err:
            if workflow_not_found(err):
                return False, None
            raise
        return True, description.typed_search_attributes.get(search_attributes.IRON_CUSTOMER_ID)

    async def _signal(self, client: Client, route: Route, signal: IronEventSignal) -> bool:
        """True once Temporal accepted the signal; False if no such workflow is running."""
        handle = client.get_workflow_handle(route.workflow_id)
        try:
            await self._temporal(lambda budget: handle.signal(SIGNAL_IRON_EVENT, signal, rpc_timeout=budget))
        except RPCError as err:
            if workflow_not_found(err):
                return False
            raise
        return True

    async def _signal_with_start(self, client: Client, route: Route, signal: IronEventSignal) -> bool:
        """Adopt the customer, signalling the workflow another delivery started meanwhile if
        there is one. True when this call started the workflow."""
        # A customer whose onboarding was closed (terminated, say) goes on with its sequence.
        events_after = await self._temporal(
            lambda budget: last_event_sequence(client, route.workflow_id, rpc_timeout=budget)
        )
        workflow_input = route.adoption_input().model_copy(
            update={"deliver_events": bool(self.settings.events_url), "events_after": events_after}
        )
        options = start_options(workflow_input, started_by=f"webhook receiver ({signal.type})")
        handle = await self._temporal(
            lambda budget: client.start_workflow(
                WORKFLOW_TYPE,
                workflow_input,
                task_queue=self.settings.task_queue,
                start_signal=SIGNAL_IRON_EVENT,
                start_signal_args=[signal],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                **options,
                rpc_timeout=budget,
            )
        )
        return started_by_signal_with_start(handle)

    async def ready(self) -> tuple[bool, str | None]:
        """Ready while every delivery could be served: the customer lookups are healthy, Iron
        answers (a customer not in the cache is routed by reading it; the answer is kept a few
        seconds, see `CustomerRouter.iron_unreachable`) and Temporal answers."""
        healthy, why = self.router.health()
        if not healthy:
            return False, f"Iron lookups: {why}"
        timeout = self.settings.ready_timeout_seconds
        iron, temporal = await asyncio.gather(self.router.iron_unreachable(timeout), self._temporal_unreachable(timeout))
        reasons = [f"{name} does not answer: {why}" for name, why in (("Iron", iron), ("Temporal", temporal)) if why]
        return (False, "; ".join(reasons)) if reasons else (True, None)

    async def _temporal_unreachable(self, timeout: float) -> str | None:
        try:
            client = await asyncio.wait_for(self.provider(), timeout)
            await asyncio.wait_for(
                client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=timeout)),
                timeout + 0.5,
            )
        except Exception as exc:
            return "timed out" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
        return None


def create_app(
    settings: ReceiverSettings,
    temporal_client_provider: Client | ClientProvider | None = None,
    iron_client: IronClient | IronSettings | None = None,
    *,
    iron_transport: Callable[[httpx.Limits], httpx.AsyncBaseTransport] | None = None,
    metric_meter: MetricMeter | None = None,
) -> Starlette:
    """The receiver as an ASGI app.

    `settings`: those the receiver loaded at start (`ReceiverSettings.load()`). The Temporal client
    comes from `temporal_client_provider`: a `Client`, or an async callable returning one
    (default: a lazy connection from Temporal's environment configuration, with the
    settings' data converter). Customers are read with `iron_client`: `IronSettings` (default:
    the settings' `IRON_*`), from which the receiver builds its own bounded, self-healing
    client, closed with the app; or a ready `IronClient`, used as it is. `iron_transport`
    makes the transport under the receiver's own client (a proxy, a test's broken pool).
    `metric_meter` (the Temporal runtime's, when metrics are served) counts every delivery
    and customer lookup (`webhook_receiver/metrics.py`).
    """
    metrics = ReceiverMetrics(metric_meter)
    if temporal_client_provider is None:
        temporal_client_provider = TemporalClientProvider(data_converter=settings.data_converter())
    provider = as_provider(temporal_client_provider)
    router = CustomerRouter(
        iron_client if iron_client is not None else settings.iron_settings(),
        cache_size=settings.cache_size,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        timeout_seconds=settings.iron_timeout_seconds,
        max_concurrent_lookups=settings.iron_max_concurrent_lookups,
        pool_size=IRON_POOL_SIZE,
        transport_factory=iron_transport,
        iron_observer=metrics.iron_request,
        sub_partner_ids=settings.lookup_scopes(),
    )
    receiver = WebhookReceiver(settings, provider, router)

    async def webhook(request: Request) -> JSONResponse:
        started = time.perf_counter()
        webhook_id = _header_value(request.headers.get(ID_HEADER))
        ctx: dict[str, Any] = {"webhook_id": webhook_id}
        try:
            outcome = await receiver.handle(request, ctx)
        except ClientDisconnect:
            outcome = Outcome(400, "rejected", "client disconnected before the body was read", "warning")
        except Exception as exc:  # a defect here must still leave a log line; Iron retries a 500
            outcome = Outcome(500, "error", "internal error", "error", {"detail": f"{type(exc).__name__}: {exc}"})
        fields = {k: v for k, v in {**ctx, **outcome.fields, "reason": outcome.reason}.items() if v is not None}
        elapsed = time.perf_counter() - started
        metrics.webhook(outcome.status, outcome.http_status, elapsed)
        getattr(log, outcome.level)(
            "webhook",
            outcome=outcome.status,
            http_status=outcome.http_status,
            duration_ms=round(elapsed * 1000, 1),
            **fields,
        )
        return outcome.response(webhook_id)

    async def ping_seen(request: Request) -> JSONResponse:
        seen = receiver.pings.get(request.path_params["customer_id"])
        if seen is None:
            return JSONResponse({"status": "not_seen"}, status_code=404)
        return JSONResponse({"status": "seen", **seen})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        ok, detail = await receiver.ready()
        if ok:
            return JSONResponse({"status": "ready"})
        log.warning("not ready", detail=detail)
        return JSONResponse({"status": "unavailable", "reason": detail}, status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("webhook receiver starting", settings=repr(settings), path=WEBHOOK_PATH)
        try:
            yield
        finally:
            await router.aclose()

    app = Starlette(
        routes=[
            HttpRoute(WEBHOOK_PATH, webhook, methods=["POST"]),
            HttpRoute(WEBHOOK_PATH + "/pings/{customer_id}", ping_seen, methods=["GET"]),
            HttpRoute("/healthz", healthz, methods=["GET"]),
            HttpRoute("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    app.state.settings = settings
    return app

"""Which workflow a webhook belongs to, without a database of the receiver's own.

Iron's webhook names the Iron customer id; the workflow is named after the partner's
`external_id` (`onboarding-{external_id}`). A customer the engine already onboards is found in
Temporal's visibility by the receiver (`webhook_receiver.app`, `IronCustomerId`), with no Iron
read; this router serves the rest: Iron knows both ids, so it reads the customer once and
remembers the answer in a small per-process LRU (which also keeps the routes the index gave).
Nothing is shared between replicas: a cold cache costs one index query or one Iron read, never
a wrong answer.

A customer without a usable `external_id` (none, or one the workflow input would refuse) is
keyed by its Iron id, the same way adoption names it.

Sub-partners: Iron shows a sub-partner's customer only to requests made in that sub-partner's
scope (`X-SUB-PARTNER-ID`), and the webhook does not say which. A customer is read in the
default scope first (exactly one read, as before, for the default scope's customers), then in
each configured sub-partner scope (`IRON_SUB_PARTNER_IDS`) in turn until one knows it; the scope
that answered names the workflow (`workflow_id_for(external_id, sub_partner_id)`) and is
remembered with the route. The reads of one lookup run one after another in its slot, so the
bound on connections holds.

Under a burst the router stays healthy by construction:

* one lookup per customer at a time: concurrent deliveries for the same customer share it
  (single flight), so 500 deliveries for 50 customers cost 50 Iron reads, not 500;
* lookups are bounded (`max_concurrent_lookups`) below the HTTP client's pool size, so a burst
  queues here, where waiting is bounded, and never inside the connection pool;
* the only timeouts on an Iron call are httpx's own (connect, read, write, pool). Nothing
  cancels an httpx call from outside: cancellation inside httpcore's pool can leave
  connections stuck in CONNECTING for good (encode/httpcore#1093). A delivery stops *waiting*
  for a shared lookup after its budget (the lookup itself runs on and fills the cache);
* should the pool still wedge (a lookup outlives every timeout it has, or the pool reports
  itself exhausted), `health()` says so, `/readyz` fails, and the router replaces its HTTP
  client with a fresh one, so it recovers by itself.

Readiness also asks whether Iron answers at all (`iron_unreachable`): a customer not in the
cache can only be routed by reading Iron. One cheap read (a one-item customer page) at a time,
on the lookups' own client, its answer kept for a few seconds, so a load balancer probing every
second costs Iron one read every `IRON_CHECK_TTL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from iron_client import IronClient, IronNotFound, IronSettings
from iron_client.client import ResponseObserver
from iron_client.errors import IronBadRequest, IronError
from iron_client.models import Customer, CustomerStatus
from contracts.messages import OnboardingInput, external_id_for_customer, workflow_id_for


# How long the readiness probe's answer about Iron stands before Iron is asked again.
IRON_CHECK_TTL_SECONDS = 5.0


class UnknownCustomer(Exception):
    """Iron does not know this customer (or refuses the id): retrying cannot help."""


class IronLookupFailed(Exception):
    """Iron could not answer now (down, slow, 5xx, rate limit, our credentials): retry later."""


# Iron's ids are UUIDs; this admits those and any other plain token, and nothing that could
# change the meaning of a URL path (`/`, `?`, `#`, `%`, `..`, whitespace, control characters).
_IRON_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def is_iron_id(value: object) -> bool:
    """True when `value` can be an Iron id and is safe in a URL path segment."""
    return isinstance(value, str) and _IRON_ID.fullmatch(value) is not None and ".." not in value


def path_segment(iron_id: str) -> str:
    """`iron_id` percent-encoded as one path segment (a no-op for a valid id; a second fence)."""
    return urllib.parse.quote(iron_id, safe="")


@dataclass(frozen=True)
class Route:
    customer_id: str
    external_id: str
    workflow_id: str
    # Only known when Iron was just read; a cached route says None. Adoption always follows
    # a fresh read, so it knows them.
    iron_status: str | None = None
    customer_type: str | None = None
    from_cache: bool = False
    # The receiver saw that the workflow is this customer's (or that none exists yet).
    verified: bool = False
    # The sub-partner scope in which Iron knows the customer (None: the default scope).
    sub_partner_id: str | None = None
    # The workflow's `IronCustomerId` is this customer (found by the engine's index): it knows
    # the customer exists, so Iron's `customer_created` tells it nothing.
    owned: bool = False

    def adoption_input(self) -> OnboardingInput:
        """The input that adopts this customer into its own scope."""
        extra: dict[str, str] = {"customer_type": self.customer_type} if self.customer_type else {}
        if self.sub_partner_id:
            extra["sub_partner_id"] = self.sub_partner_id
        return OnboardingInput(external_id=self.external_id, iron_customer_id=self.customer_id, **extra)

    @property
    def archived(self) -> bool:
        return self.iron_status == CustomerStatus.ARCHIVED.value


def routing_key(customer_id: str, external_id: str | None) -> str:
    """The external id the workflow is named after (see `external_id_for_customer`)."""
    return external_id_for_customer(customer_id, external_id)


class _LRU:
    def __init__(self, size: int, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._size = size
        self._ttl = ttl_seconds
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        stored_at, value = item
        if self._ttl and self._clock() - stored_at > self._ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        if self._size <= 0:
            return
        self._items[key] = (self._clock(), value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class _PoolWatch(httpx.AsyncBaseTransport):
    """The transport under the receiver's Iron client, noting when httpx's pool timeout fires:
    with lookups bounded below the pool size, a pool timeout means connections are stuck."""

    def __init__(self, inner: httpx.AsyncBaseTransport, on_pool_timeout: Callable[[], None]) -> None:
        self._inner = inner
        self._on_pool_timeout = on_pool_timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except httpx.PoolTimeout:
            self._on_pool_timeout()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def lookup_timeout(seconds: float) -> httpx.Timeout:
    """httpx's own timeouts for one customer read: every phase is bounded, none cancelled from outside."""
    short = min(seconds, 2.0)
    return httpx.Timeout(connect=short, read=seconds, write=short, pool=seconds)


class _Generation:
    """One HTTP client and the lookups running on it."""

    def __init__(self, iron: IronClient, max_concurrent: int, http: httpx.AsyncClient | None = None) -> None:
        self.iron = iron
        self.http = http  # set when the router built the client, and so may replace it
        self.slots = asyncio.Semaphore(max_concurrent)
        self.started: dict[int, float] = {}  # lookup serial -> start time
        self.pool_timeouts = 0

    @property
    def replaceable(self) -> bool:
        return self.http is not None

    def note_pool_timeout(self) -> None:
        self.pool_timeouts += 1


class CustomerRouter:
    """Iron customer id -> workflow, via one Iron read, remembered in a bounded LRU.

    `iron` is an `IronClient` (its own timeouts and pool apply; the router cannot replace it)
    or `IronSettings`, from which the router builds and owns its client: a pool of
    `pool_size`, `lookup_timeout(timeout_seconds)`, replaced when it wedges.
    """

    def __init__(
        self,
        iron: IronClient | IronSettings,
        *,
        cache_size: int = 10_000,
        cache_ttl_seconds: float = 3600.0,
        timeout_seconds: float = 5.0,
        max_concurrent_lookups: int = 16,
        pool_size: int = 40,
        clock: Callable[[], float] = time.monotonic,
        transport_factory: Callable[[httpx.Limits], httpx.AsyncBaseTransport] | None = None,
        iron_observer: ResponseObserver | None = None,
        sub_partner_ids: tuple[str, ...] = (),
        iron_check_ttl_seconds: float = IRON_CHECK_TTL_SECONDS,
    ) -> None:
        if max_concurrent_lookups >= pool_size:
            raise ValueError("max_concurrent_lookups must stay below the pool size")
        self._timeout = timeout_seconds
        # Scopes tried after the default one, in order (see the module's docstring).
        self._sub_partner_ids = tuple(sub_partner_ids)
        self._max_concurrent = max_concurrent_lookups
        self._pool_size = pool_size
        self._clock = clock
        self._cache = _LRU(cache_size, cache_ttl_seconds, clock)
        self._transport_factory = transport_factory or (lambda limits: httpx.AsyncHTTPTransport(limits=limits))
        self._iron_settings = iron if isinstance(iron, IronSettings) else None
        self._iron_observer = iron_observer  # metrics: every lookup, by outcome
        if iron_observer is not None and isinstance(iron, IronClient):
            iron.observe_responses(iron_observer)
        self._inflight: dict[str, asyncio.Task[Route]] = {}
        self._serial = 0
        self._retired: set[asyncio.Task] = set()
        self._saturated_at: float | None = None
        self.replacements = 0
        self.lookups = 0
        self._iron_check_ttl = iron_check_ttl_seconds
        self._iron_checked: tuple[float, str | None] | None = None  # (when, why Iron is not usable)
        self._iron_check: asyncio.Task[str | None] | None = None
        self._gen = self._new_generation() if isinstance(iron, IronSettings) else _Generation(iron, max_concurrent_lookups)

    # --- the client -------------------------------------------------------------------------

    def _new_generation(self) -> _Generation:
        assert self._iron_settings is not None
        limits = httpx.Limits(max_connections=self._pool_size, max_keepalive_connections=self._pool_size)
        box: list[_Generation] = []
        http = httpx.AsyncClient(
            base_url=self._iron_settings.base_url.rstrip("/"),
            timeout=lookup_timeout(self._timeout),
            limits=limits,
            transport=_PoolWatch(self._transport_factory(limits), lambda: box[0].note_pool_timeout()),
        )
        client = IronClient(self._iron_settings, http_client=http)
        if self._iron_observer is not None:
            client.observe_responses(self._iron_observer)
        gen = _Generation(client, self._max_concurrent, http)
        box.append(gen)
        return gen

    async def aclose(self) -> None:
        """Close the client the router built (a client given to it belongs to the caller)."""
        if self._gen.http is not None:
            await _close_quietly(self._gen.http)
        for task in [*self._retired, *([self._iron_check] if self._iron_check else [])]:
            task.cancel()

    def _replace_client(self) -> None:
        """Start over on a fresh HTTP client; the old one is closed in the background once its
        lookups had time to end (they are left alone: cancelling them is what wedges a pool)."""
        old = self._gen
        self._gen = self._new_generation()
        self.replacements += 1
        self._inflight.clear()  # new deliveries must not join lookups stuck on the old client
        if old.http is not None:
            task = asyncio.get_running_loop().create_task(_close_quietly(old.http, wait_for=self._stuck_after()))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    # --- health -----------------------------------------------------------------------------

    def _stuck_after(self) -> float:
        """Longer than any lookup can take while httpx's timeouts work: slot wait, connect,
        write and read (one read per scope it may ask), plus a margin."""
        reads = 1 + len(self._sub_partner_ids)
        return (1 + reads) * self._timeout + 2 * reads * min(self._timeout, 2.0) + 1.0

    def health(self) -> tuple[bool, str | None]:
        """(True, None), or (False, why) when lookups are wedged or saturated. A wedged client
        is replaced here, so the next call is healthy again once the fresh client works."""
        now = self._clock()
        gen = self._gen
        stuck = [t for t in gen.started.values() if now - t > self._stuck_after()]
        if stuck or gen.pool_timeouts:
            why = (
                f"{len(stuck)} Iron lookups outlived their timeouts" if stuck else "the Iron connection pool timed out"
            )
            if gen.replaceable:
                self._replace_client()
                why += "; the HTTP client was replaced"
            return False, why
        if self._saturated_at is not None and now - self._saturated_at < max(self._timeout, 1.0):
            return False, f"all {self._max_concurrent} Iron lookup slots busy"
        return True, None

    @property
    def in_flight(self) -> int:
        return len(self._gen.started)

    async def iron_unreachable(self, wait_seconds: float) -> str | None:
        """None while Iron answers reads with the receiver's key, else why not. The answer is
        kept for the check's TTL; one check runs at a time, shared by every caller, who waits
        for it at most `wait_seconds`. Like a lookup, the check is never cancelled: one that
        outlasts the wait still lands its answer for the next probe."""
        if self._iron_checked is not None and self._clock() - self._iron_checked[0] < self._iron_check_ttl:
            return self._iron_checked[1]
        task = self._iron_check
        if task is None:
            task = self._iron_check = asyncio.get_running_loop().create_task(self._check_iron())
            task.add_done_callback(lambda t: setattr(self, "_iron_check", None) if self._iron_check is t else None)
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait_seconds)
        except asyncio.TimeoutError:
            return f"no answer within {wait_seconds:g}s"

    async def _check_iron(self) -> str | None:
        try:
            await self._gen.iron.list_customers(page_size=1)
            why = None
        except Exception as exc:  # whatever keeps a lookup from working keeps the receiver from being ready
            why = f"{type(exc).__name__}: {exc}"[:300]
        self._iron_checked = (self._clock(), why)
        return why

    # --- routing ----------------------------------------------------------------------------

    @property
    def cached(self) -> int:
        return len(self._cache)

    def forget(self, customer_id: str) -> None:
        self._cache.pop(customer_id)

    def remember(self, route: Route) -> None:
        """A route found elsewhere (the engine's own index) serves later deliveries as a cached one."""
        self._cache.put(route.customer_id, (route.external_id, route.sub_partner_id, route.verified, route.owned))

    def mark_verified(self, route: Route) -> None:
        """The workflow this route names was seen to belong to this customer: later
        deliveries need not check again while the entry lives."""
        self._cache.put(route.customer_id, (route.external_id, route.sub_partner_id, True, route.owned))

    def cached_route(self, customer_id: str) -> Route | None:
        item = self._cache.get(customer_id)
        if item is None:
            return None
        external_id, sub_partner_id, verified, owned = item
        return Route(
            customer_id, external_id, workflow_id_for(external_id, sub_partner_id),
            from_cache=True, verified=verified, sub_partner_id=sub_partner_id, owned=owned,
        )

    async def route(self, customer_id: str, *, fresh: bool = False) -> Route:
        if not is_iron_id(customer_id):
            raise UnknownCustomer("not an Iron customer id")
        if not fresh:
            cached = self.cached_route(customer_id)
            if cached is not None:
                return cached
        task = self._inflight.get(customer_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._lookup(customer_id))
            self._inflight[customer_id] = task
            task.add_done_callback(lambda t, cid=customer_id: self._inflight.pop(cid) if self._inflight.get(cid) is t else None)
        # Only our waiting is bounded here; the lookup is shielded from it and runs on under
        # httpx's own timeouts, so a late answer still lands in the cache for Iron's retry.
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._timeout + 1.0)
        except asyncio.TimeoutError:
            raise IronLookupFailed(f"Iron lookup took longer than {self._timeout + 1.0:g}s") from None

    async def _lookup(self, customer_id: str) -> Route:
        gen = self._gen
        self._serial += 1
        serial = self._serial
        gen.started[serial] = self._clock()
        try:
            try:
                async with asyncio.timeout(self._timeout):  # waiting for a slot: no I/O involved
                    await gen.slots.acquire()
            except TimeoutError:
                self._saturated_at = self._clock()
                raise IronLookupFailed(
                    f"all {self._max_concurrent} Iron lookup slots stayed busy for {self._timeout:g}s"
                ) from None
            try:
                customer, sub_partner_id = await self._read_in_scopes(gen.iron, customer_id)
            finally:
                gen.slots.release()
        except IronNotFound:
            raise UnknownCustomer(f"Iron has no customer {customer_id}") from None
        except IronBadRequest as exc:
            raise UnknownCustomer(f"Iron refused customer id {customer_id} ({exc.status_code})") from None
        except IronError as exc:
            raise IronLookupFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            gen.started.pop(serial, None)
        key = routing_key(customer_id, customer.external_id)
        self._cache.put(customer_id, (key, sub_partner_id, False, False))
        return Route(
            customer_id,
            key,
            workflow_id_for(key, sub_partner_id),
            iron_status=_text(customer.status),
            customer_type=_text(customer.customer_type),
            sub_partner_id=sub_partner_id,
        )

    async def _read_in_scopes(self, iron: IronClient, customer_id: str) -> tuple[Customer, str | None]:
        """The customer and the scope Iron knows it in: the default scope, then each configured
        sub-partner's. IronNotFound when none knows it."""
        segment = path_segment(customer_id)
        scopes = (None, *self._sub_partner_ids)
        for n, sub_partner_id in enumerate(scopes):
            self.lookups += 1
            try:
                return await iron.scoped(sub_partner_id).get_customer(segment), sub_partner_id
            except IronNotFound:
                if n == len(scopes) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover: the last scope re-raises


async def _close_quietly(http: httpx.AsyncClient, wait_for: float = 0.0) -> None:
    """Close an HTTP client the router built, after its lookups had `wait_for` seconds to end."""
    if wait_for:
        await asyncio.sleep(wait_for)
    try:
        await http.aclose()
    except Exception:  # a wedged pool may fail to close cleanly; it is dropped either way
        pass


def _text(value: object) -> str:
    return str(getattr(value, "value", value))

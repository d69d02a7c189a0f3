"""Which workflow a webhook belongs to, without a database of the receiver's own.

Iron's webhook names the Iron customer id; the workflow is named after the partner's
`external_id` (`onboarding-{external_id}`). Iron knows both, so the receiver reads the customer
once and remembers the answer in a small per-process LRU. Nothing is shared between replicas:
a cold cache costs one Iron read, never a wrong answer.

A customer without a usable `external_id` (none, or one the workflow input would refuse) is
keyed by its Iron id, the same way adoption names it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable


from iron_client import IronClient, IronNotFound
from iron_client.errors import IronBadRequest, IronError
from iron_client.models import CustomerStatus
from contracts.messages import ENGINE_VERSION, OnboardingInput, external_id_for_customer, workflow_id_for


class UnknownCustomer(Exception):
    """Iron does not know this customer (or refuses the id): retrying cannot help."""


class IronLookupFailed(Exception):
    """Iron could not answer now (down, slow, 5xx, rate limit, our credentials): retry later."""


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

    def adoption_input(self) -> OnboardingInput:
        extra = {"customer_type": self.customer_type} if self.customer_type else {}
        return OnboardingInput(engine_version=ENGINE_VERSION, external_id=self.external_id, iron_customer_id=self.customer_id, **extra)

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
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        stored_at, value = item
        if self._ttl and self._clock() - stored_at > self._ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
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


class CustomerRouter:
    """Iron customer id -> workflow, via one Iron read, remembered in a bounded LRU."""

    def __init__(
        self,
        iron: IronClient,
        *,
        cache_size: int = 10_000,
        cache_ttl_seconds: float = 3600.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._iron = iron
        self._timeout = timeout_seconds
        self._cache = _LRU(cache_size, cache_ttl_seconds, clock)

    @property
    def cached(self) -> int:
        return len(self._cache)

    def forget(self, customer_id: str) -> None:
        self._cache.pop(customer_id)

    async def route(self, customer_id: str, *, fresh: bool = False) -> Route:
        if not fresh:
            external_id = self._cache.get(customer_id)
            if external_id is not None:
                return Route(customer_id, external_id, workflow_id_for(external_id), from_cache=True)
        try:
            customer = await asyncio.wait_for(self._iron.get_customer(customer_id), self._timeout)
        except IronNotFound:
            raise UnknownCustomer(f"Iron has no customer {customer_id}") from None
        except IronBadRequest as exc:
            raise UnknownCustomer(f"Iron refused customer id {customer_id} ({exc.status_code})") from None
        except asyncio.TimeoutError:
            raise IronLookupFailed(f"Iron did not answer within {self._timeout:g}s") from None
        except IronError as exc:
            raise IronLookupFailed(f"{type(exc).__name__}: {exc}") from None
        key = routing_key(customer_id, customer.external_id)
        self._cache.put(customer_id, key)
        return Route(
            customer_id,
            key,
            workflow_id_for(key),
            iron_status=_text(customer.status),
            customer_type=_text(customer.customer_type),
        )


def _text(value: object) -> str:
    return str(getattr(value, "value", value))

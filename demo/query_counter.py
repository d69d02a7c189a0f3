"""Counts the workflow queries a client sends, so a driver can report how many it needed.

A query is a round trip through a worker and, on Temporal Cloud, a billed action; a driver that
follows customers by their events and by updates needs none. Counted in the client's own
interceptor chain, so every query the process sends is seen, whichever helper sent it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from temporalio.client import Interceptor, OutboundInterceptor, QueryWorkflowInput


class QueryCounter(Interceptor):
    """`Client.connect(..., interceptors=[counter])`; then `counter.total` and `counter.by_query`."""

    def __init__(self) -> None:
        self.by_query: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_query.values())

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _CountingOutbound(next, self)


class _CountingOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, counter: QueryCounter) -> None:
        super().__init__(next)
        self._counter = counter

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        self._counter.by_query[input.query] += 1
        return await super().query_workflow(input)

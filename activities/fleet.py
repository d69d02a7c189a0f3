"""The fleet-wide reconciliation's one activity: reconcile pages of Iron's customer list.

Per page: one Iron call (`GET /customers`, up to 100 a page, in the scope being paged), one
visibility query for the running onboardings of those customers (their `IronCustomerId`,
`IronCustomerStatus` and `IronIdentificationStatus` search attributes), and an `iron_event`
signal of type `fleet_reconciliation` to each onboarding whose published state differs from
Iron's: the customer's status, or, while Iron waits on the customer's identification, the
identification's status (a declined or approved identification whose webhook was lost). The
signal is a hint like a webhook: the onboarding reads Iron itself before it acts. It carries
Iron's `updated_at`, so a retried page, or the next day's pass finding the same difference, is a
duplicate the onboarding drops unread.

One activity pages up to `max_pages` pages, reading the next page from Iron while it compares
the last, and heartbeats its cursor and counts after each: a worker that dies midway hands the
retry the cursor, which resumes there. A pass's first page also names the sub-partner scopes
the engine has running onboardings in, found in visibility (`IronSubPartnerId`, one query per
scope found), so the pass covers every scope with no list to keep.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import contracts.search_attributes as sa
from contracts.fleet import ACTIVITY_RECONCILE_PAGE, FLEET_HINT_TYPE, FleetCounts, FleetPageInput, FleetPageResult
from contracts.messages import SIGNAL_IRON_EVENT, WORKFLOW_TYPE, IronEventSignal
from iron_client import IronClient
from data_protection.redaction import redact_text
from iron_client.errors import IronError, IronFinalError, IronRateLimited
from iron_client.models import CustomerStatus, wire

log = structlog.get_logger("fleet")


ONBOARDINGS = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running"'
IDENTIFICATION_REQUIRED = CustomerStatus.IDENTIFICATION_REQUIRED.value
# A bound on the scopes one pass looks for (a partner's sub-partners are a bounded set).
MAX_SCOPES = 1000


def onboardings_query(customer_ids: list[str]) -> str:
    """The visibility query for the running onboardings of these Iron customers."""
    quoted = ", ".join(f'"{cid}"' for cid in customer_ids)
    return f'{ONBOARDINGS} AND {sa.IRON_CUSTOMER_ID.name} IN ({quoted})'


def _listable(customer_id: str) -> bool:
    # Iron's ids are UUIDs; anything that could break out of the query's quotes is left alone.
    return bool(customer_id) and len(customer_id) <= 128 and not any(ch in customer_id for ch in '"\\\'') and customer_id.isprintable()


class FleetActivities:
    def __init__(self, temporal: Client, iron: IronClient) -> None:
        self._temporal = temporal
        self._iron = iron

    def all(self) -> list:
        return [self.reconcile_fleet_page]

    async def published_statuses(self, customer_ids: list[str]) -> dict[str, list[tuple[str, str | None, str | None]]]:
        """Iron customer id -> [(workflow id, published IronCustomerStatus, published
        IronIdentificationStatus)] of running onboardings."""
        found: dict[str, list[tuple[str, str | None, str | None]]] = defaultdict(list)
        ids = [cid for cid in customer_ids if _listable(cid)]
        if not ids:
            return found
        async for execution in self._temporal.list_workflows(onboardings_query(ids), page_size=len(ids) * 2):
            attributes = execution.typed_search_attributes
            customer_id = attributes.get(sa.IRON_CUSTOMER_ID)
            if customer_id:
                found[customer_id].append(
                    (execution.id, attributes.get(sa.IRON_CUSTOMER_STATUS), attributes.get(sa.IRON_IDENTIFICATION_STATUS))
                )
        return found

    async def sub_partner_scopes(self) -> list[str]:
        """The sub-partners with running onboardings: one visibility query per scope found
        (visibility cannot group by a custom attribute), each asking for one more."""
        found: list[str] = []
        while len(found) < MAX_SCOPES:
            query = f'{ONBOARDINGS} AND {sa.IRON_SUB_PARTNER_ID.name} IS NOT NULL'
            listable = [scope for scope in found if _listable(scope)]
            if listable:
                seen = ", ".join(f'"{scope}"' for scope in listable)
                query += f" AND {sa.IRON_SUB_PARTNER_ID.name} NOT IN ({seen})"
            one = [w async for w in self._temporal.list_workflows(query, limit=1)]
            scope = one[0].typed_search_attributes.get(sa.IRON_SUB_PARTNER_ID) if one else None
            if not scope or scope in found:
                return found
            found.append(scope)
        return found

    @activity.defn(name=ACTIVITY_RECONCILE_PAGE)
    async def reconcile_fleet_page(self, input: FleetPageInput) -> FleetPageResult:
        info = activity.info()
        cursor, counts = input.cursor, FleetCounts()
        if info.heartbeat_details:  # a retry after a worker died midway: resume where it was
            resumed = FleetPageResult.model_validate(info.heartbeat_details[0])
            cursor, counts = resumed.next_cursor, resumed.counts
        scopes = await self.sub_partner_scopes() if input.find_scopes else []
        iron = self._iron.scoped(input.sub_partner_id)
        fetching = asyncio.ensure_future(self._page(iron, input, cursor))
        try:
            while True:
                page = await fetching
                more = bool(page.items and page.cursor)
                last = not more or counts.pages + 1 >= input.max_pages
                if not last:  # Iron pages on while this page is compared
                    fetching = asyncio.ensure_future(self._page(iron, input, page.cursor))
                counts = counts.plus(await self._reconcile(page.items, input.grace_seconds))
                cursor = page.cursor if more else None
                activity.heartbeat(FleetPageResult(counts=counts, next_cursor=cursor).model_dump(mode="json"))
                if last:
                    break
        finally:
            if not fetching.done():
                fetching.cancel()
        log.info("fleet_pages_reconciled", sub_partner_id=input.sub_partner_id, **counts.model_dump())
        return FleetPageResult(counts=counts, next_cursor=cursor, scopes=scopes)

    async def _page(self, iron: IronClient, input: FleetPageInput, cursor: str | None):
        try:
            return await iron.list_customers(cursor=cursor, page_size=input.page_size, status=input.statuses)
        except IronRateLimited as exc:
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            raise ApplicationError(redact_text(str(exc)), type="IronRateLimited", next_retry_delay=delay) from None
        except IronFinalError as exc:  # a refused key or request: no retry fixes it, the pass fails visibly
            raise ApplicationError(redact_text(str(exc)), type=type(exc).__name__, non_retryable=True) from None
        except IronError as exc:  # an outage: the pass waits for Iron
            raise ApplicationError(redact_text(str(exc)), type=type(exc).__name__) from None

    async def _reconcile(self, customers: list, grace_seconds: float) -> FleetCounts:
        published = await self.published_statuses([c.id for c in customers])
        recent = datetime.now(timezone.utc) - timedelta(seconds=grace_seconds)
        counts = FleetCounts(pages=1, customers=len(customers))
        for customer in customers:
            status = wire(customer.status)
            identification = wire(customer.identification_status) if customer.identification_status else None
            onboardings = published.get(customer.id, [])
            if not onboardings:
                counts.without_workflow += 1
                continue
            differing = [
                workflow_id for workflow_id, shown, shown_identification in onboardings
                if shown != status or (status == IDENTIFICATION_REQUIRED and identification is not None and shown_identification != identification)
            ]
            if not differing:
                counts.matching += 1
            elif customer.updated_at > recent:
                counts.recently_changed += 1
            else:
                counts.woken += await self._wake(differing, customer.id, status, customer.updated_at)
        return counts

    async def _wake(self, workflow_ids: list[str], customer_id: str, status: str | None, updated_at: datetime) -> int:
        hint = IronEventSignal(
            type=FLEET_HINT_TYPE,
            timestamp=updated_at.isoformat(),
            customer_id=customer_id,
            entity_id=customer_id,
            status=status,
        )
        woken = 0
        for workflow_id in workflow_ids:
            try:
                await self._temporal.get_workflow_handle(workflow_id).signal(SIGNAL_IRON_EVENT, hint)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # it closed since the query (archived): nothing to wake
            log.info("fleet_onboarding_woken", workflow_id=workflow_id, customer_id=customer_id, iron_status=status)
            woken += 1
        return woken

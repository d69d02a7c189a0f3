"""The fleet-wide reconciliation's one activity: reconcile one page of Iron's customer list.

One Iron call (`GET /customers`, up to 100 a page), one visibility query for the running
onboardings of those customers (their `IronCustomerId` and `IronCustomerStatus` search
attributes), and an `iron_event` signal of type `fleet_reconciliation` to each onboarding
whose published status differs from Iron's. The signal is a hint like a webhook: the onboarding
reads Iron itself before it acts. It carries Iron's `updated_at`, so a retried page, or the
next day's pass finding the same difference, is a duplicate the onboarding drops unread.
"""

from __future__ import annotations

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
from iron_client.models import wire

log = structlog.get_logger("fleet")


def onboardings_query(customer_ids: list[str]) -> str:
    """The visibility query for the running onboardings of these Iron customers."""
    quoted = ", ".join(f'"{cid}"' for cid in customer_ids)
    return f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND {sa.IRON_CUSTOMER_ID.name} IN ({quoted})'


def _listable(customer_id: str) -> bool:
    # Iron's ids are UUIDs; anything that could break out of the query's quotes is left alone.
    return bool(customer_id) and len(customer_id) <= 128 and not any(ch in customer_id for ch in '"\\\'') and customer_id.isprintable()


class FleetActivities:
    def __init__(self, temporal: Client, iron: IronClient) -> None:
        self._temporal = temporal
        self._iron = iron

    def all(self) -> list:
        return [self.reconcile_fleet_page]

    async def published_statuses(self, customer_ids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
        """Iron customer id -> [(workflow id, published IronCustomerStatus)] of running onboardings."""
        found: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        ids = [cid for cid in customer_ids if _listable(cid)]
        if not ids:
            return found
        async for execution in self._temporal.list_workflows(onboardings_query(ids), page_size=len(ids) * 2):
            attributes = execution.typed_search_attributes
            customer_id = attributes.get(sa.IRON_CUSTOMER_ID)
            if customer_id:
                found[customer_id].append((execution.id, attributes.get(sa.IRON_CUSTOMER_STATUS)))
        return found

    @activity.defn(name=ACTIVITY_RECONCILE_PAGE)
    async def reconcile_fleet_page(self, input: FleetPageInput) -> FleetPageResult:
        try:
            page = await self._iron.list_customers(cursor=input.cursor, page_size=input.page_size, status=input.statuses)
        except IronRateLimited as exc:
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            raise ApplicationError(redact_text(str(exc)), type="IronRateLimited", next_retry_delay=delay) from None
        except IronFinalError as exc:  # a refused key or request: no retry fixes it, the pass fails visibly
            raise ApplicationError(redact_text(str(exc)), type=type(exc).__name__, non_retryable=True) from None
        except IronError as exc:  # an outage: the pass waits for Iron
            raise ApplicationError(redact_text(str(exc)), type=type(exc).__name__) from None
        published = await self.published_statuses([c.id for c in page.items])
        recent = datetime.now(timezone.utc) - timedelta(seconds=input.grace_seconds)
        counts = FleetCounts(pages=1, customers=len(page.items))
        for customer in page.items:
            status = wire(customer.status)
            onboardings = published.get(customer.id, [])
            if not onboardings:
                counts.without_workflow += 1
                continue
            differing = [workflow_id for workflow_id, shown in onboardings if shown != status]
            if not differing:
                counts.matching += 1
            elif customer.updated_at > recent:
                counts.recently_changed += 1
            else:
                counts.woken += await self._wake(differing, customer.id, status, customer.updated_at)
        log.info("fleet_page_reconciled", **counts.model_dump(exclude={"pages"}))
        return FleetPageResult(counts=counts, next_cursor=page.cursor if page.items and page.cursor else None)

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

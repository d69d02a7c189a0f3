"""Bring in the customers Iron already has: `python starter.py adopt --all [--status S ...]`.

Pages Iron's `GET /customers` (oldest first, 100 a page) and adopts every customer that has no
running onboarding, the way `adopt IRON_CUSTOMER_ID` does: one workflow named after the
customer (`external_id_for_customer`), started with its Iron id, which reads Iron and goes on
from the customer's real current state. Archived customers are never adopted.

Why a command and not a durable backfill workflow: every step is already idempotent, keyed by
the workflow id. Starting a customer's onboarding is refused by Temporal while one runs
(`start_onboarding`'s FAIL conflict policy), so a rerun from the first page after any
interruption adopts what is missing and never a second workflow. What a rerun costs is one
visibility list per page (`WorkflowId IN (...)`, ids and `IronCustomerId` only) beside Iron's
own page: two requests per 100 customers already done, no checkpoint file to lose, share or go
stale, and no Iron cursor kept past its page. A workflow would add a worker deployment, a
history that must continue-as-new every few thousand starts and progress read through queries,
to protect work that is cheap to redo; an operator wants the progress on a terminal and Ctrl-C.

Load: `rate` bounds adoptions per second (each sets a workflow going whose first task reads
Iron), `iron_rate` Iron list requests per second, `concurrency` the starts in flight. A 429
pauses listing and adoptions for Iron's `Retry-After` (or a backoff without one).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from aiolimiter import AsyncLimiter
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import operations.onboardings as onboardings
from contracts import search_attributes
from contracts.messages import WORKFLOW_TYPE, OnboardingTimings, external_id_for_customer, workflow_id_for
from iron_client import IronClient, IronSettings
from iron_client.errors import IronError, IronRateLimited
from iron_client.models import Customer, CustomerStatus
from runtime.process import EXIT_OK, EXIT_REJECTED

PAGE_SIZE = 100  # Iron's largest page
DEFAULT_RATE = 20.0  # adoptions per second
DEFAULT_IRON_RATE = 5.0  # Iron list requests per second
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 100
# Attempts for one Iron page or one Temporal call before the customer (or the run) counts as failed.
MAX_ATTEMPTS = 8
BACKOFF_INITIAL_SECONDS, BACKOFF_MAX_SECONDS = 0.5, 30.0
# A Retry-After longer than this is waited in steps of it, each one an attempt.
MAX_RETRY_AFTER_SECONDS = 300.0
ARCHIVED = CustomerStatus.ARCHIVED.value
_RETRYABLE_RPC = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.ABORTED}
)


@dataclass(frozen=True)
class FailedCustomer:
    iron_customer_id: str
    workflow_id: str
    reason: str  # a rerun fails the same way until someone fixes it


@dataclass
class BackfillSummary:
    """What a backfill did so far; filled in as it goes, so an interrupted run still reports."""

    adopted: int = 0
    already_running: int = 0
    archived_skipped: int = 0
    failed: list[FailedCustomer] = field(default_factory=list)
    pages: int = 0
    iron_waits: int = 0  # Iron answered 429 or failed a page: waited and asked again
    iron_waited_seconds: float = 0.0
    complete: bool = False  # every page was listed and every customer on it handled
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None

    @property
    def listed(self) -> int:
        return self.adopted + self.already_running + self.archived_skipped + len(self.failed)

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def adoption_rate(self) -> float:
        """Customers adopted per second of the run."""
        return self.adopted / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "listed": self.listed,
            "adopted": self.adopted,
            "already_running": self.already_running,
            "archived_skipped": self.archived_skipped,
            "failed": [dataclasses.asdict(f) for f in self.failed],
            "pages": self.pages,
            "iron_waits": self.iron_waits,
            "iron_waited_seconds": round(self.iron_waited_seconds, 3),
            "seconds": round(self.seconds, 3),
            "adoption_rate": round(self.adoption_rate, 2),
        }


def _status_value(status: Any) -> str:
    return str(getattr(status, "value", status))


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MAX_SECONDS, BACKOFF_INITIAL_SECONDS * 2**attempt) * random.uniform(0.8, 1.2)


def _limiter(per_second: float) -> AsyncLimiter:
    # aiolimiter is a leaky bucket of `max_rate` per `time_period`: below 1/s, one per 1/rate s.
    if per_second >= 1:
        return AsyncLimiter(per_second, 1.0)
    return AsyncLimiter(1, 1.0 / per_second)


def _quotable(workflow_id: str) -> bool:
    """Ids a visibility query can name as a plain string literal; others skip the pre-check."""
    return '"' not in workflow_id and "\\" not in workflow_id and "'" not in workflow_id


class Backfill:
    def __init__(
        self,
        client: Client,
        iron: IronClient,
        *,
        statuses: Sequence[CustomerStatus | str] = (),
        rate: float = DEFAULT_RATE,
        iron_rate: float = DEFAULT_IRON_RATE,
        concurrency: int = DEFAULT_CONCURRENCY,
        page_size: int = PAGE_SIZE,
        task_queue: str | None = None,
        timings: OnboardingTimings | None = None,
        summary: BackfillSummary | None = None,
        on_progress: Callable[[BackfillSummary], None] | None = None,
        on_page: Callable[[BackfillSummary], None] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        sub_partner_id: str | None = None,
    ) -> None:
        if rate <= 0 or iron_rate <= 0:
            raise ValueError("rates must be above 0")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}")
        self.client = client
        self.iron = iron
        # The scope the customers are listed in, and so the one each is adopted into.
        self.sub_partner_id = sub_partner_id
        self.statuses = [_status_value(s) for s in statuses]
        self.page_size = page_size
        self.task_queue = task_queue
        self.timings = timings
        self.summary = summary if summary is not None else BackfillSummary()
        self._on_progress = on_progress or (lambda _s: None)
        self._on_page = on_page or (lambda _s: None)
        self._adoptions = _limiter(rate)
        self._iron_requests = _limiter(iron_rate)
        self._in_flight = asyncio.Semaphore(concurrency)
        self._paused_until = 0.0  # monotonic: Iron asked us to wait
        self._visibility_ok = True
        self._max_attempts = max_attempts

    async def run(self) -> BackfillSummary:
        # One page listed ahead of the one being adopted: Iron's latency hides behind the starts.
        pages: asyncio.Queue[list[Customer] | None] = asyncio.Queue(maxsize=1)
        lister = asyncio.create_task(self._list(pages))
        try:
            while (page := await self._next_page(pages, lister)) is not None:
                await self._adopt_page(page)
                self.summary.pages += 1
                self._on_page(self.summary)
            await lister
            self.summary.complete = True
        finally:
            lister.cancel()
            self.summary.finished_at = time.monotonic()
        return self.summary

    @staticmethod
    async def _next_page(pages: asyncio.Queue, lister: asyncio.Task) -> list[Customer] | None:
        """The next page, or what stopped the listing (Iron failing past its retries)."""
        getter = asyncio.ensure_future(pages.get())
        try:
            await asyncio.wait({getter, lister}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done() and lister.exception() is not None:
                raise lister.exception()
            return await getter
        finally:
            getter.cancel()

    # --- Iron ------------------------------------------------------------------------------------

    async def _list(self, pages: asyncio.Queue[list[Customer] | None]) -> None:
        cursor: str | None = None
        while True:
            page = await self._iron_page(cursor)
            if page.items:
                await pages.put(page.items)
            if not page.cursor or not page.items:
                await pages.put(None)
                return
            cursor = page.cursor

    async def _iron_page(self, cursor: str | None):
        attempt = 0
        while True:
            await self._wait_if_paused()
            async with self._iron_requests:
                try:
                    return await self.iron.list_customers(
                        cursor=cursor, page_size=self.page_size, status=self.statuses, sort_order="asc"
                    )
                except IronError as exc:
                    if not exc.retryable or attempt + 1 >= self._max_attempts:
                        raise
                    wait = _backoff(attempt)
                    if isinstance(exc, IronRateLimited) and exc.retry_after is not None:
                        wait = min(exc.retry_after, MAX_RETRY_AFTER_SECONDS)
            attempt += 1
            self.summary.iron_waits += 1
            self.summary.iron_waited_seconds += wait
            # Adoptions wait too: each one sets Iron reads going from the workers.
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
            self._on_progress(self.summary)

    async def _wait_if_paused(self) -> None:
        while (delay := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    # --- Temporal --------------------------------------------------------------------------------

    async def _adopt_page(self, customers: list[Customer]) -> None:
        candidates = []
        for customer in customers:
            if _status_value(customer.status) == ARCHIVED:
                self.summary.archived_skipped += 1
            else:
                candidates.append(customer)
        self._on_progress(self.summary)
        running = await self._running_owners([self._workflow_id(c) for c in candidates])
        # Customers that share a name (an external id two of them have at Iron) go one after
        # the other, oldest first: the oldest gets the workflow, as Iron's external-id look-up
        # finds it first; the others are reported, whichever start would have landed first.
        by_name: dict[str, list[Customer]] = {}
        for customer in candidates:
            by_name.setdefault(self._workflow_id(customer), []).append(customer)

        async def adopt_in_order(customers: list[Customer]) -> None:
            for customer in customers:
                await self._adopt(customer, running)

        try:
            async with asyncio.TaskGroup() as group:  # one failing stops its siblings
                for customers in by_name.values():
                    group.create_task(adopt_in_order(customers))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # one line for the operator, as any error
        self._on_progress(self.summary)

    def _workflow_id(self, customer: Customer) -> str:
        return workflow_id_for(external_id_for_customer(customer.id, customer.external_id), self.sub_partner_id)

    async def _running_owners(self, workflow_ids: list[str]) -> dict[str, str | None]:
        """The running onboardings among `workflow_ids`, each with its `IronCustomerId`: one
        visibility list per page, so a rerun skips what is done without a start per customer.
        Visibility lags: a workflow it misses is still found by the start below."""
        quotable = [w for w in workflow_ids if _quotable(w)]
        if not quotable or not self._visibility_ok:
            return {}
        names = ", ".join(f'"{w}"' for w in quotable)
        query = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND WorkflowId IN ({names})'
        found: dict[str, str | None] = {}
        try:
            async for execution in self.client.list_workflows(query, page_size=len(quotable)):
                found[execution.id] = execution.typed_search_attributes.get(search_attributes.IRON_CUSTOMER_ID)
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                self._visibility_ok = False  # a visibility store without IN: start every one
            return {}
        return found

    async def _adopt(self, customer: Customer, running: dict[str, str | None]) -> None:
        workflow_id = self._workflow_id(customer)
        if workflow_id in running:
            self._settle_running(customer, workflow_id, running[workflow_id])
            return
        async with self._in_flight:
            await self._wait_if_paused()
            async with self._adoptions:
                await self._start(customer, workflow_id)
        self._on_progress(self.summary)

    async def _start(self, customer: Customer, workflow_id: str) -> None:
        attempt = 0
        while True:
            try:
                result = await onboardings.start_onboarding(
                    self.client,
                    external_id_for_customer(customer.id, customer.external_id),
                    customer_type=customer.customer_type,
                    iron_customer_id=customer.id,
                    timings=self.timings,
                    task_queue=self.task_queue,
                    started_by="adopt --all",
                    compare_start_data=False,  # attaching is what adoption wants, however it began
                    sub_partner_id=self.sub_partner_id,
                )
                if result.started:
                    self.summary.adopted += 1
                    return
                description = await self.client.get_workflow_handle(workflow_id).describe()
                owner = description.typed_search_attributes.get(search_attributes.IRON_CUSTOMER_ID)
                self._settle_running(customer, workflow_id, owner)
                return
            except onboardings.BadInput as exc:
                return self._fail(customer, workflow_id, f"{exc.flag}: {exc.rule}")
            except onboardings.OnboardingNotFound:
                pass  # it closed between the refused start and the look: start again
            except RPCError as err:
                # Temporal down, credentials or namespace wrong, search attributes missing: the
                # same for every customer, so the run stops (and says why) instead of listing each.
                if err.status not in _RETRYABLE_RPC or attempt + 1 >= self._max_attempts:
                    raise
            attempt += 1
            await asyncio.sleep(_backoff(attempt))

    def _settle_running(self, customer: Customer, workflow_id: str, owner: str | None) -> None:
        # No owner yet: an onboarding started by the partner that has not found its customer.
        if owner is None or owner == customer.id:
            self.summary.already_running += 1
        else:
            self._fail(
                customer, workflow_id,
                f"{workflow_id} belongs to Iron customer {owner} (the external id is shared): fix it at Iron",
            )

    def _fail(self, customer: Customer, workflow_id: str, reason: str) -> None:
        self.summary.failed.append(FailedCustomer(customer.id, workflow_id, reason))


async def backfill(
    client: Client,
    iron: IronClient,
    *,
    statuses: Sequence[CustomerStatus | str] = (),
    sub_partner_id: str | None = None,
    **options: Any,
) -> BackfillSummary:
    """Adopt every Iron customer (of `statuses`, default all) that has no running onboarding.
    Safe to run again at any time, interrupted or not: what runs already is counted, not started.
    `summary`, when given, is filled in as the run goes (it still tells after a cancellation).
    `sub_partner_id` lists that sub-partner's customers (Iron's `X-SUB-PARTNER-ID`); `options` are
    `Backfill`'s (rate, iron_rate, concurrency, page_size, task_queue, timings, summary, on_progress,
    on_page, max_attempts)."""
    if any(_status_value(s) == ARCHIVED for s in statuses):
        raise onboardings.BadInput("--status", "archived customers are never adopted")
    # Adopted into the scope they are listed in (None, or the deployment's own: the default scope).
    sub_partner_id = onboardings.check_sub_partner_id(sub_partner_id, "--sub-partner")
    return await Backfill(
        client, iron.scoped(sub_partner_id), statuses=statuses, sub_partner_id=sub_partner_id, **options
    ).run()


# --- command line ----------------------------------------------------------------------------------


def add_arguments(adopt: argparse.ArgumentParser) -> None:
    """`adopt`'s flags for the backfill (the starter's parser calls this)."""
    adopt.add_argument("--all", action="store_true", help="adopt every Iron customer that has no onboarding")
    adopt.add_argument(
        "--status", action="append", choices=[s.value for s in CustomerStatus if s.value != ARCHIVED],
        help="only customers in this Iron status (repeat for several; default every status but Archived)",
    )
    adopt.add_argument("--rate", type=float, help=f"adoptions per second at most (default {DEFAULT_RATE:g})")
    adopt.add_argument("--iron-rate", type=float, help=f"Iron list requests per second at most (default {DEFAULT_IRON_RATE:g})")
    adopt.add_argument("--concurrency", type=int, help=f"workflow starts in flight at most (default {DEFAULT_CONCURRENCY})")
    adopt.add_argument("--json", action="store_true", help="print the summary as JSON")


_BACKFILL_FLAGS = (("--status", "status"), ("--rate", "rate"), ("--iron-rate", "iron_rate"),
                   ("--concurrency", "concurrency"), ("--json", "json"))


def usage_problem(args: argparse.Namespace) -> tuple[str, str] | None:
    """(flag, rule) when `adopt`'s arguments do not go together, else None."""
    if not args.all:
        for flag, name in _BACKFILL_FLAGS:
            if getattr(args, name, None) not in (None, False):
                return flag, "goes with --all only"
        return None
    if args.iron_customer_id is not None:
        return "--all", "adopts every customer: give IRON_CUSTOMER_ID or --all, not both"
    for flag, name in (("--rate", "rate"), ("--iron-rate", "iron_rate")):
        value = getattr(args, name)
        if value is not None and not (0 < value <= 10_000):
            return flag, "must be above 0 and at most 10000 per second"
    if args.concurrency is not None and not 1 <= args.concurrency <= MAX_CONCURRENCY:
        return "--concurrency", f"must be 1 to {MAX_CONCURRENCY}"
    return None


def _counts(s: BackfillSummary) -> str:
    return (f"{s.adopted} adopted, {s.already_running} running, {s.archived_skipped} archived, "
            f"{len(s.failed)} failed, {s.adoption_rate:.0f}/s")


def format_summary(s: BackfillSummary, *, max_failures: int = 50) -> str:
    state = "done" if s.complete else "STOPPED before the last page (rerun the same command to finish)"
    lines = [
        f"adopt --all: {state}: {s.listed} customers in {s.pages} page{'' if s.pages == 1 else 's'}, {s.seconds:.1f} s",
        f"  adopted            {s.adopted:>7}  ({s.adoption_rate:.1f}/s)",
        f"  already running    {s.already_running:>7}",
        f"  archived, skipped  {s.archived_skipped:>7}",
        f"  failed             {len(s.failed):>7}",
    ]
    if s.iron_waits:
        lines.append(f"  Iron asked to wait {s.iron_waits} times ({s.iron_waited_seconds:.1f} s in all)")
    for failure in s.failed[:max_failures]:
        lines.append(f"  ! {failure.iron_customer_id} {failure.workflow_id}: {failure.reason}")
    if len(s.failed) > max_failures:
        lines.append(f"  ... and {len(s.failed) - max_failures} more (--json lists every one)")
    return "\n".join(lines)


class _Progress:
    """A live line on a terminal (rich); one line per page when stderr is a log."""

    def __init__(self, err) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(file=err, highlight=False)
        self.live = self.console.is_terminal
        self.err = err
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
            console=self.console, disable=not self.live, transient=False,
        )
        self.task = self.progress.add_task("adopt", total=None, counts="listing Iron's customers")

    def __enter__(self) -> "_Progress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, summary: BackfillSummary) -> None:
        if self.live:
            self.progress.update(self.task, counts=_counts(summary))

    def page(self, summary: BackfillSummary) -> None:
        if not self.live:
            print(f"page {summary.pages}: {summary.listed} listed, {_counts(summary)}", file=self.err, flush=True)


async def run_cli(
    client: Client, args: argparse.Namespace, out, err, *, iron_settings: IronSettings
) -> int:
    """`starter.py adopt --all ...`: exit 0 when every customer listed is adopted, running or
    archived; 4 when some cannot be adopted (the summary says why). Iron or Temporal failing
    past the retries raises (the starter's exit codes 5 and 7), after the summary so far."""
    summary = BackfillSummary()
    options: dict[str, Any] = {
        "statuses": args.status or (),
        "rate": args.rate or DEFAULT_RATE,
        "iron_rate": args.iron_rate or DEFAULT_IRON_RATE,
        "concurrency": args.concurrency or DEFAULT_CONCURRENCY,
        "sub_partner_id": getattr(args, "sub_partner", None),
    }
    try:
        async with IronClient(iron_settings) as iron:
            with _Progress(err) as progress:
                await backfill(client, iron, summary=summary, on_progress=progress.update, on_page=progress.page, **options)
    finally:
        summary.finished_at = summary.finished_at or time.monotonic()
        print(json.dumps(summary.to_json(), indent=2) if args.json else format_summary(summary), file=out, flush=True)
    if not summary.failed:
        return EXIT_OK
    return EXIT_REJECTED


__all__ = ["Backfill", "BackfillSummary", "FailedCustomer", "backfill", "run_cli", "add_arguments", "usage_problem"]

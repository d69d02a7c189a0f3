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

Per customer, one Temporal call: the start itself, from the listed customer (its id, type and
external id), with no look before it. Only a refused start (one runs already: whose is it?) and
an id visibility shows a closed onboarding under (the new one numbers its events after the old
one's) cost a describe. Listing, the visibility list and the starts overlap: pages are read
ahead, and one page's starts run on into the next's up to `concurrency`.

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
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import operations.onboardings as onboardings
import operations.state_access as state_access
from contracts import search_attributes
from contracts.messages import WORKFLOW_TYPE, OnboardingInput, OnboardingTimings, external_id_for_customer, workflow_id_for
from contracts.start_metadata import start_options
from iron_client import IronClient, IronSettings
from iron_client.errors import IronError, IronRateLimited
from iron_client.models import Customer, CustomerStatus
from runtime.process import EXIT_OK, EXIT_REJECTED

PAGE_SIZE = 100  # Iron's largest page
DEFAULT_RATE = 20.0  # adoptions per second
DEFAULT_IRON_RATE = 5.0  # Iron list requests per second
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 100
# Pages listed and looked up in visibility ahead of the starts (2 pages: 200 customers).
PAGES_AHEAD = 2
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


@dataclass(frozen=True)
class _Seen:
    """What visibility shows under one workflow id: a running onboarding (and its
    `IronCustomerId`) or only closed ones."""

    running: bool
    owner: str | None = None


@dataclass
class _Page:
    """One listed page on its way through: the customers to adopt and what visibility showed
    under their workflow ids (None: it could not be asked, so a closed run may hide there)."""

    candidates: list[Customer]
    seen: dict[str, _Seen] | None
    # Its adoptions not yet done, plus one while they are being handed out.
    unfinished: int = 1


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
        self._concurrency = concurrency
        self._paused_until = 0.0  # monotonic: Iron asked us to wait
        self._visibility_ok = True
        self._max_attempts = max_attempts
        # The adoption in flight under each workflow id: a customer sharing the name waits for it.
        self._last_of_name: dict[str, asyncio.Task] = {}
        self._deliver_events: bool | None = None
        self._queue: str | None = None

    async def run(self) -> BackfillSummary:
        # Start settings as `start_onboarding` takes them, read once for the whole run.
        self._deliver_events = onboardings.api_settings().events_url is not None
        self._queue = self.task_queue or onboardings.api_settings().task_queue
        # Pages are listed and looked up in visibility ahead of the starts, and one page's starts
        # run on into the next's: neither Iron's latency nor a page's slowest start idles the rest.
        pages: asyncio.Queue[_Page | None] = asyncio.Queue(maxsize=PAGES_AHEAD)
        slots = asyncio.Semaphore(self._concurrency)
        try:
            async with asyncio.TaskGroup() as group:  # one failing stops the rest
                group.create_task(self._list(pages))
                while (page := await pages.get()) is not None:
                    for customer in page.candidates:
                        await slots.acquire()
                        self._schedule(group, customer, page, slots)
                    self._page_step(page)
            self.summary.complete = True
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # one line for the operator, as any error
        finally:
            self.summary.finished_at = time.monotonic()
        return self.summary

    def _schedule(self, group: asyncio.TaskGroup, customer: Customer, page: _Page, slots: asyncio.Semaphore) -> None:
        workflow_id = self._workflow_id(customer)
        # Customers that share a name (an external id two of them have at Iron) go one after
        # the other, oldest first: the oldest gets the workflow, as Iron's external-id look-up
        # finds it first; the others are reported, whichever start would have landed first.
        before = self._last_of_name.get(workflow_id)
        page.unfinished += 1

        async def adopt() -> None:
            try:
                if before is not None:
                    await asyncio.wait({before})
                asked = page.seen is not None and _quotable(workflow_id)
                await self._adopt(customer, workflow_id, page.seen.get(workflow_id) if asked else None, asked)
            finally:
                slots.release()
                if self._last_of_name.get(workflow_id) is task:
                    del self._last_of_name[workflow_id]
            self._page_step(page)

        task = group.create_task(adopt())
        self._last_of_name[workflow_id] = task

    def _page_step(self, page: _Page) -> None:
        """One of the page's adoptions is done (or all are handed out)."""
        page.unfinished -= 1
        if page.unfinished == 0:
            self.summary.pages += 1
            self._on_page(self.summary)
        self._on_progress(self.summary)

    # --- Iron ------------------------------------------------------------------------------------

    async def _list(self, pages: asyncio.Queue[_Page | None]) -> None:
        cursor: str | None = None
        while True:
            page = await self._iron_page(cursor)
            if page.items:
                candidates = []
                for customer in page.items:
                    if _status_value(customer.status) == ARCHIVED:
                        self.summary.archived_skipped += 1
                    else:
                        candidates.append(customer)
                seen = await self._seen([self._workflow_id(c) for c in candidates])
                await pages.put(_Page(candidates, seen))
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

    def _workflow_id(self, customer: Customer) -> str:
        return workflow_id_for(external_id_for_customer(customer.id, customer.external_id), self.sub_partner_id)

    async def _seen(self, workflow_ids: list[str]) -> dict[str, _Seen] | None:
        """What visibility shows under `workflow_ids`, in one list per page: the running
        onboardings, each with its `IronCustomerId` (a rerun skips them without a start), and the
        ids with only closed ones (whose event sequence the new start goes on from). Runs that
        continued as new are left out: the one they continued into is listed. None when
        visibility cannot be asked (then each start looks first). Visibility lags: a workflow
        it misses is still found by the start, which Temporal refuses while one runs."""
        workflow_ids = [w for w in workflow_ids if _quotable(w)]  # the others look before their start
        if not self._visibility_ok:
            return None
        if not workflow_ids:
            return {}
        names = ", ".join(f'"{w}"' for w in workflow_ids)
        query = (f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus != "ContinuedAsNew" '
                 f"AND WorkflowId IN ({names})")
        seen: dict[str, _Seen] = {}
        try:
            async for execution in self.client.list_workflows(query, page_size=len(workflow_ids)):
                if execution.status == WorkflowExecutionStatus.RUNNING:
                    owner = execution.typed_search_attributes.get(search_attributes.IRON_CUSTOMER_ID)
                    seen[execution.id] = _Seen(running=True, owner=owner)
                else:
                    seen.setdefault(execution.id, _Seen(running=False))
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                self._visibility_ok = False  # a visibility store without IN: each start looks first
            return None
        return seen

    async def _adopt(self, customer: Customer, workflow_id: str, known: _Seen | None, asked: bool) -> None:
        if known is not None and known.running:
            self._settle_running(customer, workflow_id, known.owner)
            return
        try:
            workflow_input = onboardings.build_onboarding_input(
                external_id_for_customer(customer.id, customer.external_id),
                customer_type=customer.customer_type,
                iron_customer_id=customer.id,
                timings=self.timings,
                sub_partner_id=self.sub_partner_id,
            )
        except onboardings.BadInput as exc:
            return self._fail(customer, workflow_id, f"{exc.flag}: {exc.rule}")
        # Only an id with a closed onboarding before (or one visibility could not be asked about)
        # needs a look before its start: the new one numbers its events after the old one's.
        look_first = not asked or known is not None
        await self._wait_if_paused()
        async with self._adoptions:
            await self._start(customer, workflow_id, workflow_input, look_first)

    async def _start(self, customer: Customer, workflow_id: str, workflow_input: OnboardingInput, look_first: bool) -> None:
        attempt = 0
        events_after: int | None = None if look_first else 0
        while True:
            try:
                if events_after is None:
                    events_after = await state_access.last_event_sequence(self.client, workflow_id)
                started = workflow_input.model_copy(
                    update={"deliver_events": self._deliver_events, "events_after": events_after}
                )
                await self.client.start_workflow(
                    WORKFLOW_TYPE,
                    started,
                    task_queue=self._queue,
                    # FAIL: a refusal is how this call learns one runs already (never a second).
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    **start_options(started, started_by="adopt --all"),
                )
                self.summary.adopted += 1
                return
            except WorkflowAlreadyStartedError:
                # Attaching is what adoption wants, however the running one began: whose is it?
                try:
                    description = await self.client.get_workflow_handle(workflow_id).describe()
                except RPCError as err:
                    if not state_access.workflow_not_found(err):
                        raise
                    events_after = 0  # gone between the refusal and the look: start again
                else:
                    if description.status == WorkflowExecutionStatus.RUNNING:
                        owner = description.typed_search_attributes.get(search_attributes.IRON_CUSTOMER_ID)
                        return self._settle_running(customer, workflow_id, owner)
                    events_after = None  # closed between the refusal and the look: start after it
                if attempt + 1 >= self._max_attempts:
                    return self._fail(customer, workflow_id, "its onboarding kept closing as it was adopted: run again")
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

"""`python starter.py report [--json]`: where the customers are, and who is stuck.

Everything comes from Temporal's visibility store, never from a workflow: one count per phase
(a fixed number of requests, however many customers there are) and, per stuck rule, one count
and one list of the customers past the rule's threshold, found by their `OnboardingPhaseSince`
search attribute (when the current phase began).

Visibility has no `GROUP BY` for custom search attributes (the server answers "GROUP BY clause is
not supported for search attribute OnboardingPhase"; only `ExecutionStatus` groups) and no
`ORDER BY` on SQL stores, so phases are counted one count each, concurrently, and the stuck
customers are sorted here, oldest first.

A running customer whose run has not published its phase start yet (one carried from before the
attribute existed, until its next change) has no `OnboardingPhaseSince`. Its phase then began no
later than its run started (every later phase change publishes it), so it counts as stuck when its
run's `StartTime` is older than the threshold.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.client import Client, WorkflowExecution

from contracts import search_attributes as sa
from contracts.messages import WORKFLOW_TYPE, Phase
from contracts.phase import PARKED_PHASES
from contracts.quoting import quoted
from contracts.workflow_ids import WORKFLOW_ID_PREFIX, scope_of_workflow_id
from runtime.settings import DEFAULT_TEMPORAL_UI_URL, workflow_ui_link

RUNNING = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running"'
ARCHIVED = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Completed" AND OnboardingPhase = "Archived"'
DEFAULT_LIMIT = 1000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `48h`, `7d`, `2w`, or plain seconds; ValueError otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{quoted(text)} is not a duration such as 90s, 30m, 48h, 7d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def describe_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class StuckRule:
    """Customers matching `where` whose `since` (by default, when their phase began) is longer
    than `threshold` ago are stuck."""

    name: str
    description: str
    where: str
    threshold: timedelta
    since: Any = sa.ONBOARDING_PHASE_SINCE


def default_rules(
    *,
    waiting_on_customer: timedelta = timedelta(days=7),
    pending_review: timedelta = timedelta(hours=48),
    needs_attention: timedelta = timedelta(0),
    declined: timedelta = timedelta(0),
    idle: timedelta = timedelta(days=30),
    events_failing: timedelta = timedelta(0),
) -> list[StuckRule]:
    """The thresholds that fit Iron: a customer who has not completed the hosted KYC or signed
    for a week has likely abandoned it; Iron's compliance review takes up to two days; a
    customer parked for an operator is stuck from the first moment; any customer in one wait for
    30 days is idle (the engine flags it at `idle_after_seconds`, 30 days by default), whoever it
    waits for, so it is listed under `idle` too; a customer whose events the partner's backend
    has refused past the engine's window (`events_failing_after_seconds`, an hour) is listed
    under `events_failing`, by when the refusals began."""
    phase, status = sa.ONBOARDING_PHASE.name, sa.IRON_IDENTIFICATION_STATUS.name
    parked = ", ".join(f'"{p.value}"' for p in PARKED_PHASES)
    return [
        StuckRule(
            "waiting_on_customer",
            "the customer has to complete the identification or sign",
            f'({phase} = "{Phase.AWAITING_IDENTIFICATION.value}" AND {status} = "Pending") '
            f'OR {phase} = "{Phase.AWAITING_SIGNINGS.value}"',
            waiting_on_customer,
        ),
        StuckRule(
            "pending_review",
            "Iron's compliance is reviewing the identification",
            f'{phase} = "{Phase.AWAITING_IDENTIFICATION.value}" AND {status} = "PendingReview"',
            pending_review,
        ),
        StuckRule("needs_attention", "waiting for an operator", f'{phase} = "{Phase.NEEDS_ATTENTION.value}"', needs_attention),
        StuckRule("declined", "identification declined, waiting for an operator", f'{phase} = "{Phase.DECLINED.value}"', declined),
        StuckRule("idle", "in one wait, whoever it waits for, with nothing moving it", f"{phase} IN ({parked})", idle),
        StuckRule(
            "events_failing",
            "the partner's backend refuses this customer's events",
            f"{sa.ONBOARDING_EVENTS_FAILING_SINCE.name} IS NOT NULL",
            events_failing,
            since=sa.ONBOARDING_EVENTS_FAILING_SINCE,
        ),
    ]


def _rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Every customer (None), or one Iron sub-partner's: its id, or `DEFAULT_SCOPE` for the customers
# onboarded without one (`IronSubPartnerId` is set at start for a sub-partner's customers only).
DEFAULT_SCOPE = "default"


def scope_clause(sub_partner: str | None) -> str:
    if sub_partner is None:
        return ""
    name = sa.IRON_SUB_PARTNER_ID.name
    return f" AND {name} IS NULL" if sub_partner == DEFAULT_SCOPE else f' AND {name} = "{sub_partner}"'


def stuck_query(rule: StuckRule, now: datetime, sub_partner: str | None = None) -> str:
    query = f"{RUNNING}{scope_clause(sub_partner)} AND ({rule.where})"
    if rule.threshold <= timedelta(0):
        return query
    cutoff = _rfc3339(now - rule.threshold)
    since = rule.since.name
    if rule.since != sa.ONBOARDING_PHASE_SINCE:
        return f'{query} AND {since} < "{cutoff}"'
    return f'{query} AND ({since} < "{cutoff}" OR ({since} IS NULL AND StartTime < "{cutoff}"))'


@dataclass
class StuckCustomer:
    rule: str
    external_id: str
    workflow_id: str
    phase: str | None
    since: datetime | None
    since_known: bool
    customer_status: str | None
    identification_status: str | None
    cycle: int | None
    ui_link: str
    # The sub-partner the customer is onboarded for (None: the default scope, left out of the JSON).
    sub_partner_id: str | None = None

    def as_json(self, now: datetime) -> dict[str, Any]:
        scope = {"sub_partner_id": self.sub_partner_id} if self.sub_partner_id else {}
        return {
            **scope,
            "rule": self.rule,
            "external_id": self.external_id,
            "workflow_id": self.workflow_id,
            "phase": self.phase,
            "since": self.since.isoformat() if self.since else None,
            "since_known": self.since_known,
            "age_seconds": round((now - self.since).total_seconds(), 3) if self.since else None,
            "customer_status": self.customer_status,
            "identification_status": self.identification_status,
            "cycle": self.cycle,
            "ui_link": self.ui_link,
        }


@dataclass
class RuleResult:
    rule: StuckRule
    total: int
    customers: list[StuckCustomer] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.customers)


@dataclass
class Report:
    at: datetime
    namespace: str
    phases: dict[str, int]
    archived: int
    rules: list[RuleResult]
    sub_partner: str | None = None

    @property
    def running(self) -> int:
        return sum(self.phases.values())

    def stuck(self) -> list[StuckCustomer]:
        """Every stuck customer listed, oldest phase start first."""
        found = [c for r in self.rules for c in r.customers]
        return sorted(found, key=lambda c: (c.since or self.at, c.workflow_id))

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "namespace": self.namespace,
            **({"sub_partner": self.sub_partner} if self.sub_partner else {}),
            "running": self.running,
            "phases": self.phases,
            "archived": self.archived,
            "thresholds": {
                r.rule.name: {
                    "seconds": r.rule.threshold.total_seconds(),
                    "description": r.rule.description,
                    "stuck": r.total,
                    "listed": len(r.customers),
                    "truncated": r.truncated,
                }
                for r in self.rules
            },
            "stuck": [c.as_json(self.at) for c in self.stuck()],
        }


def _stuck_customer(rule: StuckRule, execution: WorkflowExecution, namespace: str, ui_url: str) -> StuckCustomer:
    attrs = execution.typed_search_attributes
    since = attrs.get(rule.since)
    workflow_id = execution.id
    # A sub-partner's customer is `onboarding-sp-{sub_partner_id}-{external_id}`.
    sub_partner_id, external_id = scope_of_workflow_id(workflow_id) or (None, workflow_id.removeprefix(WORKFLOW_ID_PREFIX))
    return StuckCustomer(
        rule=rule.name,
        sub_partner_id=sub_partner_id,
        external_id=external_id,
        workflow_id=workflow_id,
        phase=attrs.get(sa.ONBOARDING_PHASE),
        since=since or execution.start_time,
        since_known=since is not None,
        customer_status=attrs.get(sa.IRON_CUSTOMER_STATUS),
        identification_status=attrs.get(sa.IRON_IDENTIFICATION_STATUS),
        cycle=attrs.get(sa.ONBOARDING_CYCLE),
        ui_link=workflow_ui_link(workflow_id, namespace, ui_url),
    )


async def _rule_result(
    client: Client, rule: StuckRule, now: datetime, limit: int, sub_partner: str | None, ui_url: str
) -> RuleResult:
    query = stuck_query(rule, now, sub_partner)
    total = (await client.count_workflows(query)).count
    customers = [] if total == 0 or limit <= 0 else [
        _stuck_customer(rule, execution, client.namespace, ui_url)
        async for execution in client.list_workflows(query, limit=limit)
    ]
    return RuleResult(rule, total, customers)


async def build_report(
    client: Client,
    rules: list[StuckRule] | None = None,
    *,
    now: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    sub_partner: str | None = None,
    ui_url: str = DEFAULT_TEMPORAL_UI_URL,
) -> Report:
    """Counts per phase and the stuck customers, from visibility: 11 + 1 + 2 per rule requests.
    `sub_partner`: one sub-partner's customers (its id, or `DEFAULT_SCOPE`); None: everyone.
    `ui_url`: the Temporal UI the customers' links point at (the settings' `TEMPORAL_UI_URL`)."""
    scope = scope_clause(sub_partner)
    now = now or datetime.now(timezone.utc)
    rules = default_rules() if rules is None else rules
    running_phases = [p for p in Phase if p != Phase.ARCHIVED]

    async def count(query: str) -> int:
        return (await client.count_workflows(query)).count

    counts = await asyncio.gather(
        *(count(f'{RUNNING}{scope} AND {sa.ONBOARDING_PHASE.name} = "{p.value}"') for p in running_phases),
        count(ARCHIVED + scope),
    )
    results = await asyncio.gather(*(_rule_result(client, rule, now, limit, sub_partner, ui_url) for rule in rules))
    return Report(
        at=now,
        namespace=client.namespace,
        phases={p.value: n for p, n in zip(running_phases, counts[:-1])},
        archived=counts[-1],
        rules=list(results),
        sub_partner=sub_partner,
    )


def format_report(report: Report) -> str:
    """The report for a person: the funnel, then the stuck customers oldest first."""
    width = max(len(p) for p in report.phases)
    of = f", sub-partner {report.sub_partner}" if report.sub_partner else ""
    lines = [f"customers in namespace {report.namespace}{of} at {report.at:%Y-%m-%d %H:%M:%S} UTC: {report.running} onboarding"]
    lines += [f"  {phase:<{width}}  {n:>8}" for phase, n in report.phases.items()]
    lines.append(f"  {'Archived':<{width}}  {report.archived:>8}  (completed)")
    lines.append("")
    for r in report.rules:
        more = f" (listing {len(r.customers)})" if r.truncated else ""
        lines.append(f"stuck {r.rule.name} > {describe_duration(r.rule.threshold)} ({r.rule.description}): {r.total}{more}")
    stuck = report.stuck()
    if stuck:
        lines.append("")
    for c in stuck:
        age = _age(report.at - c.since) if c.since else "?"
        known = "" if c.since_known else " (at least: phase start not yet published)"
        scope = f" --sub-partner {c.sub_partner_id}" if c.sub_partner_id else ""
        lines.append(f"  {age:>8}  {c.phase or '-':<22} {c.rule:<19} {c.external_id}{scope}{known}")
        lines.append(f"            {c.ui_link}")
    return "\n".join(lines)


def _age(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


# --- the command line (`starter.py report`) ---------------------------------------------------


def duration(text: str) -> timedelta:
    """argparse type: its name is what a refusal says (`invalid duration value: 'x'`)."""
    return parse_duration(text)


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--waiting-on-customer", type=duration, default=timedelta(days=7), metavar="DURATION",
                        help="stuck when the customer has not completed the KYC or signed for this long (7d)")
    parser.add_argument("--pending-review", type=duration, default=timedelta(hours=48), metavar="DURATION",
                        help="stuck when Iron's review of the identification takes this long (48h)")
    parser.add_argument("--needs-attention", type=duration, default=timedelta(0), metavar="DURATION",
                        help="stuck when waiting for an operator this long (0: at all)")
    parser.add_argument("--declined", type=duration, default=timedelta(0), metavar="DURATION",
                        help="stuck when declined this long (0: at all)")
    parser.add_argument("--idle", type=duration, default=timedelta(days=30), metavar="DURATION",
                        help="idle when in any one wait this long (30d)")
    parser.add_argument("--events-failing", type=duration, default=timedelta(0), metavar="DURATION",
                        help="list customers whose events the backend has refused this long (0: once the engine flags them)")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"list at most N customers per threshold ({DEFAULT_LIMIT}); the counts stay exact")


async def run(client: Client, args, out, sub_partner: str | None = None, *, ui_url: str = DEFAULT_TEMPORAL_UI_URL) -> None:
    """`sub_partner`: the checked `--sub-partner` (its id, `DEFAULT_SCOPE`, or None for all);
    `ui_url`: the settings' `TEMPORAL_UI_URL`."""
    import json

    rules = default_rules(
        waiting_on_customer=args.waiting_on_customer,
        pending_review=args.pending_review,
        needs_attention=args.needs_attention,
        declined=args.declined,
        idle=args.idle,
        events_failing=args.events_failing,
    )
    report = await build_report(client, rules, limit=max(args.limit, 0), sub_partner=sub_partner, ui_url=ui_url)
    print(json.dumps(report.as_json(), indent=2) if args.json else format_report(report), file=out)

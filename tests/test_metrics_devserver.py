"""Metrics from real processes, and the dashboard that reads them.

One stack of real processes (the Temporal dev server, the Iron sandbox with its autopilot and
signed webhooks, the webhook receiver and the worker, each with `--metrics-port`, and a partner
backend taking events, which refuses them at first) takes two customers to `AwaitingSignings`;
one is signed to `Active`, then the worker's `/metrics` is scraped. The worker is then replaced by
a fresh one, which replays the second customer's history when it is signed: its scrape must show
that one transition alone, since a replayed transition is never counted twice. Last, a customer
made directly at Iron is adopted by the receiver (which first finds no workflow for it), and the
receiver's `/metrics` is scraped.

The scrapes are parsed with Prometheus' own text parser (`prometheus_client`), and every panel
expression of `dashboards/onboarding.json` with a PromQL parser (`promql-parser`): every metric a
panel queries must be one a real scrape shows.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.client import Client

from contracts import metrics as names
from contracts import search_attributes as sa
from contracts.messages import OnboardingState, Phase, workflow_id_for
from demo.partner_backend import PartnerBackend, PartnerBackendThread, Refusal
from demo.stack import SEARCH_ATTRIBUTES, Stack, StackConfig, free_port
from iron_client import IronClient, IronSettings
from runtime.settings import ProcessSettings
from starter import get_state, sign_all, start_onboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, wait_for_state

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = REPO_ROOT / "dashboards" / "onboarding.json"
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Scrape:
    text: str
    samples: list[Sample] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> "Scrape":
        found = [
            Sample(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
        return cls(text, found)

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The sum over every series of `name` whose labels include `labels`."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def bucket(self, name: str, le: float, **labels: str) -> float:
        """A histogram's cumulative count at bound `le` (the text format writes `60`, not `60.0`)."""
        return sum(
            s.value for s in self.samples
            if s.name == name + "_bucket" and float(s.labels["le"]) == le and labels.items() <= s.labels.items()
        )


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return Scrape.parse(response.read().decode())


def scrape_until(port: int, ready, timeout: float = 30.0) -> Scrape:
    """Counters recorded a moment ago may not be in the first scrape: retry until `ready`."""
    deadline = time.monotonic() + timeout
    while True:
        last = scrape(port)
        if ready(last) or time.monotonic() > deadline:
            return last
        time.sleep(0.5)


@dataclass
class Lifecycle:
    worker: Scrape
    receiver: Scrape
    replaying_worker: Scrape
    identifiers: set[str]
    emails: set[str]
    events_received: int  # by the backend before the first scrape


async def _drive(stack: Stack, metrics_ports: dict[str, int], backend: PartnerBackendThread) -> Lifecycle:
    converter = ProcessSettings.load(stack.env()).data_converter()
    client = await Client.connect(stack.temporal_address, data_converter=converter)
    run = uuid.uuid4().hex[:8]
    done, parked = f"metrics-done-{run}", f"metrics-parked-{run}"
    emails = {f"{external_id}@example.com" for external_id in (done, parked)}
    backend.backend.refusal = Refusal(mode="error", status=500)  # event deliveries fail at first
    for external_id in (done, parked):
        await start_onboarding(
            client, external_id, email=f"{external_id}@example.com", timings=DEV_SERVER_TIMINGS,
            task_queue=stack.config.task_queue, deliver_events=True,
        )
    handles = {x: client.get_workflow_handle(workflow_id_for(x)) for x in (done, parked)}
    states: dict[str, OnboardingState] = {}
    for external_id, handle in handles.items():  # the sandbox's autopilot completes the KYC
        states[external_id] = await wait_for_state(
            handle, lambda s: s.phase == Phase.AWAITING_SIGNINGS, timeout=120, what="signings"
        )
    backend.backend.refusal = None
    await sign_all(client, done)
    active = await wait_for_state(
        handles[done], lambda s: s.phase == Phase.ACTIVE and not s.outbox.pending, timeout=120, what="Active, events out"
    )
    # The query answers from the worker's memory; the memo is written only once the server has
    # the task that reached Active. Stopping the worker before that would hand the same task to
    # the next worker as new work, and its transition would be counted twice.
    await _until_persisted(client, done, Phase.ACTIVE)
    events_received = sum(len(backend.backend.events_for(x)) for x in (done, parked))
    worker = scrape_until(
        metrics_ports["worker"],
        lambda s: s.value(names.PHASE_TRANSITIONS + "_total", to_phase="Active") >= 1
        and s.value(names.EVENT_DELIVERIES + "_total", outcome="delivered") >= 1,
    )

    # A fresh worker replays the parked customer's history (run 1: every phase it went through)
    # when the signing wakes it: only the transition that happens now may be counted.
    stack.processes["worker"].stop()
    stack.start_worker(
        "worker-2", "--metrics-port", str(metrics_ports["worker-2"]), env=_events_env(backend)
    )
    await sign_all(client, parked)
    await wait_for_state(handles[parked], lambda s: s.phase == Phase.ACTIVE, timeout=120, what="parked to Active")
    replaying = scrape_until(
        metrics_ports["worker-2"], lambda s: s.value(names.PHASE_TRANSITIONS + "_total", to_phase="Active") >= 1
    )

    # A customer made in Iron's dashboard: the receiver finds no workflow for it (a failed
    # Temporal request, NotFound) and adopts it.
    adopted = f"metrics-adopted-{run}"
    async with IronClient(IronSettings(base_url=stack.iron_base_url, api_key=SecretStr(stack.config.api_key))) as iron:
        created = await iron.create_customer(
            customer_type="Person", email=f"{adopted}@example.com", external_id=adopted, idempotency_key=str(uuid.uuid4())
        )
    emails.add(f"{adopted}@example.com")
    receiver = scrape_until(
        metrics_ports["receiver"],
        lambda s: s.value(names.WEBHOOKS + "_total", outcome="adopted") >= 1
        and s.value(names.WEBHOOKS + "_total", outcome="signalled") >= 1,
    )
    identifiers = {done, parked, adopted, created.id, *(workflow_id_for(x) for x in (done, parked, adopted))}
    for state in (*states.values(), active):
        identifiers |= {x for x in (state.iron_customer_id, state.identification_id) if x}
        identifiers |= {s.signing_id for s in state.required_signings if s.signing_id}
    return Lifecycle(worker, receiver, replaying, identifiers, emails, events_received)


async def _until_persisted(client: Client, external_id: str, phase: Phase, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (await get_state(client, external_id, fallback_to_query=False)).phase != phase:
        assert time.monotonic() < deadline, f"{external_id}: {phase.value} not in the memo after {timeout} s"
        await asyncio.sleep(0.2)


def _events_env(backend: PartnerBackendThread) -> dict[str, str]:
    return {"ONBOARDING_EVENTS_URL": backend.events_url, "ONBOARDING_EVENTS_SECRET": SECRET}


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory) -> Lifecycle:
    ports = {"worker": free_port(), "receiver": free_port(), "worker-2": free_port()}
    stack = Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("metrics-stack")))
    with PartnerBackendThread(PartnerBackend([SECRET], out=lambda line: None)) as backend, stack:
        stack.start_temporal()
        stack.start_sandbox()
        stack.start_receiver("webhook-receiver", None, "--metrics-port", str(ports["receiver"]))
        stack.start_worker("worker", "--metrics-port", str(ports["worker"]), env=_events_env(backend))
        return asyncio.run(_drive(stack, ports, backend))


# --- the worker ------------------------------------------------------------------------------------


def test_a_worker_scrape_after_a_lifecycle_has_the_sdks_and_the_domain_metrics(lifecycle):
    scrape = lifecycle.worker
    # The SDK's own, under its temporal_ prefix, counters with _total, durations in seconds.
    for name in (
        "temporal_workflow_task_execution_latency_seconds_bucket",
        "temporal_activity_execution_latency_seconds_bucket",
        "temporal_workflow_task_queue_poll_succeed_total",
        "temporal_request_total",
        "temporal_worker_task_slots_available",
        "temporal_sticky_cache_size",
    ):
        assert name in scrape.names, f"{name} missing from the worker's scrape"
    assert scrape.value("temporal_activity_execution_latency_seconds_count", activity_type="find_or_create_and_identify") == 2
    # The backend refused events at first: the activity's failures and the domain count agree.
    assert scrape.value("temporal_activity_execution_failed_total", activity_type="deliver_event") >= 1

    transitions = names.PHASE_TRANSITIONS + "_total"
    assert scrape.value(transitions, from_phase=names.STARTED, to_phase="FindingCustomer") == 2
    assert scrape.value(transitions, from_phase="AwaitingIdentification", to_phase="AwaitingSignings") == 2
    assert scrape.value(transitions, from_phase="AwaitingSignings", to_phase="Active") == 1
    assert scrape.value(transitions, sub_partner="default", to_phase="Active") == 1  # no sub-partner: `default`
    assert scrape.value(transitions, workflow_type="CustomerOnboarding", task_queue="iron-onboarding") >= 7

    # Time in phase, in seconds: the autopilot completes a KYC about two seconds after the link.
    in_phase = names.TIME_IN_PHASE
    assert scrape.value(in_phase + "_count", phase="AwaitingIdentification") == 2
    waited = scrape.value(in_phase + "_sum", phase="AwaitingIdentification") / 2
    assert 1.0 <= waited < 120, f"mean wait for the KYC {waited}s: not in seconds?"
    assert scrape.bucket(in_phase, 1.0, phase="AwaitingIdentification") == 0
    assert scrape.bucket(in_phase, 90 * 86400.0, phase="AwaitingIdentification") == 2

    iron = names.IRON_REQUESTS + "_total"
    assert scrape.value(iron, operation="create_customer", status_class="2xx") == 2
    assert scrape.value(iron, operation="create_identification", status_class="2xx") >= 2
    assert scrape.value(iron, operation="create_signing", status_class="2xx") >= 1
    assert scrape.value(iron, operation="get_customer_by_external_id", status_class="4xx") == 2  # not found: create
    assert scrape.value(iron, activity_type="get_customer") >= 1

    events = names.EVENT_DELIVERIES + "_total"
    assert scrape.value(events, event_type="onboarding.phase_changed", outcome="delivered") >= lifecycle.events_received >= 3  # the Active customer's three at least
    assert scrape.value(events, outcome="failed") == scrape.value(
        "temporal_activity_execution_failed_total", activity_type="deliver_event"
    )


def test_a_replaying_worker_counts_only_what_happens_now(lifecycle):
    scrape = lifecycle.replaying_worker
    transitions = names.PHASE_TRANSITIONS + "_total"
    counted = {
        (s.labels["from_phase"], s.labels["to_phase"]): s.value
        for s in scrape.samples
        if s.name == transitions and s.value
    }
    assert counted == {("AwaitingSignings", "Active"): 1.0}
    assert scrape.value(names.TIME_IN_PHASE + "_count") == 1
    assert scrape.value(names.IRON_REQUESTS + "_total", operation="create_customer") == 0


def test_the_receiver_counts_webhooks_by_outcome_and_its_temporal_calls(lifecycle):
    scrape = lifecycle.receiver
    webhooks = names.WEBHOOKS + "_total"
    assert scrape.value(webhooks, outcome="signalled", http_status="200") >= 2
    assert scrape.value(names.WEBHOOK_DURATION + "_count", outcome="signalled") == scrape.value(webhooks, outcome="signalled")
    assert scrape.value(names.IRON_REQUESTS + "_total", operation="get_customer", status_class="2xx") >= 1
    assert scrape.value("temporal_request_total", operation="SignalWorkflowExecution") >= 2
    assert scrape.value(webhooks, outcome="adopted", http_status="200") >= 1
    assert scrape.value("temporal_request_failure_total", operation="DescribeWorkflowExecution") >= 1


def test_no_label_carries_an_id_or_personal_data(lifecycle):
    values = {
        value
        for scrape in (lifecycle.worker, lifecycle.receiver, lifecycle.replaying_worker)
        for sample in scrape.samples
        for value in sample.labels.values()
    }
    assert values, "no labels at all"
    leaked = {v for v in values for secret in lifecycle.identifiers | lifecycle.emails if secret in v}
    assert not leaked, f"labels carry ids or emails: {sorted(leaked)}"
    uuid_like = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert not [v for v in values if uuid_like.search(v)], "a label holds a uuid"


# --- the dashboard ---------------------------------------------------------------------------------

_GRAFANA_RANGES = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}")
_GRAFANA_VARIABLES = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?")


def panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return found


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    return [
        (panel.get("title", "?"), target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects, from its parsed syntax tree."""
    concrete = _GRAFANA_VARIABLES.sub("placeholder", _GRAFANA_RANGES.sub("5m", expr))
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.add(node.name)
            found.update(m.value for m in node.matchers.matchers if m.name == "__name__")
            return
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(concrete))
    return found


def test_every_dashboard_metric_is_one_a_real_scrape_shows(lifecycle):
    dashboard = json.loads(DASHBOARD.read_text())
    scraped = lifecycle.worker.names | lifecycle.receiver.names
    queried = expressions(dashboard)
    assert len(queried) >= 12
    missing = {}
    for title, expr in queried:
        selected = metric_names(expr)
        assert selected, f"panel {title!r}: {expr!r} selects no metric"
        if selected - scraped:
            missing[title] = sorted(selected - scraped)
    assert not missing, f"panels querying metrics no scrape shows: {missing}"


def test_the_dashboard_covers_the_funnel_time_in_phase_iron_events_webhooks_and_the_sdk():
    dashboard = json.loads(DASHBOARD.read_text())
    by_metric: dict[str, list[str]] = {}
    for title, expr in expressions(dashboard):
        for name in metric_names(expr):
            by_metric.setdefault(name, []).append(title)
    for name in (
        names.PHASE_TRANSITIONS + "_total",
        names.TIME_IN_PHASE + "_bucket",
        names.IRON_REQUESTS + "_total",
        names.EVENT_DELIVERIES + "_total",
        names.WEBHOOKS + "_total",
        "temporal_workflow_task_execution_latency_seconds_bucket",
        "temporal_request_failure_total",
    ):
        assert name in by_metric, f"no panel queries {name}"
    titles = [p.get("title") for p in panels(dashboard) if p.get("type") != "row"]
    assert len(titles) == len(set(titles)), "two panels share a title"
    for panel in panels(dashboard):
        if panel.get("type") != "row":
            assert panel.get("datasource", {}).get("uid") == "${datasource}", panel.get("title")


def test_the_demo_registers_every_search_attribute_the_workflow_writes():
    kinds = {"KEYWORD": "Keyword", "INT": "Int", "DATETIME": "Datetime", "BOOL": "Bool"}
    assert SEARCH_ATTRIBUTES == {key.name: kinds[key.indexed_value_type.name] for key in sa.ALL}

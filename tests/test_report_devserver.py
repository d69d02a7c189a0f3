"""`python starter.py report --json` on a dev server with customers in several phases.

Six customers are taken to six places through the real sandbox (a KYC the customer has not
done, one under Iron's review, one declined, one waiting to sign, one Active, one whose
identification expired past its renewals), and a seventh is a run continued as new while
Declined for a day. The report must count each phase exactly and list as stuck only those past
their threshold, oldest first with their UI links.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import datetime, timedelta, timezone

from temporalio.api.enums.v1 import EventType

import starter
from contracts import search_attributes as sa
from contracts.messages import (
    WORKFLOW_TYPE,
    AuditEntry,
    OnboardingInput,
    OnboardingState,
    Phase,
    workflow_id_for,
)
from contracts.events import phase_changed
from contracts.outbox import Outbox
from iron_sandbox.testing import SandboxServer
from starter import sign_all, start_onboarding
from tests.workflow_harness import DEV_SERVER_TIMINGS, dev_server_env, running_worker, wait_for_phase

TIMINGS = DEV_SERVER_TIMINGS.model_copy(update={"max_expired_renewals": 0, "parked_reconcile_seconds": 3600})


def run_report(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = starter.main(["report", *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def report_json(*args: str) -> dict:
    code, out, err = await asyncio.to_thread(run_report, "--json", *args)
    assert code == 0, err
    return json.loads(out)


async def eventually(predicate, read, timeout: float = 30.0):
    """Visibility follows the workflows by a moment: read until `predicate` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if predicate(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.5)


async def start_carried_declined(client, task_queue: str, external_id: str, since: datetime) -> None:
    """A run as continue-as-new writes it: parked in Declined since `since`, its phase event
    refused by the partner's backend since an hour later (the outbox flagged as failing)."""
    outbox = Outbox().append(phase_changed(
        OnboardingState(external_id=external_id, phase=Phase.DECLINED), previous_phase=Phase.AWAITING_IDENTIFICATION,
        at=since + timedelta(hours=1),
    )).failing()
    state = OnboardingState(
        external_id=external_id,
        phase=Phase.DECLINED,
        iron_customer_id=str(uuid.uuid4()),
        customer_status="IdentificationRequired",
        identification_status="Declined",
        outcome="Declined",
        waiting=True,
        deadlines={"reconcile": datetime.now(timezone.utc) + timedelta(hours=1)},
        outbox=outbox,
        audit=[
            AuditEntry(at=(since - timedelta(hours=1)).isoformat(), phase=Phase.AWAITING_IDENTIFICATION, cause="identification Pending"),
            AuditEntry(at=since.isoformat(), phase=Phase.DECLINED, cause="identification declined by Iron"),
            AuditEntry(at=(since + timedelta(hours=2)).isoformat(), phase=Phase.DECLINED, cause="continuing as new (run 2)"),
        ],
    )
    state.phase_since = since
    workflow_input = OnboardingInput(
        external_id=external_id, iron_customer_id=state.iron_customer_id, timings=TIMINGS, carried=state,
    )
    await client.start_workflow(
        WORKFLOW_TYPE, workflow_input, id=workflow_id_for(external_id), task_queue=task_queue,
        search_attributes=sa.at_start(state),
    )


async def test_report_counts_each_phase_and_lists_the_stuck_oldest_first(temporal_cli_path, tmp_path, monkeypatch):
    run = uuid.uuid4().hex[:6]
    names = {k: f"report-{k}-{run}" for k in ("kyc", "review", "declined", "signing", "active", "attention", "carried")}
    day_ago = datetime.now(timezone.utc) - timedelta(days=1)
    with SandboxServer() as sandbox:
        async with dev_server_env(temporal_cli_path) as env:
            client = env.client
            monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
            monkeypatch.setenv("TEMPORAL_NAMESPACE", client.namespace)
            monkeypatch.setenv("TEMPORAL_UI_URL", "http://ui.example:8233")
            async with running_worker(client, sandbox, tmp_path / "documents", task_queue="report") as _:
                await start_carried_declined(client, "report", names["carried"], day_ago)
                for key in ("kyc", "review", "declined", "signing", "active", "attention"):
                    await start_onboarding(
                        client, names[key], email=f"{key}@example.com", timings=TIMINGS, task_queue="report"
                    )
                handles = {k: client.get_workflow_handle(workflow_id_for(v)) for k, v in names.items()}
                waiting = {
                    k: await wait_for_phase(handles[k], Phase.AWAITING_IDENTIFICATION, timeout=60)
                    for k in ("kyc", "review", "declined", "signing", "active", "attention")
                }
                control = sandbox.control
                await control.set_identification_status(waiting["review"].identification_id, "PendingReview")
                await control.set_identification_status(waiting["declined"].identification_id, "Declined")
                await control.set_identification_status(waiting["attention"].identification_id, "Expired")
                for key in ("signing", "active"):
                    await control.set_identification_status(waiting[key].identification_id, "Approved")
                await wait_for_phase(handles["active"], Phase.AWAITING_SIGNINGS, timeout=60)
                await sign_all(client, names["active"])
                await wait_for_phase(handles["active"], Phase.ACTIVE, timeout=60)
                await wait_for_phase(handles["signing"], Phase.AWAITING_SIGNINGS, timeout=60)
                await wait_for_phase(handles["declined"], Phase.DECLINED, timeout=60)
                await wait_for_phase(handles["attention"], Phase.NEEDS_ATTENTION, timeout=60)
                reviewing = await wait_for_phase(handles["review"], Phase.AWAITING_IDENTIFICATION, timeout=60)

                expected = {p.value: 0 for p in Phase if p != Phase.ARCHIVED}
                expected.update(AwaitingIdentification=2, AwaitingSignings=1, Active=1, Declined=2, NeedsAttention=1)
                report = await eventually(lambda r: r["phases"] == expected and r["thresholds"]["declined"]["stuck"] == 2, report_json)
                assert report["phases"] == expected
                assert report["running"] == 7

                # Defaults: only those parked for an operator are stuck, and the carried one's events
                # are refused; the carried one is oldest.
                stuck = [(c["rule"], c["external_id"]) for c in report["stuck"]]
                assert stuck[:2] == [("declined", names["carried"]), ("events_failing", names["carried"])]
                assert sorted(stuck) == sorted([
                    ("declined", names["carried"]), ("declined", names["declined"]), ("needs_attention", names["attention"]),
                    ("events_failing", names["carried"]),
                ])
                failing = report["stuck"][1]
                assert datetime.fromisoformat(failing["since"]) == day_ago + timedelta(hours=1)
                assert report["thresholds"]["events_failing"]["stuck"] == 1
                carried = report["stuck"][0]
                assert carried["since_known"] and datetime.fromisoformat(carried["since"]) == day_ago
                assert 86000 < carried["age_seconds"] < 87000
                assert carried["ui_link"].startswith("http://ui.example:8233/namespaces/default/workflows?query=")
                assert workflow_id_for(names["carried"]) in carried["ui_link"]
                assert {c["phase"] for c in report["stuck"]} == {"Declined", "NeedsAttention"}
                no_newer = await report_json("--events-failing", "2d")
                assert no_newer["thresholds"]["events_failing"]["stuck"] == 0, "refused for a day, not two"
                assert report["thresholds"]["waiting_on_customer"] == {
                    "seconds": 7 * 86400, "description": "the customer has to complete the identification or sign",
                    "stuck": 0, "listed": 0, "truncated": False,
                }

                # Small thresholds: every customer waiting on someone is stuck once it is past them.
                # The review's phase began before its status changed: PendingReview rides along.
                assert reviewing.identification_status == "PendingReview"
                await asyncio.sleep(1.5)
                small = await eventually(
                    lambda r: len(r["stuck"]) == 7,
                    lambda: report_json("--waiting-on-customer", "1s", "--pending-review", "1s"),
                )
                listed = [(c["rule"], c["external_id"]) for c in small["stuck"]]
                assert sorted(listed) == sorted([
                    ("declined", names["carried"]), ("declined", names["declined"]), ("needs_attention", names["attention"]),
                    ("waiting_on_customer", names["kyc"]), ("waiting_on_customer", names["signing"]),
                    ("pending_review", names["review"]), ("events_failing", names["carried"]),
                ])
                sinces = [datetime.fromisoformat(c["since"]) for c in small["stuck"]]
                assert sinces == sorted(sinces), "not oldest first"
                assert small["stuck"][0]["external_id"] == names["carried"]
                assert all(c["since_known"] for c in small["stuck"])

                # --limit bounds the list, never the counts; the text report says the same.
                limited = await report_json("--waiting-on-customer", "1s", "--limit", "1")
                assert limited["thresholds"]["waiting_on_customer"]["stuck"] == 2
                assert limited["thresholds"]["waiting_on_customer"]["listed"] == 1
                assert limited["thresholds"]["waiting_on_customer"]["truncated"] is True
                code, text, err = await asyncio.to_thread(run_report)
                assert code == 0, err
                assert "Declined" in text and names["carried"] in text and "stuck declined > 0s" in text

                # A new onboarding pays no marker: its phase start rides with the phase's upsert.
                fresh = await handles["signing"].fetch_history()
                assert not [e for e in fresh.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
                signing = await handles["signing"].describe()
                since = signing.typed_search_attributes.get(sa.ONBOARDING_PHASE_SINCE)
                state = await handles["signing"].query("state", result_type=OnboardingState)
                assert since == state.phase_since and state.audit[-1].phase == Phase.AWAITING_SIGNINGS


def test_report_refuses_a_duration_it_cannot_read():
    code, out, err = run_report("--pending-review", "two days")
    assert code == 2 and not out
    assert "--pending-review" in err and "invalid duration value" in err

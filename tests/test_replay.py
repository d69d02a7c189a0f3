"""Recorded histories of every branch replay against today's workflow code.

The histories under tests/histories/ come from the lifecycle tests (`make histories`). A
change that would break a running customer's replay fails here before it ships; guard such
changes with the engine version (see the README). Histories recorded before a change stay, in
a folder named after it, and must keep replaying: customers started then are still running.
`engine-2/`, `engine-4/` and `engine-5/` hold every branch as that engine wrote it; `before-v2/` and `before-leaner-waits/`
were written by the first loop and replay through the frozen `workflows/onboarding_v1.py`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from contracts.events import ACTIVITY_DELIVER_EVENT
from contracts.messages import ENGINE_VERSION, IRON_CALLS_QUEUE_SUFFIX
from runtime.temporal import data_converter
from tests.changed_workflow import OnboardingWithAnUnguardedChange
from worker import WORKFLOWS
from workflows.onboarding import CustomerOnboarding

HISTORIES_DIR = Path(__file__).resolve().parent / "histories"
CURRENT = sorted(HISTORIES_DIR.glob("*.json"))  # recorded by today's code
BEFORE_LEANER_WAITS = sorted((HISTORIES_DIR / "before-leaner-waits").glob("*.json"))
BEFORE_V2 = sorted((HISTORIES_DIR / "before-v2").glob("*.json"))
ENGINE_2 = sorted((HISTORIES_DIR / "engine-2").glob("*.json"))
ENGINE_4 = sorted((HISTORIES_DIR / "engine-4").glob("*.json"))
ENGINE_5 = sorted((HISTORIES_DIR / "engine-5").glob("*.json"))
EVENTS_DIR = HISTORIES_DIR / "events"  # a lifecycle that delivers events, by engine version
REQUIREMENTS_AND_SLAS = sorted((HISTORIES_DIR / "requirements-and-slas").glob("*.json"))
HISTORIES = sorted(HISTORIES_DIR.rglob("*.json"))
BRANCHES = {path.name.split(".run")[0] for path in CURRENT}


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"recorded-{path.stem}", path.read_text())


def test_every_branch_has_a_recorded_history():
    expected = {
        "link_happy_path",
        "lost_webhook_polling",
        "expired_renewed_and_bounded",
        "declined_then_restart",
        "reverted_identification_required",
        "reverted_signings_required",
        "suspended_then_archived",
    }
    assert expected <= BRANCHES, f"missing histories: {sorted(expected - BRANCHES)} (run make histories)"


@pytest.mark.parametrize("path", HISTORIES, ids=[str(p.relative_to(HISTORIES_DIR)) for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter())  # every one a worker runs
    result = await replayer.replay_workflow(load(path))
    assert result.replay_failure is None


def event_counts(path: Path) -> Counter:
    return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in load(path).events)


def test_histories_from_before_the_leaner_waits_patch_are_kept():
    assert {p.name for p in BEFORE_LEANER_WAITS} >= {p.name for p in CURRENT if p.name.startswith("link_happy_path")}
    for path in BEFORE_LEANER_WAITS:
        assert event_counts(path)["MARKER_RECORDED"] == 0, path.name


def test_histories_of_the_first_loop_are_kept_for_every_branch():
    assert {p.name for p in BEFORE_V2} >= {p.name for p in CURRENT}
    for path in BEFORE_V2:
        started = load(path).events[0].workflow_execution_started_event_attributes
        assert b"engine_version" not in started.input.payloads[0].data, f"{path.name} was written by the first loop"


def test_todays_histories_run_the_current_loop_at_no_patch_cost():
    """Every run today's code starts carries the engine version; the happy path pays for one
    poll timer (a webhook does not cancel it), three upserts, the state view's memo writes and
    no patch marker."""
    for path in CURRENT:
        started = load(path).events[0].workflow_execution_started_event_attributes
        assert f'"engine_version":{ENGINE_VERSION}'.encode() in started.input.payloads[0].data, path.name
    now = event_counts(HISTORIES_DIR / "link_happy_path.run1.json")
    first_loop = event_counts(HISTORIES_DIR / "before-v2" / "link_happy_path.run1.json")
    assert now["MARKER_RECORDED"] == 0 and first_loop["MARKER_RECORDED"] == 1
    assert now["TIMER_STARTED"] == 1 and now["TIMER_CANCELED"] == 0
    assert now["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] == 3 < first_loop["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"]
    assert 0 < now["WORKFLOW_PROPERTIES_MODIFIED"] <= 4, "the state view: written only when it changed"


def test_histories_of_engine_2_are_kept_for_every_branch():
    """Customers started by engine 2 are still running: every branch's history of it replays
    (above) with the gates of engine 3 and 4 closed."""
    assert {p.name for p in ENGINE_2} >= {p.name for p in CURRENT}
    for path in ENGINE_2:
        started = load(path).events[0].workflow_execution_started_event_attributes
        assert b'"engine_version":2' in started.input.payloads[0].data, path.name
        assert event_counts(path)["WORKFLOW_PROPERTIES_MODIFIED"] == 0, path.name


def scheduled_queues(path: Path) -> dict[str, set[str]]:
    """Activity type -> the task queues its activities were scheduled on, and the workflow's own
    queue under ''."""
    events = load(path).events
    queues: dict[str, set[str]] = {"": {events[0].workflow_execution_started_event_attributes.task_queue.name}}
    for e in events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            a = e.activity_task_scheduled_event_attributes
            queues.setdefault(a.activity_type.name, set()).add(a.task_queue.name)
    return queues


def test_iron_calls_have_a_queue_of_their_own_from_engine_5_and_engine_4_is_kept():
    """Today's runs make every Iron call on the Iron-calls queue (the one Temporal rate limits);
    runs of engine 4 called Iron on the workflow's queue and still replay (above). Events stay on
    the workflow's queue: tests/test_events_devserver.py."""
    assert {p.name for p in ENGINE_4} >= {p.name for p in CURRENT}
    for path in ENGINE_4:
        started = load(path).events[0].workflow_execution_started_event_attributes
        assert b'"engine_version":4' in started.input.payloads[0].data, path.name
        queues = scheduled_queues(path)
        assert all(q == queues[""] for q in queues.values()), (path.name, queues)
    calls = 0
    for path in CURRENT:
        queues = scheduled_queues(path)
        (own,) = queues[""]
        iron = {name: q for name, q in queues.items() if name and name != ACTIVITY_DELIVER_EVENT}
        assert all(q == {own + IRON_CALLS_QUEUE_SUFFIX} for q in iron.values()), (path.name, queues)
        calls += len(iron)
    assert calls >= len(BRANCHES)


def test_a_cycle_delivers_its_last_event_before_continuing_as_new_from_engine_6_and_engine_5_is_kept():
    """Engine 5 scheduled the cycle's last event in the task that continued as new: the activity
    died with the run and the next run sent the head again. From engine 6 the run delivers it
    first and the next run starts with nothing to send. Both replay (above); recorded by
    tests/test_events_devserver.py with RECORD_HISTORIES=1."""
    assert {p.name for p in ENGINE_5} >= {p.name for p in CURRENT}
    for path in ENGINE_5:
        started = load(path).events[0].workflow_execution_started_event_attributes
        assert b'"engine_version":5' in started.input.payloads[0].data, path.name

    def deliveries(version: int, run: int) -> tuple[int, int, bool]:
        events = load(EVENTS_DIR / f"engine-{version}" / f"lifecycle_to_active.run{run}.json").events
        scheduled = {e.event_id for e in events if e.HasField("activity_task_scheduled_event_attributes")
                     and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_DELIVER_EVENT}
        completed = sum(1 for e in events if e.HasField("activity_task_completed_event_attributes")
                        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled)
        return len(scheduled), completed, events[-1].HasField("workflow_execution_continued_as_new_event_attributes")

    assert deliveries(5, 1) == (4, 3, True) and deliveries(5, 2) == (1, 1, False), "engine 5 sent Active twice"
    assert deliveries(6, 1) == (4, 4, True) and deliveries(6, 2) == (0, 0, False)
    for version in (5, 6):
        started = load(EVENTS_DIR / f"engine-{version}" / "lifecycle_to_active.run1.json").events[0]
        assert f'"engine_version":{version}'.encode() in started.workflow_execution_started_event_attributes.input.payloads[0].data


def test_a_webhook_driven_run_keeps_one_poll_timer_and_batches_status_upserts():
    """The first loop on the happy path, before and after patch leaner-waits-v1: one poll timer
    the webhook does not cancel, and no upsert for a status read on the way."""
    before = event_counts(HISTORIES_DIR / "before-leaner-waits" / "link_happy_path.run1.json")
    now = event_counts(HISTORIES_DIR / "before-v2" / "link_happy_path.run1.json")
    assert now["MARKER_RECORDED"] == 1  # the patch marker
    assert now["TIMER_STARTED"] == 1 and now["TIMER_CANCELED"] == 0
    assert before["TIMER_STARTED"] == 2 and before["TIMER_CANCELED"] == 2
    # 5 upserts counting the patch's own TemporalChangeVersion one, against 7 before.
    assert now["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] == 5 and before["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] == 7


async def test_an_unguarded_change_fails_replay():
    path = HISTORIES_DIR / "link_happy_path.run1.json"
    replayer = Replayer(workflows=[OnboardingWithAnUnguardedChange], data_converter=data_converter())
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(path))


def test_histories_of_engine_3_read_requirements_and_flag_slas_at_no_marker_cost():
    """Runs of engine version 3: no patch marker, a requirements read where Iron declined a
    step, and an SLA flag set and cleared in the search attribute."""
    names = {p.name.split(".run")[0] for p in REQUIREMENTS_AND_SLAS}
    assert names >= {"declined_with_requirements", "sla_breached_then_cleared"}
    for path in REQUIREMENTS_AND_SLAS:
        assert event_counts(path)["MARKER_RECORDED"] == 0, path.name
    declined = load(HISTORIES_DIR / "requirements-and-slas" / "declined_with_requirements.run1.json")
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in declined.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "get_requirements" in activities
    sla = load(HISTORIES_DIR / "requirements-and-slas" / "sla_breached_then_cleared.run1.json")
    flags = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields["OnboardingSlaBreached"].data
        for e in sla.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        and "OnboardingSlaBreached" in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert flags == [b"false", b"true", b"false"], flags

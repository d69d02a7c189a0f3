"""Recorded histories replay against today's code.

`tests/histories/<release>/` holds what a release's code wrote, recorded once when the release
was cut (`make histories RELEASE=<version>`): every branch of the lifecycle (`lifecycle/`), a
lifecycle that delivers events (`events/`), requirements and SLAs, waits and the state view
(`state-memo/`), a fleet pass and a run it woke (`fleet-reconciliation/`). Customers that release
started may still be running, so each of its histories must replay on today's code: a change
that would break one fails here before it ships. `unreleased/` (`make histories`) holds what
today's code writes. A change keeps old runs replaying behind the engine version
(`contracts/engine.py`; the rule is in docs/changing-the-workflow.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from contracts.engine import ENGINE_VERSION, Features
from contracts.events import ACTIVITY_DELIVER_EVENT
from contracts.messages import IRON_CALLS_QUEUE_SUFFIX, WORKFLOW_TYPE
from runtime.temporal import data_converter
from runtime.workflow_sandbox import sandboxed_runner
from tests.changed_workflow import NEXT_ENGINE_VERSION, OnboardingWithAGatedChange, OnboardingWithAnUnguardedChange
from worker import WORKFLOWS

HISTORIES_DIR = Path(__file__).resolve().parent / "histories"
# Each release whose customers may still run, and the engine version its code wrote.
RELEASES = {"1.0.0": 1}
LATEST_RELEASE = HISTORIES_DIR / "1.0.0"
HISTORIES = sorted(HISTORIES_DIR.rglob("*.json"))
BRANCHES = {
    "link_happy_path",
    "lost_webhook_polling",
    "expired_renewed_and_bounded",
    "declined_then_restart",
    "reverted_identification_required",
    "reverted_signings_required",
    "suspended_then_archived",
}


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"recorded-{path.stem}", path.read_text())


def started(path: Path):
    return load(path).events[0].workflow_execution_started_event_attributes


def onboardings(folder: Path) -> list[Path]:
    """The histories of customer onboardings in `folder` (the fleet pass's are not)."""
    return [p for p in sorted(folder.rglob("*.json")) if started(p).workflow_type.name == WORKFLOW_TYPE]


def event_counts(path: Path) -> Counter:
    return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in load(path).events)


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_each_release_recorded_every_branch_and_every_feature(release: str):
    folder = HISTORIES_DIR / release
    branches = {p.name.split(".run")[0] for p in (folder / "lifecycle").glob("*.json")}
    assert BRANCHES <= branches, f"missing histories of {release}: {sorted(BRANCHES - branches)}"
    for feature in ("events", "requirements-and-slas", "state-memo", "fleet-reconciliation"):
        assert list((folder / feature).glob("*.json")), f"{release} has no {feature}/ histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[str(p.relative_to(HISTORIES_DIR)) for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(), workflow_runner=sandboxed_runner())  # every one a worker runs
    result = await replayer.replay_workflow(load(path))
    assert result.replay_failure is None


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_a_release_s_runs_carry_its_engine_version_and_no_patch_marker(release: str):
    """The engine version is the one mechanism: no `workflow.patched` marker in any run."""
    for path in sorted((HISTORIES_DIR / release).rglob("*.json")):
        assert event_counts(path)["MARKER_RECORDED"] == 0, path.name
    for path in onboardings(HISTORIES_DIR / release):
        workflow_input = json.loads(started(path).input.payloads[0].data)
        assert workflow_input["engine_version"] == RELEASES[release], path.name


def test_the_engine_version_of_today_is_the_latest_release_s_or_newer():
    assert ENGINE_VERSION >= max(RELEASES.values())


def test_a_newer_engine_than_the_release_s_has_its_histories_recorded_unreleased():
    """A gated change raised the engine: its branch replays only if today's runs were recorded."""
    if ENGINE_VERSION == max(RELEASES.values()):
        return
    paths = onboardings(HISTORIES_DIR / "unreleased")
    assert paths, f"engine {ENGINE_VERSION} is newer than the last release's: run make histories and commit tests/histories/unreleased/"
    for path in paths:
        assert json.loads(started(path).input.payloads[0].data)["engine_version"] == ENGINE_VERSION, path.name
        assert event_counts(path)["MARKER_RECORDED"] == 0, path.name


async def test_an_ungated_change_fails_replay_of_the_release_and_a_gated_one_passes():
    """The same new command, for every run or behind the next engine version: the release's
    customers would fail on the first and carry on under the second."""
    histories = onboardings(LATEST_RELEASE)
    assert len(histories) >= len(BRANCHES)
    ungated = Replayer(workflows=[OnboardingWithAnUnguardedChange], data_converter=data_converter())
    with pytest.raises(NondeterminismError):
        await ungated.replay_workflow(load(LATEST_RELEASE / "lifecycle" / "link_happy_path.run1.json"))
    # A run that gave no command before it ended (a parked run continued as new) shows no
    # difference to replay; every first run does.
    for path in (p for p in histories if p.name.endswith(".run1.json")):
        result = await ungated.replay_workflow(load(path), raise_on_replay_failure=False)
        assert isinstance(result.replay_failure, NondeterminismError), path.name
    gated = Replayer(workflows=[OnboardingWithAGatedChange], data_converter=data_converter())
    for path in histories:
        assert (await gated.replay_workflow(load(path))).replay_failure is None, path.name


def test_a_worker_refuses_an_engine_it_does_not_know():
    """A run of a newer engine (a rollback mid-deploy) fails its workflow task on this worker,
    which retries until a worker that knows it takes it, rather than run it on older code."""
    assert Features.of(ENGINE_VERSION).version == ENGINE_VERSION
    for unknown in (0, NEXT_ENGINE_VERSION):
        with pytest.raises(RuntimeError, match=f"engine version {unknown} is unknown to this worker"):
            Features.of(unknown)


def test_the_happy_path_pays_one_poll_timer_three_upserts_and_few_memo_writes():
    """A webhook does not cancel the poll timer, status reads ride along with the phase's upsert,
    and the state view is written only when it changed."""
    now = event_counts(LATEST_RELEASE / "lifecycle" / "link_happy_path.run1.json")
    assert now["TIMER_STARTED"] == 1 and now["TIMER_CANCELED"] == 0
    assert now["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"] == 3
    assert 0 < now["WORKFLOW_PROPERTIES_MODIFIED"] <= 4


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


def test_iron_calls_have_a_queue_of_their_own_and_events_stay_on_the_workflow_s():
    """Every Iron call goes on the Iron-calls queue, the one Temporal rate limits; deliveries of
    events stay on the workflow's queue (tests/test_events_devserver.py)."""
    calls = 0
    for path in onboardings(LATEST_RELEASE):
        queues = scheduled_queues(path)
        (own,) = queues[""]
        iron = {name: q for name, q in queues.items() if name and name != ACTIVITY_DELIVER_EVENT}
        assert all(q == {own + IRON_CALLS_QUEUE_SUFFIX} for q in iron.values()), (path.name, queues)
        assert queues.get(ACTIVITY_DELIVER_EVENT, {own}) == {own}, (path.name, queues)
        calls += len(iron)
    assert calls >= len(BRANCHES)


def test_a_cycle_delivers_its_last_event_before_continuing_as_new():
    """The run that reaches Active delivers its last event before it continues as new, so the
    next run starts with nothing to send and the backend gets Active once."""

    def deliveries(run: int) -> tuple[int, int, bool]:
        events = load(LATEST_RELEASE / "events" / f"lifecycle_to_active.run{run}.json").events
        scheduled = {e.event_id for e in events if e.HasField("activity_task_scheduled_event_attributes")
                     and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_DELIVER_EVENT}
        completed = sum(1 for e in events if e.HasField("activity_task_completed_event_attributes")
                        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled)
        return len(scheduled), completed, events[-1].HasField("workflow_execution_continued_as_new_event_attributes")

    assert deliveries(1) == (4, 4, True) and deliveries(2) == (0, 0, False)


def test_requirements_are_read_where_iron_declined_and_slas_are_flagged_and_cleared():
    folder = LATEST_RELEASE / "requirements-and-slas"
    declined = load(folder / "declined_with_requirements.run1.json")
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in declined.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "get_requirements" in activities
    sla = load(folder / "sla_breached_then_cleared.run1.json")
    flags = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields["OnboardingSlaBreached"].data
        for e in sla.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        and "OnboardingSlaBreached" in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    at_start = sla.events[0].workflow_execution_started_event_attributes.search_attributes.indexed_fields
    assert at_start["OnboardingSlaBreached"].data == b"false", "shown from the start, at no upsert"
    assert flags == [b"true", b"false"], flags

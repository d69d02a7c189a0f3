"""Recorded histories of every branch replay against today's workflow code.

The histories under tests/histories/ come from the lifecycle tests (`make histories`). A
change that would break a running customer's replay fails here before it ships; guard such
changes with `workflow.patched` (see the README).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from runtime.temporal import data_converter
from tests.changed_workflow import OnboardingWithAnUnguardedChange
from workflows.onboarding import CustomerOnboarding

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))
BRANCHES = {path.name.split(".run")[0] for path in HISTORIES}


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


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    replayer = Replayer(workflows=[CustomerOnboarding], data_converter=data_converter())
    result = await replayer.replay_workflow(load(path))
    assert result.replay_failure is None


async def test_an_unguarded_change_fails_replay():
    path = next(p for p in HISTORIES if p.name.startswith("link_happy_path.run1"))
    replayer = Replayer(workflows=[OnboardingWithAnUnguardedChange], data_converter=data_converter())
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(load(path))

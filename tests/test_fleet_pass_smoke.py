"""`python -m bench.fleet_pass` on a few hundred Iron customers, on a dev server: the pass reads
every customer, finds its onboardings matching and wakes none, and its billable actions are
counted from its histories. The million-customer targets are measured by the command itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import fleet_pass


@pytest.mark.timeout(240)
async def test_a_pass_over_a_few_hundred_customers_is_timed_and_counted(temporal_cli_path, tmp_path: Path):
    report = await fleet_pass.measure(300, temporal_cli_path, tmp_path, onboard_every=100)
    counts = report["counts"]
    assert report["onboardings"] == 3 and counts["customers"] == 303
    assert (counts["matching"], counts["woken"], counts["without_workflow"]) == (3, 0, 300)
    assert counts["pages"] == math.ceil(303 / 100) and report["runs"] == 1
    assert report["iron_list_calls"] == counts["pages"], "each page read from Iron once"
    assert report["actions"] == 1 + 1 + 2, "a start, one activity for every page, the schedule's two"
    assert report["at_a_million"]["actions"] == 2 + 20 + 200
    assert "at a million" in fleet_pass.format_report(report)

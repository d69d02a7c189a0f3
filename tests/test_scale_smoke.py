"""`python -m bench.scale` at a tiny size on the real stack: memory per cached workflow and the
CPU to wake an uncached parked customer are measured in every round and both reports are
written, so the scale figures cannot rot. Targets are reported (met or missed), never asserted
here: only structure, and figures that are not zero."""

from __future__ import annotations

import json

import pytest

from bench import scale


@pytest.mark.timeout(120)
def test_scale_reports_memory_per_cached_workflow_and_cpu_per_uncached_wake(tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["--customers", "8", "--wakes", "3", "--rounds", "3", "--json",
            "--results-dir", str(results), "--state-dir", str(tmp_path / "state")]
    assert scale.main(argv) == 0
    report = json.loads((results / "scale.json").read_text())
    assert json.loads(capsys.readouterr().out) == report

    memory = report["memory"]
    assert len(memory["rounds"]) == 3 and all(r["parked"] == 8 for r in memory["rounds"])
    assert memory["workflows_held"] == scale.WARM_UP + 8 * 3
    assert memory["worker_max_cached_workflows"] > memory["workflows_held"]
    assert 0 < memory["rss_fresh_mb"] <= memory["rss_end_mb"] <= memory["peak_rss_mb"]
    figures = memory["mb_per_cached_workflow"]
    assert figures["min"] <= figures["median"] <= figures["max"]

    wake = report["wake"]
    assert wake["worker_max_cached_workflows"] == scale.SMALL_CACHE < wake["wakes_per_round"] * 3
    for side in ("uncached_rounds", "cached_rounds"):
        assert len(wake[side]) == 3 and all(r["wakes"] == 3 for r in wake[side])
        # Each wake read Iron (its refresh reads the customer) and cost the worker some CPU.
        assert all(r["iron_calls"]["per_wake"] >= 1 for r in wake[side]), wake[side]
    assert sum(r["worker_cpu_seconds"] for r in wake["uncached_rounds"]) > 0
    uncached = wake["cpu_ms_per_uncached_wake"]
    assert 0 <= uncached["min"] <= uncached["median"] <= uncached["max"]
    assert wake["history_events_at_wake"] > 5

    verdicts = report["verdicts"]
    for key, target in (("mb_per_cached_workflow", 0.10), ("cpu_ms_per_uncached_wake", 25.0)):
        assert verdicts[key]["target_max"] == target and isinstance(verdicts[key]["met"], bool)
    assert report["machine"]["load_average_at_start"] and report["machine"]["load_average_at_end"]
    text = (results / "scale.md").read_text()
    assert "worker memory per cached workflow" in text and "wake an uncached parked customer" in text

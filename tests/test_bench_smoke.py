"""The benchmark in --smoke mode on the real stack: the product, the same-work floor and the
no-op floor in three alternating rounds, every metric measured and sane, and the JSON and
Markdown reports written, so the benchmark cannot rot. Speed targets are reported (pass/MISS),
never asserted here: only structure and counts that are not zero."""

from __future__ import annotations

import json
import os

import pytest

from bench import benchmark


@pytest.mark.timeout(180)
def test_smoke_benchmark_reports_every_metric(tmp_path, capsys):
    results = tmp_path / "results"
    code = benchmark.main(["--smoke", "--results-dir", str(results), "--state-dir", str(tmp_path / "state")])
    assert code == 0
    report = json.loads((results / "smoke.json").read_text())
    sizes = report["sizes"]
    assert (sizes["lifecycles"], sizes["parked"], sizes["latency_samples"]) == (3, 20, 5)

    # The floor took the shape a real lifecycle showed: activities, webhooks, signings; the
    # product's start-and-wait is one update the floor matches with its own waiting start.
    shape = report["calibration"]["floor_shape"]
    assert shape["signals"] >= 3 and shape["updates"] >= 1, shape
    assert report["calibration"]["product_history"]["wait_updates"] == 1
    one_lifecycle = report["calibration"]["product_history"]
    assert one_lifecycle["runs"] == 1  # the contact by reference: Active in the run that created it

    tp = report["throughput"]
    assert sizes["rounds"] == 3
    for side in ("product", "same_work", "floor"):
        assert tp[side]["lifecycles"] == 3 and len(tp[side]["rounds"]) == 3, tp[side]["rounds"]
        assert 0 < tp[side]["per_second_min"] <= tp[side]["per_second"] < 1000
        assert 0 < tp[side]["lifecycle_seconds_p50"] <= tp[side]["lifecycle_seconds_p99"] < 120
        assert tp[side]["cpu_seconds_per_lifecycle"]["temporal"] > 0
        assert tp[side]["worker_cpu_seconds_per_lifecycle"] > 0, tp[side]["cpu_seconds_per_lifecycle"]
        # The dev server's own counters, scraped around each round.
        server = tp[side]["server"]
        assert server["persistence_writes"] > 0 and server["matching_dispatches"] > 0, server
        assert server["visibility_writes"] > 0, server
    assert tp["ratio"] == pytest.approx(tp["product"]["per_second"] / tp["same_work"]["per_second"], rel=0.01)
    assert len(tp["round_ratios"]) == 3
    assert isinstance(tp["pass"], bool)
    # Each side's CPU is its own worker's plus the processes every side shares.
    assert tp["product"]["cpu_seconds_per_lifecycle"]["worker"] > 0
    assert tp["same_work"]["cpu_seconds_per_lifecycle"]["same-work-worker"] > 0
    assert tp["floor"]["cpu_seconds_per_lifecycle"]["floor-worker"] > 0

    hist = report["history_events_per_lifecycle"]
    floor_activities = shape["activities_first"] + shape["signal_activities"] + shape["updates"] + shape["deliveries"]
    assert shape["deliveries"] == one_lifecycle["event_deliveries"] >= 3
    assert hist["floor"]["activities"] == floor_activities
    assert hist["floor"]["signals"] == shape["signals"] and hist["floor"]["updates"] == shape["updates"] + 1
    assert hist["product"]["runs"] == 1 and hist["floor"]["runs"] == 1
    assert hist["product"]["events"] > hist["product"]["activities"] * 3
    assert hist["floor"]["events"] > floor_activities * 3
    assert isinstance(hist["pass"], bool)

    # The same-work floor did the lifecycle's work: one find-or-create-and-identify, reads, a
    # signing per document, one delivery per phase (awaiting identification, signings, Active),
    # the receiver's webhooks as signals, the start-and-wait and the signings as updates.
    same = hist["same_work"]
    assert same["runs"] == 1 and same["event_deliveries"] == 3
    assert same["updates"] == shape["updates"] + 1 and same["wait_updates"] == 1
    assert same["signals"] >= 3 and same["search_attribute_upserts"] == 3 and same["timers"] >= 1
    assert same["activities"] >= 1 + 1 + shape["updates"] + 1 + 3
    assert tp["same_work"]["iron_requests_per_lifecycle"] >= 3 + 2 + shape["updates"] + 1
    same_actions = report["actions_per_lifecycle"]["same_work"]
    assert same_actions["actions"] > 0 and "memo_upserts" not in same_actions["by_kind"]  # not billed

    iron = report["iron_calls_per_lifecycle"]
    assert iron["activities"] >= 5  # find/create and identify, reads on, two signings, the final read
    assert iron["http_requests"] >= iron["activities"]  # every Iron activity calls Iron at least once
    # One delivery per phase event at least: awaiting identification, signings, Active.
    assert iron["event_deliveries"] >= 3
    assert iron["activities"] + iron["event_deliveries"] == hist["product"]["activities"]
    lag = tp["product"]["webhook_delivery_lag"]
    assert lag["deliveries"] >= 3 * 4 and lag["p50_ms"] > 0

    lat = report["latency"]
    for name in ("product_webhook_to_event", "same_work_webhook_to_event", "floor_signal_to_event"):
        side = lat[name]
        assert side["samples"] == 5 and side["failed"] == 0, side
        assert 0 < side["p50_ms"] <= side["p99_ms"] < 30_000
    assert isinstance(lat["pass"], bool)

    # Both sides' drivers followed their customers by events and updates alone.
    queries = report["driver_queries"]
    assert queries["total"] == 0 and queries["throughput_product"] == queries["throughput_floor"] == 0, queries
    assert queries["throughput_same_work"] == 0

    mem = report["worker_memory"]
    assert mem["parked"] == 20  # real CustomerOnboarding workflows in AwaitingIdentification
    assert 20 < mem["baseline_rss_mb"] <= mem["peak_rss_mb"]
    assert 20 < mem["rss_mb"] < 4096

    machine = report["machine"]
    assert machine["nproc"] == os.cpu_count() and machine["memory_gib"] > 0 and machine["python"]
    assert machine["temporal_database"] == "memory"  # the default: no synced writes to the disk

    md = (results / "smoke.md").read_text()
    assert "| throughput, median round (lifecycles/s) |" in md and f"{machine['nproc']} CPUs" in md
    assert "| metric | product | same-work floor F | no-op floor | product / F | target | result |" in md
    reads = benchmark.TRANSFER_QUEUE_READS_PER_SECOND
    assert f"Dev server: SQLite in memory, transfer queue read up to {reads} times a second" in md
    printed = capsys.readouterr().out
    assert "webhook-to-backend-event p99 (ms)" in printed and "worker RSS, 20 parked (MB)" in printed
    assert "workflow queries the drivers sent" in printed
    for row in ("persistence writes per lifecycle", "matching dispatches per lifecycle", "visibility writes per lifecycle",
                "worker CPU per lifecycle", "billable actions per onboarded customer", "backfill (customers/s)",
                "CPU to wake an uncached parked customer"):
        assert row in printed, row

    # Cost rows: counted from real histories, today's 6-hour reads against the fleet design.
    spent = report["cost"]
    assert spent["lifecycle"]["actions"] >= iron["activities"] + 2  # every activity, and both runs' starts
    assert "memo_upserts" not in spent["lifecycle"]["by_kind"]  # Temporal Cloud does not bill them
    day = spent["active_day"]
    assert day["today_wakes_measured"] >= 2 * 4 and day["actions_per_wake"] >= 2 and day["iron_calls_per_wake"] >= 1
    assert day["fleet_design_wakes_in_the_same_window"] == 0, "no per-customer read within a day"
    fleet = spent["fleet_pass"]
    assert fleet["customers"] >= 3 and fleet["pages"] >= 2 and fleet["runs"] >= 2, fleet
    assert fleet["counts"]["woken"] == 0, "every onboarding shows what Iron says: nobody to wake"
    year = spent["active_customer_year"]
    assert year["today"]["actions"] > 100 * year["fleet"]["actions"] and isinstance(year["pass"], bool)
    assert "| actions per Active customer-year |" in md and "Iron calls per Active customer-year" in printed

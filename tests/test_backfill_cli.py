"""`starter.py adopt --all`'s command line without servers: flags that do not go together are
refused at exit 2 before anything connects, and the summary names every failure."""

from __future__ import annotations

import io

import pytest

import starter
from operations.backfill import BackfillSummary, FailedCustomer, format_summary


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["adopt", "--status", "Active"], "--status: goes with --all only"),
        (["adopt", "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f", "--rate", "5"], "--rate: goes with --all only"),
        (["adopt", "--all", "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"], "give IRON_CUSTOMER_ID or --all, not both"),
        (["adopt", "--all", "--rate", "0"], "--rate: must be above 0"),
        (["adopt", "--all", "--iron-rate", "-1"], "--iron-rate: must be above 0"),
        (["adopt", "--all", "--concurrency", "0"], "--concurrency: must be 1 to 100"),
        (["adopt", "--all", "--status", "Archived"], "invalid choice: 'Archived'"),
        (["adopt"], "IRON_CUSTOMER_ID: must be an Iron customer id"),
    ],
)
def test_flags_that_do_not_go_together_are_refused_before_anything_connects(argv, says, monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # nothing listens: a connect would say so
    out, err = io.StringIO(), io.StringIO()
    assert starter.main(argv, out=out, err=err) == starter.EXIT_BAD_INPUT
    assert says in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_the_summary_names_each_failure_and_says_when_the_run_stopped_early():
    summary = BackfillSummary(adopted=7, already_running=2, archived_skipped=1, pages=1)
    summary.failed.append(FailedCustomer("c-1", "onboarding-x", "onboarding-x belongs to Iron customer c-0"))
    summary.failed.append(FailedCustomer("c-2", "onboarding-y", "customer_type: must be one of Business, Person"))
    text = format_summary(summary)
    assert "STOPPED before the last page" in text
    assert "adopted                  7" in text and "archived, skipped        1" in text
    assert "c-1 onboarding-x: onboarding-x belongs to Iron customer c-0" in text
    assert "c-2 onboarding-y: customer_type: must be one of Business, Person" in text
    summary.complete = True
    assert format_summary(summary).startswith("adopt --all: done: 12 customers in 1 page,")

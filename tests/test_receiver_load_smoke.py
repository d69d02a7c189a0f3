"""A small `make receiver-load`: five bursts of valid, duplicated and forged deliveries against
a real receiver process, a real dev server and the Iron sandbox, a fresh customer signalled
after each burst. Every forged delivery is refused, every 200 is exactly one signal, and the
receiver stays ready."""

from __future__ import annotations

import pytest

from bench.receiver_load import run_load


@pytest.mark.timeout(300)
async def test_five_bursts_leave_the_receiver_healthy_and_every_200_one_signal(tmp_path):
    result = await run_load(
        tmp_path / "load", bursts=5, customers=8, per_customer=10, duplicate_share=0.2, forged_share=0.2,
        # The machine's load decides how fast the dev server takes signals; a burst of this size
        # is answered 200 in full on an idle machine, and 503 (Iron retries) is the only other
        # answer a valid delivery may get.
        min_share_200=0.9,
        log=lambda line: None,
    )
    report = result.report()
    assert result.error is None, report
    assert len(result.deliveries) == 5 * (80 + 16 + 16) + 5, report
    assert result.probes_ok == [True] * 5, report
    assert result.ready_after_burst == [True] * 5, report
    assert result.signal_mismatches == [], report
    assert result.by_kind_and_status()["forged"] == {401: 80}, report
    assert result.ok, report

"""`python -m bench.funnel` on a small fleet and a short stretch, on the time-skipping server:
every kind of the mix is driven to where it stops, the figures are counted from histories and
the sandbox's log, and a customer that stopped reads Iron no more once its first window passed.
The targets are measured by `make funnel` on a year, never asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import funnel


def test_the_mix_is_allocated_in_its_proportions():
    kinds = funnel.allocate(100)
    assert len(kinds) == 100 and {k: kinds.count(k) for k in funnel.MIX} == {k: round(v * 100) for k, v in funnel.MIX.items()}
    assert len(funnel.allocate(7)) == 7


@pytest.mark.timeout(240)
async def test_a_small_funnel_is_driven_and_counted(temporal_test_server_path, tmp_path: Path):
    report = await funnel.measure(len(funnel.MIX), 3, temporal_test_server_path, tmp_path, kinds=list(funnel.MIX))
    kinds = report["kinds"]
    assert set(kinds) == set(funnel.MIX), "one customer of each kind"
    assert report["phases_at_end"] == {"Active": 3, "AwaitingIdentification": 1, "AwaitingSignings": 1, "Declined": 1, "Suspended": 1}
    for kind, figures in kinds.items():
        assert figures["first_day_actions"] > 0 and figures["first_day_iron_calls"] > 0, kind
    for kind in ("kyc_never", "never_sign", "declined", "suspended", "active"):
        assert kinds[kind]["iron_calls_per_year"] == 0, f"{kind} read Iron after its first window: {kinds[kind]}"
    assert report["figures"]["fleet_iron_calls_per_second"] > 0
    assert "parked, worst kind" in funnel.format_report(report)

"""A small chaos run on the real stack (dev server, sandbox, receiver and worker processes):
a few customers through the whole lifecycle, one reverted and back, while Iron fails a third
of its answers, while webhooks are dropped, tripled and replayed stale, and while workers are
SIGKILLed. Iron's side must show every customer in its expected state and nothing made twice."""

from __future__ import annotations

import pytest

from bench import chaos

CUSTOMERS = 4  # customers 0 and 3 are reverted and must come back in cycle 2


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", ["iron-errors", "webhooks", "worker-kill"])
def test_chaos_scenario_converges_without_duplicates(scenario, tmp_path):
    result = chaos.run_scenario(scenario, CUSTOMERS, tmp_path, concurrency=CUSTOMERS, deadline_per_customer=90, seed=7)
    report = chaos.details(result)
    assert result.error is None, report
    assert result.reached == CUSTOMERS, report
    assert result.duplicates == 0, report
    assert result.evidence.get("step_ups_completed_through_url") == 2, report
    # The checks include proof that the fault really happened (errors answered, webhooks
    # dropped and duplicated, workers killed), so a run without chaos cannot pass.
    assert len(result.checks) >= 2, report
    assert all(check.ok for check in result.checks), report
    assert result.ok, report
    created = result.evidence["first_executions_at_iron"]
    assert created["customers"] == CUSTOMERS and created["identifications"] == CUSTOMERS, report


def test_checks_catch_a_duplicate_at_iron():
    """The Iron-side check itself: a second Iron customer, identification or signing for one
    external id is counted, so a product regression would fail the suite."""
    from contracts.messages import OnboardingState, Phase

    def iron_customer(cid: str, external_id: str, *, signings: list[str], identifications: int = 1) -> dict:
        return {
            "id": cid,
            "external_id": external_id,
            "status": "Active",
            "identifications": [{"id": f"{cid}-i{n}", "created_by": "partner"} for n in range(identifications)],
            "signings": [{"content_id": c} for c in signings],
            "documents": [{"id": "doc-a", "signing_id": "s1"}, {"id": "doc-b", "signing_id": "s2"}],
        }

    state = OnboardingState(external_id="p-0", phase=Phase.ACTIVE, customer_status="Active", iron_customer_id="c1")
    customers = [chaos.Customer(0, "p-0", revert=False, state=state)]
    iron = chaos.IronView(
        customers=[
            iron_customer("c1", "p-0", signings=["doc-a", "doc-b", "doc-b"], identifications=2),
            iron_customer("c2", "p-0", signings=["doc-a", "doc-b"]),
        ],
        requests=[],
        deliveries=[],
        events=[],
    )
    result = chaos.ScenarioResult("iron-errors", 1)
    chaos.check_iron(result, customers, iron, "p-")
    assert result.duplicates == 3  # one customer, one identification, one signing too many
    assert result.reached == 0
    assert not result.ok

"""A small chaos run on the real stack (dev server, sandbox, receiver and worker processes):
a few customers through the whole lifecycle, one reverted and back, while Iron fails a third
of its answers, while webhooks are dropped, tripled and replayed stale, and while workers are
SIGKILLed, and while the partner's backend answers 500 and stops listening. Iron's side must
show every customer in its expected state and nothing made twice; the backend's side, every
customer's events complete, in order and under their own ids; and the driver sent no query."""

from __future__ import annotations

import pytest

from bench import chaos

CUSTOMERS = 4  # customers 0 and 3 are reverted and must come back in cycle 2


# The backend's outages delay events by the delivery's retry backoff; a SIGKILLed worker loses the
# delivery it was running until that activity's 30 s start-to-close timeout. Those customers'
# events, which the driver follows, take longer.
DEADLINES = {"backend-down": 150, "worker-kill": 150}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", ["iron-errors", "webhooks", "worker-kill", "backend-down"])
def test_chaos_scenario_converges_without_duplicates(scenario, tmp_path):
    result = chaos.run_scenario(scenario, CUSTOMERS, tmp_path, concurrency=CUSTOMERS,
                                deadline_per_customer=DEADLINES.get(scenario, 90), seed=7)
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
    # Followed by events alone: 3 phase events per cycle-1 lifecycle (the identification is
    # created with the customer), 2 more for a reverted one.
    assert result.evidence["driver_queries"] == 0, report
    assert result.evidence["events_received"] >= CUSTOMERS * 3 + 2 * 2, report
    if scenario == "backend-down":
        assert result.evidence["event_attempts_refused"] > 0, report
        assert result.evidence["deliveries_refused_connection"] > 0, report
        assert result.evidence["active_while_backend_down"] > 0, report


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


def test_checks_catch_a_gap_a_new_id_on_retry_or_a_lost_event():
    """The backend-side check itself: a missing sequence, an event whose retry came under a new
    id, or a refused attempt that never came back each fail the scenario."""
    from contracts.events import event_id
    from contracts.messages import OnboardingState, Phase, workflow_id_for

    def received(external_id: str, sequences: list[int], ids: list[str] | None = None) -> list[dict]:
        wid = workflow_id_for(external_id)
        ids = ids or [event_id(wid, n) for n in sequences]
        return [{"sequence": n, "webhook_id": i, "data": {"phase": "Active", "cycle": 1}} for n, i in zip(sequences, ids)]

    def customer(external_id: str) -> chaos.Customer:
        state = OnboardingState(external_id=external_id, phase=Phase.ACTIVE, customer_status="Active")
        return chaos.Customer(0, external_id, revert=False, state=state)

    good = {"customers": {"a": received("a", [1, 2, 3])}, "refused_ids": [event_id(workflow_id_for("a"), 2)]}
    result = chaos.ScenarioResult("backend-down", 1)
    chaos.check_events(result, [customer("a")], good)
    assert all(c.ok for c in result.checks), chaos.details(result)

    cases = {
        "gap": {"customers": {"a": received("a", [1, 3])}, "refused_ids": []},
        "new id on a retry": {"customers": {"a": received("a", [1, 2], ids=[event_id(workflow_id_for("a"), 1), "other"])},
                              "refused_ids": []},
        "refused, never delivered": {"customers": {"a": received("a", [1])}, "refused_ids": ["lost-id"]},
    }
    for name, backend in cases.items():
        result = chaos.ScenarioResult("backend-down", 1)
        chaos.check_events(result, [customer("a")], backend)
        assert not all(c.ok for c in result.checks), name

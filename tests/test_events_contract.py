"""The event contract: the body a backend receives, its id, and what never goes into it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from contracts.events import (
    Awaiting,
    DeliverEventInput,
    EventRequirements,
    EventType,
    OnboardingEvent,
    ReminderDue,
    SlaBreach,
    event_id,
    phase_changed,
    reminder_due,
    sla_breached,
)
from contracts.messages import AttentionView, OnboardingInput, OnboardingState, Phase, SigningView
from iron_client.models import CustomerRequirements

AT = datetime(2026, 11, 30, 12, 0, 5, tzinfo=timezone.utc)

DATA_KEYS = {
    "external_id", "workflow_id", "iron_customer_id", "phase", "previous_phase", "cycle", "customer_status",
    "identification_status", "identification_url", "required_signings", "needs_attention", "outcome",
    "requirements", "sequence", "reminder", "sla",
}


def signing_state(**overrides) -> OnboardingState:
    values = dict(
        external_id="cust-42",
        phase=Phase.AWAITING_SIGNINGS,
        customer_status="SigningsRequired",
        identification_status="Approved",
        iron_customer_id="8a3c1f4e-0000-4000-8000-000000000001",
        identification_id="id-1",
        identification_url="https://kyc.example/abc",
        required_signings=[
            SigningView(id="terms-v3", url="https://docs.example/terms", display_name="Terms", signing_id=None),
            SigningView(id="privacy-v2", url="https://docs.example/privacy", display_name="Privacy", signed=True,
                        signing_id="sig-9"),
        ],
        cycle=2,
    )
    values.update(overrides)
    return OnboardingState(**values)


def test_phase_changed_body_is_the_contract():
    event = phase_changed(signing_state(), previous_phase=Phase.AWAITING_IDENTIFICATION, at=AT).with_sequence(7)
    body = json.loads(event.body())
    assert list(body) == ["type", "timestamp", "data"]
    assert body["type"] == "onboarding.phase_changed"
    assert body["timestamp"] == "2026-11-30T12:00:05Z"
    data = body["data"]
    assert set(data) == DATA_KEYS
    assert data["external_id"] == "cust-42" and data["workflow_id"] == "onboarding-cust-42"
    assert data["phase"] == "AwaitingSignings" and data["previous_phase"] == "AwaitingIdentification"
    assert data["cycle"] == 2 and data["sequence"] == 7
    assert data["customer_status"] == "SigningsRequired" and data["identification_status"] == "Approved"
    assert data["required_signings"] == [
        {"id": "terms-v3", "url": "https://docs.example/terms", "display_name": "Terms", "signed": False},
        {"id": "privacy-v2", "url": "https://docs.example/privacy", "display_name": "Privacy", "signed": True},
    ]
    assert data["reminder"] is None and data["sla"] is None
    # The body parses back into the same event, so a backend can use these models too.
    assert OnboardingEvent.model_validate_json(event.body()) == event


def test_event_id_is_the_same_for_one_event_and_different_for_every_other():
    draft = phase_changed(signing_state(), previous_phase=None, at=AT)
    first = draft.with_sequence(1)
    again = phase_changed(signing_state(), previous_phase=None, at=AT + timedelta(hours=1)).with_sequence(1)
    assert first.webhook_id == again.webhook_id == event_id("onboarding-cust-42", 1)
    ids = {draft.with_sequence(n).webhook_id for n in range(1, 1001)}
    assert len(ids) == 1000
    other_customer = phase_changed(signing_state(external_id="cust-43"), previous_phase=None, at=AT).with_sequence(1)
    assert other_customer.webhook_id != first.webhook_id
    # Pinned: a change of namespace would give events already in flight a new id on retry.
    assert first.webhook_id == "d98db1f0-24f6-59c3-81b2-3e655fdf09b8"


def test_no_personal_data_reaches_an_event():
    """The start input's email and name, and Iron's free-text requirement descriptions (a
    moderator's comment may quote the customer), stay out of every event."""
    start = OnboardingInput(external_id="cust-42", email="ottilie.brandt@example.org", name="Ottilie Brandt")
    state = signing_state()
    requirements = CustomerRequirements.model_validate({
        "requirements_due": ["kyc"],
        "complete": [],
        "pending": [],
        "missing": [{
            "code": "kyc_identity",
            "identification_id": "id-1",
            "retryable": True,
            "reject_labels": ["UNSATISFACTORY_PHOTOS"],
            "reject_reasons": [{"code": "UNSATISFACTORY_PHOTOS", "description": "Photos are unreadable"}],
            "missing_questions": [],
            "description": "Ottilie Brandt's passport photo is blurred",
        }],
        "issues": [],
    })
    event = phase_changed(state, previous_phase=None, at=AT, requirements=requirements).with_sequence(1)
    body = event.body().decode()
    for value in (start.email, start.name, "Ottilie", "passport photo"):
        assert value not in body
    missing = json.loads(body)["data"]["requirements"]["missing"][0]
    assert missing == {
        "code": "kyc_identity",
        "identification_id": "id-1",
        "retryable": True,
        "reject_labels": ["UNSATISFACTORY_PHOTOS"],
        "reject_reasons": [{"code": "UNSATISFACTORY_PHOTOS", "description": "Photos are unreadable"}],
        "missing_questions": [],
    }
    # A dict with the same names (a stored snapshot) works the same way.
    assert EventRequirements.of(requirements.model_dump(mode="json")) == event.data.requirements


def test_needs_attention_and_outcome_are_carried():
    state = signing_state(
        phase=Phase.NEEDS_ATTENTION,
        outcome="needs_attention",
        needs_attention=AttentionView(reason="Iron rejected the identification", step="create_identification",
                                      error_type="IronFinalError", status_code=422, since="2026-11-30T11:00:00Z"),
    )
    data = json.loads(phase_changed(state, previous_phase=Phase.CREATING_IDENTIFICATION, at=AT).body())["data"]
    assert data["needs_attention"] == {
        "reason": "Iron rejected the identification", "step": "create_identification", "status_code": 422,
        "since": "2026-11-30T11:00:00Z",
    }
    assert data["outcome"] == "needs_attention"


def test_reminder_and_sla_events_say_what_they_are_about():
    reminder = ReminderDue(awaiting=Awaiting.SIGNINGS, number=2, of=3, waiting_since="2026-11-27T12:00:05Z",
                           after_seconds=3 * 86400)
    event = reminder_due(signing_state(), reminder=reminder, at=AT).with_sequence(4)
    data = json.loads(event.body())["data"]
    assert json.loads(event.body())["type"] == "onboarding.reminder_due"
    assert data["reminder"] == {"awaiting": "signings", "number": 2, "of": 3,
                                "waiting_since": "2026-11-27T12:00:05Z", "after_seconds": 259200.0}
    breach = SlaBreach(deadline="identification", phase=Phase.AWAITING_IDENTIFICATION,
                       since="2026-11-20T00:00:00Z", limit_seconds=7 * 86400)
    sla = sla_breached(signing_state(phase=Phase.AWAITING_IDENTIFICATION), breach=breach, at=AT).with_sequence(5)
    assert json.loads(sla.body())["data"]["sla"]["deadline"] == "identification"
    assert sla.type is EventType.SLA_BREACHED


def test_details_must_match_the_type():
    reminder = ReminderDue(awaiting=Awaiting.IDENTIFICATION, number=1, of=3, waiting_since="x", after_seconds=86400)
    good = reminder_due(signing_state(), reminder=reminder, at=AT)
    with pytest.raises(ValidationError, match="reminder"):
        OnboardingEvent(type=EventType.PHASE_CHANGED, timestamp=good.timestamp, data=good.data)
    with pytest.raises(ValidationError, match="reminder"):
        OnboardingEvent(type=EventType.REMINDER_DUE, timestamp=good.timestamp,
                        data=good.data.model_copy(update={"reminder": None}))


def test_deliver_input_carries_the_event_s_own_id():
    event = phase_changed(signing_state(), previous_phase=None, at=AT).with_sequence(3)
    assert DeliverEventInput.of(event).webhook_id == event.webhook_id
    with pytest.raises(ValidationError, match="own id"):
        DeliverEventInput(event=event, webhook_id=event.with_sequence(4).webhook_id)
    with pytest.raises(ValidationError, match="numbered"):
        DeliverEventInput.of(event.with_sequence(0))


def test_naive_times_are_taken_as_utc():
    naive = phase_changed(signing_state(), previous_phase=None, at=AT.replace(tzinfo=None))
    other_zone = phase_changed(signing_state(), previous_phase=None, at=AT.astimezone(timezone(timedelta(hours=2))))
    assert naive.timestamp == other_zone.timestamp == "2026-11-30T12:00:05Z"

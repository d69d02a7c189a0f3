"""The start digest, summary and details every start gives Temporal: stable for equal data,
different for other data, true again after an amend, and free of personal data."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from contracts.messages import AmendRequest, IdentificationRequest, OnboardingInput, external_id_for_customer
from contracts.start_metadata import (
    DETAILS_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    START_DIGEST_MEMO,
    STARTED_BY_MEMO,
    amended_start_digest,
    differing_fields,
    first_run_story,
    start_digest,
    start_metadata,
    static_summary,
)
from iron_client.models import CustomerType, IdentificationKind

PERSON = {"first_name": "Philippa", "last_name": "Quill", "email_address": "philippa.q@example.org"}


def start(**overrides) -> OnboardingInput:
    values = dict(external_id="cust-42", email="ada@example.com", name="Ada Lovelace")
    values.update(overrides)
    return OnboardingInput(**values)


def test_equal_starts_have_equal_digests_and_other_data_names_its_field():
    assert differing_fields(start_digest(start()), start_digest(start())) == []
    assert differing_fields(start_digest(start()), start_digest(start(email="bob@example.com"))) == ["email"]
    assert differing_fields(start_digest(start()), start_digest(start(name=None))) == ["name"]
    token = IdentificationRequest(kind=IdentificationKind.TOKEN, token="t", intended_use="Investing")
    assert differing_fields(start_digest(start()), start_digest(start(identification=token))) == ["identification"]


def test_a_data_file_is_compared_by_content_not_by_its_document_reference():
    one = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref="fs:" + "1" * 32)
    two = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref="fs:" + "2" * 32)
    same = start_digest(start(identification=one), identification_content=PERSON)
    again = start_digest(start(identification=two), identification_content=dict(reversed(PERSON.items())))
    other = start_digest(start(identification=two), identification_content={**PERSON, "last_name": "Quail"})
    assert differing_fields(same, again) == []
    assert differing_fields(same, other) == ["identification"]


def test_the_same_email_of_two_customers_does_not_look_alike():
    assert start_digest(start())["email"] != start_digest(start(external_id="cust-43"))["email"]


def test_a_running_onboarding_without_a_digest_or_adopted_cannot_be_compared():
    assert differing_fields(None, start_digest(start())) is None
    assert differing_fields({"email": "x"}, start_digest(start())) is None
    adopted = start_digest(start(email=None, iron_customer_id="0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"))
    assert differing_fields(adopted, start_digest(start())) is None


def test_after_an_amend_the_digest_is_that_of_the_corrected_start():
    digest = start_digest(start(email="ada@exmaple.com"))
    amended = amended_start_digest(digest, "cust-42", AmendRequest(email="ada@example.com", customer_type=CustomerType.BUSINESS))
    assert differing_fields(amended, start_digest(start(customer_type=CustomerType.BUSINESS))) == []


def test_summary_details_and_memo_carry_no_personal_data():
    identification = IdentificationRequest(kind=IdentificationKind.PERSON, document_ref="fs:" + "1" * 32)
    metadata = start_metadata(start(identification=identification), identification_content=PERSON)
    text = json.dumps(metadata)
    for personal in ("ada@example.com", "Ada", "Lovelace", "Philippa", "Quill", "example.org"):
        assert personal not in text
    assert "cust-42" in metadata["static_summary"] and "Person identification" in metadata["static_summary"]
    assert set(metadata["memo"][START_DIGEST_MEMO]) >= {"email", "name", "identification", "version"}


def test_adoption_and_long_ids_stay_within_the_ui_limits():
    adopted = start(email=None, name=None, iron_customer_id="0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f")
    assert static_summary(adopted, started_by="webhook receiver").startswith("Adopted Iron customer 0190d6c2")
    long = start(external_id="x" * 200)
    metadata = start_metadata(long)
    assert len(metadata["static_summary"]) <= SUMMARY_MAX_CHARS
    assert len(metadata["static_details"]) <= DETAILS_MAX_CHARS


def test_a_continued_run_tells_the_story_its_onboarding_was_started_with():
    """A continued input names the Iron customer whether it was adopted or created: the memo's
    `started_by` and the digest's `adopted` mark tell the first run's summary and details again."""
    iron_id = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"
    for first, started_by in ((start(), "starter"), (start(email=None, name=None, iron_customer_id=iron_id), "adopt")):
        metadata = start_metadata(first, started_by=started_by)
        continued = first.model_copy(update={"email": None, "name": None, "iron_customer_id": iron_id})
        story = first_run_story(
            continued, started_by=metadata["memo"][STARTED_BY_MEMO], digest=metadata["memo"][START_DIGEST_MEMO]
        )
        assert metadata["static_summary"] in story and metadata["static_details"] in story
    # Started before `started_by` was kept: the same story, without its origin.
    untold = first_run_story(start(), started_by=None, digest=None)
    assert "Onboarding cust-42: Person, Link identification" in untold and "started by" not in untold


def test_dot_segments_are_no_external_id_at_any_door():
    """Before: `.` and `..` were accepted, and Iron's look-up of `..` went to `GET /api/external`."""
    iron_customer_id = "0190d6c2-7a8b-7c3d-9e4f-0a1b2c3d4e5f"
    for dots in (".", ".."):
        with pytest.raises(ValidationError, match="external_id"):
            start(external_id=dots)
        # An Iron customer whose external id is one is named after its Iron id instead.
        assert external_id_for_customer(iron_customer_id, dots) == iron_customer_id
    for fine in ("...", ".a", "a..b", "a.b"):
        assert start(external_id=fine).external_id == fine

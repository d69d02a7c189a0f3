"""Log redaction: secrets and personal data never reach the rendered log line."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from dataclasses import dataclass

import pytest
import structlog
from pydantic import BaseModel

from data_protection.redaction import (
    REDACTED,
    RedactingFilter,
    clear_registered_secrets,
    is_sensitive_key,
    redact_processor,
    redact_text,
    register_secret,
    register_sensitive_values,
    use_configured_secrets,
)

API_KEY = "iron_sk_live_7f3a9c1e5b2d4f6a8c0e"
WEBHOOK_SECRET = "whsec_Zq9Lm2Xv8Rt4Yp6Wn1Kd"
OLD_WEBHOOK_SECRET = "whsec_Old0ld0ldSecretValue"
CODEC_TOKEN = "codec_tok_93kd8s7f6g5h"
EMAIL = "henrietta.vandermeer@example.net"
FIRST, LAST = "Henrietta", "Vandermeer"
DOB = "1979-11-23"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.c2lnbmF0dXJl"
DOCUMENT = base64.b64encode(os.urandom(600)).decode()
SECRETS = (API_KEY, WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, CODEC_TOKEN, EMAIL, FIRST, LAST, DOB, BEARER, DOCUMENT)


@pytest.fixture(autouse=True)
def configured_secrets():
    """The secrets of a process's settings, handed over when it loads them at start."""
    clear_registered_secrets()
    use_configured_secrets("ProcessSettings", [API_KEY])
    use_configured_secrets("ReceiverSettings", [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET])
    use_configured_secrets("CodecServerSettings", [CODEC_TOKEN])
    yield
    clear_registered_secrets()


@pytest.fixture
def log_output():
    """A logger with the project's processor chain (redaction before exception formatting)."""
    buffer = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(file=buffer),
        processors=[
            structlog.processors.add_log_level,
            redact_processor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    return logger, buffer


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret[:30]!r} leaked into {text[:300]!r}"


class PersonParams(BaseModel):
    first_name: str
    last_name: str
    date_of_birth: str
    email_address: str
    nationality: str


@dataclass
class Upload:
    file: str
    type: str


def test_structured_fields_nested_and_inline_are_redacted(log_output):
    logger, buffer = log_output
    logger.info(
        "creating identification",
        workflow_id="onboarding-cust-42",
        customer_type="Person",
        attempt=3,
        api_key=API_KEY,
        headers={"X-API-Key": API_KEY, "Authorization": f"Bearer {BEARER}", "IDEMPOTENCY-KEY": "5d1e0c1e-idem"},
        webhook={"Webhook-Secret": WEBHOOK_SECRET, "type": "identification_status"},
        customer={"email": EMAIL, "name": f"{FIRST} {LAST}", "status": "IdentificationRequired"},
        params={
            "type": "Person",
            "first_name": FIRST,
            "last_name": LAST,
            "date_of_birth": DOB,
            "identity": {"selfie": DOCUMENT, "identity_document_front": DOCUMENT, "identity_country_code": "DE"},
            "documents": [{"name": "passport.png", "file": DOCUMENT, "type": "Passport"}],
        },
        note=f"retrying with key {API_KEY} for {EMAIL}",
        upstream=f"Iron echoed {DOCUMENT}",
        token_header=f"Authorization: Bearer {BEARER}",
        old_secret_seen=f"signature checked with {OLD_WEBHOOK_SECRET}",
        codec=f"Bearer {CODEC_TOKEN}",
    )
    output = buffer.getvalue()
    assert_clean(output)
    [event] = lines(buffer)
    # what operators need stays
    assert event["event"] == "creating identification"
    assert event["workflow_id"] == "onboarding-cust-42"
    assert event["customer_type"] == "Person" and event["attempt"] == 3
    assert event["headers"]["IDEMPOTENCY-KEY"] == "5d1e0c1e-idem"
    assert event["webhook"]["type"] == "identification_status"
    assert event["customer"]["status"] == "IdentificationRequired"
    assert event["params"]["type"] == "Person"
    assert event["params"]["identity"]["identity_country_code"] == "DE"
    assert event["params"]["documents"][0]["type"] == "Passport"
    # and the sensitive values are replaced, not dropped
    assert event["api_key"] == REDACTED
    assert event["headers"]["Authorization"] == REDACTED
    assert event["customer"]["email"] == REDACTED
    assert event["params"]["identity"]["selfie"] == REDACTED
    assert event["note"] == f"retrying with key {REDACTED} for {REDACTED}"


def test_exception_text_echoing_request_data_is_redacted(log_output):
    logger, buffer = log_output
    try:
        raise RuntimeError(
            f'Iron answered 400: {{"first_name": "{FIRST}", "last_name": "{LAST}", "email_address": "{EMAIL}", '
            f'"date_of_birth": "{DOB}", "identity": {{"selfie": "{DOCUMENT}"}}}} (X-API-Key: {API_KEY})'
        )
    except RuntimeError:
        logger.exception("iron call failed", customer_id="c-123")
    output = buffer.getvalue()
    assert_clean(output)
    [event] = lines(buffer)
    assert "RuntimeError: Iron answered 400" in event["exception"]
    assert event["customer_id"] == "c-123"


def test_exception_objects_and_models_in_fields(log_output):
    logger, buffer = log_output
    params = PersonParams(first_name=FIRST, last_name=LAST, date_of_birth=DOB, email_address=EMAIL, nationality="NL")
    logger.warning(
        "validation failed",
        params=params,
        upload=Upload(file=DOCUMENT, type="ProofOfAddress"),
        error=ValueError(f"bad email {EMAIL}"),
    )
    assert_clean(buffer.getvalue())
    [event] = lines(buffer)
    assert event["params"]["nationality"] == "NL"
    assert event["upload"]["type"] == "ProofOfAddress"
    assert event["error"].startswith("ValueError: bad email")


def test_registered_values_and_reloaded_settings():
    register_secret("sandbox-partner-password-1")
    register_sensitive_values(["tenant-secret-aaaa", None, "bbbb-tenant-secret"], "short", "ab")
    text = redact_text("pw sandbox-partner-password-1, t tenant-secret-aaaa/bbbb-tenant-secret, short ab")
    assert "sandbox-partner-password-1" not in text and "tenant-secret" not in text
    assert text.endswith("ab")  # values under four characters are not treated as secrets
    # settings loaded again with a rotated key: the new key is redacted, the old one no longer
    from runtime.settings import ProcessSettings

    ProcessSettings.load({"IRON_API_KEY": "iron_sk_rotated_0000111122"})
    assert redact_text("using iron_sk_rotated_0000111122 now") == f"using {REDACTED} now"
    assert redact_text(f"old key {API_KEY}") == f"old key {API_KEY}"  # no longer configured


def test_redact_text_on_iron_error_messages():
    message = (
        "Failed to deserialize the JSON body into the target type: "
        f"phone_number: invalid E.164 number `+31 6 1234 5678`, email: {EMAIL}"
    )
    redacted = redact_text(message)
    assert EMAIL not in redacted and "1234 5678" not in redacted
    assert redacted.startswith("Failed to deserialize the JSON body into the target type: phone_number: [REDACTED]")
    assert redact_text(f"name={FIRST} status=Approved") == f"name={REDACTED} status=Approved"
    assert redact_text(f"{{'full_name': '{FIRST} {LAST}', 'kind': 'Person'}}") == f"{{'full_name': '{REDACTED}', 'kind': 'Person'}}"
    assert redact_text(f'{{\\"last_name\\": \\"{LAST}\\"}}') == f'{{\\"last_name\\": \\"{REDACTED}\\"}}'
    assert redact_text(f"GET /customers?api_key={API_KEY}&page_size=10") == f"GET /customers?api_key={REDACTED}&page_size=10"


def test_ordinary_text_is_left_alone():
    text = (
        'Traceback (most recent call last):\n  File "/srv/activities/iron.py", line 12, in create\n'
        "KeyError: 'email'\nworkflow onboarding-cust-42 run 3f2b9c4e-8a7d-4e61-9b0f-2c5d8e1a7f34 "
        "moved to SigningsRequired; short base64 dGVzdA== kept"
    )
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "key",
    ["api_key", "X-API-Key", "AUTHORIZATION", "Webhook-Secret", "iron_webhook_secrets", "client_secret",
     "password", "token", "access_token", "email_address", "Email", "full_name", "First-Name", "date_of_birth",
     "phone", "street_1", "selfie", "identity_document_back", "file", "tax_identification_number", "identity_number"],
)
def test_sensitive_key_names(key):
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["event", "workflow_id", "status", "customer_type", "display_name", "phase", "key_id"])
def test_ordinary_key_names(key):
    assert not is_sensitive_key(key)


def test_stdlib_logging_filter_redacts_messages_args_and_tracebacks():
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redaction.stdlib")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling Iron with %s for %s", API_KEY, EMAIL)
        try:
            raise ValueError(f"Iron rejected {{'first_name': '{FIRST}', 'date_of_birth': '{DOB}'}}")
        except ValueError:
            logger.exception("activity failed")
    finally:
        logger.removeHandler(handler)
    output = buffer.getvalue()
    assert_clean(output)
    assert "calling Iron with [REDACTED] for [REDACTED]" in output
    assert "ValueError: Iron rejected" in output

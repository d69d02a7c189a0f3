"""Fixtures and sample data shared by the sandbox and client tests.

Test modules import the fixtures they use (`from tests.sandbox_helpers import sandbox, iron`), so
pytest finds them without a shared conftest entry.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from iron_sandbox import SandboxConfig
from iron_sandbox.testing import SandboxServer, WebhookCollector

API_KEY = "test-api-key-3f1c9a"
WEBHOOK_SECRET = "whsec-test-7d2e"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


def new_key() -> str:
    return str(uuid.uuid4())


def fast_config(**overrides: Any) -> SandboxConfig:
    """A sandbox tuned for tests: quick webhook retries, a fixed seed."""
    values: dict[str, Any] = dict(
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        webhook_initial_backoff_seconds=0.05,
        webhook_max_backoff_seconds=0.2,
        webhook_max_attempts=5,
        webhook_timeout_seconds=2.0,
        seed=1234,
    )
    values.update(overrides)
    return SandboxConfig(**values)


@pytest.fixture(scope="module")
def sandbox_server():
    with SandboxServer(fast_config()) as server:
        yield server


@pytest.fixture
async def sandbox(sandbox_server: SandboxServer):
    await sandbox_server.control.reset()
    yield sandbox_server


@pytest.fixture
async def iron(sandbox: SandboxServer):
    async with sandbox.client() as client:
        yield client


@pytest.fixture(scope="module")
def collector_server():
    with WebhookCollector() as collector:
        yield collector


@pytest.fixture
def collector(collector_server: WebhookCollector):
    collector_server.clear()
    collector_server.responses.clear()
    yield collector_server


# --- sample request bodies ------------------------------------------------------------------------


def address(country: str = "DE") -> dict[str, Any]:
    return {"street_1": "Hauptstrasse 1", "city": "Berlin", "zip_code": "10115", "country": country}


def kyc_questionnaire() -> dict[str, Any]:
    return {
        "employment_status": "Employed",
        "yearly_gross_income": "From50001To60000",
        "source_of_wealth": "Salary",
        "expected_monthly_transaction_count": "LessThan5",
        "expected_monthly_transaction_volume": "LessThan500",
    }


def person_identification(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "Person",
        "sharing_consent": True,
        "consent_collected_at": "2025-02-01T15:38:21.775210Z",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "full_name": "Ada Lovelace",
        "date_of_birth": "1990-12-10",
        "phone_number": "+4915112345678",
        "email_address": "ada@example.com",
        "address": address("FR"),
        "identity": {
            "identity_country_code": "DE",
            "identity_document_type": "Passport",
            "identity_document_front": PNG,
            "selfie": PNG,
            "selfie_collected_at": "2025-02-01T15:30:00Z",
            "ip_address": "203.0.113.7",
            "nationality": "DE",
        },
        "intended_use": "PurchaseDigitalAssets",
        "kyc_questionnaire": kyc_questionnaire(),
        "documents": [{"name": "utility-bill.pdf", "file": PNG, "type": "ProofOfAddress"}],
    }
    body.update(overrides)
    return body


def token_identification(token: str = "sumsub-share-token-1", **overrides: Any) -> dict[str, Any]:
    body = {"type": "Token", "token": token, "intended_use": "Investing", "ip_address": "203.0.113.7"}
    body.update(overrides)
    return body


def business_identification(*, documents: bool = True, **overrides: Any) -> dict[str, Any]:
    director = {
        "roles": ["Director", "UltimateBeneficialOwner"],
        "share_percentage": "60",
        "beneficiary_info": {
            "first_name": "Grace",
            "last_name": "Hopper",
            "date_of_birth": "1980-01-02",
            "address": address(),
            "email_address": "grace@example.com",
            "phone_number": "+4915112345679",
            "tax_jurisdiction_country_code": "DE",
            "birth_place": {"place": "New York", "state": "NY", "country": "US"},
            "identity": {
                "identity_country_code": "DE",
                "identity_document_type": "NationalId",
                "identity_document_front": PNG,
                "nationality": "DE",
                "selfie": PNG,
                "selfie_collected_at": "2025-02-01T15:30:00Z",
            },
        },
    }
    company_info = {
        "company_name": "Acme GmbH",
        "registration_number": "HRB 12345",
        "country": "DE",
        "incorporation_date": "2015-06-01",
        "legal_address": "Hauptstrasse 1, 10115 Berlin",
        "postal_address": "Hauptstrasse 1, 10115 Berlin",
        "address": address(),
        "email": "office@acme.example",
        "tax_identification_number": "DE123456789",
        "website": "https://acme.example",
        "company_type": "LimitedLiabilityCompany",
    }
    body: dict[str, Any] = {
        "type": "Business",
        "company_data": {
            "company_info": company_info,
            "beneficiaries": [director],
            "documents": [{"type": "IncorporationCert", "country": "DE", "file": PNG}] if documents else [],
        },
        "phone": "+4930123456",
        "ip_address": "203.0.113.8",
        "questionnaire": {
            "type": "Generic",
            "business_details": {
                "industry_type": "InformationTechnologyAndSoftware",
                "business_model_description": "Software for merchants",
                "main_business_countries": ["DE", "FR"],
                "has_licenses_or_registrations": False,
                "requires_aml_program": False,
                "estimated_annual_revenue": "From1MTo10M",
            },
            "planned_activities": {
                "purpose_and_intended_use": "ReceivingBusinessIncome",
                "estimated_monthly_volume": "FiftyToOneHundredThousand",
                "estimated_monthly_transactions": "TenToTwentyFive",
                "sends_funds_on_customer_behalf": False,
            },
            "source_of_funds": {
                "source_of_funds": "BusinessRevenue",
                "source_of_funds_description": "Sales of software licences",
                "customer_funds_handling_details": "No customer funds are held",
            },
        },
    }
    body.update(overrides)
    return body


# --- the spec as JSON Schema ----------------------------------------------------------------------

SPEC_URI = "urn:iron:openapi-onboarding"
JSON_TYPE = "application/json; charset=utf-8"


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    from datetime import datetime

    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return bool(re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", value))


class Spec:
    """Iron's OpenAPI document, with JSON Schema 2020-12 validation of its component schemas."""

    def __init__(self, path: Path) -> None:
        self.document = yaml.safe_load(Path(path).read_text())
        self.registry = Registry().with_resource(SPEC_URI, Resource(contents=self.document, specification=DRAFT202012))
        checker = jsonschema.FormatChecker()
        checker.checks("date-time")(_is_datetime)
        checker.checks("uuid")(_is_uuid)
        self.format_checker = checker
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in self.document["paths"]
        ]

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(
            self._rebase(schema), registry=self.registry, format_checker=self.format_checker
        )

    def _rebase(self, schema: Any) -> Any:
        """Point local `#/components/...` refs at the spec resource."""
        if isinstance(schema, dict):
            return {k: (SPEC_URI + v if k == "$ref" and v.startswith("#") else self._rebase(v)) for k, v in schema.items()}
        if isinstance(schema, list):
            return [self._rebase(v) for v in schema]
        return schema

    def component(self, name: str) -> jsonschema.Draft202012Validator:
        return self.validator({"$ref": f"#/components/schemas/{name}"})

    def template_for(self, path: str) -> str:
        """The spec path template matching a concrete API path (without the `/api` prefix)."""
        # The external-id path has a free-form segment; try it last so ids do not match it by accident.
        matches = [template for regex, template in self._templates if regex.match(path)]
        if not matches:
            raise AssertionError(f"no spec path matches {path}")
        matches.sort(key=lambda t: t.endswith("/external"))
        return matches[0]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        template = self.template_for(path)
        operation = self.document["paths"][template].get(method.lower())
        if operation is None:
            raise AssertionError(f"spec has no {method} {template}")
        return template, operation

    def onboarding_operations(self) -> set[tuple[str, str]]:
        out = set()
        for template, item in self.document["paths"].items():
            if template.startswith(("/webhooks", "/terms-and-conditions")):
                continue
            for method in item:
                out.add((method.upper(), template))
        return out

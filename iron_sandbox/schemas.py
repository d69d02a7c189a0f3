"""Request bodies the sandbox accepts: the spec's models (`iron_client/generated.py`, generated
from the spec by `make models`) with the rules Iron applies beyond them.

Validation (`validate`) is strict the way a typed server is: JSON types must match exactly
(`"true"` is not a boolean), enum values must be one of the listed ones, and required fields must
be present. Unknown properties are ignored, as the spec does not forbid them. A few formats the
spec states in prose are enforced too (dates, E.164 phone numbers, country codes, base64 files of
at most 10 MB), so a client that sends what Iron would refuse learns it here, not in production:
each class below restates only the fields it holds to such a rule, or that hold such a class.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from iron_client import generated as spec

MAX_FILE_BYTES = 10 * 1024 * 1024


class Body(BaseModel):
    """A request body, with enum values kept as the plain strings the client sent. `validate` is
    the strict way in; a body built in Python (as tests seed the state) is checked laxly."""

    model_config = ConfigDict(extra="ignore", use_enum_values=True)


# --- formats -------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


def _phone(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("not an E.164 phone number (e.g. +4915112345678)")
    return value


def _country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise ValueError("not an ISO 3166-1 alpha-2 country code")
    return value


def _date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a date in YYYY-MM-DD format") from None
    if len(value) != 10:
        raise ValueError("not a date in YYYY-MM-DD format")
    return value


def _timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a time zone (e.g. a trailing Z)")
    return value


def _base64_file(value: str) -> str:
    if len(value) > (MAX_FILE_BYTES * 4) // 3 + 4:
        raise ValueError("file larger than 10 MB")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 (without a data: prefix)") from None
    if not decoded:
        raise ValueError("file is empty")
    if len(decoded) > MAX_FILE_BYTES:
        raise ValueError("file larger than 10 MB")
    return value


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("not a UUID") from None


NonEmpty = Annotated[str, Field(min_length=1)]
Email = Annotated[str, AfterValidator(_email)]
Phone = Annotated[str, AfterValidator(_phone)]
Country = Annotated[str, AfterValidator(_country)]
DateStr = Annotated[str, AfterValidator(_date)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]
File = Annotated[str, AfterValidator(_base64_file)]
UuidStr = Annotated[str, AfterValidator(_uuid)]

# --- customers -----------------------------------------------------------------------------------

ExternalId = Annotated[str, Field(min_length=1, max_length=256)]


class CreateCustomerParams(spec.CreateCustomerParams, Body):
    email: Email
    external_id: ExternalId | None = None
    name: Annotated[str, Field(max_length=256)] | None = None


class UpdateCustomerParams(spec.UpdateCustomerParams, Body):
    email: Email
    external_id: ExternalId | None = None


# --- identifications -----------------------------------------------------------------------------


class Address(spec.Address, Body):
    street_1: NonEmpty
    city: NonEmpty
    zip_code: NonEmpty
    country: Country


class PersonIdentity(spec.PersonIdentity, Body):
    identity_country_code: Country
    identity_document_front: File
    selfie: File
    selfie_collected_at: Timestamp
    ip_address: NonEmpty
    nationality: Country
    identity_document_back: File | None = None


class IdentityDocument(spec.IdentityDocument, Body):
    name: NonEmpty
    file: File


class EddQuestionnaire(spec.EddQuestionnaire, Body):
    source_of_funds_proof: File


class LinkParams(spec.IdentificationCreateParamsV2IdentificationLinkparams, Body):
    pass


class TokenParams(spec.IdentificationCreateParamsV2IdentificationTokenParams, Body):
    token: NonEmpty
    edd_questionnaire: EddQuestionnaire | None = None


class PersonParams(spec.IdentificationCreateParamsV2IdentificationPersonParams, Body):
    consent_collected_at: Timestamp
    first_name: NonEmpty
    last_name: NonEmpty
    full_name: NonEmpty
    date_of_birth: DateStr
    phone_number: Phone
    email_address: Email
    address: Address
    identity: PersonIdentity
    documents: list[IdentityDocument] | None = None
    edd_questionnaire: EddQuestionnaire | None = None

    @model_validator(mode="after")
    def _consent(self) -> "PersonParams":
        if not self.sharing_consent:
            raise ValueError("sharing_consent must be true")
        return self


class BirthPlace(spec.BirthPlace, Body):
    place: NonEmpty
    country: Country


class BeneficiaryIdentity(spec.BeneficiaryIdentity, Body):
    identity_country_code: Country
    identity_document_front: File
    nationality: Country
    identity_document_back: File | None = None
    selfie: File | None = None
    selfie_collected_at: Timestamp | None = None


class PersonBeneficiaryInfo(spec.PersonBeneficiaryInfo, Body):
    first_name: NonEmpty
    last_name: NonEmpty
    date_of_birth: DateStr
    address: Address
    email_address: Email
    phone_number: Phone
    tax_jurisdiction_country_code: Country
    birth_place: BirthPlace
    identity: BeneficiaryIdentity
    proof_of_address: File | None = None


class CompanyInfo(spec.CompanyInfo, Body):
    company_name: NonEmpty
    registration_number: NonEmpty
    country: Country
    incorporation_date: DateStr
    legal_address: NonEmpty
    postal_address: NonEmpty
    address: Address
    email: Email
    tax_identification_number: NonEmpty
    website: NonEmpty


class CompanyDocParams(spec.CompanyDocParams, Body):
    country: Country
    file: File


class BusinessBeneficiaryInfo(spec.BusinessBeneficiaryInfo, Body):
    company_data: "CompanyData"


class CompanyBeneficiary(spec.CompanyBeneficiary, Body):
    roles: Annotated[list[spec.CompanyPrimaryBeneficiaryRole], Field(min_length=1)]
    beneficiary_info: Union[PersonBeneficiaryInfo, BusinessBeneficiaryInfo]
    attested_at: Timestamp | None = None

    @model_validator(mode="after")
    def _share(self) -> "CompanyBeneficiary":
        if self.share_percentage is not None:
            try:
                share = float(self.share_percentage)
            except ValueError:
                raise ValueError("share_percentage must be a decimal string") from None
            if not 0 <= share <= 100:
                raise ValueError("share_percentage must be between 0 and 100")
        if self.attesting_party and self.attested_at is None:
            raise ValueError("attested_at is required when attesting_party is true")
        return self


class CompanyData(spec.CompanyData, Body):
    company_info: CompanyInfo
    beneficiaries: Annotated[list[CompanyBeneficiary], Field(min_length=1)]
    documents: Annotated[list[CompanyDocParams], Field(max_length=4)]

    @model_validator(mode="after")
    def _director(self) -> "CompanyData":
        if not any("Director" in b.roles for b in self.beneficiaries):
            raise ValueError("each company needs at least one beneficiary with the Director role")
        return self


BusinessBeneficiaryInfo.model_rebuild()


class GenericBusinessDetails(spec.BusinessQuestionnaireBusinessDetails, Body):
    business_model_description: NonEmpty
    main_business_countries: list[Country]


class GenericPlannedActivities(spec.BusinessQuestionnairePlannedActivities, Body):
    flow_of_funds_diagram: File | None = None
    source_of_funds_document: File | None = None


class GenericSourceOfFunds(spec.BusinessQuestionnaireSourceOfFunds, Body):
    source_of_funds_description: NonEmpty
    customer_funds_handling_details: NonEmpty


class GenericBusinessQuestionnaire(spec.BusinessQuestionnaireGenericBusinessQuestionnaire, Body):
    business_details: GenericBusinessDetails
    planned_activities: GenericPlannedActivities
    source_of_funds: GenericSourceOfFunds


class SolePropBusinessDetails(spec.SolePropBusinessDetails, Body):
    business_model_description: NonEmpty
    main_business_countries: list[Country]


class SolePropBusinessQuestionnaire(spec.BusinessQuestionnaireSolePropBusinessQuestionnaire, Body):
    business_details: SolePropBusinessDetails


class BusinessParams(spec.IdentificationCreateParamsV2IdentificationBusinessParams, Body):
    company_data: CompanyData
    phone: Phone
    ip_address: NonEmpty
    questionnaire: Annotated[
        Union[GenericBusinessQuestionnaire, SolePropBusinessQuestionnaire], Field(discriminator="type")
    ]


IdentificationParams = Annotated[
    Union[LinkParams, TokenParams, PersonParams, BusinessParams], Field(discriminator="type")
]


class IdentificationBody(Body):
    """Wrapper so the discriminated union validates through one model."""

    params: IdentificationParams


# --- signings and sandbox ------------------------------------------------------------------------


class SigningCreateParams(spec.SigningCreateParams, Body):
    content_id: UuidStr | None = None


class UpdatePendingIdentificationParams(spec.UpdatePendingIdentificationParams, Body):
    pass


def _webhook_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("url must be an http(s) URL")
    return value


class UpdateWebhookRequest(spec.UpdateWebhookRequest, Body):
    url: Annotated[str, AfterValidator(_webhook_url)] | None = None


class PingWebhookParams(spec.PingWebhookParams, Body):
    customer_id: UuidStr


# --- helpers -------------------------------------------------------------------------------------


def describe(exc: ValidationError, *, strip_prefix: str | None = None, limit: int = 3) -> str:
    """A short, readable text for a 4xx body: the first few problems with where they are."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        loc = [str(p) for p in error.get("loc", ())]
        if strip_prefix and loc and loc[0] == strip_prefix:
            loc = loc[1:]
        # Drop union branch names (e.g. "PersonBeneficiaryInfo") that mean nothing to a caller.
        loc = [p for p in loc if not p[:1].isupper() and not p.startswith("function-")]
        where = ".".join(loc) or "body"
        msg = str(error.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        parts.append(f"{where}: {msg}")
    more = len(exc.errors()) - limit
    suffix = f" (and {more} more)" if more > 0 else ""
    return "; ".join(parts) + suffix


def validate(model: type[Body], payload: Any) -> Body:
    """`payload` (parsed JSON) as `model`, strictly. Validated as JSON: in strict mode an enum
    takes its wire string there, where a Python value would have to be the enum member."""
    return model.model_validate_json(json.dumps(payload), strict=True)

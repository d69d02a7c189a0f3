"""Pydantic v2 models for Iron's onboarding API, following `openapi-onboarding.yml`.

Response models accept fields Iron adds later (``extra="allow"``) so a new field never breaks a
running worker; request models forbid unknown fields so a typo fails here, not at Iron.
Enums are ``str`` enums: they compare equal to the wire strings and serialise as them.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class IronResponse(BaseModel):
    """Base of everything Iron returns: tolerant of fields added later."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class IronRequest(BaseModel):
    """Base of everything sent to Iron: strict, so mistakes fail before the request."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- enums -------------------------------------------------------------------------------------


class CustomerType(str, Enum):
    PERSON = "Person"
    BUSINESS = "Business"


class CustomerStatus(str, Enum):
    USER_REQUIRED = "UserRequired"
    SIGNINGS_REQUIRED = "SigningsRequired"
    IDENTIFICATION_REQUIRED = "IdentificationRequired"
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    ARCHIVED = "Archived"


class IdentificationStatus(str, Enum):
    PENDING = "Pending"
    PROCESSED = "Processed"
    PENDING_REVIEW = "PendingReview"
    APPROVED = "Approved"
    DECLINED = "Declined"
    EXPIRED = "Expired"
    ARCHIVED = "Archived"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_IDENTIFICATION_STATUSES


TERMINAL_IDENTIFICATION_STATUSES = frozenset(
    {
        IdentificationStatus.APPROVED,
        IdentificationStatus.DECLINED,
        IdentificationStatus.EXPIRED,
        IdentificationStatus.ARCHIVED,
    }
)


class IdentificationKind(str, Enum):
    """The four kinds of `POST /customers/{id}/identifications/v2` (the `type` discriminator)."""

    LINK = "Link"
    TOKEN = "Token"
    PERSON = "Person"
    BUSINESS = "Business"


class IdentityDocumentType(str, Enum):
    PASSPORT = "Passport"
    NATIONAL_ID = "NationalId"
    DRIVER_LICENSE = "DriverLicense"
    RESIDENCE_PERMIT = "ResidencePermit"


class DocumentType(str, Enum):
    BUSINESS_REGISTRATION_DOCUMENT = "BusinessRegistrationDocument"
    MEMORANDUM_OF_ASSOCIATION = "MemorandumOfAssociation"
    SHAREHOLDERS_REGISTRY = "ShareholdersRegistry"
    OTHER = "Other"
    PROOF_OF_ADDRESS = "ProofOfAddress"


class IntendedUse(str, Enum):
    INVESTING = "Investing"
    PAYMENT_TO_FRIENDS_FAMILY_OR_OTHERS = "PaymentToFriendsFamilyorOthers"
    PURCHASE_DIGITAL_ASSETS = "PurchaseDigitalAssets"
    ONLINE_PURCHASES_OF_GOODS_OR_SERVICES = "OnlinePurchasesOfGoodsOrServices"
    TRADING = "Trading"


class EmploymentStatus(str, Enum):
    EMPLOYED = "Employed"
    SELF_EMPLOYED = "SelfEmployed"
    UNEMPLOYED = "Unemployed"
    RETIRED = "Retired"
    STUDENT = "Student"


class SortOrder(str, Enum):
    ASC = "asc"
    DESC = "desc"


class RequirementCode(str, Enum):
    KYC_SELFIE = "kyc_selfie"
    KYC_IDENTITY = "kyc_identity"
    KYC_PROOF_OF_RESIDENCE = "kyc_proof_of_residence"
    KYC_QUESTIONNAIRE = "kyc_questionnaire"
    KYB_COMPANY_DATA = "kyb_company_data"
    KYB_COMPANY_BENEFICIARIES = "kyb_company_beneficiaries"
    KYB_COMPANY_DOCUMENTS = "kyb_company_documents"
    KYB_QUESTIONNAIRE = "kyb_questionnaire"
    IDENTIFICATION_KYC = "identification_kyc"
    IDENTIFICATION_KYB = "identification_kyb"
    KYC_DATA_MISSING = "kyc_data_missing"
    KYC_DATA_INVALID = "kyc_data_invalid"
    KYB_DATA_MISSING = "kyb_data_missing"
    KYB_DATA_INVALID = "kyb_data_invalid"


class RequirementCategory(str, Enum):
    KYC = "kyc"
    KYB = "kyb"


# --- customers ---------------------------------------------------------------------------------


class CreateCustomerParams(IronRequest):
    customer_type: CustomerType
    email: str = Field(min_length=1)
    name: str | None = None
    external_id: str | None = None


class UpdateCustomerParams(IronRequest):
    email: str = Field(min_length=1)
    external_id: str | None = None


class Customer(IronResponse):
    id: str
    customer_type: CustomerType
    status: CustomerStatus
    name: str
    email: str
    partner_id: str
    identification_ids: list[str]
    signing_ids: list[str]
    created_at: datetime
    updated_at: datetime
    external_id: str | None = None
    identification_status: IdentificationStatus | None = None
    active_email: str | None = None
    spending_limit_euro: str | None = None


class PagedCustomers(IronResponse):
    items: list[Customer]
    cursor: str | None = None
    prev_cursor: str | None = None


class RejectReason(IronResponse):
    code: str
    description: str


class MissingQuestion(IronResponse):
    id: str
    title: str
    section_id: str | None = None


class RequirementItem(IronResponse):
    code: RequirementCode | str
    reject_labels: list[str]
    reject_reasons: list[RejectReason]
    missing_questions: list[MissingQuestion]
    description: str | None = None
    identification_id: str | None = None
    retryable: bool | None = None


class CustomerRequirements(IronResponse):
    requirements_due: list[RequirementCategory]
    complete: list[RequirementItem]
    pending: list[RequirementItem]
    missing: list[RequirementItem]
    issues: list[RequirementItem]


# --- identifications ---------------------------------------------------------------------------


class VerificationStepDetail(IronResponse):
    result: IdentificationStatus
    retry: bool
    comment: str | None = None


class IdentificationStepStatus(IronResponse):
    """Person steps or business steps: the spec's anyOf of two all-optional objects, so one model
    with every step optional reads either form without guessing."""

    identity: VerificationStepDetail | None = None
    proof_of_residence: VerificationStepDetail | None = None
    questionnaire: VerificationStepDetail | None = None
    selfie: VerificationStepDetail | None = None
    company_beneficiaries: VerificationStepDetail | None = None
    company_data: VerificationStepDetail | None = None
    company_documents: VerificationStepDetail | None = None

    def retryable_steps(self) -> list[str]:
        """Steps the customer can redo through the identification's url."""
        return [
            name
            for name in type(self).model_fields
            if (step := getattr(self, name)) is not None and step.retry
        ]


class Identification(IronResponse):
    id: str
    status: IdentificationStatus
    created_at: datetime
    updated_at: datetime
    customer_id: str | None = None
    partner_id: str | None = None
    url: str | None = None
    step_status: IdentificationStepStatus | None = None
    review_comment: str | None = None
    residence_country: str | None = None
    with_edd: bool | None = None


class PagedIdentifications(IronResponse):
    items: list[Identification]
    cursor: str | None = None
    prev_cursor: str | None = None


class Address(IronRequest):
    street_1: str
    city: str
    zip_code: str
    country: str
    street_2: str | None = None
    state: str | None = None


class PersonIdentity(IronRequest):
    identity_country_code: str
    identity_document_type: IdentityDocumentType
    identity_document_front: str
    selfie: str
    selfie_collected_at: str
    ip_address: str
    nationality: str
    identity_document_back: str | None = None
    identity_number: str | None = None


class IdentityDocument(IronRequest):
    name: str
    file: str
    type: DocumentType


class KycQuestionnaire(IronRequest):
    employment_status: EmploymentStatus
    yearly_gross_income: str
    source_of_wealth: str
    expected_monthly_transaction_count: str
    expected_monthly_transaction_volume: str


class EddQuestionnaire(IronRequest):
    occupation: str
    approximate_net_worth: str
    source_of_funds_proof: str


class LinkIdentificationParams(IronRequest):
    type: Literal["Link"] = "Link"
    with_edd: bool | None = None


class TokenIdentificationParams(IronRequest):
    type: Literal["Token"] = "Token"
    token: str = Field(min_length=1)
    intended_use: IntendedUse
    ip_address: str | None = None
    kyc_questionnaire: KycQuestionnaire | None = None
    edd_questionnaire: EddQuestionnaire | None = None


class PersonIdentificationParams(IronRequest):
    type: Literal["Person"] = "Person"
    sharing_consent: bool
    consent_collected_at: str
    first_name: str
    last_name: str
    full_name: str
    date_of_birth: str
    phone_number: str
    email_address: str
    address: Address
    identity: PersonIdentity
    intended_use: IntendedUse
    kyc_questionnaire: KycQuestionnaire
    documents: list[IdentityDocument] | None = None
    edd_questionnaire: EddQuestionnaire | None = None
    tax_identification_number: str | None = None


class BusinessIdentificationParams(IronRequest):
    """Outsourced KYB. The company data and questionnaire are deep trees (beneficiaries nest
    businesses); they are kept as JSON objects here and validated by Iron, so the client does
    not reject a shape Iron accepts."""

    type: Literal["Business"] = "Business"
    company_data: dict[str, Any]
    phone: str
    ip_address: str
    questionnaire: dict[str, Any]


IdentificationParams = Annotated[
    Union[
        LinkIdentificationParams,
        TokenIdentificationParams,
        PersonIdentificationParams,
        BusinessIdentificationParams,
    ],
    Field(discriminator="type"),
]


class UpdatePendingIdentificationParams(IronRequest):
    approved: bool


# --- signings ----------------------------------------------------------------------------------


class RequiredSigning(IronResponse):
    """`TermsAndConditionsLink` in the spec: one document the customer must accept."""

    id: str
    url: str
    display_name: str


class SigningCreateParams(IronRequest):
    signed: bool
    content_id: str | None = None


class Signing(IronResponse):
    id: str
    customer_id: str
    created_at: datetime
    updated_at: datetime
    content_id: str | None = None
    document_id: str | None = None


class PagedSignings(IronResponse):
    items: list[Signing]
    cursor: str | None = None
    prev_cursor: str | None = None


class ApiError(IronResponse):
    message: str
    trace_id: str

"""Pydantic v2 models for Iron's onboarding API, following `openapi-onboarding.yml`.

Response models accept fields Iron adds later (``extra="allow"``) so a new field never breaks a
running worker; request models forbid unknown fields so a typo fails here, not at Iron.
Enums are ``str`` enums: they compare equal to the wire strings and serialise as them.

Iron adds enum values too (a customer status, an identification status, a step, a requirement
code, a webhook topic). A response field typed ``Tolerant[SomeEnum]`` holds the enum member for a
value the spec lists and the plain string Iron sent for one it does not, so a read never fails on
a value this code does not know yet; ``unknown_values()`` on a response names those values, and
``wire()`` gives the string of either. Deciding what an unknown value means is the caller's job.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field

E = TypeVar("E", bound=Enum)
# The enum member when Iron's value is one the spec lists, else the string as Iron sent it.
# left_to_right: try the enum first; pydantic's default "smart" mode would prefer the exact str.
Tolerant = Annotated[Union[E, str], Field(union_mode="left_to_right")]


def wire(value: Enum | str | None) -> str | None:
    """The string Iron sent, for a known member or an unknown value alike."""
    if value is None:
        return None
    return value.value if isinstance(value, Enum) else str(value)


def is_unknown(value: Enum | str | None) -> bool:
    """True for a value Iron sent that this code's enums do not list."""
    return value is not None and not isinstance(value, Enum)


class IronResponse(BaseModel):
    """Base of everything Iron returns: tolerant of fields added later, and of enum values added
    later in the fields listed in `TOLERANT_FIELDS` (typed `Tolerant[...]`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    TOLERANT_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def unknown_values(self, prefix: str = "") -> list[tuple[str, str]]:
        """(field path, value) for every enum value Iron sent that no enum here lists, in this
        model and the models it holds: `[("status", "Frozen")]`."""
        found: list[tuple[str, str]] = []
        for name in type(self).model_fields:
            path = f"{prefix}{name}"
            value = getattr(self, name)
            if name in self.TOLERANT_FIELDS:
                items = value if isinstance(value, list) else [value]
                found += [(path, item) for item in items if is_unknown(item)]
            elif isinstance(value, IronResponse):
                found += value.unknown_values(f"{path}.")
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, IronResponse):
                        found += item.unknown_values(f"{path}[{index}].")
        return found


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
    TOLERANT_FIELDS = frozenset({"customer_type", "status", "identification_status"})

    id: str
    customer_type: Tolerant[CustomerType]
    status: Tolerant[CustomerStatus]
    name: str
    email: str
    partner_id: str
    identification_ids: list[str]
    signing_ids: list[str]
    created_at: datetime
    updated_at: datetime
    external_id: str | None = None
    identification_status: Tolerant[IdentificationStatus] | None = None
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
    TOLERANT_FIELDS = frozenset({"code"})

    code: Tolerant[RequirementCode]
    reject_labels: list[str]
    reject_reasons: list[RejectReason]
    missing_questions: list[MissingQuestion]
    description: str | None = None
    identification_id: str | None = None
    retryable: bool | None = None


class CustomerRequirements(IronResponse):
    TOLERANT_FIELDS = frozenset({"requirements_due"})

    requirements_due: list[Tolerant[RequirementCategory]]
    complete: list[RequirementItem]
    pending: list[RequirementItem]
    missing: list[RequirementItem]
    issues: list[RequirementItem]


# --- identifications ---------------------------------------------------------------------------


class VerificationStepDetail(IronResponse):
    TOLERANT_FIELDS = frozenset({"result"})

    result: Tolerant[IdentificationStatus]
    retry: bool
    comment: str | None = None


class IdentificationStepStatus(IronResponse):
    """Person steps or business steps: the spec's anyOf of two all-optional objects, so one model
    with every step optional reads either form without guessing. A step the spec does not name
    yet is kept too (`unknown_steps()`), read as a `VerificationStepDetail` when it has that shape."""

    identity: VerificationStepDetail | None = None
    proof_of_residence: VerificationStepDetail | None = None
    questionnaire: VerificationStepDetail | None = None
    selfie: VerificationStepDetail | None = None
    company_beneficiaries: VerificationStepDetail | None = None
    company_data: VerificationStepDetail | None = None
    company_documents: VerificationStepDetail | None = None

    def unknown_steps(self) -> dict[str, "VerificationStepDetail | Any"]:
        """Steps Iron sent that the spec does not name, by name (a detail when it parses as one)."""
        steps: dict[str, Any] = {}
        for name, raw in (self.model_extra or {}).items():
            try:
                steps[name] = VerificationStepDetail.model_validate(raw)
            except ValueError:
                steps[name] = raw
        return steps

    def steps(self) -> dict[str, "VerificationStepDetail | Any"]:
        """Every step Iron sent, known and unknown, by name."""
        known = {name: step for name in type(self).model_fields if (step := getattr(self, name)) is not None}
        return {**known, **self.unknown_steps()}

    def retryable_steps(self) -> list[str]:
        """Steps the customer can redo through the identification's url, unknown ones included."""
        return [
            name for name, step in self.steps().items() if isinstance(step, VerificationStepDetail) and step.retry
        ]

    def unknown_values(self, prefix: str = "") -> list[tuple[str, str]]:
        found = super().unknown_values(prefix)
        for name, step in self.unknown_steps().items():
            found.append((f"{prefix}step", name))
            if isinstance(step, VerificationStepDetail):
                found += step.unknown_values(f"{prefix}{name}.")
        return found


class Identification(IronResponse):
    TOLERANT_FIELDS = frozenset({"status"})

    id: str
    status: Tolerant[IdentificationStatus]
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


# --- webhooks ----------------------------------------------------------------------------------


class WebhookEventType(str, Enum):
    """The topics a webhook subscribes to (`WebhookEventType` in the spec)."""

    TRANSACTION = "Transaction"
    NEW_BANK_ACCOUNT = "NewBankAccount"
    NEW_AUTORAMP = "NewAutoramp"
    DEPOSIT_ADDRESS_CREATED = "DepositAddressCreated"
    REGISTER_FIAT_ADDRESS_STATUS = "RegisterFiatAddressStatus"
    REGISTER_AUTORAMP_STATUS = "RegisterAutorampStatus"
    TRANSACTION_STATUS = "TransactionStatus"
    CUSTOMER_CREATED = "CustomerCreated"
    CUSTOMER_STATUS = "CustomerStatus"
    IDENTIFICATION_STATUS = "IdentificationStatus"
    PING = "Ping"


# What onboarding needs a webhook to carry: status changes drive the workflows, and a customer
# created in Iron's dashboard is adopted from its CustomerCreated event.
ONBOARDING_TOPICS = (
    WebhookEventType.CUSTOMER_STATUS,
    WebhookEventType.IDENTIFICATION_STATUS,
    WebhookEventType.CUSTOMER_CREATED,
)


class Webhook(IronResponse):
    TOLERANT_FIELDS = frozenset({"topics"})

    id: str
    label: str
    url: str
    partner_id: str
    topics: list[Tolerant[WebhookEventType]]
    created_at: datetime
    updated_at: datetime
    enabled: bool
    last_failure: datetime | None = None
    last_failure_reason: str | None = None


class PagedWebhooks(IronResponse):
    items: list[Webhook]
    cursor: str | None = None
    prev_cursor: str | None = None


class UpdateWebhookParams(IronRequest):
    """Every field optional: only those given change."""

    url: str | None = None
    enabled: bool | None = None
    topics: list[WebhookEventType] | None = None
    label: str | None = None


class PingWebhookParams(IronRequest):
    customer_id: str

"""Pydantic v2 models for Iron's onboarding API: the spec's models, read the way this client needs.

The shapes come from `iron_client/generated.py`, generated from `spec/openapi-onboarding.yml` by
`make models`; the classes here add what a client of a live API needs on top, and restate a field
only to change how it is read. Response models accept fields Iron adds later (``extra="allow"``)
so a new field never breaks a running worker; request models forbid unknown fields so a typo
fails here, not at Iron. Enums are the spec's ``str`` enums: they compare equal to the wire
strings and serialise as them.

Iron adds enum values too (a customer status, an identification status, a step, a requirement
code, a webhook topic). A response field typed ``Tolerant[SomeEnum]`` holds the enum member for a
value the spec lists and the plain string Iron sent for one it does not, so a read never fails on
a value this code does not know yet; ``unknown_values()`` on a response names those values, and
``wire()`` gives the string of either. Deciding what an unknown value means is the caller's job.
"""

from __future__ import annotations

import types
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from iron_client import generated as spec
from iron_client.generated import (
    CustomerStatus,
    CustomerType,
    DocumentType,
    EmploymentStatus,
    IdentificationStatus,
    IdentityDocumentType,
    IntendedUse,
    RequirementCategory,
    RequirementCode,
    SortOrder,
    WebhookEventType,
)

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


def holds_tolerant_enum(annotation: Any) -> bool:
    """True for a type that holds `Tolerant[SomeEnum]`: alone, optional or in a list."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and str in args:
        if any(isinstance(arg, type) and issubclass(arg, Enum) for arg in args):
            return True
    return any(holds_tolerant_enum(arg) for arg in args)


class IronResponse(BaseModel):
    """Base of everything Iron returns: tolerant of fields added later, and of enum values added
    later in the fields typed `Tolerant[...]` (named by `TOLERANT_FIELDS`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    TOLERANT_FIELDS: ClassVar[frozenset[str]] = frozenset()
    # Fields in the order this module declares them, then the spec's: `unknown_values()` reports
    # in this order (the spec's own order is alphabetical).
    FIELD_ORDER: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields
        cls.TOLERANT_FIELDS = frozenset(name for name, info in fields.items() if holds_tolerant_enum(info.annotation))
        order: dict[str, None] = {}
        for klass in cls.__mro__:
            order.update((name, None) for name in vars(klass).get("__annotations__", {}) if name in fields)
        cls.FIELD_ORDER = tuple(order)

    def unknown_values(self, prefix: str = "") -> list[tuple[str, str]]:
        """(field path, value) for every enum value Iron sent that no enum here lists, in this
        model and the models it holds: `[("status", "Frozen")]`."""
        found: list[tuple[str, str]] = []
        for name in self.FIELD_ORDER:
            path = f"{prefix}{name}"
            # Read the stored value: attribute access warns for a field the spec deprecates.
            value = self.__dict__.get(name)
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
# The spec's enums (imported above from the generated module); what this client adds to them:


class IdentificationKind(str, Enum):
    """The four kinds of `POST /customers/{id}/identifications/v2` (the `type` discriminator;
    the spec names them only as the discriminator's values, checked against it by a test)."""

    LINK = "Link"
    TOKEN = "Token"
    PERSON = "Person"
    BUSINESS = "Business"


# The statuses after which an identification no longer changes by itself.
TERMINAL_IDENTIFICATION_STATUSES = frozenset(
    {
        IdentificationStatus.APPROVED,
        IdentificationStatus.DECLINED,
        IdentificationStatus.EXPIRED,
        IdentificationStatus.ARCHIVED,
    }
)


# --- customers ---------------------------------------------------------------------------------


class CreateCustomerParams(spec.CreateCustomerParams, IronRequest):
    email: str = Field(min_length=1)


class UpdateCustomerParams(spec.UpdateCustomerParams, IronRequest):
    email: str = Field(min_length=1)


class Customer(spec.Customer, IronResponse):
    customer_type: Tolerant[CustomerType]
    status: Tolerant[CustomerStatus]
    identification_status: Tolerant[IdentificationStatus] | None = None


class PagedCustomers(spec.PagedListCustomer, IronResponse):
    items: list[Customer]


class RejectReason(spec.RejectReason, IronResponse):
    pass


class MissingQuestion(spec.MissingQuestion, IronResponse):
    pass


class RequirementItem(spec.RequirementItem, IronResponse):
    code: Tolerant[RequirementCode]
    reject_reasons: list[RejectReason]
    missing_questions: list[MissingQuestion]


class CustomerRequirements(spec.CustomerRequirements, IronResponse):
    requirements_due: list[Tolerant[RequirementCategory]]
    complete: list[RequirementItem]
    pending: list[RequirementItem]
    missing: list[RequirementItem]
    issues: list[RequirementItem]


# --- identifications ---------------------------------------------------------------------------


class VerificationStepDetail(spec.VerificationStepDetail, IronResponse):
    result: Tolerant[IdentificationStatus]


class IdentificationStepStatus(
    spec.PersonIdentificationStepStatus, spec.BusinessIdentificationStepStatus, IronResponse
):
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
        known = {name: step for name in self.FIELD_ORDER if (step := getattr(self, name)) is not None}
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


class Identification(spec.Identification, IronResponse):
    status: Tolerant[IdentificationStatus]
    step_status: IdentificationStepStatus | None = None


class PagedIdentifications(spec.PagedListIdentification, IronResponse):
    items: list[Identification]


class Address(spec.Address, IronRequest):
    pass


class PersonIdentity(spec.PersonIdentity, IronRequest):
    pass


class IdentityDocument(spec.IdentityDocument, IronRequest):
    pass


class KycQuestionnaire(spec.KycQuestionnaire, IronRequest):
    pass


class EddQuestionnaire(spec.EddQuestionnaire, IronRequest):
    pass


class LinkIdentificationParams(spec.IdentificationCreateParamsV2IdentificationLinkparams, IronRequest):
    pass


class TokenIdentificationParams(spec.IdentificationCreateParamsV2IdentificationTokenParams, IronRequest):
    token: str = Field(min_length=1)
    kyc_questionnaire: KycQuestionnaire | None = None
    edd_questionnaire: EddQuestionnaire | None = None


class PersonIdentificationParams(spec.IdentificationCreateParamsV2IdentificationPersonParams, IronRequest):
    address: Address
    identity: PersonIdentity
    kyc_questionnaire: KycQuestionnaire
    documents: list[IdentityDocument] | None = None
    edd_questionnaire: EddQuestionnaire | None = None


class BusinessIdentificationParams(spec.IdentificationCreateParamsV2IdentificationBusinessParams, IronRequest):
    """Outsourced KYB. The company data and questionnaire are deep trees (beneficiaries nest
    businesses); they are kept as JSON objects here and validated by Iron, so the client does
    not reject a shape Iron accepts."""

    company_data: dict[str, Any]
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


class UpdatePendingIdentificationParams(spec.UpdatePendingIdentificationParams, IronRequest):
    pass


# --- signings ----------------------------------------------------------------------------------


class RequiredSigning(spec.TermsAndConditionsLink, IronResponse):
    """`TermsAndConditionsLink` in the spec: one document the customer must accept."""


class SigningCreateParams(spec.SigningCreateParams, IronRequest):
    pass


class Signing(spec.Signing, IronResponse):
    pass


class PagedSignings(spec.PagedListSigning, IronResponse):
    items: list[Signing]


class ApiError(spec.ApiError, IronResponse):
    pass


# --- webhooks ----------------------------------------------------------------------------------

# What onboarding needs a webhook to carry: status changes drive the workflows, and a customer
# created in Iron's dashboard is adopted from its CustomerCreated event.
ONBOARDING_TOPICS = (
    WebhookEventType.CUSTOMER_STATUS,
    WebhookEventType.IDENTIFICATION_STATUS,
    WebhookEventType.CUSTOMER_CREATED,
)


class Webhook(spec.Webhook, IronResponse):
    topics: list[Tolerant[WebhookEventType]]


class PagedWebhooks(spec.PagedListWebhook, IronResponse):
    items: list[Webhook]


class UpdateWebhookParams(spec.UpdateWebhookRequest, IronRequest):
    """Every field optional: only those given change."""


class PingWebhookParams(spec.PingWebhookParams, IronRequest):
    pass


__all__ = [
    "Address",
    "ApiError",
    "BusinessIdentificationParams",
    "CreateCustomerParams",
    "Customer",
    "CustomerRequirements",
    "CustomerStatus",
    "CustomerType",
    "DocumentType",
    "EddQuestionnaire",
    "EmploymentStatus",
    "holds_tolerant_enum",
    "Identification",
    "IdentificationKind",
    "IdentificationParams",
    "IdentificationStatus",
    "IdentificationStepStatus",
    "IdentityDocument",
    "IdentityDocumentType",
    "IntendedUse",
    "IronRequest",
    "IronResponse",
    "is_unknown",
    "KycQuestionnaire",
    "LinkIdentificationParams",
    "MissingQuestion",
    "ONBOARDING_TOPICS",
    "PagedCustomers",
    "PagedIdentifications",
    "PagedSignings",
    "PagedWebhooks",
    "PersonIdentificationParams",
    "PersonIdentity",
    "PingWebhookParams",
    "RejectReason",
    "RequiredSigning",
    "RequirementCategory",
    "RequirementCode",
    "RequirementItem",
    "Signing",
    "SigningCreateParams",
    "SortOrder",
    "TERMINAL_IDENTIFICATION_STATUSES",
    "TokenIdentificationParams",
    "Tolerant",
    "UpdateCustomerParams",
    "UpdatePendingIdentificationParams",
    "UpdateWebhookParams",
    "VerificationStepDetail",
    "Webhook",
    "WebhookEventType",
    "wire",
]

"""Request bodies the sandbox accepts, written from the spec's component schemas.

Validation is strict the way a typed server is: JSON types must match exactly (`"true"` is not a
boolean), enum values must be one of the listed ones, and required fields must be present.
Unknown properties are ignored, as the spec does not forbid them. A few formats the spec states
in prose are enforced too (dates, E.164 phone numbers, country codes, base64 files of at most
10 MB), so a client that sends what Iron would refuse learns it here, not in production.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_FILE_BYTES = 10 * 1024 * 1024


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


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

# --- enums (spec component names) ---------------------------------------------------------------

CustomerType = Literal["Business", "Person"]
IntendedUse = Literal[
    "Investing", "PaymentToFriendsFamilyorOthers", "PurchaseDigitalAssets", "OnlinePurchasesOfGoodsOrServices", "Trading"
]
EmploymentStatus = Literal["Employed", "SelfEmployed", "Unemployed", "Retired", "Student"]
YearlyGrossIncome = Literal[
    "LessThan20000", "From20001To30000", "From30001To40000", "From40001To50000", "From50001To60000",
    "From60001To70000", "From70001To80000", "From80001To90000", "From90001To100000", "From100001To110000",
    "From110001To120000", "From120001To130000", "From130001To140000", "From140001To150000", "MoreThan150000",
    "From150001To200000", "From200001To500000", "MoreThan500000",
]
SourceOfWealth = Literal["Salary", "Savings", "Investments", "CryptoTrading", "Other"]
MonthlyTransactionCount = Literal["LessThan5", "Between5And10", "MoreThan10"]
MonthlyTransactionVolume = Literal["LessThan500", "MoreThan500LessThan2000", "MoreThan2000"]
Occupation = Literal[
    "Agriculture", "ArtsAndEntertainment", "Construction", "Education", "FinancialServices",
    "InformationAndTechnology", "Retail", "RealEstate", "Other", "BusinessOwner", "Healthcare", "Industrial",
    "LegalServices", "PublicSector", "SeniorManagement",
]
ApproximateNetWorth = Literal[
    "UpTo25000", "Between25001And50000", "Between50001And100000", "Between100001And300000",
    "Between300001And500000", "Between500001And1000000", "Over1000001",
]
IdentityDocumentType = Literal["Passport", "NationalId", "DriverLicense", "ResidencePermit"]
DocumentType = Literal["BusinessRegistrationDocument", "MemorandumOfAssociation", "ShareholdersRegistry", "Other", "ProofOfAddress"]
CompanyDocType = Literal[
    "PowerOfAttorney", "TransparencyRegistryExtract", "DirectorsRegistry", "GoodStandingCert",
    "IncorporationArticles", "IncorporationCert", "IncumbencyCert", "InformationStatement",
    "PartnershipAgreement", "ProofOfAddress", "ProofOfNatureOfBusiness", "RegulatoryLicense",
    "SelfDeclarationForm", "ShareholderRegistry", "StateRegistry", "TradeLicense", "TrustAgreement", "Other",
]
CompanyType = Literal[
    "LimitedLiabilityCompany", "PubliclyListedCompany", "SoleProprietorship", "Partnership", "Corporation",
    "Trust", "PrivateFoundation", "Charity", "NonprofitCorporation", "NonprofitOrganization",
    "PublicAgenciesOrAuthorities", "StockCorporationOutOfStock", "GeneralCorporation",
]
BeneficiaryRole = Literal["UltimateBeneficialOwner", "Representative", "Director", "Shareholder"]
IndustryType = Literal[
    "Agriculture", "Automotive", "BankingAndFinancialServices", "ConstructionAndRealEstate",
    "CryptocurrencyAndBlockchain", "CryptocurrencyMining", "DecentralisedFinance", "NftPlatforms",
    "CryptoPaymentProcessors", "CryptoWalletProviders", "CryptoExchanges", "CryptoCustodyServices",
    "EcommerceAndOnlineMarketplaces", "EducationAndTraining", "EnergyAndUtilities", "EntertainmentAndMedia",
    "GamingAndEsports", "HealthcareAndPharmaceuticals", "HospitalityAndTourism", "InformationTechnologyAndSoftware",
    "Insurance", "LegalAndProfessionalServices", "LogisticsAndTransportation", "ManufacturingAndIndustrial",
    "MetaversePlatforms", "MiningAndNaturalResources", "NonProfitAndCharitable", "RetailAndWholesaleTrade",
    "Telecommunications", "VentureCapitalAndPrivateEquity", "CasinosAndGambling", "MoneyServiceBusinesses",
    "SocialMediaAndNetworking", "CrowdfundingPlatforms", "RegTech", "Other",
]
AnnualRevenue = Literal["Under100K", "From100KTo1M", "From1MTo10M", "From10MTo50M", "From50MTo250M", "Over250M"]
BusinessMonthlyTransactions = Literal["LessThanTen", "TenToTwentyFive", "TwentyFiveToFifty", "FiftyToOneHundred", "MoreThanOneHundred"]
BusinessMonthlyVolume = Literal[
    "TenToTwentyFiveThousand", "TwentyFiveToFiftyThousand", "FiftyToOneHundredThousand",
    "OneHundredToTwoHundredFiftyThousand", "TwoHundredFiftyToFiveHundredThousand", "MoreThanFiveHundredThousand",
]
BusinessPurpose = Literal[
    "ReceivingBusinessIncome", "BusinessPurchasesAndExpenses", "EmployeeAndContractorPayouts", "EcommerceSales",
    "TreasuryManagement", "PaymentIntermediary", "Investments", "TaxPlanning", "AssetProtection", "Other",
]
RevenueSource = Literal[
    "BusinessRevenue", "ShareholderFunds", "VcPrivateEquity", "AssetSale", "IcoProceeds",
    "CryptoActivityProceeds", "LoanProceeds", "Other",
]

# --- customers -----------------------------------------------------------------------------------


class CreateCustomerParams(Body):
    customer_type: CustomerType
    email: Email
    external_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None


class UpdateCustomerParams(Body):
    email: Email
    external_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None


# --- identifications -----------------------------------------------------------------------------


class Address(Body):
    street_1: NonEmpty
    city: NonEmpty
    zip_code: NonEmpty
    country: Country
    street_2: str | None = None
    state: str | None = None


class PersonIdentity(Body):
    identity_country_code: Country
    identity_document_type: IdentityDocumentType
    identity_document_front: File
    selfie: File
    selfie_collected_at: Timestamp
    ip_address: NonEmpty
    nationality: Country
    identity_document_back: File | None = None
    identity_number: str | None = None


class IdentityDocument(Body):
    name: NonEmpty
    file: File
    type: DocumentType


class KycQuestionnaire(Body):
    employment_status: EmploymentStatus
    yearly_gross_income: YearlyGrossIncome
    source_of_wealth: SourceOfWealth
    expected_monthly_transaction_count: MonthlyTransactionCount
    expected_monthly_transaction_volume: MonthlyTransactionVolume


class EddQuestionnaire(Body):
    occupation: Occupation
    approximate_net_worth: ApproximateNetWorth
    source_of_funds_proof: File


class LinkParams(Body):
    type: Literal["Link"]
    with_edd: bool | None = None


class TokenParams(Body):
    type: Literal["Token"]
    token: NonEmpty
    intended_use: IntendedUse
    ip_address: str | None = None
    kyc_questionnaire: KycQuestionnaire | None = None
    edd_questionnaire: EddQuestionnaire | None = None


class PersonParams(Body):
    type: Literal["Person"]
    sharing_consent: bool
    consent_collected_at: Timestamp
    first_name: NonEmpty
    last_name: NonEmpty
    full_name: NonEmpty
    date_of_birth: DateStr
    phone_number: Phone
    email_address: Email
    address: Address
    identity: PersonIdentity
    intended_use: IntendedUse
    kyc_questionnaire: KycQuestionnaire
    documents: list[IdentityDocument] | None = None
    edd_questionnaire: EddQuestionnaire | None = None
    tax_identification_number: str | None = None

    @model_validator(mode="after")
    def _consent(self) -> "PersonParams":
        if not self.sharing_consent:
            raise ValueError("sharing_consent must be true")
        return self


class BirthPlace(Body):
    place: NonEmpty
    state: str
    country: Country


class BeneficiaryIdentity(Body):
    identity_country_code: Country
    identity_document_type: IdentityDocumentType
    identity_document_front: File
    nationality: Country
    identity_document_back: File | None = None
    identity_number: str | None = None
    selfie: File | None = None
    selfie_collected_at: Timestamp | None = None


class PersonBeneficiaryInfo(Body):
    first_name: NonEmpty
    last_name: NonEmpty
    date_of_birth: DateStr
    address: Address
    email_address: Email
    phone_number: Phone
    tax_jurisdiction_country_code: Country
    birth_place: BirthPlace
    identity: BeneficiaryIdentity
    middle_name: str | None = None
    proof_of_address: File | None = None
    tax_identification_number: str | None = None


class CompanyInfo(Body):
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
    company_type: CompanyType
    alternative_names: list[str] | None = None


class CompanyDocParams(Body):
    type: CompanyDocType
    country: Country
    file: File


class BusinessBeneficiaryInfo(Body):
    company_data: "CompanyData"


class CompanyBeneficiary(Body):
    roles: Annotated[list[BeneficiaryRole], Field(min_length=1)]
    beneficiary_info: Union[PersonBeneficiaryInfo, BusinessBeneficiaryInfo]
    share_percentage: str | None = None
    attesting_party: bool | None = None
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


class CompanyData(Body):
    company_info: CompanyInfo
    beneficiaries: Annotated[list[CompanyBeneficiary], Field(min_length=1)]
    documents: Annotated[list[CompanyDocParams], Field(max_length=4)]

    @model_validator(mode="after")
    def _director(self) -> "CompanyData":
        if not any("Director" in b.roles for b in self.beneficiaries):
            raise ValueError("each company needs at least one beneficiary with the Director role")
        return self


BusinessBeneficiaryInfo.model_rebuild()


class GenericBusinessDetails(Body):
    industry_type: IndustryType
    business_model_description: NonEmpty
    main_business_countries: list[Country]
    has_licenses_or_registrations: bool
    requires_aml_program: bool
    estimated_annual_revenue: AnnualRevenue


class GenericPlannedActivities(Body):
    purpose_and_intended_use: BusinessPurpose
    estimated_monthly_volume: BusinessMonthlyVolume
    estimated_monthly_transactions: BusinessMonthlyTransactions
    sends_funds_on_customer_behalf: bool
    sends_funds_on_customer_behalf_description: str | None = None
    flow_of_funds_diagram: File | None = None
    source_of_funds_document: File | None = None


class GenericSourceOfFunds(Body):
    source_of_funds: RevenueSource
    source_of_funds_description: NonEmpty
    customer_funds_handling_details: NonEmpty


class GenericBusinessQuestionnaire(Body):
    type: Literal["Generic"]
    business_details: GenericBusinessDetails
    planned_activities: GenericPlannedActivities
    source_of_funds: GenericSourceOfFunds


class SolePropBusinessDetails(Body):
    industry_type: IndustryType
    business_model_description: NonEmpty
    main_business_countries: list[Country]
    estimated_annual_revenue: AnnualRevenue


class SolePropPlannedActivities(Body):
    purpose_and_intended_use: BusinessPurpose
    estimated_monthly_volume: BusinessMonthlyVolume
    estimated_monthly_transactions: BusinessMonthlyTransactions


class SolePropSourceOfFunds(Body):
    source_of_funds: RevenueSource


class SolePropBusinessQuestionnaire(Body):
    type: Literal["SoleProp"]
    business_details: SolePropBusinessDetails
    planned_activities: SolePropPlannedActivities
    source_of_funds: SolePropSourceOfFunds


class BusinessParams(Body):
    type: Literal["Business"]
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


class SigningCreateParams(Body):
    signed: bool
    content_id: UuidStr | None = None


class UpdatePendingIdentificationParams(Body):
    approved: bool


WebhookEventType = Literal[
    "Transaction", "NewBankAccount", "NewAutoramp", "DepositAddressCreated", "RegisterFiatAddressStatus",
    "RegisterAutorampStatus", "TransactionStatus", "CustomerCreated", "CustomerStatus", "IdentificationStatus", "Ping",
]


def _webhook_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("url must be an http(s) URL")
    return value


class UpdateWebhookRequest(Body):
    url: Annotated[str, AfterValidator(_webhook_url)] | None = None
    enabled: bool | None = None
    topics: list[WebhookEventType] | None = None
    label: str | None = None


class PingWebhookParams(Body):
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
    return model.model_validate(payload, strict=True)

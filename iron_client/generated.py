# Generated from iron_client/spec/openapi-onboarding.yml by `make models`
# (python -m iron_client.spec.generate, datamodel-code-generator). Do not edit: change the spec
# copy and regenerate. iron_client/models.py and iron_sandbox/schemas.py build on these models.

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel


class Address(BaseModel):
    city: Annotated[str, Field(description="city")]
    country: Annotated[str, Field(description="country (2-character ISO 3166)")]
    state: Annotated[str | None, Field(description="state/province/region")] = None
    street_1: Annotated[str, Field(description="street address")]
    street_2: Annotated[
        str | None, Field(description="street address (additional)")
    ] = None
    zip_code: Annotated[str, Field(description="zip code")]


class ApiError(BaseModel):
    message: Annotated[str, Field(description="Human-readable error message")]
    trace_id: Annotated[
        str,
        Field(
            description="Trace ID that can be used to look up request details in logs"
        ),
    ]


class ApproximateNetWorth(str, Enum):
    UP_TO25000 = "UpTo25000"
    BETWEEN25001_AND50000 = "Between25001And50000"
    BETWEEN50001_AND100000 = "Between50001And100000"
    BETWEEN100001_AND300000 = "Between100001And300000"
    BETWEEN300001_AND500000 = "Between300001And500000"
    BETWEEN500001_AND1000000 = "Between500001And1000000"
    OVER1000001 = "Over1000001"


class AutorampStatus(str, Enum):
    CREATED = "Created"
    EDIT_PENDING = "EditPending"
    AUTHORIZED = "Authorized"
    DEPOSIT_ACCOUNT_ADDED = "DepositAccountAdded"
    APPROVED = "Approved"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"


class AutorampTransactionState(str, Enum):
    PENDING = "Pending"
    PAYOUT_PENDING = "PayoutPending"
    PAYOUT = "Payout"
    PAYOUT_COMPLETED = "PayoutCompleted"
    COMPLETED = "Completed"
    FAILED = "Failed"
    IN_AML_REVIEW = "InAmlReview"
    AML_REJECTED = "AmlRejected"
    AMOUNT_REJECTED = "AmountRejected"
    FRAUD_REJECTED = "FraudRejected"


class AutorampTransactionStatus(str, Enum):
    FUNDS_REVIEW_IN_PROGRESS = "FundsReviewInProgress"
    CONVERSION_IN_PROGRESS = "ConversionInProgress"
    PAYOUT_IN_PROGRESS = "PayoutInProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    REJECTED_AML = "RejectedAml"
    REJECTED_FRAUD = "RejectedFraud"
    REJECTED_MIN_AMOUNT = "RejectedMinAmount"


class BirthPlace(BaseModel):
    country: Annotated[
        str,
        Field(
            description="ISO 3166-1 alpha-2 (2 letter) country code of the place of birth"
        ),
    ]
    place: Annotated[str, Field(description="place of birth")]
    state: Annotated[str, Field(description="state of birth")]


class BusinessEstimatedAnnualRevenue(str, Enum):
    UNDER100_K = "Under100K"
    FROM100_K_TO1_M = "From100KTo1M"
    FROM1_M_TO10_M = "From1MTo10M"
    FROM10_M_TO50_M = "From10MTo50M"
    FROM50_M_TO250_M = "From50MTo250M"
    OVER250_M = "Over250M"


class BusinessEstimatedMonthlyTransactions(str, Enum):
    LESS_THAN_TEN = "LessThanTen"
    TEN_TO_TWENTY_FIVE = "TenToTwentyFive"
    TWENTY_FIVE_TO_FIFTY = "TwentyFiveToFifty"
    FIFTY_TO_ONE_HUNDRED = "FiftyToOneHundred"
    MORE_THAN_ONE_HUNDRED = "MoreThanOneHundred"


class BusinessEstimatedMonthlyVolume(str, Enum):
    TEN_TO_TWENTY_FIVE_THOUSAND = "TenToTwentyFiveThousand"
    TWENTY_FIVE_TO_FIFTY_THOUSAND = "TwentyFiveToFiftyThousand"
    FIFTY_TO_ONE_HUNDRED_THOUSAND = "FiftyToOneHundredThousand"
    ONE_HUNDRED_TO_TWO_HUNDRED_FIFTY_THOUSAND = "OneHundredToTwoHundredFiftyThousand"
    TWO_HUNDRED_FIFTY_TO_FIVE_HUNDRED_THOUSAND = "TwoHundredFiftyToFiveHundredThousand"
    MORE_THAN_FIVE_HUNDRED_THOUSAND = "MoreThanFiveHundredThousand"


class BusinessIndustryType(str, Enum):
    AGRICULTURE = "Agriculture"
    AUTOMOTIVE = "Automotive"
    BANKING_AND_FINANCIAL_SERVICES = "BankingAndFinancialServices"
    CONSTRUCTION_AND_REAL_ESTATE = "ConstructionAndRealEstate"
    CRYPTOCURRENCY_AND_BLOCKCHAIN = "CryptocurrencyAndBlockchain"
    CRYPTOCURRENCY_MINING = "CryptocurrencyMining"
    DECENTRALISED_FINANCE = "DecentralisedFinance"
    NFT_PLATFORMS = "NftPlatforms"
    CRYPTO_PAYMENT_PROCESSORS = "CryptoPaymentProcessors"
    CRYPTO_WALLET_PROVIDERS = "CryptoWalletProviders"
    CRYPTO_EXCHANGES = "CryptoExchanges"
    CRYPTO_CUSTODY_SERVICES = "CryptoCustodyServices"
    ECOMMERCE_AND_ONLINE_MARKETPLACES = "EcommerceAndOnlineMarketplaces"
    EDUCATION_AND_TRAINING = "EducationAndTraining"
    ENERGY_AND_UTILITIES = "EnergyAndUtilities"
    ENTERTAINMENT_AND_MEDIA = "EntertainmentAndMedia"
    GAMING_AND_ESPORTS = "GamingAndEsports"
    HEALTHCARE_AND_PHARMACEUTICALS = "HealthcareAndPharmaceuticals"
    HOSPITALITY_AND_TOURISM = "HospitalityAndTourism"
    INFORMATION_TECHNOLOGY_AND_SOFTWARE = "InformationTechnologyAndSoftware"
    INSURANCE = "Insurance"
    LEGAL_AND_PROFESSIONAL_SERVICES = "LegalAndProfessionalServices"
    LOGISTICS_AND_TRANSPORTATION = "LogisticsAndTransportation"
    MANUFACTURING_AND_INDUSTRIAL = "ManufacturingAndIndustrial"
    METAVERSE_PLATFORMS = "MetaversePlatforms"
    MINING_AND_NATURAL_RESOURCES = "MiningAndNaturalResources"
    NON_PROFIT_AND_CHARITABLE = "NonProfitAndCharitable"
    RETAIL_AND_WHOLESALE_TRADE = "RetailAndWholesaleTrade"
    TELECOMMUNICATIONS = "Telecommunications"
    VENTURE_CAPITAL_AND_PRIVATE_EQUITY = "VentureCapitalAndPrivateEquity"
    CASINOS_AND_GAMBLING = "CasinosAndGambling"
    MONEY_SERVICE_BUSINESSES = "MoneyServiceBusinesses"
    SOCIAL_MEDIA_AND_NETWORKING = "SocialMediaAndNetworking"
    CROWDFUNDING_PLATFORMS = "CrowdfundingPlatforms"
    REG_TECH = "RegTech"
    OTHER = "Other"


class BusinessPurposeAndIntendedUse(str, Enum):
    RECEIVING_BUSINESS_INCOME = "ReceivingBusinessIncome"
    BUSINESS_PURCHASES_AND_EXPENSES = "BusinessPurchasesAndExpenses"
    EMPLOYEE_AND_CONTRACTOR_PAYOUTS = "EmployeeAndContractorPayouts"
    ECOMMERCE_SALES = "EcommerceSales"
    TREASURY_MANAGEMENT = "TreasuryManagement"
    PAYMENT_INTERMEDIARY = "PaymentIntermediary"
    INVESTMENTS = "Investments"
    TAX_PLANNING = "TaxPlanning"
    ASSET_PROTECTION = "AssetProtection"
    OTHER = "Other"


class BusinessQuestionnaireBusinessDetails(BaseModel):
    business_model_description: Annotated[
        str, Field(description="Description of business model and target clients")
    ]
    estimated_annual_revenue: BusinessEstimatedAnnualRevenue
    has_licenses_or_registrations: Annotated[
        bool,
        Field(description="Does the company maintain any licenses or registrations"),
    ]
    industry_type: BusinessIndustryType
    main_business_countries: Annotated[
        list[str],
        Field(
            description="Main countries of business operation (ISO 3166-1 alpha-2 codes)"
        ),
    ]
    requires_aml_program: Annotated[
        bool,
        Field(
            description="Is the company required to have an AML/CFT compliance program"
        ),
    ]


class BusinessQuestionnairePlannedActivities(BaseModel):
    estimated_monthly_transactions: BusinessEstimatedMonthlyTransactions
    estimated_monthly_volume: BusinessEstimatedMonthlyVolume
    flow_of_funds_diagram: Annotated[
        str | None,
        Field(
            description="Base64 encoded flow of funds diagram (required when sends_funds_on_customer_behalf is true)"
        ),
    ] = None
    purpose_and_intended_use: BusinessPurposeAndIntendedUse
    sends_funds_on_customer_behalf: Annotated[
        bool,
        Field(
            description="Does the company send funds on behalf of customers/third parties"
        ),
    ]
    sends_funds_on_customer_behalf_description: Annotated[
        str | None,
        Field(
            description="Description of how funds are sent on customer behalf (required if sends_funds_on_customer_behalf is true)"
        ),
    ] = None
    source_of_funds_document: Annotated[
        str | None,
        Field(
            description="Base64 encoded source of funds supporting document (required when sends_funds_on_customer_behalf is true)"
        ),
    ] = None


class CompanyDocType(str, Enum):
    POWER_OF_ATTORNEY = "PowerOfAttorney"
    TRANSPARENCY_REGISTRY_EXTRACT = "TransparencyRegistryExtract"
    DIRECTORS_REGISTRY = "DirectorsRegistry"
    GOOD_STANDING_CERT = "GoodStandingCert"
    INCORPORATION_ARTICLES = "IncorporationArticles"
    INCORPORATION_CERT = "IncorporationCert"
    INCUMBENCY_CERT = "IncumbencyCert"
    INFORMATION_STATEMENT = "InformationStatement"
    PARTNERSHIP_AGREEMENT = "PartnershipAgreement"
    PROOF_OF_ADDRESS = "ProofOfAddress"
    PROOF_OF_NATURE_OF_BUSINESS = "ProofOfNatureOfBusiness"
    REGULATORY_LICENSE = "RegulatoryLicense"
    SELF_DECLARATION_FORM = "SelfDeclarationForm"
    SHAREHOLDER_REGISTRY = "ShareholderRegistry"
    STATE_REGISTRY = "StateRegistry"
    TRADE_LICENSE = "TradeLicense"
    TRUST_AGREEMENT = "TrustAgreement"
    OTHER = "Other"


class CompanyPrimaryBeneficiaryRole(str, Enum):
    ULTIMATE_BENEFICIAL_OWNER = "UltimateBeneficialOwner"
    REPRESENTATIVE = "Representative"
    DIRECTOR = "Director"
    SHAREHOLDER = "Shareholder"


class CompanyType(str, Enum):
    LIMITED_LIABILITY_COMPANY = "LimitedLiabilityCompany"
    PUBLICLY_LISTED_COMPANY = "PubliclyListedCompany"
    SOLE_PROPRIETORSHIP = "SoleProprietorship"
    PARTNERSHIP = "Partnership"
    CORPORATION = "Corporation"
    TRUST = "Trust"
    PRIVATE_FOUNDATION = "PrivateFoundation"
    CHARITY = "Charity"
    NONPROFIT_CORPORATION = "NonprofitCorporation"
    NONPROFIT_ORGANIZATION = "NonprofitOrganization"
    PUBLIC_AGENCIES_OR_AUTHORITIES = "PublicAgenciesOrAuthorities"
    STOCK_CORPORATION_OUT_OF_STOCK = "StockCorporationOutOfStock"
    GENERAL_CORPORATION = "GeneralCorporation"


class CustomerStatus(str, Enum):
    USER_REQUIRED = "UserRequired"
    SIGNINGS_REQUIRED = "SigningsRequired"
    IDENTIFICATION_REQUIRED = "IdentificationRequired"
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    ARCHIVED = "Archived"


class CustomerType(str, Enum):
    BUSINESS = "Business"
    PERSON = "Person"


class DocumentType(str, Enum):
    BUSINESS_REGISTRATION_DOCUMENT = "BusinessRegistrationDocument"
    MEMORANDUM_OF_ASSOCIATION = "MemorandumOfAssociation"
    SHAREHOLDERS_REGISTRY = "ShareholdersRegistry"
    OTHER = "Other"
    PROOF_OF_ADDRESS = "ProofOfAddress"


class EmploymentStatus(str, Enum):
    EMPLOYED = "Employed"
    SELF_EMPLOYED = "SelfEmployed"
    UNEMPLOYED = "Unemployed"
    RETIRED = "Retired"
    STUDENT = "Student"


class FiatAddressStatus(str, Enum):
    AUTHORIZATION_REQUIRED = "AuthorizationRequired"
    AUTHORIZATION_FAILED = "AuthorizationFailed"
    REGISTRATION_PENDING = "RegistrationPending"
    REGISTRATION_FAILED = "RegistrationFailed"
    REGISTERED = "Registered"


class IdentificationLinkparams(BaseModel):
    with_edd: Annotated[
        bool | None,
        Field(
            description="whether to initialize the identification with the full EDD process"
        ),
    ] = None


class IdentificationStatus(str, Enum):
    PENDING = "Pending"
    PROCESSED = "Processed"
    PENDING_REVIEW = "PendingReview"
    APPROVED = "Approved"
    DECLINED = "Declined"
    EXPIRED = "Expired"
    ARCHIVED = "Archived"


class IdentityDocument(BaseModel):
    file: Annotated[
        str, Field(description="Base64 encoded document without prefix (10MB max)")
    ]
    name: Annotated[
        str, Field(description="The name of the document with the file extension")
    ]
    type: DocumentType


class IdentityDocumentType(str, Enum):
    PASSPORT = "Passport"
    NATIONAL_ID = "NationalId"
    DRIVER_LICENSE = "DriverLicense"
    RESIDENCE_PERMIT = "ResidencePermit"


class IntendedUse(str, Enum):
    INVESTING = "Investing"
    PAYMENT_TO_FRIENDS_FAMILYOR_OTHERS = "PaymentToFriendsFamilyorOthers"
    PURCHASE_DIGITAL_ASSETS = "PurchaseDigitalAssets"
    ONLINE_PURCHASES_OF_GOODS_OR_SERVICES = "OnlinePurchasesOfGoodsOrServices"
    TRADING = "Trading"


class MissingQuestion(BaseModel):
    id: Annotated[
        str, Field(description="Sumsub questionnaire item id, e.g. `sourceOfFunds`.")
    ]
    section_id: Annotated[
        str | None,
        Field(
            description="The questionnaire section the question belongs to, when known."
        ),
    ] = None
    title: Annotated[
        str, Field(description="Human-readable question text the applicant saw.")
    ]


class Occupation(str, Enum):
    AGRICULTURE = "Agriculture"
    ARTS_AND_ENTERTAINMENT = "ArtsAndEntertainment"
    CONSTRUCTION = "Construction"
    EDUCATION = "Education"
    FINANCIAL_SERVICES = "FinancialServices"
    INFORMATION_AND_TECHNOLOGY = "InformationAndTechnology"
    RETAIL = "Retail"
    REAL_ESTATE = "RealEstate"
    OTHER = "Other"
    BUSINESS_OWNER = "BusinessOwner"
    HEALTHCARE = "Healthcare"
    INDUSTRIAL = "Industrial"
    LEGAL_SERVICES = "LegalServices"
    PUBLIC_SECTOR = "PublicSector"
    SENIOR_MANAGEMENT = "SeniorManagement"


class PersonIdentity(BaseModel):
    identity_country_code: Annotated[
        str, Field(description="country (2-character ISO 3166)")
    ]
    identity_document_back: Annotated[
        str | None,
        Field(
            description="Base64 encoded image of ident document back without prefix (10MB max)"
        ),
    ] = None
    identity_document_front: Annotated[
        str,
        Field(
            description="Base64 encoded image of ident document front without prefix (10MB max)"
        ),
    ]
    identity_document_type: IdentityDocumentType
    identity_number: Annotated[
        str | None,
        Field(description="The identity number or identity document being submitted."),
    ] = None
    ip_address: Annotated[
        str, Field(description="ip address of device used to collect selfie")
    ]
    nationality: Annotated[
        str, Field(description="nationality (2-character ISO 3166 country code)")
    ]
    selfie: Annotated[
        str,
        Field(description="Base64 encoded image of selfie without prefix (10MB max)"),
    ]
    selfie_collected_at: Annotated[
        str, Field(description="timestamp in ISO 8601 format")
    ]


class PersonProfileExpectedMonthlyTransactionCount(str, Enum):
    LESS_THAN5 = "LessThan5"
    BETWEEN5_AND10 = "Between5And10"
    MORE_THAN10 = "MoreThan10"


class PersonProfileExpectedMonthlyTransactionVolumeV2(str, Enum):
    LESS_THAN500 = "LessThan500"
    MORE_THAN500_LESS_THAN2000 = "MoreThan500LessThan2000"
    MORE_THAN2000 = "MoreThan2000"


class PersonProfileSourceOfWealth(str, Enum):
    SALARY = "Salary"
    SAVINGS = "Savings"
    INVESTMENTS = "Investments"
    CRYPTO_TRADING = "CryptoTrading"
    OTHER = "Other"


class PersonProfileYearlyGrossIncome(str, Enum):
    LESS_THAN20000 = "LessThan20000"
    FROM20001_TO30000 = "From20001To30000"
    FROM30001_TO40000 = "From30001To40000"
    FROM40001_TO50000 = "From40001To50000"
    FROM50001_TO60000 = "From50001To60000"
    FROM60001_TO70000 = "From60001To70000"
    FROM70001_TO80000 = "From70001To80000"
    FROM80001_TO90000 = "From80001To90000"
    FROM90001_TO100000 = "From90001To100000"
    FROM100001_TO110000 = "From100001To110000"
    FROM110001_TO120000 = "From110001To120000"
    FROM120001_TO130000 = "From120001To130000"
    FROM130001_TO140000 = "From130001To140000"
    FROM140001_TO150000 = "From140001To150000"
    MORE_THAN150000 = "MoreThan150000"
    FROM150001_TO200000 = "From150001To200000"
    FROM200001_TO500000 = "From200001To500000"
    MORE_THAN500000 = "MoreThan500000"


class PingWebhookParams(BaseModel):
    customer_id: Annotated[
        str, Field(description="Customer ID to use for the webhook ping")
    ]


class RejectReason(BaseModel):
    code: Annotated[
        str,
        Field(
            description="Stable Sumsub reject-label code, e.g. `UNSATISFACTORY_PHOTOS`."
        ),
    ]
    description: Annotated[
        str, Field(description="Human-readable description of the code.")
    ]


class RequirementCategory(str, Enum):
    KYC = "kyc"
    KYB = "kyb"


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


class RequirementItem(BaseModel):
    code: RequirementCode
    description: Annotated[
        str | None,
        Field(
            description="Human-readable reason from Sumsub — the moderation comment and the\napplicant-facing client comment combined (moderator note first,\ndeduped), a list of the specific unanswered questionnaire questions, or\na synthesized note for the identification-level codes. May be `null`.\n*IMPORTANT*: This field is subject to change without notice — switch\non `code` (and `reject_labels`), not on this string."
        ),
    ] = None
    identification_id: Annotated[
        str | None,
        Field(
            description="The identification that produced this item, when applicable."
        ),
    ] = None
    missing_questions: Annotated[
        list[MissingQuestion],
        Field(
            description="Required questionnaire questions the customer left unanswered, resolved\nagainst the Sumsub questionnaire definition (so `title` is the question\ntext the applicant saw). Only populated for the questionnaire codes\n(`kyc_questionnaire` / `kyb_questionnaire`); empty otherwise."
        ),
    ]
    reject_labels: Annotated[
        list[str],
        Field(
            description="Coded Sumsub rejection reasons for this step (e.g. `SCREENSHOTS`,\n`UNSATISFACTORY_PHOTOS`) — the pills shown in the Sumsub dashboard.\nEmpty when the step carries no labels."
        ),
    ]
    reject_reasons: Annotated[
        list[RejectReason],
        Field(
            description="Same reasons as `reject_labels`, each paired with a human-readable\ndescription. Prefer this for display; `reject_labels` stays the stable\nset of codes to switch on. Empty when the step carries no labels."
        ),
    ]
    retryable: Annotated[
        bool | None,
        Field(
            description="`true` if the customer can resubmit to clear this item\n(Sumsub `reject_type == Retry`). `false` for terminal/Final\nrejections. `null` for `complete`/`pending` items, where retry\nsemantics don't apply."
        ),
    ] = None


class RevenueSource(str, Enum):
    BUSINESS_REVENUE = "BusinessRevenue"
    SHAREHOLDER_FUNDS = "ShareholderFunds"
    VC_PRIVATE_EQUITY = "VcPrivateEquity"
    ASSET_SALE = "AssetSale"
    ICO_PROCEEDS = "IcoProceeds"
    CRYPTO_ACTIVITY_PROCEEDS = "CryptoActivityProceeds"
    LOAN_PROCEEDS = "LoanProceeds"
    OTHER = "Other"


class Signing(BaseModel):
    content_id: Annotated[
        str | None, Field(description="unique UUID of the content signed by Customer")
    ] = None
    created_at: Annotated[
        datetime, Field(description="created_at timestamp of Signing")
    ]
    customer_id: Annotated[
        str, Field(description="unique UUID of the Customer who signed")
    ]
    document_id: Annotated[
        str | None,
        Field(
            description="unique UUID of the Document signed by Customer (Soon to be deprecated, use content_id & content_type instead)"
        ),
    ] = None
    id: Annotated[str, Field(description="unique UUID of Signing")]
    updated_at: Annotated[
        datetime, Field(description="updated_at timestamp of Signing")
    ]


class SigningCreateParams(BaseModel):
    content_id: Annotated[
        str | None, Field(description="unique UUID of the content signed by Customer")
    ] = None
    signed: Annotated[bool, Field(description="Explicit signing consent")]


class SolePropBusinessDetails(BaseModel):
    business_model_description: Annotated[
        str, Field(description="Description of business model and target clients")
    ]
    estimated_annual_revenue: BusinessEstimatedAnnualRevenue
    industry_type: BusinessIndustryType
    main_business_countries: Annotated[
        list[str],
        Field(
            description="Main countries of business operation (ISO 3166-1 alpha-2 codes)"
        ),
    ]


class SolePropPlannedActivities(BaseModel):
    estimated_monthly_transactions: BusinessEstimatedMonthlyTransactions
    estimated_monthly_volume: BusinessEstimatedMonthlyVolume
    purpose_and_intended_use: BusinessPurposeAndIntendedUse


class SolePropSourceOfFunds(BaseModel):
    source_of_funds: RevenueSource


class SortOrder(str, Enum):
    ASC = "asc"
    DESC = "desc"


class TermsAndConditionsLink(BaseModel):
    display_name: Annotated[
        str, Field(description="the display name of the terms and conditions")
    ]
    id: Annotated[
        str, Field(description="The unique identifier for the terms and conditions url")
    ]
    url: Annotated[str, Field(description="The URL of the terms and conditions")]


class UpdateCustomerParams(BaseModel):
    email: Annotated[str, Field(description="The email address of the customer")]
    external_id: Annotated[
        str | None,
        Field(
            description="Optional external ID for the customer. Provide to update; omit to leave unchanged."
        ),
    ] = None


class UpdatePendingIdentificationParams(BaseModel):
    approved: Annotated[
        bool,
        Field(description="Whether the identification should be approved or rejected"),
    ]


class VerificationStepDetail(BaseModel):
    comment: str | None = None
    result: IdentificationStatus
    retry: bool


class WebhookAutorampStatusMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the autoramp")]
    status: AutorampStatus


class WebhookCustomerStatusMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the customer")]
    status: CustomerStatus


class WebhookEventKind(str, Enum):
    TRANSACTION = "Transaction"
    NEW_BANK_ACCOUNT = "NewBankAccount"
    NEW_AUTORAMP = "NewAutoramp"
    DEPOSIT_ADDRESS_CREATED = "DepositAddressCreated"
    CUSTOMER_CREATED = "CustomerCreated"


class WebhookEventMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the event")]
    kind: WebhookEventKind


class WebhookEventType(str, Enum):
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


class WebhookFiatAddressStatusMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the fiat address")]
    status: FiatAddressStatus


class WebhookIdentificationStatusMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the identification")]
    status: IdentificationStatus


class WebhookPingMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the ping message")]


class WebhookTransactionStatusMessage(BaseModel):
    id: Annotated[str, Field(description="Unique identifier for the transaction")]
    status: Annotated[
        AutorampTransactionState,
        Field(
            deprecated=True,
            description="Current status of the transaction. DEPRECATED: use 'transaction_status'",
        ),
    ]
    transaction_hash: Annotated[
        str | None,
        Field(
            description="The blockchain transaction hash for crypto payouts (when available)"
        ),
    ] = None
    transaction_status: AutorampTransactionStatus


class BeneficiaryIdentity(BaseModel):
    identity_country_code: Annotated[
        str,
        Field(
            description="ISO 3166-1 alpha-2 country code of the person's identity document"
        ),
    ]
    identity_document_back: Annotated[
        str | None,
        Field(description="Base64 encoded image of identity document back (10MB max)"),
    ] = None
    identity_document_front: Annotated[
        str,
        Field(description="Base64 encoded image of identity document front (10MB max)"),
    ]
    identity_document_type: IdentityDocumentType
    identity_number: Annotated[
        str | None,
        Field(description="The identity number of the document being submitted"),
    ] = None
    nationality: Annotated[
        str, Field(description="ISO 3166-1 alpha-2 nationality country code")
    ]
    selfie: Annotated[
        str | None,
        Field(
            description="Base64 encoded selfie image (10MB max).\nRequired for beneficiaries with Director or Representative roles; omit for UBO-only."
        ),
    ] = None
    selfie_collected_at: Annotated[
        str | None,
        Field(
            description="timestamp in ISO 8601 format when the selfie was captured.\nRequired when selfie is provided."
        ),
    ] = None


class BusinessIdentificationStepStatus(BaseModel):
    company_beneficiaries: VerificationStepDetail | None = None
    company_data: VerificationStepDetail | None = None
    company_documents: VerificationStepDetail | None = None
    questionnaire: VerificationStepDetail | None = None


class BusinessQuestionnaireSourceOfFunds(BaseModel):
    customer_funds_handling_details: Annotated[
        str,
        Field(
            description="Details on how customer funds are handled, including business model and transaction flow (required)"
        ),
    ]
    source_of_funds: RevenueSource
    source_of_funds_description: Annotated[
        str, Field(description="Detailed description of source of funds (required)")
    ]


class CompanyDocParams(BaseModel):
    country: Annotated[
        str,
        Field(
            description="ISO 3166-1 alpha-2 (2 letter) country code of the country that issued the document"
        ),
    ]
    file: Annotated[
        str, Field(description="Base64 encoded document without prefix (10MB max)")
    ]
    type: CompanyDocType


class CompanyInfo(BaseModel):
    address: Address
    alternative_names: Annotated[
        list[str] | None,
        Field(description="The list of alternative names for the company"),
    ] = None
    company_name: Annotated[str, Field(description="The legal name of the company")]
    company_type: CompanyType
    country: Annotated[
        str,
        Field(
            description="The ISO 3166-1 alpha-2 (2 letter) country code where the company is legally registered"
        ),
    ]
    email: Annotated[str, Field(description="The email address of the company")]
    incorporation_date: Annotated[
        str, Field(description="The date of legal incorporation in YYYY-MM-DD format")
    ]
    legal_address: Annotated[
        str, Field(description="The address used during legal registration")
    ]
    postal_address: Annotated[
        str, Field(description="The postal address of the company")
    ]
    registration_number: Annotated[
        str,
        Field(
            description="The unique number assigned to the company when legally registered"
        ),
    ]
    tax_identification_number: Annotated[
        str, Field(description="The tax identification number of the company")
    ]
    website: Annotated[str, Field(description="The website of the company")]


class CreateCustomerParams(BaseModel):
    customer_type: CustomerType
    email: Annotated[
        str,
        Field(
            description="The primary point of contact email address for the customer\nNote that this email address will be used for all API authorization (e.g. 2FA)"
        ),
    ]
    external_id: Annotated[
        str | None,
        Field(description="External ID for the customer, provided by the partner"),
    ] = None
    name: Annotated[str | None, Field(description="The name of the customer")] = None


class Customer(BaseModel):
    active_email: Annotated[
        str | None,
        Field(
            description="Active email for receiving transaction emails (if different from primary email)"
        ),
    ] = None
    created_at: Annotated[
        datetime, Field(description="Created at timestamp of Customer")
    ]
    customer_type: CustomerType
    email: Annotated[
        str,
        Field(description="Email of Customer, collected during identification process"),
    ]
    external_id: Annotated[
        str | None,
        Field(description="External ID for the customer, provided by the partner"),
    ] = None
    id: Annotated[str, Field(description="Unique ID of Customer")]
    identification_ids: Annotated[
        list[str], Field(description="Identifications associated with Customer")
    ]
    identification_status: IdentificationStatus | None = None
    name: Annotated[str, Field(description="Name of Customer")]
    partner_id: Annotated[str, Field(description="Partner ID of the customer")]
    signing_ids: Annotated[
        list[str], Field(description="Signings associated with Customer")
    ]
    spending_limit_euro: Annotated[
        str | None,
        Field(
            deprecated=True,
            description="Deprecated — always null. Spending limits are dynamic per customer and per\ndirection; use `GET /customers/{id}/spending-limit` (`threshold_eur`) instead.",
        ),
    ] = None
    status: CustomerStatus
    updated_at: Annotated[
        datetime, Field(description="Updated at timestamp of Customer")
    ]


class CustomerRequirements(BaseModel):
    complete: Annotated[
        list[RequirementItem],
        Field(description="Requirements the customer has satisfied."),
    ]
    issues: Annotated[
        list[RequirementItem],
        Field(description="Terminal blockers the customer cannot self-remediate."),
    ]
    missing: Annotated[
        list[RequirementItem],
        Field(
            description="Requirements the customer can still satisfy (resubmittable)."
        ),
    ]
    pending: Annotated[
        list[RequirementItem],
        Field(description="Requirements the customer has submitted, awaiting review."),
    ]
    requirements_due: Annotated[
        list[RequirementCategory],
        Field(
            description="Sorted, deduplicated set of categories that have at least one\nnon-complete item. Empty for fully-onboarded customers."
        ),
    ]


class EddQuestionnaire(BaseModel):
    approximate_net_worth: ApproximateNetWorth
    occupation: Occupation
    source_of_funds_proof: Annotated[
        str,
        Field(
            description="Source of funds proof document, provided as a base64-encoded string.\nSupported formats: jpg, png, pdf, doc, docx, xls, xlsx, odt, ods, txt.\nMaximum size: 10MB"
        ),
    ]


class GenericBusinessQuestionnaire(BaseModel):
    business_details: BusinessQuestionnaireBusinessDetails
    planned_activities: BusinessQuestionnairePlannedActivities
    source_of_funds: BusinessQuestionnaireSourceOfFunds


class IdentificationCreateParamsV2IdentificationLinkparams(IdentificationLinkparams):
    type: Annotated[Literal["Link"], Field(examples=["Link"])] = "Link"


class KycQuestionnaire(BaseModel):
    employment_status: EmploymentStatus
    expected_monthly_transaction_count: PersonProfileExpectedMonthlyTransactionCount
    expected_monthly_transaction_volume: PersonProfileExpectedMonthlyTransactionVolumeV2
    source_of_wealth: PersonProfileSourceOfWealth
    yearly_gross_income: PersonProfileYearlyGrossIncome


class PagedListCustomer(BaseModel):
    cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the next page")
    ] = None
    items: Annotated[list[Customer], Field(description="The list of items")]
    prev_cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the previous page")
    ] = None


class PagedListSigning(BaseModel):
    cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the next page")
    ] = None
    items: Annotated[list[Signing], Field(description="The list of items")]
    prev_cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the previous page")
    ] = None


class PersonBeneficiaryInfo(BaseModel):
    address: Address
    birth_place: BirthPlace
    date_of_birth: Annotated[
        str, Field(description="date of birth in YYYY-MM-DD format")
    ]
    email_address: Annotated[str, Field(description="email address of the person")]
    first_name: Annotated[str, Field(description="first name")]
    identity: BeneficiaryIdentity
    last_name: Annotated[str, Field(description="last name")]
    middle_name: Annotated[str | None, Field(description="middle name")] = None
    phone_number: Annotated[
        str,
        Field(
            description="phone number of the person (international format with leading +)"
        ),
    ]
    proof_of_address: Annotated[
        str | None,
        Field(
            description="Base64 encoded proof of address document (10MB max).\nOptional at submission: where policy requires one, a missing POA returns the\nidentification as Pending with a resume URL to collect it via resubmission."
        ),
    ] = None
    tax_identification_number: Annotated[
        str | None,
        Field(
            description="tax identification number (SSN for US residents, national TIN otherwise).\nRequired for the UltimateBeneficialOwner of a sole proprietorship regardless of country."
        ),
    ] = None
    tax_jurisdiction_country_code: Annotated[
        str,
        Field(
            description="ISO 3166-1 alpha-2 country code of the person's tax jurisdiction"
        ),
    ]


class PersonIdentificationStepStatus(BaseModel):
    identity: VerificationStepDetail | None = None
    proof_of_residence: VerificationStepDetail | None = None
    questionnaire: VerificationStepDetail | None = None
    selfie: VerificationStepDetail | None = None


class SolePropBusinessQuestionnaire(BaseModel):
    business_details: SolePropBusinessDetails
    planned_activities: SolePropPlannedActivities
    source_of_funds: SolePropSourceOfFunds


class UpdateWebhookRequest(BaseModel):
    enabled: Annotated[bool | None, Field(description="Optional enabled status")] = None
    label: Annotated[
        str | None, Field(description="Optional new label for the webhook")
    ] = None
    topics: Annotated[
        list[WebhookEventType] | None,
        Field(description="Optional new topics for the webhook"),
    ] = None
    url: Annotated[
        str | None, Field(description="Optional new URL for the webhook")
    ] = None


class Webhook(BaseModel):
    created_at: Annotated[datetime, Field(description="When the webhook was created")]
    enabled: Annotated[bool, Field(description="Whether the webhook is enabled")]
    id: Annotated[str, Field(description="The ID of the webhook")]
    label: Annotated[str, Field(description="A descriptive label for the webhook")]
    last_failure: Annotated[
        datetime | None,
        Field(description="The last time the webhook was executed with an error"),
    ] = None
    last_failure_reason: Annotated[
        str | None, Field(description="The reason for the last failure")
    ] = None
    partner_id: Annotated[
        str, Field(description="The partner ID that owns this webhook")
    ]
    topics: Annotated[
        list[WebhookEventType],
        Field(description="The topics this webhook subscribes to"),
    ]
    updated_at: Annotated[
        datetime, Field(description="When the webhook was last updated")
    ]
    url: Annotated[str, Field(description="The URL to send webhook events to")]


class WebhookMessage(
    RootModel[
        WebhookEventMessage
        | WebhookFiatAddressStatusMessage
        | WebhookAutorampStatusMessage
        | WebhookTransactionStatusMessage
        | WebhookCustomerStatusMessage
        | WebhookIdentificationStatusMessage
        | WebhookPingMessage
    ]
):
    root: Annotated[
        WebhookEventMessage
        | WebhookFiatAddressStatusMessage
        | WebhookAutorampStatusMessage
        | WebhookTransactionStatusMessage
        | WebhookCustomerStatusMessage
        | WebhookIdentificationStatusMessage
        | WebhookPingMessage,
        Field(
            description="Webhook Message\n\nUnion type representing different kinds of webhook messages\n"
        ),
    ]


class WebhookNotification(BaseModel):
    customer_id: Annotated[
        str,
        Field(description="The ID of the customer associated with this notification"),
    ]
    message: WebhookMessage


class BusinessQuestionnaireGenericBusinessQuestionnaire(GenericBusinessQuestionnaire):
    type: Annotated[Literal["Generic"], Field(examples=["Generic"])] = "Generic"


class BusinessQuestionnaireSolePropBusinessQuestionnaire(SolePropBusinessQuestionnaire):
    type: Annotated[Literal["SoleProp"], Field(examples=["SoleProp"])] = "SoleProp"


class IdentificationPersonParams(BaseModel):
    address: Address
    consent_collected_at: Annotated[
        str,
        Field(
            description="Date and time when explicit consent was given to share identity\ntimestamp must be UTC timestamp e.g. 2025-02-01T15:38:21.775210Z"
        ),
    ]
    date_of_birth: Annotated[
        str, Field(description="date of birth in YYYY-MM-DD format")
    ]
    documents: Annotated[
        list[IdentityDocument] | None,
        Field(description="documents associated with the person"),
    ] = None
    edd_questionnaire: EddQuestionnaire | None = None
    email_address: Annotated[str, Field(description="email address of the person")]
    first_name: Annotated[str, Field(description="first name")]
    full_name: Annotated[str, Field(description="full name")]
    identity: PersonIdentity
    intended_use: IntendedUse
    kyc_questionnaire: KycQuestionnaire
    last_name: Annotated[str, Field(description="last name")]
    phone_number: Annotated[
        str, Field(description="phone number of the person (E.164 format)")
    ]
    sharing_consent: Annotated[
        bool,
        Field(
            description="explicitly given consent to share identity information with iron"
        ),
    ]
    tax_identification_number: Annotated[
        str | None,
        Field(description="tax identification number (US residents only: SSN or TIN)"),
    ] = None


class IdentificationStepStatus(
    RootModel[BusinessIdentificationStepStatus | PersonIdentificationStepStatus]
):
    root: BusinessIdentificationStepStatus | PersonIdentificationStepStatus


class IdentificationTokenParams(BaseModel):
    edd_questionnaire: EddQuestionnaire | None = None
    intended_use: IntendedUse
    ip_address: Annotated[
        str | None,
        Field(
            description="The IP address of the customer associated with the token\nNot required if IP address is passed by token provided"
        ),
    ] = None
    kyc_questionnaire: KycQuestionnaire | None = None
    token: Annotated[
        str,
        Field(description="The shareable token generated by the third party provider"),
    ]


class PagedListWebhook(BaseModel):
    cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the next page")
    ] = None
    items: Annotated[list[Webhook], Field(description="The list of items")]
    prev_cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the previous page")
    ] = None


class WebhookContainer(BaseModel):
    data: WebhookNotification
    timestamp: Annotated[
        str, Field(description="ISO timestamp when the notification was sent")
    ]
    type: Annotated[str, Field(description="The type of notification")]


class BusinessQuestionnaire(
    RootModel[
        BusinessQuestionnaireGenericBusinessQuestionnaire
        | BusinessQuestionnaireSolePropBusinessQuestionnaire
    ]
):
    root: Annotated[
        BusinessQuestionnaireGenericBusinessQuestionnaire
        | BusinessQuestionnaireSolePropBusinessQuestionnaire,
        Field(
            description="KYB compliance questionnaire\n\nUse `GenericBusinessQuestionnaire` for all company types except sole proprietorships.\nUse `SolePropBusinessQuestionnaire` for sole proprietorships.\n",
            discriminator="type",
        ),
    ]


class Identification(BaseModel):
    created_at: datetime
    customer_id: Annotated[
        str | None,
        Field(
            description="Absent on a referral partner's identification (partner-keyed record)"
        ),
    ] = None
    id: str
    partner_id: Annotated[
        str | None,
        Field(description="The owning partner for partner-keyed (referral) records"),
    ] = None
    residence_country: Annotated[
        str | None,
        Field(
            description="ISO 3166-1 alpha-2 (2 letter) country code of the verified residence\naddress; only set on the customer's most recent identification while it\nis approved"
        ),
    ] = None
    review_comment: str | None = None
    status: IdentificationStatus
    step_status: IdentificationStepStatus | None = None
    updated_at: datetime
    url: str | None = None
    with_edd: bool | None = None


class IdentificationCreateParamsV2IdentificationPersonParams(
    IdentificationPersonParams
):
    type: Annotated[Literal["Person"], Field(examples=["Person"])] = "Person"


class IdentificationCreateParamsV2IdentificationTokenParams(IdentificationTokenParams):
    type: Annotated[Literal["Token"], Field(examples=["Token"])] = "Token"


class PagedListIdentification(BaseModel):
    cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the next page")
    ] = None
    items: Annotated[list[Identification], Field(description="The list of items")]
    prev_cursor: Annotated[
        str | None, Field(description="The cursor used to fetch the previous page")
    ] = None


class BusinessBeneficiaryInfo(BaseModel):
    company_data: CompanyData


class CompanyBeneficiary(BaseModel):
    attested_at: Annotated[
        str | None,
        Field(
            description="When the beneficiary certified the information (RFC 3339, in the past).\nRequired when attesting_party is true."
        ),
    ] = None
    attesting_party: Annotated[
        bool | None,
        Field(
            description="Marks this beneficiary as certifying the beneficial-ownership information\n(31 CFR 1010.230). Root-level person holding a Director role only.\nBefore setting this flag, present the collected beneficial-ownership\ninformation to this beneficiary and obtain their confirmation that it is\ncomplete and correct — Iron renders a certification naming them from the\nsubmitted data. For US non-sole-props the generated form is always\nsubmitted to the provider; when no IncorporationArticles document is\nsupplied it also satisfies the legal-presence document requirement.\nLimited to simple ownership structures (at most two levels of\nbeneficiaries); deeper structures cannot self-attest and must attach\nthe legal presence document instead."
        ),
    ] = None
    beneficiary_info: CompanyBeneficiaryInfo
    roles: Annotated[
        list[CompanyPrimaryBeneficiaryRole],
        Field(description="The primary role of the beneficial owner"),
    ]
    share_percentage: Annotated[
        str | None,
        Field(
            description="Share percentage of the beneficial owner (0-100). The combined shares of\nUltimateBeneficialOwner beneficiaries must not exceed 100 per company."
        ),
    ] = None


class CompanyData(BaseModel):
    beneficiaries: Annotated[
        list[CompanyBeneficiary],
        Field(
            description="The beneficiaries of the company. Each level (root or nested business)\nrequires at least one Director; UBOs and Representatives are also\npermitted at every level."
        ),
    ]
    company_info: CompanyInfo
    documents: Annotated[
        list[CompanyDocParams],
        Field(
            description="The company documents (max 4). Optional at submission: when the set is\nincomplete for the company's region, the identification is returned as\nPending with a resume URL to collect the missing documents."
        ),
    ]


class IdentificationBusinessParams(BaseModel):
    company_data: CompanyData
    ip_address: Annotated[
        str,
        Field(
            description="The IP address of the device used to submit the identification"
        ),
    ]
    phone: Annotated[str, Field(description="The phone number of the company")]
    questionnaire: BusinessQuestionnaire


class CompanyBeneficiaryInfo(
    RootModel[PersonBeneficiaryInfo | BusinessBeneficiaryInfo]
):
    root: Annotated[
        PersonBeneficiaryInfo | BusinessBeneficiaryInfo,
        Field(
            description="Company Beneficiary Info\n\nThe beneficiary info of the company\n"
        ),
    ]


class IdentificationCreateParamsV2IdentificationBusinessParams(
    IdentificationBusinessParams
):
    type: Annotated[Literal["Business"], Field(examples=["Business"])] = "Business"


class IdentificationCreateParamsV2(
    RootModel[
        IdentificationCreateParamsV2IdentificationLinkparams
        | IdentificationCreateParamsV2IdentificationTokenParams
        | IdentificationCreateParamsV2IdentificationPersonParams
        | IdentificationCreateParamsV2IdentificationBusinessParams
    ]
):
    root: Annotated[
        IdentificationCreateParamsV2IdentificationLinkparams
        | IdentificationCreateParamsV2IdentificationTokenParams
        | IdentificationCreateParamsV2IdentificationPersonParams
        | IdentificationCreateParamsV2IdentificationBusinessParams,
        Field(
            description="Identification Create Params V2\n\nThe params required to create an identification v2, we support three types of identification:\n- Link: where a link is provided to the customer for access to the identification process.\n- Token: where a token is provided in the request from which verification data can be extracted and where the token is generated by the third party provider\n- Person: where the identification details of the person for which the identification process is being created are provided in the request\n",
            discriminator="type",
        ),
    ]


BusinessBeneficiaryInfo.model_rebuild()
CompanyBeneficiary.model_rebuild()

"""Typed async client for Iron's onboarding API (httpx + pydantic v2), usable without Temporal."""

from iron_client.client import IronClient, IronSettings
from iron_client.errors import (
    IronBadRequest,
    IronConflict,
    IronError,
    IronFinalError,
    IronHasPendingIdentification,
    IronIdempotencyConflict,
    IronNotFound,
    IronRateLimited,
    IronRetryableError,
    IronServerError,
    IronUnauthorized,
    IronUnavailable,
)
from iron_client.models import (
    Customer,
    CustomerStatus,
    CustomerType,
    Identification,
    IdentificationKind,
    IdentificationStatus,
    RequiredSigning,
    Signing,
)

__all__ = [
    "IronClient",
    "IronSettings",
    "IronError",
    "IronRetryableError",
    "IronFinalError",
    "IronServerError",
    "IronRateLimited",
    "IronUnavailable",
    "IronBadRequest",
    "IronUnauthorized",
    "IronNotFound",
    "IronConflict",
    "IronIdempotencyConflict",
    "IronHasPendingIdentification",
    "Customer",
    "CustomerStatus",
    "CustomerType",
    "Identification",
    "IdentificationKind",
    "IdentificationStatus",
    "RequiredSigning",
    "Signing",
]

"""Inputs and results of the Iron activities: one pydantic model each.

Results are snapshots of Iron's resources trimmed to what the workflow decides on: ids,
statuses, urls. Names, emails and documents stay out, so they never reach Temporal history.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from iron_client.models import CustomerType
from contracts.messages import IdentificationRequest, omit_default_scope
from contracts.requirements import RequirementsView


# Activity type names: the workflow schedules them by name, the worker registers them under it.
FIND_OR_CREATE_CUSTOMER = "find_or_create_customer"
GET_CUSTOMER = "get_customer"
CREATE_IDENTIFICATION = "create_identification"
GET_IDENTIFICATION = "get_identification"
LATEST_IDENTIFICATION = "latest_identification"
GET_REQUIRED_SIGNINGS = "get_required_signings"
CREATE_SIGNING = "create_signing"
GET_REQUIREMENTS = "get_requirements"
READ_ONWARD = "read_onward"
FIND_OR_CREATE_AND_IDENTIFY = "find_or_create_and_identify"


class ActivityModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- inputs ------------------------------------------------------------------------------------


class ScopedInput(ActivityModel):
    """An Iron call made for one customer, in that customer's sub-partner scope (None: the
    worker's default, `IRON_SUB_PARTNER_ID`). Left out of the payload when None, so a default
    customer's activity inputs are written as before."""

    sub_partner_id: str | None = None

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> Any:
        data = omit_default_scope(handler(self))
        if isinstance(data, dict) and "contact_ref" in data and data["contact_ref"] is None:
            del data["contact_ref"]  # an input with the email inline is written as before
        return data


class FindOrCreateCustomerInput(ScopedInput):
    """`email` and `name` inline, or by `contact_ref` (a contact document the activity reads
    only to create the customer); inline values win."""

    external_id: str
    email: str
    customer_type: CustomerType
    name: str | None = None
    idempotency_key: str
    contact_ref: str | None = None


class FindOrCreateAndIdentifyInput(FindOrCreateCustomerInput):
    """Activity `find_or_create_and_identify`: `find_or_create_customer`, then
    `create_identification` with `identification` and `identification_key` when the customer
    has no identification yet and its status is in `identify_if_customer`. The conditions come
    from the workflow's rules, so the activity decides nothing of its own."""

    identification: IdentificationRequest
    identification_key: str
    identify_if_customer: list[str] = Field(default_factory=list)


class CustomerRef(ScopedInput):
    customer_id: str


class IdentificationRef(ScopedInput):
    identification_id: str


class ReadOnwardInput(ScopedInput):
    """Activity `read_onward`: the reads one pass makes in a row, in one activity. The
    identification (when given); the customer, unless the identification's status is outside
    `customer_if_identification`; its required signings when the customer's status is in
    `signings_if_customer`. The conditions come from the workflow's rules, so the activity
    decides nothing of its own."""

    customer_id: str
    identification_id: str | None = None
    customer_if_identification: list[str] = Field(default_factory=list)
    signings_if_customer: list[str] = Field(default_factory=list)


class CreateIdentificationInput(ScopedInput):
    customer_id: str
    request: IdentificationRequest
    idempotency_key: str


class CreateSigningInput(ScopedInput):
    customer_id: str
    content_id: str
    idempotency_key: str


# --- results -----------------------------------------------------------------------------------


class CustomerSnapshot(ActivityModel):
    id: str
    status: str
    customer_type: str
    external_id: str | None = None
    identification_status: str | None = None
    identification_ids: list[str] = Field(default_factory=list)
    created: bool = False


class IdentificationSnapshot(ActivityModel):
    id: str
    status: str
    url: str | None = None
    retry_steps: list[str] = Field(default_factory=list)
    created_at: str


class CreateIdentificationResult(ActivityModel):
    identification: IdentificationSnapshot
    adopted: bool = False


class CustomerIdentified(ActivityModel):
    """What `find_or_create_and_identify` did: the customer, and the identification when it
    made one (None: not asked, or Iron refused it, which the workflow's own step then meets)."""

    customer: CustomerSnapshot
    identification: CreateIdentificationResult | None = None


class LatestIdentificationResult(ActivityModel):
    identification: IdentificationSnapshot | None = None


class RequiredSigningSnapshot(ActivityModel):
    id: str
    url: str
    display_name: str


class RequiredSigningsResult(ActivityModel):
    signings: list[RequiredSigningSnapshot]


class OnwardRead(ActivityModel):
    """What `read_onward` read, in order; None: not read."""

    identification: IdentificationSnapshot | None = None
    customer: CustomerSnapshot | None = None
    signings: list[RequiredSigningSnapshot] | None = None


class SigningSnapshot(ActivityModel):
    id: str
    content_id: str
    created_at: str


class RequirementsResult(ActivityModel):
    requirements: RequirementsView

"""One activity per Iron call.

The class receives its Iron client (and the document store) in its constructor, so the
worker wires production clients and tests wire clients pointed at the local sandbox.

Errors leave here already sorted: Iron's retryable failures (5xx, 429, timeouts, lost
responses) are raised as retryable application errors, with Iron's Retry-After as the next
retry delay; final ones (4xx that no retry fixes) as non-retryable errors the workflow turns
into `NeedsAttention`. Texts pass through redaction, since Iron may echo request data.

Schema drift: a status, step or code that Iron's spec does not list yet reaches the workflow as
the string Iron sent (the snapshots hold plain strings), and each read that carries one logs
`iron_unknown_value` naming the field and the value (ids and enum values only, never personal
data), so the change shows in the logs before anyone has to ask.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Awaitable, TypeVar

import structlog
from pydantic import TypeAdapter, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import record_iron_request
from contracts.activity_models import (
    CREATE_IDENTIFICATION,
    CREATE_SIGNING,
    FIND_OR_CREATE_AND_IDENTIFY,
    FIND_OR_CREATE_CUSTOMER,
    GET_CUSTOMER,
    GET_IDENTIFICATION,
    GET_REQUIRED_SIGNINGS,
    GET_REQUIREMENTS,
    LATEST_IDENTIFICATION,
    READ_ONWARD,
    CreateIdentificationInput,
    CreateIdentificationResult,
    CreateSigningInput,
    CustomerIdentified,
    CustomerRef,
    CustomerSnapshot,
    FindOrCreateAndIdentifyInput,
    FindOrCreateCustomerInput,
    IdentificationRef,
    IdentificationSnapshot,
    LatestIdentificationResult,
    OnwardRead,
    ReadOnwardInput,
    RequiredSigningSnapshot,
    RequiredSigningsResult,
    RequirementsResult,
    ScopedInput,
    SigningSnapshot,
)
from contracts.requirements import RequirementsView
from data_protection.contact import read_contact
from data_protection.documents import CorruptDocument, DocumentNotFound, DocumentStore
from data_protection.keys import DecryptionError
from data_protection.redaction import redact_text
from iron_client import IronClient
from iron_client.errors import (
    IronError,
    IronFinalError,
    IronHasPendingIdentification,
    IronRateLimited,
    IronServerError,
)
from iron_client.models import (
    TERMINAL_IDENTIFICATION_STATUSES,
    Customer,
    Identification,
    IdentificationKind,
    IdentificationParams,
    LinkIdentificationParams,
    IronResponse,
    TokenIdentificationParams,
    wire,
)

T = TypeAdapter(IdentificationParams)
R = TypeVar("R")

log = structlog.get_logger("activities")

# Error types the workflow recognises (ApplicationError.type).
FINAL_IRON_ERROR = "IronFinalError"
RETRYABLE_IRON_ERROR = "IronRetryableError"
INVALID_IDENTIFICATION_DATA = "InvalidIdentificationData"
# The start's contact document is missing or unreadable: an amend gives the email again.
INVALID_START_DATA = "InvalidStartData"


def customer_snapshot(customer: Customer, *, created: bool = False) -> CustomerSnapshot:
    return CustomerSnapshot(
        id=customer.id,
        status=wire(customer.status),
        customer_type=wire(customer.customer_type),
        external_id=customer.external_id,
        identification_status=wire(customer.identification_status),
        identification_ids=list(customer.identification_ids),
        created=created,
    )


def identification_snapshot(identification: Identification) -> IdentificationSnapshot:
    steps = identification.step_status.retryable_steps() if identification.step_status else []
    return IdentificationSnapshot(
        id=identification.id,
        status=wire(identification.status),
        url=identification.url,
        retry_steps=steps,
        created_at=identification.created_at.isoformat(),
    )


def _final(message: str, *, error: IronError | None = None, type_: str = FINAL_IRON_ERROR) -> ApplicationError:
    details: dict[str, Any] = {}
    if error is not None:
        details = {
            "status_code": error.status_code,
            "iron_error": type(error).__name__,
            "path": error.path,
            "trace_id": error.trace_id,
        }
    return ApplicationError(redact_text(message), details, type=type_, non_retryable=True)


async def _as_step(step: str, read: Awaitable[R]) -> R:
    """A final refusal names the read that was refused (`step` in its details), which the
    customer's `NeedsAttention` shows, rather than the activity that made several."""
    try:
        return await read
    except ApplicationError as err:
        if not err.non_retryable:
            raise
        details = err.details[0] if err.details and isinstance(err.details[0], dict) else {}
        raise ApplicationError(err.message, {**details, "step": step}, type=err.type, non_retryable=True) from None


class IronActivities:
    def __init__(
        self,
        client: IronClient,
        documents: DocumentStore | None = None,
        *,
        delete_documents_after_submission: bool = False,
    ) -> None:
        self.client = client
        self.documents = documents
        # Every Iron request these activities make is counted by operation and status class.
        client.observe_responses(record_iron_request)
        # Retention: once Iron holds the identification, our copy of the documents can go.
        self.delete_documents_after_submission = delete_documents_after_submission

    # --- plumbing ------------------------------------------------------------------------------

    def _iron(self, req: ScopedInput) -> IronClient:
        """The client in the scope of the customer the call is for: `X-SUB-PARTNER-ID` is that
        customer's sub-partner, or the worker's default (`IRON_SUB_PARTNER_ID`)."""
        return self.client.scoped(req.sub_partner_id)

    def _logger(self, **fields: Any):
        info = activity.info()
        return log.bind(
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity=info.activity_type,
            attempt=info.attempt,
            **fields,
        )

    async def _call(self, call: Awaitable[R], **fields: Any) -> R:
        logger = self._logger(**fields)
        try:
            result = await call
        except IronRateLimited as exc:
            logger.warning("iron_rate_limited", retry_after=exc.retry_after, error=redact_text(str(exc)))
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
            raise ApplicationError(
                redact_text(str(exc)), type=RETRYABLE_IRON_ERROR, next_retry_delay=delay
            ) from None
        except IronFinalError as exc:
            logger.error("iron_request_rejected", status_code=exc.status_code, error=redact_text(str(exc)))
            raise _final(str(exc), error=exc) from None
        except IronError as exc:
            logger.warning("iron_request_failed", status_code=exc.status_code, error=redact_text(str(exc)))
            raise ApplicationError(redact_text(str(exc)), type=RETRYABLE_IRON_ERROR) from None
        # Each request is counted by `onboarding_iron_requests_total`; a line each is for debugging.
        logger.debug("iron_request_ok")
        return result

    def _flag_unknown(self, read: IronResponse | None, **fields: Any) -> None:
        """One warning per value Iron sent that this code does not know: the drift is visible in
        the logs at the first read that carries it."""
        if read is None:
            return
        unknown = read.unknown_values()
        if not unknown:
            return
        logger = self._logger(**fields)
        for field_path, value in unknown:
            logger.warning("iron_unknown_value", resource=type(read).__name__, resource_id=getattr(read, "id", None),
                           field=field_path, value=value[:64])

    # --- customers -----------------------------------------------------------------------------

    @activity.defn(name=FIND_OR_CREATE_CUSTOMER)
    async def find_or_create_customer(self, req: FindOrCreateCustomerInput) -> CustomerSnapshot:
        # Look up first: the idempotency key protects a retry for 24 hours only, and the
        # customer may have been created long ago (or outside this system).
        existing = await self._call(self._iron(req).find_customer_by_external_id(req.external_id), step="find_customer")
        if existing is not None:
            self._flag_unknown(existing, iron_customer_id=existing.id)
            return customer_snapshot(existing)
        email, name = await self._contact(req)
        created = await self._call(
            self._iron(req).create_customer(
                customer_type=req.customer_type,
                email=email,
                name=name,
                external_id=req.external_id,
                idempotency_key=req.idempotency_key,
            ),
            step="create_customer",
        )
        self._flag_unknown(created, iron_customer_id=created.id)
        if self.delete_documents_after_submission and req.contact_ref and self.documents is not None:
            await self.documents.delete(req.contact_ref)
        return customer_snapshot(created, created=True)

    async def _contact(self, req: FindOrCreateCustomerInput) -> tuple[str, str | None]:
        """The email and name to create the customer with: inline (an amend's) before the
        contact document's. A document that cannot be read is final: an amend gives them again."""
        if not req.contact_ref or (req.email and req.name is not None):
            return req.email, req.name
        if self.documents is None:
            raise _final("no document store configured to read the customer's contact", type_=INVALID_START_DATA)
        contact = await self._stored(read_contact(self.documents, req.contact_ref), req.contact_ref, "contact",
                                     INVALID_START_DATA)
        return req.email or contact.email, req.name if req.name is not None else contact.name

    @staticmethod
    async def _stored(read: Awaitable[R], ref: str, what: str, type_: str) -> R:
        """A read of the document store whose document is gone or altered for good: a final
        refusal naming `what` and `ref`. A missing key (KeyNotFoundError) stays retryable: it
        clears once the key is added."""
        try:
            return await read
        except DocumentNotFound:
            raise _final(f"{what} {ref} not found in the document store", type_=type_) from None
        except (CorruptDocument, DecryptionError):
            raise _final(f"{what} {ref} is unreadable (corrupt or altered)", type_=type_) from None

    @activity.defn(name=FIND_OR_CREATE_AND_IDENTIFY)
    async def find_or_create_and_identify(self, req: FindOrCreateAndIdentifyInput) -> CustomerIdentified:
        """`find_or_create_customer`, then `create_identification` for a customer without an
        identification whose status the workflow named: one activity and one workflow task where
        there were two, the same Iron calls. A retry finds the customer again; one that shows the
        identification made before the answer was lost is returned alone, and the workflow adopts
        it. An identification Iron refuses for good leaves the customer returned alone too: the
        workflow's own `create_identification` step then meets the refusal as it always has."""
        lookup = FindOrCreateCustomerInput.model_validate(req.model_dump(include=set(FindOrCreateCustomerInput.model_fields)))
        customer = await _as_step(FIND_OR_CREATE_CUSTOMER, self.find_or_create_customer(lookup))
        result = CustomerIdentified(customer=customer)
        if customer.identification_ids or customer.status not in req.identify_if_customer:
            return result
        create = CreateIdentificationInput(
            sub_partner_id=req.sub_partner_id, customer_id=customer.id, request=req.identification,
            idempotency_key=req.identification_key,
        )
        try:
            result.identification = await self.create_identification(create)
        except ApplicationError as err:
            if not err.non_retryable:
                raise
        return result

    @activity.defn(name=GET_CUSTOMER)
    async def get_customer(self, req: CustomerRef) -> CustomerSnapshot:
        customer = await self._call(self._iron(req).get_customer(req.customer_id), iron_customer_id=req.customer_id)
        self._flag_unknown(customer, iron_customer_id=req.customer_id)
        return customer_snapshot(customer)

    # --- identifications -----------------------------------------------------------------------

    async def _identification_params(self, req: CreateIdentificationInput) -> IdentificationParams:
        request = req.request
        if request.kind == IdentificationKind.LINK:
            return LinkIdentificationParams(with_edd=request.with_edd)
        if request.kind == IdentificationKind.TOKEN:
            return TokenIdentificationParams(
                token=request.token or "", intended_use=request.intended_use, ip_address=request.ip_address
            )
        # Person and Business: the data lives in the document store; only this activity reads it.
        if self.documents is None:
            raise _final("no document store configured for Person/Business identifications", type_=INVALID_IDENTIFICATION_DATA)
        ref = request.document_ref or ""
        raw = await self._stored(self.documents.get(ref), ref, "identification data", INVALID_IDENTIFICATION_DATA)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("identification data must be a JSON object")
            data["type"] = request.kind.value
            return T.validate_python(data)
        except (ValueError, ValidationError) as exc:
            # Field names only: the values are personal data.
            where = [".".join(str(p) for p in e["loc"]) for e in exc.errors()] if isinstance(exc, ValidationError) else []
            raise _final(
                f"identification data {request.document_ref} is not valid {request.kind.value} data"
                + (f": check {', '.join(where[:10])}" if where else ""),
                type_=INVALID_IDENTIFICATION_DATA,
            ) from None

    @activity.defn(name=CREATE_IDENTIFICATION)
    async def create_identification(self, req: CreateIdentificationInput) -> CreateIdentificationResult:
        params = await self._identification_params(req)
        iron = self._iron(req)

        async def create_or_adopt() -> CreateIdentificationResult:
            try:
                created = await iron.create_identification(
                    req.customer_id, params, idempotency_key=req.idempotency_key
                )
                self._flag_unknown(created, iron_customer_id=req.customer_id)
                return CreateIdentificationResult(identification=identification_snapshot(created))
            except IronHasPendingIdentification:
                # Iron already has a pending identification (one whose answer we lost, or one
                # Iron or its dashboard made): adopt it rather than fail or make another.
                pending = await self._newest_identification(iron, req.customer_id)
                if pending is None or pending.status in TERMINAL_IDENTIFICATION_STATUSES:
                    raise IronServerError("Iron reports a pending identification but lists none yet") from None
                self._flag_unknown(pending, iron_customer_id=req.customer_id)
                return CreateIdentificationResult(identification=identification_snapshot(pending), adopted=True)

        result = await self._call(create_or_adopt(), iron_customer_id=req.customer_id, step="create_identification")
        if self.delete_documents_after_submission and req.request.document_ref and self.documents is not None:
            await self.documents.delete(req.request.document_ref)
        self._logger(iron_customer_id=req.customer_id).info(
            "identification_adopted" if result.adopted else "identification_created",
            identification_id=result.identification.id,
        )
        return result

    @staticmethod
    async def _newest_identification(iron: IronClient, customer_id: str) -> Identification | None:
        identifications = await iron.all_identifications(customer_id)
        return identifications[0] if identifications else None

    @activity.defn(name=GET_IDENTIFICATION)
    async def get_identification(self, req: IdentificationRef) -> IdentificationSnapshot:
        identification = await self._call(
            self._iron(req).get_identification(req.identification_id), identification_id=req.identification_id
        )
        self._flag_unknown(identification, identification_id=req.identification_id)
        return identification_snapshot(identification)

    @activity.defn(name=LATEST_IDENTIFICATION)
    async def latest_identification(self, req: CustomerRef) -> LatestIdentificationResult:
        newest = await self._call(self._newest_identification(self._iron(req), req.customer_id), iron_customer_id=req.customer_id)
        self._flag_unknown(newest, iron_customer_id=req.customer_id)
        return LatestIdentificationResult(identification=identification_snapshot(newest) if newest else None)

    # --- signings ------------------------------------------------------------------------------

    @activity.defn(name=GET_REQUIRED_SIGNINGS)
    async def get_required_signings(self, req: CustomerRef) -> RequiredSigningsResult:
        signings = await self._call(self._iron(req).get_required_signings(req.customer_id), iron_customer_id=req.customer_id)
        return RequiredSigningsResult(
            signings=[RequiredSigningSnapshot(id=s.id, url=s.url, display_name=s.display_name) for s in signings]
        )

    # --- reads in a row --------------------------------------------------------------------------

    @activity.defn(name=READ_ONWARD)
    async def read_onward(self, req: ReadOnwardInput) -> OnwardRead:
        """The reads `get_identification`, `get_customer` and `get_required_signings` would make
        one after another, each only if the one before asks for it: one activity and one workflow
        task where there were three. A retry reads again from the first (reads are idempotent)."""
        read = OnwardRead()
        if req.identification_id is not None:
            ref = IdentificationRef(identification_id=req.identification_id, sub_partner_id=req.sub_partner_id)
            read.identification = await _as_step(GET_IDENTIFICATION, self.get_identification(ref))
            if read.identification.status not in req.customer_if_identification:
                return read
        customer = CustomerRef(customer_id=req.customer_id, sub_partner_id=req.sub_partner_id)
        read.customer = await _as_step(GET_CUSTOMER, self.get_customer(customer))
        if read.customer.status in req.signings_if_customer:
            read.signings = (await _as_step(GET_REQUIRED_SIGNINGS, self.get_required_signings(customer))).signings
        return read

    @activity.defn(name=CREATE_SIGNING)
    async def create_signing(self, req: CreateSigningInput) -> SigningSnapshot:
        signing = await self._call(
            self._iron(req).create_signing(req.customer_id, content_id=req.content_id, idempotency_key=req.idempotency_key),
            iron_customer_id=req.customer_id,
            content_id=req.content_id,
        )
        return SigningSnapshot(
            id=signing.id, content_id=signing.content_id or req.content_id, created_at=signing.created_at.isoformat()
        )

    # --- requirements --------------------------------------------------------------------------

    @activity.defn(name=GET_REQUIREMENTS)
    async def get_requirements(self, req: CustomerRef) -> RequirementsResult:
        """What the customer must still provide, codes only (Iron's texts stay here)."""
        requirements = await self._call(
            self._iron(req).get_customer_requirements(req.customer_id), iron_customer_id=req.customer_id, step="get_requirements"
        )
        self._flag_unknown(requirements, iron_customer_id=req.customer_id)
        return RequirementsResult(requirements=RequirementsView.of(requirements))

    def all(self) -> list:
        """Every activity, for the worker."""
        return [
            self.find_or_create_customer,
            self.find_or_create_and_identify,
            self.get_customer,
            self.create_identification,
            self.get_identification,
            self.latest_identification,
            self.get_required_signings,
            self.create_signing,
            self.get_requirements,
            self.read_onward,
        ]


"""Iron's onboarding state machine, in memory.

Customers, identifications, signings and the documents a customer must sign, with the rules of
`FACTS.md`: a new customer needs an identification; the newest identification drives the
customer; an approved identification leads to the required signings; signing every one makes the
customer `Active`; compliance can send an `Active` customer back. Every status change is reported
to the listeners (the webhook dispatcher, the autopilot) in the order it happened.

All public methods are synchronous and hold one lock, so concurrent requests see each change as
a whole. They raise `ApiError` with the HTTP status and the text Iron would answer.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Sequence

from iron_client import generated as spec
from iron_sandbox import schemas
from iron_sandbox.clock import Clock, iso

# Iron's values as the spec lists them (the state keeps the plain strings).
CUSTOMER_STATUSES = tuple(status.value for status in spec.CustomerStatus)
IDENTIFICATION_STATUSES = tuple(status.value for status in spec.IdentificationStatus)
NON_TERMINAL = frozenset(
    status.value
    for status in (spec.IdentificationStatus.PENDING, spec.IdentificationStatus.PROCESSED,
                   spec.IdentificationStatus.PENDING_REVIEW)
)
CUSTOMER_TYPES = tuple(customer_type.value for customer_type in spec.CustomerType)
PERSON_STEPS = tuple(spec.PersonIdentificationStepStatus.model_fields)
BUSINESS_STEPS = tuple(spec.BusinessIdentificationStepStatus.model_fields)
STEP_CODES = {
    "identity": "kyc_identity",
    "proof_of_residence": "kyc_proof_of_residence",
    "selfie": "kyc_selfie",
    "company_beneficiaries": "kyb_company_beneficiaries",
    "company_data": "kyb_company_data",
    "company_documents": "kyb_company_documents",
}
REQUIREMENT_CODES = tuple(code.value for code in spec.RequirementCode)
REQUIREMENT_BUCKETS = ("complete", "pending", "missing", "issues")
DOCUMENT_NAMES = ("Terms and Conditions", "Privacy Policy")
INCOMPLETE_TOKEN = "incomplete-token"


class ApiError(Exception):
    """A 4xx answer: `status` and the plain-string body Iron would send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def uuid7(ms: int | None = None) -> str:
    """A time-ordered UUID (version 7), the kind Iron hands out."""
    ms = int(time.time() * 1000) if ms is None else ms
    rand_a = secrets.randbits(12)
    rand_b = secrets.randbits(62)
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


@dataclass
class Document:
    """One version of a document the customer must accept (a required signing while unsigned)."""

    content_id: str
    display_name: str
    url: str
    version: int
    signing_id: str | None = None
    waived: bool = False

    @property
    def outstanding(self) -> bool:
        return self.signing_id is None and not self.waived

    def to_api(self) -> dict[str, Any]:
        return {"id": self.content_id, "url": self.url, "display_name": self.display_name}


@dataclass
class Identification:
    id: str
    customer_id: str
    kind: str
    status: str
    created_at: datetime
    updated_at: datetime
    seq: int
    created_by: str = "partner"
    url: str | None = None
    step_status: dict[str, dict[str, Any]] | None = None
    review_comment: str | None = None
    residence_country: str | None = None
    with_edd: bool | None = None
    declared_country: str | None = None

    def to_api(self, *, newest: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "customer_id": self.customer_id,
        }
        if self.url is not None:
            out["url"] = self.url
        if self.step_status is not None:
            out["step_status"] = {k: dict(v) for k, v in self.step_status.items()}
        if self.review_comment is not None:
            out["review_comment"] = self.review_comment
        # The spec: only set on the customer's most recent identification while it is approved.
        if newest and self.status == "Approved" and self.residence_country:
            out["residence_country"] = self.residence_country
        if self.with_edd is not None:
            out["with_edd"] = self.with_edd
        return out


@dataclass
class Signing:
    id: str
    customer_id: str
    content_id: str
    created_at: datetime
    updated_at: datetime
    seq: int

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "content_id": self.content_id,
            "document_id": self.content_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class Customer:
    id: str
    customer_type: str
    status: str
    name: str
    email: str
    partner_id: str
    sub_partner_id: str | None
    created_at: datetime
    updated_at: datetime
    seq: int
    external_id: str | None = None
    identification_ids: list[str] = field(default_factory=list)  # oldest first
    signing_ids: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    # A requirement with a code Iron's spec does not list yet: (bucket, code), from /_sim drift.
    drift_requirement: tuple[str, str] | None = None

    @property
    def outstanding_documents(self) -> list[Document]:
        return [d for d in self.documents if d.outstanding]


@dataclass(frozen=True)
class Event:
    """A webhook-worthy change: `{type, data: {customer_id, message: {variant: message}}}`."""

    type: str
    customer_id: str
    variant: str
    message: dict[str, Any]


EventListener = Callable[[Event], None]
CreationListener = Callable[[str], None]


class SandboxState:
    def __init__(self, *, clock: Clock | None = None, partner_id: str) -> None:
        self.clock = clock or Clock()
        self.partner_id = partner_id
        self._lock = threading.RLock()
        self._seq = 0
        self.customers: dict[str, Customer] = {}
        # Each scope's customers in `seq` order (`seq` grows, so a create appends): the index
        # `GET /customers` pages by key, as Iron's database would, not by scanning every customer.
        self._listed: dict[str | None, tuple[list[int], list[Customer]]] = {}
        # (scope, external id) -> the customers holding it, oldest first: a lookup by external id
        # reads its own customers, not every customer.
        self._by_external_id: dict[tuple[str | None, str], list[Customer]] = {}
        self.identifications: dict[str, Identification] = {}
        self.signings: dict[str, Signing] = {}
        self.event_listeners: list[EventListener] = []
        self.creation_listeners: list[CreationListener] = []
        self._events: list[Event] = []
        self._created: list[str] = []

    # --- plumbing ------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _now(self) -> datetime:
        return self.clock.now_dt()

    def _new_id(self) -> str:
        return uuid7(int(self.clock.now() * 1000))

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _flush(self) -> None:
        events, self._events = self._events, []
        created, self._created = self._created, []
        for event in events:
            for listener in list(self.event_listeners):
                listener(event)
        for identification_id in created:
            for listener in list(self.creation_listeners):
                listener(identification_id)

    @contextlib.contextmanager
    def _mutate(self) -> Iterator["SandboxState"]:
        """Hold the lock for one change; on success, report its events in order."""
        with self._lock:
            try:
                yield self
            except BaseException:
                self._events.clear()
                self._created.clear()
                raise
            self._flush()

    def _visible(self, customer: Customer, scope: str | None) -> bool:
        return customer.sub_partner_id == scope

    def _customer(self, customer_id: str, scope: str | None, *, status: int = 404) -> Customer:
        customer = self.customers.get(customer_id)
        if customer is None or not self._visible(customer, scope):
            raise ApiError(status, "Customer not found")
        return customer

    def _identification(self, identification_id: str) -> Identification:
        identification = self.identifications.get(identification_id)
        if identification is None:
            raise ApiError(404, "Identification not found")
        return identification

    def _newest(self, customer: Customer) -> Identification | None:
        if not customer.identification_ids:
            return None
        return self.identifications[customer.identification_ids[-1]]

    def customer_json(self, customer: Customer) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": customer.id,
            "customer_type": customer.customer_type,
            "status": customer.status,
            "name": customer.name,
            "email": customer.email,
            "partner_id": customer.partner_id,
            "identification_ids": list(customer.identification_ids),
            "signing_ids": list(customer.signing_ids),
            "created_at": iso(customer.created_at),
            "updated_at": iso(customer.updated_at),
        }
        if customer.external_id is not None:
            out["external_id"] = customer.external_id
        newest = self._newest(customer)
        if newest is not None:
            out["identification_status"] = newest.status
        return out

    def identification_json(self, identification: Identification) -> dict[str, Any]:
        customer = self.customers.get(identification.customer_id)
        newest = customer is not None and customer.identification_ids[-1:] == [identification.id]
        return identification.to_api(newest=newest)

    def _set_customer_status(self, customer: Customer, status: str) -> None:
        if customer.status == status:
            return
        customer.status = status
        customer.updated_at = self._now()
        self._emit(Event("customer_status", customer.id, "CustomerStatus", {"id": customer.id, "status": status}))

    def _set_identification_status(self, identification: Identification, status: str) -> bool:
        if identification.status == status:
            return False
        identification.status = status
        identification.updated_at = self._now()
        customer = self.customers[identification.customer_id]
        customer.updated_at = identification.updated_at
        self._emit(
            Event(
                "identification_status",
                identification.customer_id,
                "IdentificationStatus",
                {"id": identification.id, "status": status},
            )
        )
        return True

    @staticmethod
    def _page(
        items: Sequence[Any],
        cursor: str | None,
        prev_cursor: str | None,
        page_size: int,
        *,
        seq_of: Callable[[str], int | None],
        descending: bool,
    ) -> dict[str, Any]:
        """Cursor paging over `items` (sorted by `seq`): `cursor` is the id of the last item of a
        page, `prev_cursor` the id of the first. A cursor keeps its place even if its item has
        since left the selection (filtered out, archived), as long as the id is known."""

        def beyond(item: Any, seq: int) -> bool:
            return item.seq < seq if descending else item.seq > seq

        if cursor is not None:
            seq = seq_of(cursor)
            if seq is None:
                raise ApiError(400, "Invalid cursor")
            start = next((i for i, item in enumerate(items) if beyond(item, seq)), len(items))
            end = start + page_size
        elif prev_cursor is not None:
            seq = seq_of(prev_cursor)
            if seq is None:
                raise ApiError(400, "Invalid prev_cursor")
            end = next((i for i, item in enumerate(items) if item.seq == seq or beyond(item, seq)), len(items))
            start = max(0, end - page_size)
        else:
            start, end = 0, page_size
        page = list(items[start:end])
        out: dict[str, Any] = {"items": page}
        if page and end < len(items):
            out["cursor"] = page[-1].id
        if page and start > 0:
            out["prev_cursor"] = page[0].id
        return out

    def _seq_of(self, table: dict[str, Any]) -> Callable[[str], int | None]:
        return lambda item_id: table[item_id].seq if item_id in table else None

    # --- customers -----------------------------------------------------------------------------

    def create_customer(self, params: schemas.CreateCustomerParams, scope: str | None) -> dict[str, Any]:
        with self._mutate():
            now = self._now()
            customer = Customer(
                id=self._new_id(),
                customer_type=params.customer_type,
                status="IdentificationRequired",
                name=params.name or "",
                email=params.email,
                partner_id=scope or self.partner_id,
                sub_partner_id=scope,
                created_at=now,
                updated_at=now,
                seq=self._next_seq(),
                external_id=params.external_id,
            )
            self.customers[customer.id] = customer
            seqs, ordered = self._listed.setdefault(scope, ([], []))
            seqs.append(customer.seq)
            ordered.append(customer)
            self._hold_external_id(customer)
            self._emit(Event("customer_created", customer.id, "Event", {"id": customer.id, "kind": "CustomerCreated"}))
            return self.customer_json(customer)

    def get_customer(self, customer_id: str, scope: str | None) -> dict[str, Any]:
        with self._lock:
            return self.customer_json(self._customer(customer_id, scope))

    def _hold_external_id(self, customer: Customer) -> None:
        if customer.external_id is not None:
            holders = self._by_external_id.setdefault((customer.sub_partner_id, customer.external_id), [])
            holders.insert(bisect.bisect([c.seq for c in holders], customer.seq), customer)

    def _drop_external_id(self, customer: Customer) -> None:
        key = (customer.sub_partner_id, customer.external_id)
        holders = [c for c in self._by_external_id.get(key, []) if c is not customer]
        if holders:
            self._by_external_id[key] = holders
        else:
            self._by_external_id.pop(key, None)

    def get_customer_by_external_id(self, external_id: str, scope: str | None) -> dict[str, Any]:
        with self._lock:
            matches = self._by_external_id.get((scope, external_id))
            if not matches:
                raise ApiError(404, "Customer not found")
            return self.customer_json(matches[0])

    def list_customers(
        self,
        scope: str | None,
        *,
        cursor: str | None = None,
        prev_cursor: str | None = None,
        page_size: int = 10,
        search_term: str | None = None,
        statuses: Iterable[str] = (),
        identification_statuses: Iterable[str] = (),
        customer_types: Iterable[str] = (),
        has_transactions: bool | None = None,
        sort_order: str = "desc",
    ) -> dict[str, Any]:
        """A page of the scope's customers. Keyset paging: a cursor is found by bisection in the
        scope's index and the page walks on from it, so a page costs its own customers (plus any
        the filters skip), not the whole list."""
        statuses, identification_statuses, customer_types = set(statuses), set(identification_statuses), set(customer_types)
        term = (search_term or "").strip().lower()
        descending = sort_order != "asc"

        def selected(customer: Customer) -> bool:
            if statuses and customer.status not in statuses:
                return False
            if customer_types and customer.customer_type not in customer_types:
                return False
            if identification_statuses:
                newest = self._newest(customer)
                if newest is None or newest.status not in identification_statuses:
                    return False
            if has_transactions:  # customers of the onboarding sandbox never transact
                return False
            return not term or any(
                term in (value or "").lower() for value in (customer.name, customer.id, customer.email, customer.external_id)
            )

        with self._lock:
            seqs, ordered = self._listed.get(scope, ([], []))

            def walk(seq: int | None, *, onward: bool, inclusive: bool = False) -> Iterator[Customer]:
                """The selected customers onward from `seq` in the listing's order (or back from it,
                nearest first), `seq` itself included when `inclusive`; from the start when None."""
                up = onward != descending  # walking towards higher seqs
                if seq is None:
                    indices: Iterable[int] = range(len(seqs)) if up else range(len(seqs) - 1, -1, -1)
                elif up:
                    indices = range((bisect.bisect_left if inclusive else bisect.bisect_right)(seqs, seq), len(seqs))
                else:
                    indices = range((bisect.bisect_right if inclusive else bisect.bisect_left)(seqs, seq) - 1, -1, -1)
                return (ordered[i] for i in indices if selected(ordered[i]))

            seq_of = self._seq_of(self.customers)
            more = earlier = False
            if prev_cursor is not None and cursor is None:
                seq = seq_of(prev_cursor)
                if seq is None:
                    raise ApiError(400, "Invalid prev_cursor")
                back = walk(seq, onward=False)
                page = list(itertools.islice(back, page_size))[::-1]
                earlier = next(back, None) is not None
                more = next(walk(seq, onward=True, inclusive=True), None) is not None
            else:
                seq = None
                if cursor is not None:
                    seq = seq_of(cursor)
                    if seq is None:
                        raise ApiError(400, "Invalid cursor")
                    earlier = next(walk(seq, onward=False, inclusive=True), None) is not None
                on = walk(seq, onward=True)
                page = list(itertools.islice(on, page_size))
                more = next(on, None) is not None
            out: dict[str, Any] = {"items": [self.customer_json(c) for c in page]}
            if page and more:
                out["cursor"] = page[-1].id
            if page and earlier:
                out["prev_cursor"] = page[0].id
            return out

    def update_customer(self, customer_id: str, scope: str | None, params: schemas.UpdateCustomerParams) -> dict[str, Any]:
        with self._mutate():
            # The spec lists no 404 for this operation: an unknown customer is a bad request.
            customer = self._customer(customer_id, scope, status=400)
            if customer.status == "Archived":
                raise ApiError(400, "Customer is archived")
            customer.email = params.email
            if params.external_id is not None:
                self._drop_external_id(customer)
                customer.external_id = params.external_id
                self._hold_external_id(customer)
            customer.updated_at = self._now()
            return self.customer_json(customer)

    def archive_customer(self, customer_id: str) -> dict[str, Any]:
        with self._mutate():
            customer = self.customers.get(customer_id)
            if customer is None:
                raise ApiError(400, "Customer not found")
            self._archive(customer)
            return self.customer_json(customer)

    def _archive(self, customer: Customer) -> None:
        if customer.status == "Archived":
            return
        for identification_id in customer.identification_ids:
            self._set_identification_status(self.identifications[identification_id], "Archived")
        for document in customer.documents:
            if document.outstanding:
                document.waived = True
        self._set_customer_status(customer, "Archived")

    def requirements(self, customer_id: str, scope: str | None) -> dict[str, Any]:
        with self._lock:
            customer = self._customer(customer_id, scope)
            return _requirements(customer, self._newest(customer))

    def reset(self, scope: str | None) -> None:
        with self._mutate():
            gone = [c for c in self.customers.values() if self._visible(c, scope)]
            for customer in gone:
                for identification_id in customer.identification_ids:
                    self.identifications.pop(identification_id, None)
                for signing_id in customer.signing_ids:
                    self.signings.pop(signing_id, None)
                del self.customers[customer.id]
                self._drop_external_id(customer)
            self._listed.pop(scope, None)

    def clear(self) -> None:
        with self._mutate():
            self.customers.clear()
            self._listed.clear()
            self._by_external_id.clear()
            self.identifications.clear()
            self.signings.clear()

    # --- identifications -----------------------------------------------------------------------

    def list_identifications(
        self, customer_id: str, scope: str | None, *, cursor: str | None = None, page_size: int = 10
    ) -> dict[str, Any]:
        with self._lock:
            customer = self._customer(customer_id, scope)
            items = [self.identifications[i] for i in reversed(customer.identification_ids)]  # newest first
            page = self._page(
                items, cursor, None, page_size, seq_of=self._seq_of(self.identifications), descending=True
            )
            page["items"] = [self.identification_json(i) for i in page["items"]]
            return page

    def get_identification(self, identification_id: str) -> dict[str, Any]:
        with self._lock:
            return self.identification_json(self._identification(identification_id))

    def create_identification(
        self, customer_id: str, scope: str | None, params: Any, *, base_url: str
    ) -> dict[str, Any]:
        with self._mutate():
            customer = self._customer(customer_id, scope)
            if customer.status == "Archived":
                raise ApiError(400, "Customer is archived")
            if customer.status == "Suspended":
                raise ApiError(403, "Customer is suspended")
            if params.type == "Person" and customer.customer_type != "Person":
                raise ApiError(400, "A Person identification needs a Person customer")
            if params.type == "Business" and customer.customer_type != "Business":
                raise ApiError(400, "A Business identification needs a Business customer")
            newest = self._newest(customer)
            if newest is not None and newest.status in NON_TERMINAL:
                raise ApiError(409, "Has Pending Identification")
            identification = self._new_identification(customer, params.type, base_url)
            if params.type == "Link":
                identification.with_edd = params.with_edd
            elif params.type == "Token":
                identification.step_status = _steps(customer.customer_type, "Pending", retry=False)
                if params.edd_questionnaire is not None:
                    identification.with_edd = True
                if params.token == INCOMPLETE_TOKEN:
                    # Reliance data is missing: the url asks the customer for exactly that.
                    identification.step_status["questionnaire"] = {
                        "result": "Pending",
                        "retry": True,
                        "comment": "Questionnaire answers are missing",
                    }
                    identification.url = f"{_hosted_kyc_url(base_url, identification.id)}?missing=questionnaire"
                else:
                    identification.url = None
            elif params.type == "Person":
                identification.step_status = _steps("Person", "Pending", retry=False)
                identification.declared_country = params.address.country
                if params.edd_questionnaire is not None:
                    identification.with_edd = True
                identification.url = None
            else:  # Business
                identification.step_status = _steps("Business", "Pending", retry=False)
                identification.declared_country = params.company_data.company_info.country
                if params.company_data.documents:
                    identification.url = None
                else:
                    identification.step_status["company_documents"] = {
                        "result": "Pending",
                        "retry": True,
                        "comment": "Company documents are missing",
                    }
                    identification.url = f"{_hosted_kyc_url(base_url, identification.id)}?missing=company_documents"
            return self.identification_json(identification)

    def _new_identification(self, customer: Customer, kind: str, base_url: str, *, created_by: str = "partner") -> Identification:
        now = self._now()
        identification = Identification(
            id=self._new_id(),
            customer_id=customer.id,
            kind=kind,
            status="Pending",
            created_at=now,
            updated_at=now,
            seq=self._next_seq(),
            created_by=created_by,
        )
        identification.url = _hosted_kyc_url(base_url, identification.id)
        self.identifications[identification.id] = identification
        customer.identification_ids.append(identification.id)
        customer.updated_at = now
        self._emit(
            Event("identification_status", customer.id, "IdentificationStatus", {"id": identification.id, "status": "Pending"})
        )
        # Starting a new identification puts the customer back in IdentificationRequired.
        self._set_customer_status(customer, "IdentificationRequired")
        self._created.append(identification.id)
        return identification

    def archive_identification(self, identification_id: str) -> dict[str, Any]:
        with self._mutate():
            identification = self._identification(identification_id)
            self._move_identification(identification, "Archived")
            return self.identification_json(identification)

    def decide_identification(self, identification_id: str, approved: bool, *, base_url: str) -> dict[str, Any]:
        with self._mutate():
            identification = self._identification(identification_id)
            if identification.status not in NON_TERMINAL:
                # The operation lists no 400: "no pending identification with this id" is the truth.
                raise ApiError(404, f"No pending identification with this id (status {identification.status})")
            self._move_identification(identification, "Approved" if approved else "Declined", base_url=base_url)
            return self.identification_json(identification)

    def _move_identification(
        self,
        identification: Identification,
        status: str,
        *,
        base_url: str | None = None,
        retry: bool = True,
        comment: str | None = None,
    ) -> None:
        """Move an identification and apply what that means for its customer."""
        customer = self.customers[identification.customer_id]
        if not self._set_identification_status(identification, status):
            return
        if status in ("Processed", "PendingReview"):
            identification.step_status = _steps(customer.customer_type, status, retry=False)
        elif status == "Approved":
            identification.step_status = _steps(customer.customer_type, "Approved", retry=False)
            identification.residence_country = identification.declared_country or "DE"
            identification.review_comment = comment
        elif status == "Declined":
            identification.step_status = _declined_steps(customer.customer_type, retry=retry, comment=comment)
            identification.review_comment = comment or (
                "Some information could not be verified, please resubmit it" if retry
                else "The identification was rejected"
            )
            if retry and identification.url is None and base_url:
                # `retry: true` means the customer redoes the step through the url.
                identification.url = _hosted_kyc_url(base_url, identification.id)
        is_newest = customer.identification_ids[-1:] == [identification.id]
        if not is_newest or customer.status in ("Archived", "Suspended"):
            return
        if status == "Approved":
            if not customer.documents:
                self._add_documents(customer, DOCUMENT_NAMES, base_url or "")
            self._set_customer_status(customer, "SigningsRequired" if customer.outstanding_documents else "Active")
        else:
            self._set_customer_status(customer, "IdentificationRequired")

    # --- signings ------------------------------------------------------------------------------

    def _add_documents(self, customer: Customer, names: Iterable[str], base_url: str) -> None:
        for name in names:
            version = 1 + sum(1 for d in customer.documents if d.display_name == name)
            content_id = self._new_id()
            customer.documents.append(
                Document(
                    content_id=content_id,
                    display_name=name,
                    url=f"{base_url.rstrip('/')}/hosted/documents/{content_id}",
                    version=version,
                )
            )

    def required_signings(self, customer_id: str, scope: str | None) -> list[dict[str, Any]]:
        with self._lock:
            customer = self._customer(customer_id, scope)
            return [d.to_api() for d in customer.outstanding_documents]

    def list_signings(
        self, customer_id: str, scope: str | None, *, cursor: str | None = None, page_size: int = 10
    ) -> dict[str, Any]:
        with self._lock:
            customer = self._customer(customer_id, scope)
            items = [self.signings[s] for s in reversed(customer.signing_ids)]  # newest first
            page = self._page(items, cursor, None, page_size, seq_of=self._seq_of(self.signings), descending=True)
            page["items"] = [s.to_api() for s in page["items"]]
            return page

    def create_signing(self, customer_id: str, scope: str | None, params: schemas.SigningCreateParams) -> dict[str, Any]:
        with self._mutate():
            customer = self._customer(customer_id, scope)
            if not params.signed:
                raise ApiError(422, "signed must be true: a signing records the customer's consent")
            if params.content_id is None:
                raise ApiError(422, "content_id is required: use an id from the required signings")
            if customer.status == "Suspended":
                raise ApiError(403, "Customer is suspended")
            if customer.status != "SigningsRequired":
                raise ApiError(422, f"Customer is not in SigningsRequired (status {customer.status})")
            document = next((d for d in customer.outstanding_documents if d.content_id == params.content_id), None)
            if document is None:
                raise ApiError(422, "content_id is not one of the customer's required signings")
            now = self._now()
            signing = Signing(
                id=self._new_id(),
                customer_id=customer.id,
                content_id=document.content_id,
                created_at=now,
                updated_at=now,
                seq=self._next_seq(),
            )
            self.signings[signing.id] = signing
            customer.signing_ids.append(signing.id)
            document.signing_id = signing.id
            customer.updated_at = now
            if not customer.outstanding_documents:
                self._set_customer_status(customer, "Active")
            return signing.to_api()

    # --- many customers at once (the control surface) ------------------------------------------

    def sim_add_customers(self, count: int, *, scope: str | None, customer_type: str, prefix: str) -> dict[str, Any]:
        """`count` new customers, as `POST /customers` would make them (external id and email
        `{prefix}-{n}`, their `customer_created` events sent), in one change: a fleet of 100,000
        is a second's work, not 100,000 requests. Answers `{created, first, last}`."""
        if customer_type not in CUSTOMER_TYPES:
            raise ApiError(400, f"customer_type must be one of {', '.join(CUSTOMER_TYPES)}")
        first = last = None
        with self._mutate():
            for n in range(count):
                made = self.create_customer(
                    schemas.CreateCustomerParams(customer_type=customer_type, email=f"{prefix}-{n}@example.com",
                                                 external_id=f"{prefix}-{n}"),
                    scope,
                )
                first, last = first or made["id"], made["id"]
        return {"created": count, "first": first, "last": last}

    # --- compliance actions (the control surface) ----------------------------------------------

    def sim_set_customer_status(
        self,
        customer_id: str,
        status: str,
        *,
        base_url: str,
        documents: Sequence[str] | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        if status not in CUSTOMER_STATUSES:
            raise ApiError(400, f"unknown customer status {status!r}")
        with self._mutate():
            customer = self.customers.get(customer_id)
            if customer is None:
                raise ApiError(404, "Customer not found")
            if customer.status == "Archived" and status != "Archived":
                raise ApiError(409, "Customer is archived: that is terminal")
            created: Identification | None = None
            if status == "IdentificationRequired":
                newest = self._newest(customer)
                if newest is not None and newest.status in NON_TERMINAL:
                    self._set_customer_status(customer, status)
                else:
                    # A step-up: Iron opens a hosted identification asking for what it needs.
                    created = self._new_identification(customer, "Link", base_url, created_by="iron")
                    created.review_comment = comment or "Additional information is required"
            elif status == "SigningsRequired":
                self._add_documents(customer, documents or DOCUMENT_NAMES, base_url)
                self._set_customer_status(customer, status)
            elif status == "Archived":
                self._archive(customer)
            elif status == "Active":
                for document in customer.outstanding_documents:
                    document.waived = True
                self._set_customer_status(customer, status)
            else:
                self._set_customer_status(customer, status)
            return {
                "customer": self.customer_json(customer),
                "identification": self.identification_json(created) if created else None,
                "required_signings": [d.to_api() for d in customer.outstanding_documents],
            }

    def sim_set_identification_status(
        self,
        identification_id: str,
        status: str,
        *,
        base_url: str,
        retry: bool = True,
        comment: str | None = None,
        expect: str | None = None,
    ) -> dict[str, Any]:
        if status not in IDENTIFICATION_STATUSES:
            raise ApiError(400, f"unknown identification status {status!r}")
        with self._mutate():
            identification = self._identification(identification_id)
            if expect is not None and identification.status != expect:
                raise ApiError(409, f"identification is {identification.status}, not {expect}")
            if identification.status == "Archived" and status != "Archived":
                raise ApiError(409, "Identification is archived: that is terminal")
            self._move_identification(identification, status, base_url=base_url, retry=retry, comment=comment)
            customer = self.customers[identification.customer_id]
            return {
                "identification": self.identification_json(identification),
                "customer": self.customer_json(customer),
            }

    # --- schema drift (the control surface) ----------------------------------------------------

    def sim_drift_customer(
        self,
        customer_id: str,
        *,
        status: str | None = None,
        requirement: tuple[str, str] | None = None,
        clear_requirement: bool = False,
    ) -> dict[str, Any]:
        """Put values on a customer that Iron's spec does not list: a status (set as is, with its
        webhook, and no other effect) and/or a requirement code in one bucket."""
        if status is not None and status in CUSTOMER_STATUSES:
            raise ApiError(400, f"{status!r} is a customer status the spec lists: use /status")
        if requirement is not None and requirement[1] in REQUIREMENT_CODES:
            raise ApiError(400, f"{requirement[1]!r} is a requirement code the spec lists")
        with self._mutate():
            customer = self.customers.get(customer_id)
            if customer is None:
                raise ApiError(404, "Customer not found")
            if customer.status == "Archived":
                raise ApiError(409, "Customer is archived: that is terminal")
            if status is not None:
                self._set_customer_status(customer, status)
            if requirement is not None:
                customer.drift_requirement = requirement
            elif clear_requirement:
                customer.drift_requirement = None
            return {"customer": self.customer_json(customer), "requirements": _requirements(customer, self._newest(customer))}

    def sim_drift_identification(
        self,
        identification_id: str,
        *,
        status: str | None = None,
        step: tuple[str, str, bool] | None = None,
    ) -> dict[str, Any]:
        """Put values on an identification that Iron's spec does not list: a status (set as is,
        with its webhook; the customer keeps its status) and/or a step `(name, result, retry)`."""
        if status is not None and status in IDENTIFICATION_STATUSES:
            raise ApiError(400, f"{status!r} is an identification status the spec lists: use /status")
        if step is not None and step[0] in PERSON_STEPS + BUSINESS_STEPS:
            raise ApiError(400, f"{step[0]!r} is a step the spec lists")
        with self._mutate():
            identification = self._identification(identification_id)
            if identification.status == "Archived":
                raise ApiError(409, "Identification is archived: that is terminal")
            if status is not None:
                self._set_identification_status(identification, status)
            if step is not None:
                name, result, retry = step
                steps = dict(identification.step_status or {})
                steps[name] = {"result": result, "retry": retry}
                identification.step_status = steps
                identification.updated_at = self._now()
            return {
                "identification": self.identification_json(identification),
                "customer": self.customer_json(self.customers[identification.customer_id]),
            }

    def identification_snapshot(self, identification_id: str) -> tuple[str, str | None] | None:
        """(status, customer external id) of an identification, for the autopilot."""
        with self._lock:
            identification = self.identifications.get(identification_id)
            if identification is None:
                return None
            customer = self.customers.get(identification.customer_id)
            return identification.status, customer.external_id if customer else None

    def dump(self) -> list[dict[str, Any]]:
        """Every customer with everything attached, for checks that look across the API."""
        with self._lock:
            out = []
            for customer in sorted(self.customers.values(), key=lambda c: c.seq):
                entry = self.customer_json(customer)
                entry["sub_partner_id"] = customer.sub_partner_id
                entry["identifications"] = [
                    dict(self.identification_json(self.identifications[i]), kind=self.identifications[i].kind,
                         created_by=self.identifications[i].created_by)
                    for i in customer.identification_ids
                ]
                entry["signings"] = [self.signings[s].to_api() for s in customer.signing_ids]
                entry["required_signings"] = [d.to_api() for d in customer.outstanding_documents]
                entry["documents"] = [
                    dict(d.to_api(), version=d.version, signing_id=d.signing_id, waived=d.waived)
                    for d in customer.documents
                ]
                out.append(entry)
            return out


# --- pure helpers ----------------------------------------------------------------------------------


def _hosted_kyc_url(base_url: str, identification_id: str) -> str:
    return f"{base_url.rstrip('/')}/hosted/kyc/{identification_id}"


def _steps(customer_type: str, result: str, *, retry: bool) -> dict[str, dict[str, Any]]:
    names = PERSON_STEPS if customer_type == "Person" else BUSINESS_STEPS
    return {name: {"result": result, "retry": retry} for name in names}


def _declined_steps(customer_type: str, *, retry: bool, comment: str | None) -> dict[str, dict[str, Any]]:
    steps = _steps(customer_type, "Approved", retry=False)
    failing = "identity" if customer_type == "Person" else "company_documents"
    steps[failing] = {
        "result": "Declined",
        "retry": retry,
        "comment": comment
        or ("The document photo is unreadable, please upload it again" if retry else "The document was rejected"),
    }
    return steps


def _requirement(code: str, identification_id: str | None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "reject_labels": [], "reject_reasons": [], "missing_questions": []}
    if identification_id is not None:
        item["identification_id"] = identification_id
    for key, value in extra.items():
        if value is not None:
            item[key] = value
    return item


def _step_code(step: str, category: str) -> str:
    """The requirement code of a step: the spec's, else one named after the step, the way Iron
    would add a code for a step it adds (never another step's code)."""
    if step == "questionnaire":
        return f"{category}_questionnaire"
    return STEP_CODES.get(step, f"{category}_{step}")


def _requirements(customer: Customer, newest: Identification | None) -> dict[str, Any]:
    """The four buckets, derived from the newest identification and the customer's status."""
    category = "kyc" if customer.customer_type == "Person" else "kyb"
    top = f"identification_{category}"
    buckets: dict[str, list[dict[str, Any]]] = {"complete": [], "pending": [], "missing": [], "issues": []}
    if newest is None:
        bucket = "issues" if customer.status == "Archived" else "missing"
        buckets[bucket].append(
            _requirement(top, None, description="No identification has been started", retryable=bucket == "missing")
        )
    else:
        status = newest.status
        steps = newest.step_status or {}
        if status == "Approved":
            buckets["complete"].append(_requirement(top, newest.id))
            for name in steps:
                buckets["complete"].append(_requirement(_step_code(name, category), newest.id))
        elif status in ("Processed", "PendingReview"):
            buckets["pending"].append(_requirement(top, newest.id, description="Awaiting compliance review"))
            buckets["pending"] += [_requirement(_step_code(name, category), newest.id) for name in steps]
        elif status == "Pending":
            missing_steps = [name for name, step in steps.items() if step.get("retry")]
            # What the customer has submitted already (the data a reliance token carried, say)
            # waits for the rest: pending, not missing.
            buckets["pending"] += [
                _requirement(_step_code(name, category), newest.id) for name in steps if name not in missing_steps
            ]
            if missing_steps:
                for name in missing_steps:
                    code = _step_code(name, category)
                    questions = (
                        [{"id": "sourceOfFunds", "title": "What is the source of your funds?", "section_id": "questionnaire"}]
                        if name == "questionnaire"
                        else []
                    )
                    buckets["missing"].append(
                        dict(
                            _requirement(code, newest.id, description=steps[name].get("comment"), retryable=True),
                            missing_questions=questions,
                        )
                    )
            else:
                buckets["missing"].append(
                    _requirement(top, newest.id, description="The customer has not completed the identification", retryable=True)
                )
        elif status == "Declined":
            for name, step in steps.items():
                code = _step_code(name, category)
                if step.get("result") != "Declined":
                    buckets["complete"].append(_requirement(code, newest.id))
                    continue
                label = "UNSATISFACTORY_PHOTOS" if step.get("retry") else "FORGERY"
                reason = {
                    "code": label,
                    "description": "The photos are unreadable" if step.get("retry") else "The document appears forged",
                }
                item = _requirement(code, newest.id, description=step.get("comment"), retryable=bool(step.get("retry")))
                item["reject_labels"] = [label]
                item["reject_reasons"] = [reason]
                buckets["missing" if step.get("retry") else "issues"].append(item)
        else:  # Expired or Archived
            archived = status == "Archived" or customer.status == "Archived"
            buckets["issues" if archived else "missing"].append(
                _requirement(top, newest.id, description=f"The identification is {status.lower()}", retryable=not archived)
            )
    if customer.drift_requirement is not None:
        bucket, code = customer.drift_requirement
        buckets[bucket].append(
            _requirement(code, newest.id if newest else None, description="A requirement Iron added",
                         retryable=bucket == "missing")
        )
    due = sorted({category} if buckets["pending"] or buckets["missing"] or buckets["issues"] else set())
    return {"requirements_due": due, **buckets}

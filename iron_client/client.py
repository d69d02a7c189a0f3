"""A typed async client for Iron's onboarding endpoints, usable without Temporal.

One method per onboarding operation of the spec. Creates take the caller's idempotency key
as an argument: the client never invents one, because only the caller knows which requests
are the same logical operation.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import email.utils
import math
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter

from iron_client.errors import (
    IronBadRequest,
    IronConflict,
    IronError,
    IronHasPendingIdentification,
    IronIdempotencyConflict,
    IronNotFound,
    IronRateLimited,
    IronServerError,
    IronUnauthorized,
    IronUnavailable,
)
from iron_client.models import (
    Customer,
    CustomerRequirements,
    CustomerStatus,
    CustomerType,
    CreateCustomerParams,
    Identification,
    IdentificationParams,
    IdentificationStatus,
    PagedCustomers,
    PagedIdentifications,
    PagedSignings,
    PagedWebhooks,
    PingWebhookParams,
    RequiredSigning,
    Signing,
    SigningCreateParams,
    SortOrder,
    UpdateCustomerParams,
    UpdatePendingIdentificationParams,
    UpdateWebhookParams,
    Webhook,
    WebhookEventType,
)
from iron_client.spec import PINNED_API_VERSION

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
DEFAULT_BASE_URL = "https://api.sandbox.iron.xyz/api"

M = TypeVar("M", bound=BaseModel)
_identification_params = TypeAdapter(IdentificationParams)
_required_signings = TypeAdapter(list[RequiredSigning])

def path_segment(value: str) -> str:
    """`value` as exactly one segment of a request path, whatever it holds: every reserved
    character percent-encoded, and a `.` or `..` segment too, which httpx (like any URL
    resolver) would otherwise drop or resolve against the path, sending the request to another
    route. An empty value would name another route as well (`/customers/` lists), so it is refused."""
    if not value:
        raise ValueError("an id in a request path must not be empty")
    encoded = urllib.parse.quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


# Called after every request with the operation's name (the client method) and its outcome:
# the HTTP status code, or None when no answer came (`timed_out` says whether it timed out).
ResponseObserver = Callable[[str, "int | None", bool], None]


@dataclass(frozen=True)
class IronSettings:
    """Where Iron is and how to authenticate: values, which a process takes from the settings
    it loaded (`runtime.settings.ProcessSettings.iron_settings()`, the one reader of `IRON_*`).

    `api_version` is sent as `X-API-Version` on every request: the version this client was
    written for (`iron_client.spec.PINNED_API_VERSION`) unless `IRON_API_VERSION` names another,
    so a change of Iron's default version never changes what a running fleet reads.
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    sub_partner_id: str | None = None
    api_version: str = PINNED_API_VERSION
    timeout_seconds: float = 20.0


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf" or "nan" parse as floats but are no delay anyone should wait for.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive: HTTP dates are always UTC
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - time.time())


class IronClient:
    """Async client for Iron's onboarding API.

    Use as an async context manager, or call `aclose()`. Pass `transport=` to run against an
    in-process app (httpx's ASGI transport) in tests.
    """

    def __init__(
        self,
        settings: IronSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self._scoped: dict[str, IronClient] = {}
        self._owns_http = http_client is None
        self._observers: list[ResponseObserver] = []
        self._http = http_client or httpx.AsyncClient(
            base_url=self.settings.base_url.rstrip("/"),
            timeout=self.settings.timeout_seconds,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def __repr__(self) -> str:  # the key stays out of reprs
        return f"IronClient(base_url={self.settings.base_url!r})"

    async def __aenter__(self) -> "IronClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def observe_responses(self, observer: ResponseObserver) -> None:
        """Call `observer(operation, status_code, timed_out)` after every request (metrics). An
        observer that raises is ignored: counting a request must never fail it. The same
        observer given twice is called once."""
        if observer not in self._observers:
            self._observers.append(observer)

    def _observed(self, operation: str, status_code: int | None, timed_out: bool = False) -> None:
        for observer in self._observers:
            try:
                observer(operation, status_code, timed_out)
            except Exception:  # pragma: no cover - defensive
                pass
    def scoped(self, sub_partner_id: str | None) -> "IronClient":
        """This client acting for one sub-partner: every request it makes carries
        `X-SUB-PARTNER-ID: sub_partner_id` (creates are made for that sub-partner, reads are
        filtered to it). None, or the client's own default, is this client itself. The views
        share this client's connection pool and are closed with it; one per sub-partner is
        kept, so a call per request costs no allocation."""
        if sub_partner_id is None or sub_partner_id == self.settings.sub_partner_id:
            return self
        view = self._scoped.get(sub_partner_id)
        if view is None:
            if not sub_partner_id.strip():
                raise ValueError("sub_partner_id must not be empty (None is the default scope)")
            # A shallow copy: the view shares the pool and anything else hooked onto this client.
            view = copy.copy(self)
            view.settings = dataclasses.replace(self.settings, sub_partner_id=sub_partner_id)
            view._owns_http = False
            view._scoped = {}
            self._scoped[sub_partner_id] = view
        return view

    # --- plumbing ------------------------------------------------------------------------------

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "X-API-Key": self.settings.api_key.get_secret_value(),
            "Accept": "application/json",
        }
        if self.settings.sub_partner_id:
            headers["X-SUB-PARTNER-ID"] = self.settings.sub_partner_id
        if self.settings.api_version:
            headers["X-API-Version"] = self.settings.api_version
        if idempotency_key is not None:
            if not idempotency_key:
                raise ValueError("idempotency_key must not be empty")
            headers["IDEMPOTENCY-KEY"] = idempotency_key
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Sequence[tuple[str, Any]] | None = None,
        idempotency_key: str | None = None,
        operation: str = "other",
    ) -> Any:
        headers = self._headers(idempotency_key)
        content: bytes | None = None
        if body is not None:
            headers["Content-Type"] = JSON_CONTENT_TYPE
            content = body.model_dump_json(exclude_none=True).encode()
        try:
            response = await self._http.request(
                method, path, content=content, headers=headers, params=list(params or [])
            )
        except httpx.TimeoutException as exc:
            self._observed(operation, None, timed_out=True)
            raise IronUnavailable(
                f"timed out ({type(exc).__name__})", method=method, path=path
            ) from None
        except httpx.UnsupportedProtocol:
            self._observed(operation, None)
            # A base url without http(s):// never starts working on a retry: say so.
            raise IronBadRequest(
                "the Iron base url is not an http(s) URL (check IRON_BASE_URL)", method=method, path=path
            ) from None
        except httpx.RequestError as exc:
            self._observed(operation, None)
            # Connection refused or reset, the response cut off or undecodable: no usable answer.
            raise IronUnavailable(
                f"no response ({type(exc).__name__})", method=method, path=path
            ) from None
        self._observed(operation, response.status_code)
        if response.is_success:
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise IronServerError(
                    "response is not JSON", status_code=response.status_code, method=method, path=path
                ) from None
        raise self._error_for(response, method, path)

    @staticmethod
    def _error_for(response: httpx.Response, method: str, path: str) -> IronError:
        status = response.status_code
        text = response.text
        message = text.strip() or response.reason_phrase
        trace_id = None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "message" in payload:
            message = str(payload["message"])
            trace_id = payload.get("trace_id")
        elif isinstance(payload, str):
            message = payload
        kwargs = dict(status_code=status, method=method, path=path, body=text[:2000], trace_id=trace_id)
        if status >= 500:
            return IronServerError(message, **kwargs)
        if status == 429:
            return IronRateLimited(
                message, retry_after=_retry_after_seconds(response.headers.get("Retry-After")), **kwargs
            )
        if status in (401, 403):
            return IronUnauthorized(message, **kwargs)
        if status == 404:
            return IronNotFound(message, **kwargs)
        if status == 409:
            lowered = message.lower()
            if "pending identification" in lowered:
                return IronHasPendingIdentification(message, **kwargs)
            if "idempotency" in lowered:
                return IronIdempotencyConflict(message, **kwargs)
            return IronConflict(message, **kwargs)
        if status in (400, 422) or 400 <= status < 500:
            return IronBadRequest(message, **kwargs)
        return IronServerError(message, **kwargs)

    # --- customers -----------------------------------------------------------------------------

    async def create_customer(
        self,
        *,
        customer_type: CustomerType | str,
        email: str,
        idempotency_key: str,
        name: str | None = None,
        external_id: str | None = None,
    ) -> Customer:
        body = CreateCustomerParams(
            customer_type=CustomerType(customer_type), email=email, name=name, external_id=external_id
        )
        data = await self._request("POST", "/customers", body=body, idempotency_key=idempotency_key, operation="create_customer")
        return Customer.model_validate(data)

    async def get_customer(self, customer_id: str) -> Customer:
        return Customer.model_validate(await self._request("GET", f"/customers/{path_segment(customer_id)}", operation="get_customer"))

    async def get_customer_by_external_id(self, external_id: str) -> Customer:
        path = f"/customers/{path_segment(external_id)}/external"
        return Customer.model_validate(await self._request("GET", path, operation="get_customer_by_external_id"))

    async def find_customer_by_external_id(self, external_id: str) -> Customer | None:
        try:
            return await self.get_customer_by_external_id(external_id)
        except IronNotFound:
            return None

    async def list_customers(
        self,
        *,
        cursor: str | None = None,
        page_size: int | None = None,
        search_term: str | None = None,
        status: Sequence[CustomerStatus | str] = (),
        identification_status: Sequence[IdentificationStatus | str] = (),
        customer_type: Sequence[CustomerType | str] = (),
        sort_order: SortOrder | str | None = None,
    ) -> PagedCustomers:
        params: list[tuple[str, Any]] = []
        if cursor:
            params.append(("cursor", cursor))
        if page_size is not None:
            params.append(("page_size", page_size))
        if search_term:
            params.append(("search_term", search_term))
        params += [("status", CustomerStatus(s).value) for s in status]
        params += [("identification_status", IdentificationStatus(s).value) for s in identification_status]
        params += [("customer_type", CustomerType(s).value) for s in customer_type]
        if sort_order:
            params.append(("sort_order", SortOrder(sort_order).value))
        return PagedCustomers.model_validate(await self._request("GET", "/customers", params=params, operation="list_customers"))

    async def iter_customers(self, *, page_size: int = 100, **filters: Any):
        """Every customer matching the filters, following cursors."""
        cursor = None
        while True:
            page = await self.list_customers(cursor=cursor, page_size=page_size, **filters)
            for customer in page.items:
                yield customer
            if not page.cursor or not page.items:
                return
            cursor = page.cursor

    async def update_customer(
        self, customer_id: str, *, email: str, external_id: str | None = None
    ) -> Customer | None:
        data = await self._request(
            "PUT", f"/customers/{path_segment(customer_id)}", body=UpdateCustomerParams(email=email, external_id=external_id),
            operation="update_customer",
        )
        return Customer.model_validate(data) if data else None

    async def archive_customer(self, customer_id: str) -> Customer:
        return Customer.model_validate(await self._request("PUT", f"/customers/{path_segment(customer_id)}/archive", operation="archive_customer"))

    async def get_customer_requirements(self, customer_id: str) -> CustomerRequirements:
        data = await self._request("GET", f"/customers/{path_segment(customer_id)}/requirements", operation="get_customer_requirements")
        return CustomerRequirements.model_validate(data)

    # --- identifications -----------------------------------------------------------------------

    async def create_identification(
        self, customer_id: str, params: IdentificationParams | dict[str, Any], *, idempotency_key: str
    ) -> Identification:
        body = _identification_params.validate_python(params) if isinstance(params, dict) else params
        data = await self._request(
            "POST", f"/customers/{path_segment(customer_id)}/identifications/v2", body=body, idempotency_key=idempotency_key,
            operation="create_identification",
        )
        return Identification.model_validate(data)

    async def get_identification(self, identification_id: str) -> Identification:
        data = await self._request("GET", f"/identifications/{path_segment(identification_id)}", operation="get_identification")
        return Identification.model_validate(data)

    async def list_identifications(
        self, customer_id: str, *, cursor: str | None = None, page_size: int | None = None
    ) -> PagedIdentifications:
        params: list[tuple[str, Any]] = []
        if cursor:
            params.append(("cursor", cursor))
        if page_size is not None:
            params.append(("page_size", page_size))
        data = await self._request("GET", f"/customers/{path_segment(customer_id)}/identifications", params=params, operation="list_identifications")
        return PagedIdentifications.model_validate(data)

    async def all_identifications(self, customer_id: str) -> list[Identification]:
        """Every identification of a customer, following cursors, newest first."""
        found: list[Identification] = []
        cursor = None
        while True:
            page = await self.list_identifications(customer_id, cursor=cursor, page_size=100)
            found.extend(page.items)
            if not page.cursor or not page.items:
                break
            cursor = page.cursor
        return sorted(found, key=lambda i: i.created_at, reverse=True)

    async def archive_identification(self, identification_id: str) -> Identification:
        data = await self._request("PUT", f"/identifications/{path_segment(identification_id)}/archive", operation="archive_identification")
        return Identification.model_validate(data)

    async def decide_sandbox_identification(
        self, identification_id: str, *, approved: bool, idempotency_key: str
    ) -> Identification:
        """Sandbox only: approve or decline a pending identification."""
        data = await self._request(
            "POST",
            f"/sandbox/identification/{path_segment(identification_id)}",
            body=UpdatePendingIdentificationParams(approved=approved),
            idempotency_key=idempotency_key,
            operation="decide_sandbox_identification",
        )
        return Identification.model_validate(data)

    # --- signings ------------------------------------------------------------------------------

    async def get_required_signings(self, customer_id: str) -> list[RequiredSigning]:
        data = await self._request("GET", f"/customers/{path_segment(customer_id)}/required-signings", operation="get_required_signings")
        return _required_signings.validate_python(data or [])

    async def create_signing(self, customer_id: str, *, content_id: str, idempotency_key: str) -> Signing:
        data = await self._request(
            "POST",
            f"/customers/{path_segment(customer_id)}/signings",
            body=SigningCreateParams(signed=True, content_id=content_id),
            idempotency_key=idempotency_key,
            operation="create_signing",
        )
        return Signing.model_validate(data)

    async def list_signings(
        self, customer_id: str, *, cursor: str | None = None, page_size: int | None = None
    ) -> PagedSignings:
        params: list[tuple[str, Any]] = []
        if cursor:
            params.append(("cursor", cursor))
        if page_size is not None:
            params.append(("page_size", page_size))
        data = await self._request("GET", f"/customers/{path_segment(customer_id)}/signings", params=params, operation="list_signings")
        return PagedSignings.model_validate(data)

    # --- webhooks ------------------------------------------------------------------------------

    async def list_webhooks(self, *, cursor: str | None = None, page_size: int | None = None) -> PagedWebhooks:
        params: list[tuple[str, Any]] = []
        if cursor:
            params.append(("cursor", cursor))
        if page_size is not None:
            params.append(("page_size", page_size))
        return PagedWebhooks.model_validate(await self._request("GET", "/webhooks", params=params, operation="list_webhooks"))

    async def all_webhooks(self) -> list[Webhook]:
        """Every webhook of this partner, following cursors."""
        found: list[Webhook] = []
        cursor = None
        while True:
            page = await self.list_webhooks(cursor=cursor, page_size=100)
            found.extend(page.items)
            if not page.cursor or not page.items:
                return found
            cursor = page.cursor

    async def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        enabled: bool | None = None,
        topics: Sequence[WebhookEventType | str] | None = None,
        label: str | None = None,
    ) -> Webhook:
        """Change the given fields of a webhook (the others stay as they are)."""
        body = UpdateWebhookParams(
            url=url,
            enabled=enabled,
            topics=[WebhookEventType(t) for t in topics] if topics is not None else None,
            label=label,
        )
        data = await self._request("PATCH", f"/webhooks/{path_segment(webhook_id)}", body=body, operation="update_webhook")
        return Webhook.model_validate(data)

    async def ping_webhook(self, webhook_id: str, *, customer_id: str, idempotency_key: str) -> bool:
        """Ask Iron to send a signed `ping` to the webhook, naming `customer_id` in it."""
        data = await self._request(
            "POST",
            f"/webhooks/{path_segment(webhook_id)}/ping",
            body=PingWebhookParams(customer_id=customer_id),
            idempotency_key=idempotency_key,
            operation="ping_webhook",
        )
        return bool(data)


__all__ = ["IronClient", "IronSettings", "JSON_CONTENT_TYPE"]

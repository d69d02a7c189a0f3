"""Every error the HTTP API answers, as an RFC 9457 problem document
(`application/problem+json`): a stable `type` per kind of error, the HTTP `status`, a `title`
that names the kind and a `detail` about this occurrence. Never a stack trace: an error nobody
anticipated is logged with its traceback and answered 500 `internal` with nothing of it.

`explain(exc)` turns what the library (`operations/onboardings.py`), Temporal and Iron raise
into the problem a caller acts on; every input the API refuses is a 4xx from it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.configuration import ConfigurationError
from contracts.quoting import message_line
from iron_client import IronError
from iron_client.errors import IronUnauthorized
from operations.onboardings import BadInput, OnboardingNotFound, StartDataDiffers, UnknownIronCustomer
from operations.state_access import NoStateView, OnboardingClosed, WaitTimedOut

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:iron-onboarding:problem:"

# type -> (status, title): the catalogue docs/http-api.md lists.
CATALOGUE: dict[str, tuple[int, str]] = {
    "bad-input": (400, "The request is not one the API can use"),
    "unauthorized": (401, "No valid API key"),
    "forbidden-scope": (403, "This key starts onboardings of its own sub-partner only"),
    "not-found": (404, "No such onboarding"),
    "iron-customer-not-found": (404, "Iron has no such customer"),
    "route-not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed on this resource"),
    "wait-timed-out": (408, "The onboarding did not get there in time"),
    "start-data-differs": (409, "Already running with other start data"),
    "rejected": (409, "The onboarding refused the request"),
    "onboarding-closed": (409, "The onboarding ended without getting there"),
    "no-state-view": (409, "The onboarding keeps no state view yet"),
    "body-timeout": (408, "The request body did not arrive in time"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "The request body must be application/json"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used with another request"),
    "too-many-requests": (429, "Too many requests for this onboarding at once"),
    "internal": (500, "Internal error"),
    "iron-refused": (502, "Iron refused the request"),
    "unavailable": (503, "A service the API needs is unavailable"),
    "not-ready": (503, "Not ready"),
    "misconfigured": (503, "The API's configuration does not work"),
}


class Problem(Exception):
    """An answer as a problem document; `extensions` are members beside the standard ones."""

    def __init__(self, kind: str, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status, self.title = CATALOGUE[kind]
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def document(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE_PREFIX + self.kind, "title": self.title, "status": self.status,
                                "detail": self.detail}
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def bad_input(field: str, rule: str) -> Problem:
    return Problem("bad-input", f"{field}: {rule}", errors=[{"field": field, "rule": rule}])


def explain(exc: BaseException) -> Problem | None:
    """The problem for an error the library, Temporal or Iron raised; None when it is none of
    theirs (a defect: the caller answers 500 `internal` and logs it)."""
    from data_protection.documents import DocumentStoreUnavailable
    from data_protection.keys import DataProtectionError

    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, BadInput):
        return bad_input(exc.flag, message_line(exc.rule))
    if isinstance(exc, WaitTimedOut):  # a TimeoutError: before the OSErrors
        return Problem("wait-timed-out", str(exc), state=_view(exc.state))
    if isinstance(exc, OnboardingClosed):
        return Problem("onboarding-closed", str(exc), state=_view(exc.state))
    if isinstance(exc, NoStateView):
        return Problem("no-state-view", message_line(str(exc)))
    if isinstance(exc, OnboardingNotFound):
        return Problem("not-found", f"no onboarding for external id {exc.external_id!r} in this key's scope"
                       if exc.sub_partner_id is None else
                       f"no onboarding for external id {exc.external_id!r} of sub-partner {exc.sub_partner_id}")
    if isinstance(exc, UnknownIronCustomer):
        return Problem("iron-customer-not-found", str(exc))
    if isinstance(exc, StartDataDiffers):
        return Problem(
            "start-data-differs",
            f"already running, started with a different {', '.join(exc.fields)}; nothing changed "
            "(PATCH corrects it while its Iron customer does not exist)",
            fields=list(exc.fields),
        )
    if isinstance(exc, ValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "rule": message_line(e["msg"])}
            for e in exc.errors(include_input=False, include_url=False)
        ]
        return Problem("bad-input", "; ".join(f"{e['field']}: {e['rule']}" for e in errors[:5]), errors=errors)
    if isinstance(exc, WorkflowUpdateFailedError):
        reason = message_line(getattr(exc.cause, "message", None) or str(exc.cause or exc))
        if reason == "Encoded failure":  # the codec could not be applied: the keys are not the worker's
            return Problem("misconfigured", "the workflow's reason is encrypted with keys this API does not have")
        return Problem("rejected", reason)
    if isinstance(exc, RPCError):
        return _rpc(exc)
    if isinstance(exc, (ConfigurationError, DataProtectionError)):
        return Problem("misconfigured", "the API cannot read or write this onboarding's data with its configuration")
    if isinstance(exc, DocumentStoreUnavailable):
        return Problem("unavailable", "the document store does not answer", headers={"Retry-After": "5"})
    if isinstance(exc, IronUnauthorized):
        return Problem("misconfigured", "Iron refused the API's IRON_API_KEY")
    if isinstance(exc, IronError):
        if exc.retryable:
            return Problem("unavailable", "Iron does not answer", headers={"Retry-After": "5"})
        return Problem("iron-refused", message_line(str(exc)))
    if isinstance(exc, RuntimeError) and "connect" in str(exc).lower():
        return Problem("unavailable", "Temporal does not answer", headers={"Retry-After": "5"})
    if isinstance(exc, (OSError, TimeoutError)):
        return Problem("unavailable", "Temporal does not answer", headers={"Retry-After": "5"})
    return None


def _rpc(exc: RPCError) -> Problem:
    message = message_line(exc.message or "")
    if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return Problem("too-many-requests", f"Temporal refused: {message}", headers={"Retry-After": "1"})
    if exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.ALREADY_EXISTS):
        return Problem("rejected", message)
    if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.NOT_FOUND):
        return Problem("misconfigured", f"Temporal refused the API's credentials or namespace: {message}")
    return Problem("unavailable", f"Temporal: {message}", headers={"Retry-After": "5"})


def _view(state: Any) -> Any:
    from onboarding_api.models import Onboarding

    return Onboarding.of(state).model_dump(mode="json") if state is not None else None

"""What can go wrong when talking to Iron, sorted by what the caller should do about it.

    IronError
    ├── IronRetryableError        try the same request again later (same idempotency key)
    │   ├── IronServerError         5xx
    │   ├── IronRateLimited         429, with `retry_after` when Iron sent one
    │   └── IronUnavailable         timeout, connection refused or reset, response lost
    └── IronFinalError            the same request will fail the same way: a person must act
        ├── IronBadRequest          400 / 422
        ├── IronUnauthorized        401 / 403
        ├── IronNotFound            404
        └── IronConflict            409
            ├── IronIdempotencyConflict     same key, different body
            └── IronHasPendingIdentification  a pending identification already exists

Texts never contain the API key: the client builds them from the method, path, status and
Iron's answer only.
"""

from __future__ import annotations


class IronError(Exception):
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        body: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.method = method
        self.path = path
        self.body = body
        self.trace_id = trace_id

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method else "Iron"
        code = f" -> {self.status_code}" if self.status_code is not None else ""
        trace = f" (trace_id {self.trace_id})" if self.trace_id else ""
        return f"{where}{code}: {self.message}{trace}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class IronRetryableError(IronError):
    retryable = True


class IronServerError(IronRetryableError):
    pass


class IronRateLimited(IronRetryableError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class IronUnavailable(IronRetryableError):
    """No answer from Iron. The request may or may not have taken effect: retry with the same
    idempotency key, never a new one."""


class IronFinalError(IronError):
    retryable = False


class IronBadRequest(IronFinalError):
    pass


class IronUnauthorized(IronFinalError):
    pass


class IronNotFound(IronFinalError):
    pass


class IronConflict(IronFinalError):
    pass


class IronIdempotencyConflict(IronConflict):
    pass


class IronHasPendingIdentification(IronConflict):
    pass

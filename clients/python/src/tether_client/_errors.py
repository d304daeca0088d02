"""The SDK's exception tree.

Only *direct* calls raise (state, goals, memory). Logging calls (``log_*``, spans,
sessions, sub-agents, ``end``) never raise for network reasons: they are queued,
spooled and retried in the background.

::

    TetherError                         base class of everything the SDK raises
    ├── ConfigError                     bad argument or environment variable
    ├── ClientClosedError               the client was closed
    ├── ServerUnreachableError          connect/read failure or timeout after retries
    │   └── CircuitOpenError            the breaker is open: no request was sent
    └── APIError                        the server answered with an error envelope
        ├── AuthenticationError         401 / 403
        ├── NotFoundError               404
        ├── ConflictError               409
        ├── PreconditionFailedError     412 (If-Match version mismatch)
        ├── PayloadTooLargeError        413
        ├── ValidationError             422
        ├── RateLimitedError            429 (after retries honouring Retry-After)
        └── ServerError                 5xx (after retries)
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """Base class of every exception the SDK raises."""


class ConfigError(TetherError, ValueError):
    """An argument or ``TETHER_*`` environment variable is invalid."""


class ClientClosedError(TetherError):
    """A direct call was made on a closed client."""


class ServerUnreachableError(TetherError):
    """The server could not be reached (connection refused, DNS, timeout).

    Raised by direct calls after their retries are exhausted. Logging calls never raise
    this: their events stay in the spool until the server answers.
    """


class CircuitOpenError(ServerUnreachableError):
    """The circuit breaker is open, so the call failed fast without a request.

    Attributes:
        retry_in: Seconds until the breaker lets the next probe through.
    """

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class APIError(TetherError):
    """The server answered with an error envelope.

    Attributes:
        status: HTTP status code.
        code: The envelope's ``error.code`` (e.g. ``"not_found"``), or ``"http_<status>"``
            when the body was not an envelope.
        message: The envelope's ``error.message``.
        details: The envelope's ``error.details`` (field errors for 422), or ``None``.
        correlation_id: The request's ``X-Correlation-ID``, to find it in server logs.
        retry_after: The response's ``Retry-After`` in seconds, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: Any = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.retry_after = retry_after
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.correlation_id = correlation_id


class AuthenticationError(APIError):
    """401 or 403: missing, wrong or under-scoped API key."""


class NotFoundError(APIError):
    """404: unknown id (or another tenant's)."""


class ConflictError(APIError):
    """409: the same id was created with a different body."""


class PreconditionFailedError(APIError):
    """412: ``If-Match`` named a state version that is no longer current."""


class PayloadTooLargeError(APIError):
    """413: the request body is over the server's size limit."""


class ValidationError(APIError):
    """422: bad input; ``details`` holds the field errors."""


class RateLimitedError(APIError):
    """429: still rate limited after the retries."""


class ServerError(APIError):
    """5xx: still failing after the retries."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitedError,
}


def error_for_status(status: int) -> type[APIError]:
    """Return the :class:`APIError` subclass for an HTTP status code."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)

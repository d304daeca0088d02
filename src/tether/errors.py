"""Tether's exception tree. Services raise these; the server maps each to a status code.

::

    TetherError                     500 internal
    ├── Unauthorized                401 unauthorized       (no key, unknown, revoked, expired)
    ├── Forbidden                   403 forbidden          (the key's scope is too small)
    ├── InvalidInput                422 invalid_input      (bad field, unknown kind)
    ├── NotFound                    404 not_found          (unknown or other tenant's id)
    ├── Conflict                    409 conflict           (same id, different body)
    ├── PreconditionFailed          412 precondition_failed (If-Match version mismatch)
    ├── PayloadTooLarge             413 payload_too_large  (body over max_body_bytes)
    ├── RateLimited                 429 rate_limited       (the key's budget is spent)
    └── Unavailable                 503 unavailable        (store or embedder not ready)
        └── EmbedderUnavailable     503 embedder_unavailable
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """Base class. ``code`` is the envelope's ``error.code``; ``status`` the HTTP status."""

    code = "internal"
    status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthorized(TetherError):
    """No valid API key: missing (and not local mode), unknown, revoked or expired."""

    code = "unauthorized"
    status = 401


class Forbidden(TetherError):
    """A valid key whose scope does not allow the route (another tenant's resources are
    a 404, never this: a 403 would tell that they exist)."""

    code = "forbidden"
    status = 403


class RateLimited(TetherError):
    """The key's request budget is spent; ``retry_after_s`` says when it has one again."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_s: float, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class InvalidInput(TetherError):
    code = "invalid_input"
    status = 422


class NotFound(TetherError):
    code = "not_found"
    status = 404


class Conflict(TetherError):
    code = "conflict"
    status = 409


class PreconditionFailed(TetherError):
    code = "precondition_failed"
    status = 412


class PayloadTooLarge(TetherError):
    code = "payload_too_large"
    status = 413


class Unavailable(TetherError):
    code = "unavailable"
    status = 503


class EmbedderUnavailable(Unavailable):
    code = "embedder_unavailable"

"""Tether's exception tree. Services raise these; the server maps each to a status code.

::

    TetherError                     500 internal
    ├── InvalidInput                422 invalid_input      (bad field, unknown kind)
    ├── NotFound                    404 not_found          (unknown or other tenant's id)
    ├── Conflict                    409 conflict           (same id, different body)
    ├── PreconditionFailed          412 precondition_failed (If-Match version mismatch)
    ├── PayloadTooLarge             413 payload_too_large  (body over max_body_bytes)
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

"""Dead letters: logged items the server refused, kept with the server's answer.

A *dead letter* is the smallest self-contained ``POST /v1/events/batch`` body the
sender could cut around an item the server keeps refusing (one event, one session end,
or one session descriptor nothing else needs; see :func:`~._batch.split`), stored with
the server's error envelope. The batcher moves it from the spool's ``batches`` table to
its ``dead_letters`` table in one SQLite transaction (:meth:`~._spool.Spool.bury`), so
one bad event can no longer block every event logged after it, and it is never lost
silently: :meth:`Client.dead_letters` lists them, :meth:`Client.retry_dead_letters`
resends them (after fixing the server or the data), :meth:`Client.drop_dead_letters`
deletes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ._api import unwrap
from ._errors import APIError


@dataclass(frozen=True, slots=True)
class Rejection:
    """The server's answer to a refused body (its error envelope, flattened).

    Attributes:
        status: HTTP status code (e.g. 422).
        code: The envelope's ``error.code`` (e.g. ``"validation_error"``), or
            ``"http_<status>"`` when the body was not an envelope.
        message: The envelope's ``error.message``.
        details: The envelope's ``error.details`` (field errors for 422), or ``None``.
        correlation_id: The request's correlation id, to find it in the server's logs.
    """

    status: int
    code: str
    message: str
    details: Any
    correlation_id: str | None

    @classmethod
    def of(cls, response: httpx.Response) -> Rejection:
        """Read a non-2xx response the way direct calls do (:func:`~._api.unwrap`)."""
        try:
            unwrap(response)
        except APIError as exc:
            return cls(exc.status, exc.code, exc.message, exc.details, exc.correlation_id)
        return cls(response.status_code, f"http_{response.status_code}", "", None, None)

    def summary(self) -> str:
        """``"<status> <code>: <message>"``, for log lines."""
        return f"{self.status} {self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One item the server refused, as returned by :meth:`Client.dead_letters`.

    Attributes:
        id: Row id in the spool file's ``dead_letters`` table (for ``ids=`` arguments).
        created_at: When it was dead-lettered (UTC).
        session_id: Session of the event (or of the end or descriptor), or ``None``.
        kind: The event's kind (``"action"``, ...), or ``None`` when the refused item
            is a session end or a session descriptor rather than an event.
        idempotency_key: The event's idempotency key, or ``None`` (no event).
        status: HTTP status of the server's answer (e.g. 422; 500 only after the
            server answered it repeatedly while an empty write succeeded).
        code: The server's ``error.code`` (e.g. ``"validation_error"``).
        message: The server's ``error.message``.
        details: The server's ``error.details`` (for 422 the field errors), or ``None``.
        correlation_id: Correlation id of the refused request, to find it in the
            server's logs, or ``None``.
        body: The refused request body, self-contained (``{"sessions", "events",
            "ends"}``); :meth:`Client.retry_dead_letters` sends exactly this again.
    """

    id: int
    created_at: datetime
    session_id: str | None
    kind: str | None
    idempotency_key: str | None
    status: int
    code: str
    message: str
    details: Any
    correlation_id: str | None
    body: dict[str, Any]

    @property
    def event(self) -> dict[str, Any] | None:
        """The refused event in its wire form, or ``None`` when the body has none."""
        events = self.body.get("events") or []
        return dict(events[0]) if events else None


def subject_of(body: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """``(session_id, kind, idempotency_key)`` of the one item in a leaf body.

    Leaf bodies hold one event, or one end, or one session descriptor (and the
    descriptors it needs); the event wins, then the end, then the last descriptor.
    """
    for event in body.get("events") or []:
        return event.get("session_id"), event.get("kind"), event.get("idempotency_key")
    for end in body.get("ends") or []:
        return end.get("session_id"), None, None
    sessions = body.get("sessions") or []
    return (sessions[-1].get("id") if sessions else None), None, None


def details_json(details: Any) -> str | None:
    """``details`` as JSON text for storage (``None`` stays ``NULL``)."""
    return None if details is None else json.dumps(details, default=repr)

"""Following a session live: the server's SSE stream, reconnected by cursor.

``GET /v1/sessions/{id}/stream`` sends each stored event after ``Last-Event-ID`` (the
``seq`` of the last event received), backlog first, then live. The iterators here keep
that cursor and reconnect with it whenever the stream breaks (a dropped connection, a
restarted server, a proxy timeout, the server's ``overflow`` message for a reader that
fell behind), waiting with the client's backoff (``retry_base`` doubling up to
``retry_max``, ``Retry-After`` honoured) between attempts. So the caller sees every event
once and in order, however often the connection drops. Errors that retrying cannot fix
(``404`` for an unknown session, ``401``/``403``) are raised.

``GET /v1/sessions/stream`` (the tenant's session summaries, ``event: session.created``
and so on, ``id`` = ``updated_at`` in ms) is followed the same way
(:meth:`StreamState.sessions`); it is an upsert feed, so a reconnect may repeat a summary.

The event-stream parsing follows the WHATWG HTML standard, §9.2 "Server-sent events":
lines ``field: value``; a blank line ends a message; lines starting with ``:`` are
comments (the server's keep-alive pings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import httpx

from ._api import unwrap
from ._errors import APIError
from ._retry import backoff_delay, retry_after_of

__all__ = ["SSEParser", "StreamState"]

#: Seconds without a byte after which a stream is presumed dead (the server sends a
#: keep-alive comment every 15 s).
READ_TIMEOUT_S: Final = 45.0
#: Statuses worth reconnecting after (the server or something in front of it is away).
_TRANSIENT: Final = frozenset({408, 429, 502, 503, 504})
#: The sessions feed's message names (``GET /v1/sessions/stream``).
SESSION_CHANGES: Final = frozenset(
    {"session.created", "session.updated", "session.ended", "session.deleted"}
)


@dataclass(slots=True)
class SSEParser:
    """Turns event-stream lines into ``(event, id, data)`` messages."""

    event: str = ""
    id: str | None = None
    data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, str | None, str] | None:
        """One line (without its end); a finished message when ``line`` is blank."""
        if not line:
            if not self.data and not self.event:
                return None
            message = (self.event or "message", self.id, "\n".join(self.data))
            self.event, self.data = "", []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.id = value
        return None


@dataclass(slots=True)
class StreamState:
    """A stream's cursor and reconnect bookkeeping (shared by the sync and async
    iterators).

    Attributes:
        path: The SSE route.
        cursor: The last ``id`` received (``None``: none yet; sent as ``Last-Event-ID``).
        kinds: Message ``event`` names that carry an item; others are skipped.
        wrap: ``True`` for the sessions feed: items are ``{"change", "session"}``;
            ``False``: the message's data is the item (a session's events).
    """

    path: str
    cursor: int | None
    retry_base: float
    retry_max: float
    kinds: frozenset[str] = frozenset({"event"})
    wrap: bool = False
    failures: int = 0

    @classmethod
    def session(
        cls, session_id: str, after: int, retry_base: float, retry_max: float
    ) -> StreamState:
        """One session's events: ``GET /v1/sessions/{id}/stream``."""
        return cls(
            f"/v1/sessions/{quote(session_id, safe='')}/stream", after, retry_base, retry_max
        )

    @classmethod
    def sessions(cls, after: int | None, retry_base: float, retry_max: float) -> StreamState:
        """The tenant's session summaries: ``GET /v1/sessions/stream``."""
        return cls("/v1/sessions/stream", after, retry_base, retry_max, SESSION_CHANGES, True)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.cursor is not None:
            headers["Last-Event-ID"] = str(self.cursor)
        return headers

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        return httpx.Timeout(base.connect, read=READ_TIMEOUT_S, write=base.write, pool=base.pool)

    def opened(self, response: httpx.Response) -> float | None:
        """Check the answer: ``None`` to read the stream, else seconds to wait before
        reconnecting.

        Raises:
            APIError: a status retrying cannot fix (404, 401, 403, 422, ...).
        """
        if response.is_success:
            return None
        response.read()
        if response.status_code in _TRANSIENT:
            return self.backoff(retry_after_of(response))
        unwrap(response)  # raises the error the status maps to
        raise APIError(  # a 1xx/3xx: nothing to read
            "unexpected status", status=response.status_code, code=f"http_{response.status_code}"
        )

    def message(self, message: tuple[str, str | None, str]) -> dict[str, Any] | None:
        """The item of a message (the cursor moves past it), or ``None`` (an ``overflow``
        or an unknown message: the caller reconnects on overflow, see :meth:`overflowed`)."""
        kind, ident, data = message
        if kind not in self.kinds or ident is None:
            return None
        self.cursor = int(ident)
        self.failures = 0
        item: dict[str, Any] = json.loads(data)
        if self.wrap:
            return {"change": kind.removeprefix("session."), "session": item}
        return item

    @staticmethod
    def overflowed(message: tuple[str, str | None, str]) -> bool:
        return message[0] == "overflow"

    def backoff(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt (exponential, jittered)."""
        self.failures += 1
        return backoff_delay(
            self.failures, base=self.retry_base, cap=self.retry_max, retry_after=retry_after
        )

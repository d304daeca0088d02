"""Analytics reads, once for every backend: event samples for diagnostics and the
cross-session event query (``GET /v1/events``).

The backends' SQL (``store/<backend>/analytics.py``, :class:`AnalyticsSql`) selects rows;
this module turns them into :class:`~tether.store.base.EventSample` and
:class:`~tether.domain.records.Event` records, and :class:`AnalyticsStore` adds the
contract's analytics methods to a backend's store class (``SQLiteStore``,
``PostgresStore``) over its engine's :meth:`read`.

Indexes (SQLite migration ``0009_event_queries``, PostgreSQL ``0004_event_queries``):
``events (tenant_id, pk)`` for the query's cursor and ``events (tenant_id,
coalesce(started_at, created_at))`` for windows of event time; the SQL spells the
expression exactly so, or the planners would not match it to the index.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol, TypeVar

import orjson

from tether.domain.records import Event
from tether.errors import NotFound
from tether.store.base import EventQuery, EventSample, Store
from tether.store.common import take_page
from tether.store.rows import Row, event_record

__all__ = ["MAX_ERROR_CHARS", "AnalyticsSql", "AnalyticsStore", "error_message", "sample_of"]

#: The longest error message a sample carries (characters); longer ones are cut with "…".
MAX_ERROR_CHARS: Final = 500

#: The columns a sample row has, in this order (the backends' ``sample_rows`` select them).
SAMPLE_COLUMNS: Final = (
    "kind",
    "name",
    "status",
    "at",
    "started_at",
    "ended_at",
    "duration_ms",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "session_id",
    "seq",
    "span_id",
    "output",  # NULL unless the event is an error (payloads are read for errors only)
    "attributes",  # likewise
)


class AnalyticsSql(Protocol):
    """The SQL a backend supplies (``store/<backend>/analytics.py``)."""

    def session_pk(self, conn: Any, tenant_id: str, session_id: str) -> int | None:
        """The session's row key, or ``None``."""

    def sample_rows(
        self,
        conn: Any,
        tenant_id: str,
        *,
        since_ms: int | None,
        until_ms: int | None,
        session_pk: int | None,
        agent: str | None,
        kinds: Sequence[str],
        names: Sequence[str],
        limit: int,
    ) -> Iterable[Sequence[Any]]:
        """Rows of :data:`SAMPLE_COLUMNS`, newest event time first, at most ``limit``."""

    def head(self, conn: Any, tenant_id: str) -> int:
        """The tenant's largest event ``pk`` (0 when it has none)."""

    def query_rows(
        self,
        conn: Any,
        tenant_id: str,
        q: EventQuery,
        *,
        session_pk: int | None,
        after: int,
        head: int,
        limit: int,
        descending: bool,
    ) -> Iterable[Row]:
        """Event rows (``events.*`` and ``session_id``) with ``after < pk <= head``
        matching ``q`` (its ``session_id`` resolved to ``session_pk``), by ``pk``."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _text(value: Any) -> str | None:
    """A message from a JSON value: a non-blank string as is; an object's ``message``;
    anything else (a number, a list, an object without one) as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return _text(value["message"])
    return orjson.dumps(value).decode()


def error_message(output: Any, attributes: Any) -> str | None:
    """The message of an error event (decoded ``output`` and ``attributes``), the first of:

    1. ``output.error`` (a string; an object's ``message``; else its JSON),
    2. ``output.message``,
    3. ``output`` itself when it is a string,
    4. ``attributes["error.message"]``, ``attributes["exception.message"]`` (the
       OpenTelemetry semantic convention), ``attributes["error"]``.

    Cut to :data:`MAX_ERROR_CHARS` characters; ``None`` when none of them is there.
    """
    found: str | None = None
    if isinstance(output, dict):
        found = _text(output.get("error")) or (
            _text(output["message"]) if isinstance(output.get("message"), str) else None
        )
    elif isinstance(output, str):
        found = _text(output)
    if found is None and isinstance(attributes, dict):
        for key in ("error.message", "exception.message", "error"):
            found = _text(attributes.get(key))
            if found is not None:
                break
    return None if found is None else _cut(found)


def _decode(text: Any) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # stored by this server, so JSON; never fail a report
        return None


def sample_of(row: Sequence[Any]) -> EventSample:
    """A row of :data:`SAMPLE_COLUMNS` as a sample (see :class:`EventSample` for the
    duration and error rules). Built positionally: it runs once per event of a report
    (100,000 rows: ~0.5 s in the reader thread)."""
    (
        kind,
        name,
        status,
        at,
        started_at,
        ended_at,
        duration_ms,
        model,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
        cost,
        session_id,
        seq,
        span_id,
        output,
        attributes,
    ) = row
    if duration_ms is None and started_at is not None and ended_at is not None:
        duration_ms = ended_at - started_at if ended_at >= started_at else None
    error = None
    if status == "error" or kind == "error":
        error = error_message(_decode(output), _decode(attributes))
    return EventSample(
        kind,
        name,
        status,
        at,
        None if duration_ms is None else float(duration_ms),
        model,
        input_tokens or 0,
        output_tokens or 0,
        cache_read or 0,
        cache_write or 0,
        reasoning or 0,
        cost or 0.0,
        session_id,
        seq,
        span_id,
        error,
    )


def _session_pk(q: AnalyticsSql, conn: Any, tenant_id: str, session_id: str) -> int:
    pk = q.session_pk(conn, tenant_id, session_id)
    if pk is None:
        raise NotFound(f"session {session_id!r} not found", details={"session_id": session_id})
    return pk


def samples(
    q: AnalyticsSql,
    conn: Any,
    tenant_id: str,
    *,
    since_ms: int | None,
    until_ms: int | None,
    session_id: str | None,
    agent: str | None,
    kinds: Sequence[str],
    names: Sequence[str],
    limit: int,
) -> tuple[list[EventSample], bool]:
    """:meth:`Store.event_samples` over a backend's SQL. Raises NotFound."""
    session_pk = None if session_id is None else _session_pk(q, conn, tenant_id, session_id)
    rows = q.sample_rows(
        conn,
        tenant_id,
        since_ms=since_ms,
        until_ms=until_ms,
        session_pk=session_pk,
        agent=agent,
        kinds=kinds,
        names=names,
        limit=limit + 1,
    )
    out = [sample_of(r) for r in rows]
    truncated = len(out) > limit
    return out[:limit], truncated


def query(
    q: AnalyticsSql,
    conn: Any,
    tenant_id: str,
    f: EventQuery,
    *,
    after: int,
    limit: int,
    tail: bool,
    max_bytes: int,
) -> tuple[list[tuple[int, Event]], bool, int]:
    """:meth:`Store.query_events` over a backend's SQL.

    The head is read first and the page bounded by it: an event committed between the
    two statements has a larger ``pk`` (SQLite: one writer; PostgreSQL: one snapshot per
    read job), so resuming after the head cannot skip it.
    """
    head = q.head(conn, tenant_id)
    session_pk: int | None = None
    if f.session_id is not None:
        session_pk = q.session_pk(conn, tenant_id, f.session_id)
        if session_pk is None:  # a filter that matches nothing, not an error
            return [], False, head
    rows, more = take_page(
        q.query_rows(
            conn,
            tenant_id,
            f,
            session_pk=session_pk,
            after=after,
            head=head,
            limit=limit + 1,
            descending=tail,
        ),
        limit=limit,
        max_bytes=max_bytes,
    )
    items = [(int(r["pk"]), event_record(r, r["session_id"])) for r in rows]
    if tail:
        items.reverse()
        more = False
    return items, more, head


T = TypeVar("T")


class AnalyticsStore(Store):
    """The contract's analytics methods over :attr:`analytics` (the backend's
    ``analytics`` SQL module) and the engine's :meth:`read`; a backend's store class lists
    it before :class:`~tether.store.backend.BackendStore` among its bases."""

    analytics: AnalyticsSql

    @abc.abstractmethod
    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` on a read connection (the engine's)."""

    async def event_samples(
        self,
        tenant_id: str,
        *,
        since_ms: int | None,
        until_ms: int | None,
        session_id: str | None = None,
        agent: str | None = None,
        kinds: Sequence[str] = (),
        names: Sequence[str] = (),
        limit: int,
    ) -> tuple[list[EventSample], bool]:
        return await self.read(
            lambda c: samples(
                self.analytics,
                c,
                tenant_id,
                since_ms=since_ms,
                until_ms=until_ms,
                session_id=session_id,
                agent=agent,
                kinds=kinds,
                names=names,
                limit=limit,
            )
        )

    async def query_events(
        self, tenant_id: str, q: EventQuery, *, after: int, limit: int, tail: bool, max_bytes: int
    ) -> tuple[list[tuple[int, Event]], bool, int]:
        return await self.read(
            lambda c: query(
                self.analytics,
                c,
                tenant_id,
                q,
                after=after,
                limit=limit,
                tail=tail,
                max_bytes=max_bytes,
            )
        )

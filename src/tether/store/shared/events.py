"""Event logic, once for every backend: gapless per-session ``seq``, idempotency keys,
reads by seq cursor, stats.

Functions take the backend's event SQL (:class:`EventSql`, ``store/<backend>/events.py``)
and a connection inside one of the engine's jobs; they never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

from tether.domain.changes import SESSIONS_TOPIC, Change, session_topic
from tether.domain.records import AppendResult, Event, KindCount, Recent, Stats, StatusCount
from tether.store.common import emit, take_page
from tether.store.prepared import KEY, SEQ, SESSION_PK, TENANT, PreparedEvents, Totals, totals_of
from tether.store.rows import Row, event_record

#: Topic of the change that hands an append's inserted rows (prepared rows, COLUMNS order)
#: to the process's metrics after the commit. In-process only: the container drops it
#: before publishing, so rows never reach the bus.
ROWS_TOPIC: Final = "local:event-rows"


class EventSql(Protocol):
    """The SQL a backend supplies (``store/<backend>/events.py``)."""

    def lock_event_count(self, conn: Any, session_pk: int) -> int:
        """The session's ``event_count``, with the session row held for update to the
        commit (so appends to one session through any replica number one after another)."""

    def lock_session(self, conn: Any, tenant_id: str, session_id: str) -> tuple[int, int] | None:
        """``(pk, event_count)`` of the session, its row held as by
        :meth:`lock_event_count` (one statement where an append knows only the id)."""

    def insert_fresh(self, conn: Any, rows: Sequence[list[Any]], columns: tuple[int, ...]) -> bool:
        """Insert numbered rows whose keys are distinct within the call, if none of their
        keys is stored yet for the session: ``True``. Otherwise insert nothing: ``False``
        (the caller looks the stored keys up and renumbers)."""

    def known_keys(self, conn: Any, session_pk: int, keys: list[str]) -> dict[str, int]:
        """Stored idempotency keys among ``keys`` with their seqs."""

    def insert_rows(self, conn: Any, rows: Sequence[list[Any]], columns: tuple[int, ...]) -> int:
        """Insert numbered rows (``COLUMNS`` order; only ``columns`` are bound)."""

    def add_to_session(
        self, conn: Any, session_pk: int, *, event_count: int, totals: Totals, now: int
    ) -> None:
        """Set the session's ``event_count`` and add ``totals`` to its counters."""

    def event_rows(
        self, conn: Any, session_pk: int, *, after_seq: int, kinds: Sequence[str], limit: int
    ) -> Iterable[Row]:
        """Events with ``seq > after_seq`` (of ``kinds`` if any) in seq order."""

    def stats_counts(
        self, conn: Any, tenant_id: str, since_ms: int
    ) -> tuple[dict[str, int], dict[str, int], int, int, int]:
        """``(sessions by status, events by kind, sessions since, events since, errors
        since)`` of the tenant."""


def append_events(
    q: EventSql,
    conn: Any,
    *,
    session_pk: int,
    session_id: str,
    prepared: PreparedEvents,
    now: int,
    count: int | None = None,
) -> AppendResult:
    """Append prepared events to one session in order; returns their seqs.

    ``count``: the session's ``event_count`` when the caller has read it with the row
    locked (:meth:`EventSql.lock_session`); otherwise it is read here.

    The next seq comes from the session's ``event_count``, read with the row locked inside
    the writer's transaction, so seqs are gapless (1..N) and a rolled-back job leaves no
    hole. An event whose ``idempotency_key`` is already stored for this session (or
    earlier in this same call) gets the original seq and is not stored again. Usually no
    key is stored yet (new events): the backend's ``insert_fresh`` takes them without a key
    lookup; a retry falls back to looking the keys up and numbering the new ones only.
    """
    if count is None:
        count = q.lock_event_count(conn, session_pk)
    rows = prepared.rows
    if prepared.distinct_keys:
        for seq, row in enumerate(rows, count + 1):
            row[SESSION_PK] = session_pk
            row[SEQ] = seq
        if q.insert_fresh(conn, rows, prepared.columns):
            last = count + len(rows)
            q.add_to_session(conn, session_pk, event_count=last, totals=prepared.totals, now=now)
            errors = prepared.totals.errors
            _appended(rows[0][TENANT], session_id, count + 1, last, errors, now, prepared, rows)
            return AppendResult(seqs=list(range(count + 1, last + 1)), duplicates=0)
    keys = [r[KEY] for r in rows if r[KEY] is not None]
    known = q.known_keys(conn, session_pk, keys) if keys else {}
    seq = count
    seqs: list[int] = []
    new_rows: list[list[Any]] = []
    for row in rows:
        key = row[KEY]
        if key is not None:
            if key in known:
                seqs.append(known[key])
                continue
            known[key] = seq + 1
        seq += 1
        seqs.append(seq)
        row[SESSION_PK] = session_pk
        row[SEQ] = seq
        new_rows.append(row)
    if new_rows:
        q.insert_rows(conn, new_rows, prepared.columns)
        totals = totals_of(new_rows)
        q.add_to_session(conn, session_pk, event_count=seq, totals=totals, now=now)
        _appended(
            rows[0][TENANT], session_id, count + 1, seq, totals.errors, now, prepared, new_rows
        )
    return AppendResult(seqs=seqs, duplicates=len(rows) - len(new_rows))


def _appended(
    tenant_id: str,
    session_id: str,
    first: int,
    last: int,
    errors: int,
    now: int,
    prepared: PreparedEvents,
    rows: list[list[Any]],
) -> None:
    """Emit the changes of an append: the session's events (seqs ``first..last``, of which
    ``errors`` are errors), the session itself, and the inserted ``rows`` with the
    positions that are not ``None`` in some row of ``prepared`` (by reference, for the
    metrics; :data:`ROWS_TOPIC`)."""
    data = {"first": first, "errors": errors}
    emit(Change(session_topic(session_id), tenant_id, "events", last, data))
    emit(Change(SESSIONS_TOPIC, tenant_id, "session.updated", now, {"id": session_id}))
    summary = {"rows": rows, "columns": prepared.columns}
    emit(Change(ROWS_TOPIC, tenant_id, "event.rows", last, summary))


def list_events(
    q: EventSql,
    conn: Any,
    *,
    session_pk: int,
    session_id: str,
    after_seq: int,
    kinds: Sequence[str],
    limit: int,
    max_bytes: int,
) -> tuple[list[Event], int | None]:
    """Events of one session with ``seq > after_seq`` in seq order: at most ``limit``, and
    no more than ``max_bytes`` of stored JSON (at least one event; see ``take_page``).

    Returns ``(items, next_cursor)``; ``next_cursor`` is the last seq returned when more
    follow, else ``None``.
    """
    rows, more = take_page(
        q.event_rows(conn, session_pk, after_seq=after_seq, kinds=kinds, limit=limit + 1),
        limit=limit,
        max_bytes=max_bytes,
    )
    items = [event_record(r, session_id) for r in rows]
    return items, (items[-1].seq if more and items else None)


def stats(q: EventSql, conn: Any, *, tenant_id: str, since_ms: int) -> Stats:
    """Counts for ``GET /v1/stats``: sessions by status, events by kind, and the last 24 h."""
    by_status, by_kind, sessions, events, errors = q.stats_counts(conn, tenant_id, since_ms)
    return Stats(
        sessions=StatusCount(total=sum(by_status.values()), by_status=by_status),
        events=KindCount(total=sum(by_kind.values()), by_kind=by_kind),
        last_24h=Recent(sessions=sessions, events=events, errors=errors),
    )

"""Event SQL: gapless per-session ``seq``, idempotency keys, reads by seq cursor.

Functions here run inside :meth:`SQLiteStore.write`/``read`` callbacks; they take the
connection first and never commit themselves.
"""

from __future__ import annotations

import functools
import itertools
import operator
import sqlite3
from collections.abc import Sequence
from typing import Any

from tether.domain.changes import SESSIONS_TOPIC, Change, session_topic
from tether.domain.records import (
    AppendResult,
    Event,
    KindCount,
    Recent,
    Stats,
    StatusCount,
)
from tether.store.common import emit, take_page
from tether.store.prepared import (
    COLUMNS,
    KEY,
    SEQ,
    SESSION_PK,
    TENANT,
    PreparedEvents,
    Totals,
    totals_of,
)
from tether.store.rows import event_record

# SQLite's default limit on bound parameters is 32766 on 3.32+; 500 keys per IN (...) keeps
# statements small and plans cached.
_IN_CHUNK = 500

# Rows go in as multi-row ``INSERT ... VALUES (...), (...)`` statements, not executemany:
# CPython's sqlite3 releases and re-takes the GIL around every step, so executemany
# re-takes it once per row, and under a busy event loop each re-take can wait a switch
# interval (in-process, 100-row transactions beside a spinning thread: 7,500 rows/s with
# executemany, 24,000 with one statement per 100 rows). Chunks are powers of two up to
# this many rows, so few statement texts exist per column set (the statement cache keeps
# them) and the largest binds at most 256 x 25 = 6,400 parameters, under SQLite's 32,766.
_MAX_ROWS_PER_INSERT = 256
# The upsert target is the events_idempotency partial unique index (migration 0001): a row
# whose key is stored for its session already is skipped; any other conflict still fails.
_SKIP_STORED_KEYS = (
    " ON CONFLICT (session_pk, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


@functools.lru_cache(maxsize=256)
def _insert_sql(rows: int, columns: tuple[int, ...], skip_stored_keys: bool) -> str:
    names = ", ".join(COLUMNS[i] for i in columns)
    row = "(" + ",".join("?" * len(columns)) + ")"
    sql = f"INSERT INTO events ({names}) VALUES " + ",".join([row] * rows)
    return sql + _SKIP_STORED_KEYS if skip_stored_keys else sql


def insert_rows(
    conn: sqlite3.Connection,
    rows: Sequence[Sequence[Any]],
    columns: tuple[int, ...],
    *,
    skip_stored_keys: bool = False,
) -> int:
    """INSERT complete event rows (``COLUMNS`` order) with a few multi-row statements.

    Only the ``columns`` (positions in a row) are bound; the others are left NULL, so pass
    every position that is not ``None`` in some row (:attr:`PreparedEvents.columns`).

    Returns:
        How many rows were inserted: ``len(rows)`` unless ``skip_stored_keys`` skipped rows
        whose ``idempotency_key`` is already stored for their session.

    Raises:
        sqlite3.IntegrityError: a constraint failed (a duplicate key when not skipping,
            a taken seq); the failing statement's rows are not inserted.
    """
    if not rows:
        return 0
    if len(columns) < 2:  # itemgetter of one position returns a value, not a tuple
        raise ValueError("an event row binds at least its session and seq")
    values = operator.itemgetter(*columns)
    inserted = start = 0
    while start < len(rows):
        n = min(len(rows) - start, _MAX_ROWS_PER_INSERT)
        n = 1 << (n.bit_length() - 1)  # the largest power of two that fits
        params = list(itertools.chain.from_iterable(map(values, rows[start : start + n])))
        inserted += conn.execute(_insert_sql(n, columns, skip_stored_keys), params).rowcount
        start += n
    return inserted


def _known_keys(conn: sqlite3.Connection, session_pk: int, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i in range(0, len(keys), _IN_CHUNK):
        chunk = keys[i : i + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for key, seq in conn.execute(
            f"SELECT idempotency_key, seq FROM events WHERE session_pk=? "
            f"AND idempotency_key IN ({marks})",
            (session_pk, *chunk),
        ):
            found[key] = seq
    return found


def _add_to_session(
    conn: sqlite3.Connection, session_pk: int, *, event_count: int, totals: Totals, now: int
) -> None:
    conn.execute(
        "UPDATE sessions SET event_count=?, error_count=error_count+?, "
        "input_tokens=input_tokens+?, output_tokens=output_tokens+?, cost_usd=cost_usd+?, "
        "updated_at=? WHERE pk=?",
        (
            event_count,
            totals.errors,
            totals.input_tokens,
            totals.output_tokens,
            totals.cost_usd,
            now,
            session_pk,
        ),
    )


def _appended(tenant_id: str, session_id: str, first: int, last: int, now: int) -> None:
    """Emit the changes of an append: the session's events, and the session itself."""
    emit(Change(session_topic(session_id), tenant_id, "events", last, {"first": first}))
    emit(Change(SESSIONS_TOPIC, tenant_id, "session.updated", now, {"id": session_id}))


def append_events(
    conn: sqlite3.Connection,
    *,
    session_pk: int,
    session_id: str,
    prepared: PreparedEvents,
    now: int,
) -> AppendResult:
    """Append prepared events to one session in order; returns their seqs.

    The next seq comes from ``sessions.event_count`` inside the writer's transaction, so
    seqs are gapless (1..N) and a rolled-back job leaves no hole. An event whose
    ``idempotency_key`` is already stored for this session (or earlier in this same call)
    gets the original seq and is not stored again.

    Usually no key is stored yet, so when the call's keys are distinct the rows go in
    first, numbered on, with the unique key index skipping stored keys; if it skipped none
    (new events, the usual case) the append needed no key lookup at all. If it skipped some
    (a retry), this call's rows are deleted again and the append is redone knowing the
    stored keys, so the seqs stay gapless.
    """
    count = int(
        conn.execute("SELECT event_count FROM sessions WHERE pk=?", (session_pk,)).fetchone()[0]
    )
    rows = prepared.rows
    if prepared.distinct_keys:
        for seq, row in enumerate(rows, count + 1):
            row[SESSION_PK] = session_pk
            row[SEQ] = seq
        if insert_rows(conn, rows, prepared.columns, skip_stored_keys=True) == len(rows):
            last = count + len(rows)
            _add_to_session(conn, session_pk, event_count=last, totals=prepared.totals, now=now)
            _appended(rows[0][TENANT], session_id, count + 1, last, now)
            return AppendResult(seqs=list(range(count + 1, last + 1)), duplicates=0)
        conn.execute(
            "DELETE FROM events WHERE session_pk=? AND seq>? AND seq<=?",
            (session_pk, count, count + len(rows)),
        )
    keys = [r[KEY] for r in rows if r[KEY] is not None]
    known = _known_keys(conn, session_pk, keys) if keys else {}
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
        insert_rows(conn, new_rows, prepared.columns)
        _add_to_session(conn, session_pk, event_count=seq, totals=totals_of(new_rows), now=now)
        _appended(rows[0][TENANT], session_id, count + 1, seq, now)
    return AppendResult(seqs=seqs, duplicates=len(rows) - len(new_rows))


def list_events(
    conn: sqlite3.Connection,
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
    sql = "SELECT * FROM events WHERE session_pk=? AND seq>?"
    params: list[Any] = [session_pk, after_seq]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit + 1)
    rows, more = take_page(conn.execute(sql, params), limit=limit, max_bytes=max_bytes)
    items = [event_record(r, session_id) for r in rows]
    return items, (items[-1].seq if more and items else None)


def stats(conn: sqlite3.Connection, *, tenant_id: str, since_ms: int) -> Stats:
    """Counts for ``GET /v1/stats``: sessions by status, events by kind, and the last 24 h."""
    by_status = dict(
        conn.execute(
            "SELECT status, count(*) FROM sessions WHERE tenant_id=? GROUP BY status",
            (tenant_id,),
        ).fetchall()
    )
    by_kind = dict(
        conn.execute(
            "SELECT kind, count(*) FROM events WHERE tenant_id=? GROUP BY kind", (tenant_id,)
        ).fetchall()
    )
    recent_sessions = conn.execute(
        "SELECT count(*) FROM sessions WHERE tenant_id=? AND created_at>=?", (tenant_id, since_ms)
    ).fetchone()[0]
    recent = conn.execute(
        "SELECT count(*), coalesce(sum(status='error' OR kind='error'),0) FROM events "
        "WHERE tenant_id=? AND created_at>=?",
        (tenant_id, since_ms),
    ).fetchone()
    return Stats(
        sessions=StatusCount(total=sum(by_status.values()), by_status=by_status),
        events=KindCount(total=sum(by_kind.values()), by_kind=by_kind),
        last_24h=Recent(sessions=recent_sessions, events=recent[0], errors=int(recent[1])),
    )

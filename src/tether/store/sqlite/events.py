"""Event SQL for SQLite: the primitives :mod:`tether.store.shared.events` numbers and
stores events with (:class:`~tether.store.shared.events.EventSql`).

Functions take the connection first, run inside the engine's jobs and never commit.
"""

from __future__ import annotations

import functools
import itertools
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from tether.store.prepared import COLUMNS, SEQ, SESSION_PK, Totals
from tether.store.rows import Row

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


def lock_event_count(conn: sqlite3.Connection, session_pk: int) -> int:
    """The session's ``event_count`` (the one writer holds the database lock already)."""
    (count,) = conn.execute("SELECT event_count FROM sessions WHERE pk=?", (session_pk,)).fetchone()
    return int(count)


def lock_session(
    conn: sqlite3.Connection, tenant_id: str, session_id: str
) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT pk, event_count FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def insert_fresh(
    conn: sqlite3.Connection, rows: Sequence[list[Any]], columns: tuple[int, ...]
) -> bool:
    """Insert the rows with the unique key index skipping stored keys; if it skipped none
    (new events, the usual case) the append needed no key lookup at all. If it skipped
    some (a retry), this call's rows are deleted again and ``False`` returned, so the
    caller renumbers and seqs stay gapless."""
    if insert_rows(conn, rows, columns, skip_stored_keys=True) == len(rows):
        return True
    conn.execute(
        "DELETE FROM events WHERE session_pk=? AND seq>=? AND seq<=?",
        (rows[0][SESSION_PK], rows[0][SEQ], rows[-1][SEQ]),
    )
    return False


def known_keys(conn: sqlite3.Connection, session_pk: int, keys: list[str]) -> dict[str, int]:
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


def add_to_session(
    conn: sqlite3.Connection, session_pk: int, *, event_count: int, totals: Totals, now: int
) -> None:
    conn.execute(
        "UPDATE sessions SET event_count=?, error_count=error_count+?, "
        "input_tokens=input_tokens+?, output_tokens=output_tokens+?, cost_usd=cost_usd+?, "
        "cache_read_tokens=cache_read_tokens+?, cache_write_tokens=cache_write_tokens+?, "
        "reasoning_tokens=reasoning_tokens+?, "
        "updated_at=? WHERE pk=?",
        (
            event_count,
            totals.errors,
            totals.input_tokens,
            totals.output_tokens,
            totals.cost_usd,
            totals.cache_read_tokens,
            totals.cache_write_tokens,
            totals.reasoning_tokens,
            now,
            session_pk,
        ),
    )


def event_rows(
    conn: sqlite3.Connection,
    session_pk: int,
    *,
    after_seq: int,
    kinds: Sequence[str],
    limit: int,
) -> Iterable[Row]:
    sql = "SELECT * FROM events WHERE session_pk=? AND seq>?"
    params: list[Any] = [session_pk, after_seq]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    return conn.execute(sql, params)


def stats_counts(
    conn: sqlite3.Connection, tenant_id: str, since_ms: int
) -> tuple[dict[str, int], dict[str, int], int, int, int]:
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
    (sessions,) = conn.execute(
        "SELECT count(*) FROM sessions WHERE tenant_id=? AND created_at>=?", (tenant_id, since_ms)
    ).fetchone()
    events, errors = conn.execute(
        "SELECT count(*), coalesce(sum(status='error' OR kind='error'),0) FROM events "
        "WHERE tenant_id=? AND created_at>=?",
        (tenant_id, since_ms),
    ).fetchone()
    return by_status, by_kind, int(sessions), int(events), int(errors)

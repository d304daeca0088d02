"""Event SQL for PostgreSQL: the primitives :mod:`tether.store.shared.events` numbers
and stores events with (:class:`~tether.store.shared.events.EventSql`).

An append locks its session row (``SELECT ... FOR UPDATE``) and numbers from
``event_count``, so appends to one session through any number of replicas get 1..N with
no gap and no repeat; appends to different sessions do not wait for each other.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg.errors

from tether.store.postgres.engine import Conn, one
from tether.store.prepared import COLUMNS, KEY, SEQ, SESSION_PK, Totals
from tether.store.rows import Row

# Up to this many rows go in as one multi-row ``INSERT ... VALUES``; more go through
# ``COPY ... FROM STDIN``, whose rows psycopg formats in C. A 100-event batch as one
# ``INSERT ... SELECT FROM unnest(array, ...)`` spent 70% of the writer thread in
# psycopg's pure-Python list dumper (in-process, 16 writers of 100-event batches: 13,000
# events/s with unnest). A duplicate key cannot reach COPY: the session row is locked
# and the call's stored keys are looked up first.
_MAX_VALUES_ROWS = 4


@functools.lru_cache(maxsize=256)
def _values_sql(rows: int, columns: tuple[int, ...]) -> str:
    names = ", ".join(COLUMNS[i] for i in columns)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return f"INSERT INTO events ({names}) VALUES " + ", ".join([row] * rows)


@functools.lru_cache(maxsize=64)
def _copy_sql(columns: tuple[int, ...]) -> str:
    return f"COPY events ({', '.join(COLUMNS[i] for i in columns)}) FROM STDIN"


def insert_rows(conn: Conn, rows: Sequence[Sequence[Any]], columns: tuple[int, ...]) -> int:
    """INSERT complete event rows (``COLUMNS`` order); only the ``columns`` positions are
    bound (the others stay NULL). Returns how many went in.

    Raises:
        psycopg.errors.UniqueViolation: a taken seq or a stored idempotency key.
    """
    if not rows:
        return 0
    values = operator.itemgetter(*columns)
    if len(rows) <= _MAX_VALUES_ROWS:
        params = list(itertools.chain.from_iterable(map(values, rows)))
        return conn.execute(_values_sql(len(rows), columns), params).rowcount
    with conn.cursor() as cur, cur.copy(_copy_sql(columns)) as copy:
        for row in rows:
            copy.write_row(values(row))
    return len(rows)


def lock_event_count(conn: Conn, session_pk: int) -> int:
    """The session's ``event_count``, with its row locked to the commit."""
    (count,) = one(
        conn.execute("SELECT event_count FROM sessions WHERE pk = %s FOR UPDATE", (session_pk,))
    )
    return int(count)


def lock_session(conn: Conn, tenant_id: str, session_id: str) -> tuple[int, int] | None:
    """``(pk, event_count)`` of the session, its row locked to the commit."""
    row = conn.execute(
        "SELECT pk, event_count FROM sessions WHERE tenant_id = %s AND id = %s FOR UPDATE",
        (tenant_id, session_id),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


# The upsert target is the events_idempotency partial unique index: a row whose key is
# stored for its session already is skipped; any other conflict still fails.
_SKIP_STORED_KEYS = (
    " ON CONFLICT (session_pk, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
)


def insert_fresh(conn: Conn, rows: Sequence[list[Any]], columns: tuple[int, ...]) -> bool:
    """Insert numbered rows if none of their keys is stored for the session.

    A few rows go in as one ``INSERT ... ON CONFLICT DO NOTHING``: if it skipped none (new
    events, the usual case) that was the whole append, with no key lookup; if it skipped
    some (a retry) this call's rows are deleted again and ``False`` returned. More rows go
    through ``COPY`` (rows formatted in C), which cannot skip a key: inside a savepoint
    when they carry keys, so a stored key (``UniqueViolation``) rolls back just the COPY.
    Looking the keys up first instead took 41% of the writer thread and, with a plan
    cached while the table was empty, scanned the session's events per append (measured
    with py-spy and ``EXPLAIN EXECUTE``; 22,000 -> 31,000 events/s batched).
    """
    if len(rows) <= _MAX_VALUES_ROWS:
        values = operator.itemgetter(*columns)
        params = list(itertools.chain.from_iterable(map(values, rows)))
        sql = _values_sql(len(rows), columns) + _SKIP_STORED_KEYS
        if conn.execute(sql, params).rowcount == len(rows):
            return True
        conn.execute(
            "DELETE FROM events WHERE session_pk = %s AND seq >= %s AND seq <= %s",
            (rows[0][SESSION_PK], rows[0][SEQ], rows[-1][SEQ]),
        )
        return False
    if not any(row[KEY] is not None for row in rows):
        insert_rows(conn, rows, columns)
        return True
    try:
        with conn.transaction():  # a savepoint: a stored key undoes the COPY alone
            insert_rows(conn, rows, columns)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def known_keys(conn: Conn, session_pk: int, keys: list[str]) -> dict[str, int]:
    """Stored keys among ``keys``: one probe of the unique key index per key (the join
    from the key list keeps that plan whatever the table's statistics say)."""
    return {
        key: seq
        for key, seq in conn.execute(
            "SELECT e.idempotency_key, e.seq FROM unnest(%s::text[]) AS k(key) "
            "JOIN events e ON e.session_pk = %s AND e.idempotency_key = k.key",
            (keys, session_pk),
        )
    }


def add_to_session(
    conn: Conn, session_pk: int, *, event_count: int, totals: Totals, now: int
) -> None:
    conn.execute(
        "UPDATE sessions SET event_count = %s, error_count = error_count + %s, "
        "input_tokens = input_tokens + %s, output_tokens = output_tokens + %s, "
        "cost_usd = cost_usd + %s, cache_read_tokens = cache_read_tokens + %s, "
        "cache_write_tokens = cache_write_tokens + %s, "
        "reasoning_tokens = reasoning_tokens + %s, updated_at = %s WHERE pk = %s",
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
    conn: Conn, session_pk: int, *, after_seq: int, kinds: Sequence[str], limit: int
) -> Iterable[Row]:
    sql = "SELECT * FROM events WHERE session_pk = %s AND seq > %s"
    params: list[Any] = [session_pk, after_seq]
    if kinds:
        sql += " AND kind = ANY(%s::text[])"
        params.append(list(kinds))
    sql += " ORDER BY seq LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params)


def stats_counts(
    conn: Conn, tenant_id: str, since_ms: int
) -> tuple[dict[str, int], dict[str, int], int, int, int]:
    by_status = {
        status: int(n)
        for status, n in conn.execute(
            "SELECT status, count(*) FROM sessions WHERE tenant_id = %s GROUP BY status",
            (tenant_id,),
        )
    }
    by_kind = {
        kind: int(n)
        for kind, n in conn.execute(
            "SELECT kind, count(*) FROM events WHERE tenant_id = %s GROUP BY kind", (tenant_id,)
        )
    }
    (sessions,) = one(
        conn.execute(
            "SELECT count(*) FROM sessions WHERE tenant_id = %s AND created_at >= %s",
            (tenant_id, since_ms),
        )
    )
    events, errors = one(
        conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'error' OR kind = 'error') "
            "FROM events WHERE tenant_id = %s AND created_at >= %s",
            (tenant_id, since_ms),
        )
    )
    return by_status, by_kind, int(sessions), int(events), int(errors)

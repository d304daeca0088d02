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

from tether.store.postgres.engine import Conn, one
from tether.store.prepared import COLUMNS, KEY, Totals
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


def insert_fresh(conn: Conn, rows: Sequence[list[Any]], columns: tuple[int, ...]) -> bool:
    """Rows without idempotency keys go straight in; rows with keys go through the
    caller's key lookup (``False``), since ``COPY`` cannot skip a stored key."""
    if any(row[KEY] is not None for row in rows):
        return False
    insert_rows(conn, rows, columns)
    return True


def known_keys(conn: Conn, session_pk: int, keys: list[str]) -> dict[str, int]:
    return {
        key: seq
        for key, seq in conn.execute(
            "SELECT idempotency_key, seq FROM events WHERE session_pk = %s "
            "AND idempotency_key = ANY(%s::text[])",
            (session_pk, keys),
        )
    }


def add_to_session(
    conn: Conn, session_pk: int, *, event_count: int, totals: Totals, now: int
) -> None:
    conn.execute(
        "UPDATE sessions SET event_count = %s, error_count = error_count + %s, "
        "input_tokens = input_tokens + %s, output_tokens = output_tokens + %s, "
        "cost_usd = cost_usd + %s, updated_at = %s WHERE pk = %s",
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

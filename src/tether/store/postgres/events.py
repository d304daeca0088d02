"""Event SQL for PostgreSQL: gapless per-session ``seq``, idempotency keys, reads by seq.

An append locks its session row (``SELECT ... FOR UPDATE``) and numbers from
``event_count``, so appends to one session through any number of replicas get 1..N with
no gap and no repeat; appends to different sessions do not wait for each other.
"""

from __future__ import annotations

import functools
import itertools
import operator
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
from tether.store.postgres.engine import Conn, one
from tether.store.prepared import (
    COLUMNS,
    KEY,
    SEQ,
    SESSION_PK,
    TENANT,
    PreparedEvents,
    totals_of,
)
from tether.store.rows import event_record

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


def _known_keys(conn: Conn, session_pk: int, keys: list[str]) -> dict[str, int]:
    return {
        key: seq
        for key, seq in conn.execute(
            "SELECT idempotency_key, seq FROM events WHERE session_pk = %s "
            "AND idempotency_key = ANY(%s::text[])",
            (session_pk, keys),
        )
    }


def append_events(
    conn: Conn,
    *,
    session_pk: int,
    session_id: str,
    prepared: PreparedEvents,
    now: int,
) -> AppendResult:
    """Append prepared events to one session in order; returns their seqs.

    The session row is locked and the next seq read from ``event_count``; an event whose
    ``idempotency_key`` is stored for this session (or earlier in this same call) gets
    its original seq and is not stored again (one indexed lookup of the call's keys).
    """
    count = int(
        one(
            conn.execute("SELECT event_count FROM sessions WHERE pk = %s FOR UPDATE", (session_pk,))
        )[0]
    )
    rows = prepared.rows
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
        totals = totals_of(new_rows) if len(new_rows) < len(rows) else prepared.totals
        conn.execute(
            "UPDATE sessions SET event_count = %s, error_count = error_count + %s, "
            "input_tokens = input_tokens + %s, output_tokens = output_tokens + %s, "
            "cost_usd = cost_usd + %s, updated_at = %s WHERE pk = %s",
            (
                seq,
                totals.errors,
                totals.input_tokens,
                totals.output_tokens,
                totals.cost_usd,
                now,
                session_pk,
            ),
        )
        tenant_id = rows[0][TENANT]
        emit(Change(session_topic(session_id), tenant_id, "events", seq, {"first": count + 1}))
        emit(Change(SESSIONS_TOPIC, tenant_id, "session.updated", now, {"id": session_id}))
    return AppendResult(seqs=seqs, duplicates=len(rows) - len(new_rows))


def list_events(
    conn: Conn,
    *,
    session_pk: int,
    session_id: str,
    after_seq: int,
    kinds: Sequence[str],
    limit: int,
    max_bytes: int,
) -> tuple[list[Event], int | None]:
    """Events of one session with ``seq > after_seq`` in seq order: at most ``limit``, and
    no more than ``max_bytes`` of stored JSON (at least one event).

    Returns ``(items, next_cursor)``: the last seq returned when more follow, else ``None``.
    """
    sql = "SELECT * FROM events WHERE session_pk = %s AND seq > %s"
    params: list[Any] = [session_pk, after_seq]
    if kinds:
        sql += " AND kind = ANY(%s::text[])"
        params.append(list(kinds))
    sql += " ORDER BY seq LIMIT %s"
    params.append(limit + 1)
    rows, more = take_page(conn.execute(sql, params), limit=limit, max_bytes=max_bytes)
    items = [event_record(r, session_id) for r in rows]
    return items, (items[-1].seq if more and items else None)


def stats(conn: Conn, *, tenant_id: str, since_ms: int) -> Stats:
    """Counts for ``GET /v1/stats``: sessions by status, events by kind, and the last 24 h."""
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
    (recent_sessions,) = one(
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
    return Stats(
        sessions=StatusCount(total=sum(by_status.values()), by_status=by_status),
        events=KindCount(total=sum(by_kind.values()), by_kind=by_kind),
        last_24h=Recent(sessions=int(recent_sessions), events=int(events), errors=int(errors)),
    )

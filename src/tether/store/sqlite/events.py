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
from dataclasses import dataclass
from typing import Any

import orjson

from tether.domain.events import EventIn
from tether.domain.time import new_ids, to_ms
from tether.store.rows import event_dict, take_page

# SQLite's default limit on bound parameters is 32766 on 3.32+; 500 keys per IN (...) keeps
# statements small and plans cached.
_IN_CHUNK = 500

_COLUMNS = (
    "tenant_id",
    "session_pk",
    "seq",
    "id",
    "kind",
    "name",
    "role",
    "status",
    "level",
    "started_at",
    "ended_at",
    "duration_ms",
    "parent_id",
    "span_id",
    "trace_id",
    "input",
    "output",
    "attributes",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "idempotency_key",
    "correlation_id",
    "created_at",
)
# Positions in a prepared row (the _COLUMNS order).
_SESSION_PK, _SEQ, _KIND, _STATUS = 1, 2, 4, 7
_IN_TOK, _OUT_TOK, _COST, _KEY = 19, 20, 21, 22
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
    names = ", ".join(_COLUMNS[i] for i in columns)
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
    """INSERT complete event rows (``_COLUMNS`` order) with a few multi-row statements.

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


@dataclass(slots=True)
class AppendResult:
    """Seqs aligned with the input events, and how many were idempotent replays."""

    seqs: list[int]
    duplicates: int


@dataclass(frozen=True, slots=True)
class Totals:
    """What rows add to their session's counters (tokens; cost in US dollars)."""

    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


def _totals(rows: Sequence[Sequence[Any]]) -> Totals:
    errors = in_tok = out_tok = 0
    cost = 0.0
    for row in rows:
        if row[_STATUS] == "error" or row[_KIND] == "error":
            errors += 1
        in_tok += row[_IN_TOK] or 0
        out_tok += row[_OUT_TOK] or 0
        cost += row[_COST] or 0.0
    return Totals(errors, in_tok, out_tok, cost)


@dataclass(slots=True)
class PreparedEvents:
    """Insert rows built outside the writer thread; only ``session_pk`` and ``seq`` remain.

    Building rows (ids, JSON encoding of ``input``/``output``/``attributes``) is most of the
    Python work of an append; doing it before the job is queued keeps the single writer
    thread's critical section down to seq assignment and the INSERT itself. ``columns``
    are the row positions that are not ``None`` in some row: only those are bound, since
    an event usually leaves about half of its 25 columns empty and binding costs the
    writer ~0.3 us per value even for a NULL (in-process, a 100-row statement: 4.8 us per
    row with 11 NULLs bound, 1.5 us with those columns left out). ``totals`` covers every
    row; ``distinct_keys`` says no idempotency key repeats among them.
    """

    rows: list[list[Any]]
    columns: tuple[int, ...]
    totals: Totals
    distinct_keys: bool


def prepare_events(
    events: Sequence[EventIn], *, tenant_id: str, correlation_id: str | None, now: int
) -> PreparedEvents:
    """Rows for :func:`append_events`; event ids are monotonic ULIDs of ``now``."""
    ids = new_ids(len(events), ms=now)
    dumps = orjson.dumps
    rows: list[list[Any]] = []
    keys: set[str] = set()
    keyed = 0
    for e, event_id in zip(events, ids, strict=True):
        # Inlined (no to_ms/dumps_or_none calls; the _value_ attribute, not the value
        # property): this loop runs once per ingested event.
        rows.append(
            [
                tenant_id,
                0,
                0,
                event_id,
                e.kind._value_,
                e.name,
                e.role,
                e.status,
                e.level,
                None if e.started_at is None else to_ms(e.started_at),
                None if e.ended_at is None else to_ms(e.ended_at),
                e.duration_ms,
                e.parent_id,
                e.span_id,
                e.trace_id,
                None if e.input is None else dumps(e.input).decode(),
                None if e.output is None else dumps(e.output).decode(),
                None if e.attributes is None else dumps(e.attributes).decode(),
                e.model,
                e.input_tokens,
                e.output_tokens,
                e.cost_usd,
                e.idempotency_key,
                correlation_id,
                now,
            ]
        )
        if e.idempotency_key is not None:
            keys.add(e.idempotency_key)
            keyed += 1
    n = len(rows)
    columns = tuple(i for i, values in enumerate(zip(*rows, strict=True)) if values.count(None) < n)
    return PreparedEvents(rows, columns, _totals(rows), len(keys) == keyed)


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


def append_events(
    conn: sqlite3.Connection, *, session_pk: int, prepared: PreparedEvents, now: int
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
            row[_SESSION_PK] = session_pk
            row[_SEQ] = seq
        if insert_rows(conn, rows, prepared.columns, skip_stored_keys=True) == len(rows):
            last = count + len(rows)
            _add_to_session(conn, session_pk, event_count=last, totals=prepared.totals, now=now)
            return AppendResult(seqs=list(range(count + 1, last + 1)), duplicates=0)
        conn.execute(
            "DELETE FROM events WHERE session_pk=? AND seq>? AND seq<=?",
            (session_pk, count, count + len(rows)),
        )
    keys = [r[_KEY] for r in rows if r[_KEY] is not None]
    known = _known_keys(conn, session_pk, keys) if keys else {}
    seq = count
    seqs: list[int] = []
    new_rows: list[list[Any]] = []
    for row in rows:
        key = row[_KEY]
        if key is not None:
            if key in known:
                seqs.append(known[key])
                continue
            known[key] = seq + 1
        seq += 1
        seqs.append(seq)
        row[_SESSION_PK] = session_pk
        row[_SEQ] = seq
        new_rows.append(row)
    if new_rows:
        insert_rows(conn, new_rows, prepared.columns)
        _add_to_session(conn, session_pk, event_count=seq, totals=_totals(new_rows), now=now)
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
) -> tuple[list[dict[str, Any]], int | None]:
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
    items = [event_dict(r, session_id) for r in rows]
    return items, (items[-1]["seq"] if more and items else None)


def stats(conn: sqlite3.Connection, *, tenant_id: str, since_ms: int) -> dict[str, Any]:
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
    return {
        "sessions": {"total": sum(by_status.values()), "by_status": by_status},
        "events": {"total": sum(by_kind.values()), "by_kind": by_kind},
        "last_24h": {"sessions": recent_sessions, "events": recent[0], "errors": recent[1]},
    }

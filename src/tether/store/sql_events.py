"""Event SQL: gapless per-session ``seq``, idempotency keys, reads by seq cursor.

Functions here run inside :meth:`SQLiteStore.write`/``read`` callbacks; they take the
connection first and never commit themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tether.domain.events import EventIn
from tether.domain.time import new_ids, to_ms
from tether.store.rows import dumps_or_none, event_dict

# SQLite's default limit on bound parameters is 32766 on 3.32+; 500 keys per IN (...) keeps
# statements small and plans cached.
_IN_CHUNK = 500

_INSERT = """
INSERT INTO events (
    tenant_id, session_pk, seq, id, kind, name, role, status, level, started_at, ended_at,
    duration_ms, parent_id, span_id, trace_id, input, output, attributes, model, input_tokens,
    output_tokens, cost_usd, idempotency_key, correlation_id, created_at
) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
"""


@dataclass(slots=True)
class AppendResult:
    """Seqs aligned with the input events, and how many were idempotent replays."""

    seqs: list[int]
    duplicates: int


# Positions in a prepared row (the _INSERT column order).
_SESSION_PK, _SEQ, _KIND, _STATUS = 1, 2, 4, 7
_IN_TOK, _OUT_TOK, _COST, _KEY = 19, 20, 21, 22


@dataclass(slots=True)
class PreparedEvents:
    """Insert rows built outside the writer thread; only ``session_pk`` and ``seq`` remain.

    Building rows (ids, JSON encoding of ``input``/``output``/``attributes``) is most of the
    Python work of an append; doing it before the job is queued keeps the single writer
    thread's critical section down to seq assignment and the INSERT itself.
    """

    rows: list[list[Any]]


def prepare_events(
    events: Sequence[EventIn], *, tenant_id: str, correlation_id: str | None, now: int
) -> PreparedEvents:
    """Rows for :func:`append_events`; event ids are monotonic ULIDs of ``now``."""
    ids = new_ids(len(events), ms=now)
    rows = [
        [
            tenant_id,
            0,
            0,
            event_id,
            e.kind.value,
            e.name,
            e.role,
            e.status,
            e.level,
            to_ms(e.started_at),
            to_ms(e.ended_at),
            e.duration_ms,
            e.parent_id,
            e.span_id,
            e.trace_id,
            dumps_or_none(e.input),
            dumps_or_none(e.output),
            dumps_or_none(e.attributes),
            e.model,
            e.input_tokens,
            e.output_tokens,
            e.cost_usd,
            e.idempotency_key,
            correlation_id,
            now,
        ]
        for e, event_id in zip(events, ids, strict=True)
    ]
    return PreparedEvents(rows)


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


def append_events(
    conn: sqlite3.Connection, *, session_pk: int, prepared: PreparedEvents, now: int
) -> AppendResult:
    """Append prepared events to one session in order; returns their seqs.

    The next seq comes from ``sessions.event_count`` inside the writer's transaction, so
    seqs are gapless (1..N) and a rolled-back job leaves no hole. An event whose
    ``idempotency_key`` is already stored for this session (or earlier in this same call)
    gets the original seq and is not stored again.
    """
    keys = [r[_KEY] for r in prepared.rows if r[_KEY] is not None]
    known = _known_keys(conn, session_pk, keys) if keys else {}
    seq = int(
        conn.execute("SELECT event_count FROM sessions WHERE pk=?", (session_pk,)).fetchone()[0]
    )
    seqs: list[int] = []
    rows: list[list[Any]] = []
    errors = in_tok = out_tok = 0
    cost = 0.0
    for row in prepared.rows:
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
        if row[_STATUS] == "error" or row[_KIND] == "error":
            errors += 1
        in_tok += row[_IN_TOK] or 0
        out_tok += row[_OUT_TOK] or 0
        cost += row[_COST] or 0.0
        rows.append(row)
    if rows:
        conn.executemany(_INSERT, rows)
        conn.execute(
            "UPDATE sessions SET event_count=?, error_count=error_count+?, "
            "input_tokens=input_tokens+?, output_tokens=output_tokens+?, cost_usd=cost_usd+?, "
            "updated_at=? WHERE pk=?",
            (seq, errors, in_tok, out_tok, cost, now, session_pk),
        )
    return AppendResult(seqs=seqs, duplicates=len(prepared.rows) - len(rows))


def list_events(
    conn: sqlite3.Connection,
    *,
    session_pk: int,
    session_id: str,
    after_seq: int,
    kinds: Sequence[str],
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Events of one session with ``seq > after_seq`` in seq order, at most ``limit``.

    Returns ``(items, next_cursor)``; ``next_cursor`` is the last seq returned when more
    may follow, else ``None``.
    """
    sql = "SELECT * FROM events WHERE session_pk=? AND seq>?"
    params: list[Any] = [session_pk, after_seq]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit + 1)
    rows = conn.execute(sql, params).fetchall()
    more = len(rows) > limit
    items = [event_dict(r, session_id) for r in rows[:limit]]
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

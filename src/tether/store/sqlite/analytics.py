"""Analytics SQL for SQLite: the reads :mod:`tether.store.shared.analytics` builds samples
and the cross-session event query from (:class:`~tether.store.shared.analytics.AnalyticsSql`).

Every statement is scoped by ``tenant_id``. ``_AT`` is spelled exactly as in the index
``events_tenant_time`` (migration 0009), so SQLite can use that index for windows of
event time; the query's cursor walks ``events_tenant_pk``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from tether.store.base import EventQuery
from tether.store.rows import Row

_AT = "coalesce(e.started_at, e.created_at)"

_SAMPLE_SELECT = (
    f"SELECT e.kind, e.name, e.status, {_AT}, e.started_at, e.ended_at, e.duration_ms, "
    "e.model, e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens, "
    "e.reasoning_tokens, e.cost_usd, s.id, e.seq, e.span_id, "
    "CASE WHEN e.status = 'error' OR e.kind = 'error' THEN e.output END, "
    "CASE WHEN e.status = 'error' OR e.kind = 'error' THEN e.attributes END "
    "FROM events e JOIN sessions s ON s.pk = e.session_pk"
)


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def session_pk(conn: sqlite3.Connection, tenant_id: str, session_id: str) -> int | None:
    row = conn.execute(
        "SELECT pk FROM sessions WHERE tenant_id = ? AND id = ?", (tenant_id, session_id)
    ).fetchone()
    return None if row is None else int(row[0])


def sample_rows(
    conn: sqlite3.Connection,
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
    sql = [_SAMPLE_SELECT, "WHERE e.tenant_id = ?"]
    params: list[Any] = [tenant_id]
    if session_pk is not None:
        sql.append("AND e.session_pk = ?")
        params.append(session_pk)
    if since_ms is not None:
        sql.append(f"AND {_AT} >= ?")
        params.append(since_ms)
    if until_ms is not None:
        sql.append(f"AND {_AT} < ?")
        params.append(until_ms)
    if agent is not None:
        sql.append("AND s.agent = ?")
        params.append(agent)
    if kinds:
        sql.append(f"AND e.kind IN ({_marks(kinds)})")
        params.extend(kinds)
    if names:
        sql.append(f"AND e.name IN ({_marks(names)})")
        params.extend(names)
    sql.append(f"ORDER BY {_AT} DESC, e.pk DESC LIMIT ?")
    params.append(limit)
    return conn.execute(" ".join(sql), params)


def head(conn: sqlite3.Connection, tenant_id: str) -> int:
    (pk,) = conn.execute(
        "SELECT coalesce(max(pk), 0) FROM events WHERE tenant_id = ?", (tenant_id,)
    ).fetchone()
    return int(pk)


def query_rows(
    conn: sqlite3.Connection,
    tenant_id: str,
    q: EventQuery,
    *,
    session_pk: int | None,
    after: int,
    head: int,
    limit: int,
    descending: bool,
) -> Iterable[Row]:
    sql = [
        "SELECT e.*, s.id AS session_id FROM events e JOIN sessions s ON s.pk = e.session_pk",
        "WHERE e.tenant_id = ? AND e.pk > ? AND e.pk <= ?",
    ]
    params: list[Any] = [tenant_id, after, head]
    if session_pk is not None:
        sql.append("AND e.session_pk = ?")
        params.append(session_pk)
    if q.kinds:
        sql.append(f"AND e.kind IN ({_marks(q.kinds)})")
        params.extend(q.kinds)
    if q.name is not None:
        sql.append("AND e.name = ?")
        params.append(q.name)
    if q.levels:
        sql.append(f"AND coalesce(e.level, 'info') IN ({_marks(q.levels)})")
        params.extend(q.levels)
    if q.status is not None:
        sql.append("AND e.status = ?")
        params.append(q.status)
    if q.since_ms is not None:
        sql.append(f"AND {_AT} >= ?")
        params.append(q.since_ms)
    if q.until_ms is not None:
        sql.append(f"AND {_AT} < ?")
        params.append(q.until_ms)
    sql.append(f"ORDER BY e.pk {'DESC' if descending else 'ASC'} LIMIT ?")
    params.append(limit)
    return conn.execute(" ".join(sql), params)

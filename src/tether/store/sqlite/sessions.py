"""Session, state and goal SQL for SQLite: the primitives
:mod:`tether.store.shared.sessions` runs the session logic over
(:class:`~tether.store.shared.sessions.SessionSql`).

Functions take the connection first, run inside the engine's jobs and never commit.
``lock`` needs nothing here: the one writer holds the database's write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tether.domain.filters import SessionFilter
from tether.store.common import like_pattern
from tether.store.rows import SESSION_COLUMNS, Row

#: A session's searchable text (``SessionFilter.words``), lower-cased.
_TEXT = (
    "lower(id || ' ' || coalesce(title, '') || ' ' || coalesce(agent, '') || ' ' "
    "|| coalesce(user_id, ''))"
)

Conn = sqlite3.Connection


def find(conn: Conn, tenant_id: str, session_id: str, *, lock: bool) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
    ).fetchone()
    return row


def rows_by_id(conn: Conn, tenant_id: str, ids: Sequence[str]) -> Iterable[Row]:
    marks = ", ".join(["?"] * len(ids))
    return conn.execute(
        f"SELECT * FROM sessions WHERE tenant_id = ? AND id IN ({marks})", (tenant_id, *ids)
    ).fetchall()


def changed_rows(
    conn: Conn, tenant_id: str, *, since_ms: int, after_id: str, limit: int
) -> Iterable[Row]:
    return conn.execute(
        "SELECT * FROM sessions WHERE tenant_id = ? AND (updated_at, id) > (?, ?) "
        "ORDER BY updated_at, id LIMIT ?",
        (tenant_id, since_ms, after_id, limit),
    ).fetchall()


def active_count(conn: Conn, tenant_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM sessions WHERE tenant_id = ? AND status = 'active'",
        (tenant_id,),
    ).fetchone()
    return int(row["n"])


def pk_of(conn: Conn, tenant_id: str, session_id: str) -> int | None:
    row = conn.execute(
        "SELECT pk FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
    ).fetchone()
    return None if row is None else int(row[0])


def _insert(conn: Conn, table: str, values: Mapping[str, Any], key: str) -> Row | None:
    row: Row | None = conn.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))}) "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING *",
        list(values.values()),
    ).fetchone()
    return row


def _update(conn: Conn, table: str, pk: int, sets: Mapping[str, Any]) -> Row:
    assignments = ", ".join(f"{name}=?" for name in sets)
    row: Row = conn.execute(
        f"UPDATE {table} SET {assignments} WHERE pk=? RETURNING *", (*sets.values(), pk)
    ).fetchone()
    return row


def insert(conn: Conn, values: Mapping[str, Any]) -> Row | None:
    return _insert(conn, "sessions", values, "tenant_id, id")


def by_pk(conn: Conn, pk: int) -> Row:
    row: Row = conn.execute("SELECT * FROM sessions WHERE pk=?", (pk,)).fetchone()
    return row


def update(conn: Conn, pk: int, sets: Mapping[str, Any]) -> Row:
    return _update(conn, "sessions", pk, sets)


def delete(conn: Conn, pk: int) -> int:
    events = conn.execute("DELETE FROM events WHERE session_pk=?", (pk,)).rowcount
    conn.execute("DELETE FROM goals WHERE session_pk=?", (pk,))
    conn.execute("DELETE FROM state_versions WHERE session_pk=?", (pk,))
    conn.execute("DELETE FROM sessions WHERE pk=?", (pk,))
    return int(events)


def goal_rows(conn: Conn, session_pk: int) -> Iterable[Row]:
    return conn.execute("SELECT * FROM goals WHERE session_pk=? ORDER BY pk", (session_pk,))


def child_rows(conn: Conn, tenant_id: str, session_id: str) -> Iterable[Row]:
    return conn.execute(
        "SELECT id, agent, status FROM sessions WHERE tenant_id=? AND parent_id=? ORDER BY pk",
        (tenant_id, session_id),
    )


def list_rows(
    conn: Conn, tenant_id: str, f: SessionFilter, *, cursor: int | None, limit: int
) -> Iterable[Row]:
    sql = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id=?"
    params: list[Any] = [tenant_id]
    for column, value in (
        ("status", f.status),
        ("agent", f.agent),
        ("user_id", f.user_id),
        ("parent_id", f.parent_id),
    ):
        if value is not None:
            sql += f" AND {column}=?"
            params.append(value)
    if f.tag is not None:
        sql += " AND EXISTS (SELECT 1 FROM json_each(sessions.tags) WHERE value=?)"
        params.append(f.tag)
    for word in f.words:  # each in the id, title, agent or user id (case-insensitive)
        sql += f" AND {_TEXT} LIKE ? ESCAPE '\\'"
        params.append(like_pattern(word))
    if f.since_ms is not None:
        sql += " AND created_at>=?"
        params.append(f.since_ms)
    if f.until_ms is not None:
        sql += " AND created_at<?"
        params.append(f.until_ms)
    if cursor is not None:
        sql += " AND pk<?"
        params.append(cursor)
    sql += " ORDER BY pk DESC LIMIT ?"
    params.append(limit)
    return conn.execute(sql, params)


def state_of(
    conn: Conn, tenant_id: str, session_id: str, *, lock: bool
) -> tuple[int, str, int] | None:
    row = conn.execute(
        "SELECT pk, state, state_version FROM sessions WHERE tenant_id=? AND id=?",
        (tenant_id, session_id),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1], int(row[2]))


def find_goal(conn: Conn, session_pk: int, goal_id: str, *, lock: bool) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM goals WHERE session_pk=? AND id=?", (session_pk, goal_id)
    ).fetchone()
    return row


def insert_goal(conn: Conn, values: Mapping[str, Any]) -> Row | None:
    return _insert(conn, "goals", values, "session_pk, id")


def update_goal(conn: Conn, pk: int, sets: Mapping[str, Any]) -> Row:
    return _update(conn, "goals", pk, sets)


def insert_state_version(conn: Conn, values: Mapping[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO state_versions ({', '.join(values)}) "
        f"VALUES ({', '.join(['?'] * len(values))})",
        list(values.values()),
    )


def state_version_rows(conn: Conn, session_pk: int, *, after: int, limit: int) -> Iterable[Row]:
    return conn.execute(
        "SELECT * FROM state_versions WHERE session_pk=? AND version>? ORDER BY version LIMIT ?",
        (session_pk, after, limit),
    )

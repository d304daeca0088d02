"""Session, state and goal SQL for PostgreSQL: the primitives
:mod:`tether.store.shared.sessions` runs the session logic over
(:class:`~tether.store.shared.sessions.SessionSql`).

``lock=True`` reads take the row ``FOR UPDATE``: two replicas patching one session's
state, or ending it, serialise on the row instead of losing an update; the lock is held
to the group's commit. Inserts are ``ON CONFLICT DO NOTHING``: a concurrent create of the
same id (another replica) waits for that one's commit and then inserts nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tether.domain.filters import SessionFilter
from tether.store.common import like_pattern
from tether.store.postgres.engine import Conn, one
from tether.store.rows import SESSION_COLUMNS, Row

#: A session's searchable text (``SessionFilter.words``), lower-cased.
_TEXT = (
    "lower(id || ' ' || coalesce(title, '') || ' ' || coalesce(agent, '') || ' ' "
    "|| coalesce(user_id, ''))"
)


def _lock(lock: bool) -> str:
    return " FOR UPDATE" if lock else ""


def find(conn: Conn, tenant_id: str, session_id: str, *, lock: bool) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM sessions WHERE tenant_id = %s AND id = %s" + _lock(lock),
        (tenant_id, session_id),
    ).fetchone()
    return row


def rows_by_id(conn: Conn, tenant_id: str, ids: Sequence[str]) -> Iterable[Row]:
    marks = ", ".join(["%s"] * len(ids))
    return conn.execute(
        f"SELECT * FROM sessions WHERE tenant_id = %s AND id IN ({marks})", (tenant_id, *ids)
    ).fetchall()


def changed_rows(
    conn: Conn, tenant_id: str, *, since_ms: int, after_id: str, limit: int
) -> Iterable[Row]:
    return conn.execute(
        "SELECT * FROM sessions WHERE tenant_id = %s AND (updated_at, id) > (%s, %s) "
        "ORDER BY updated_at, id LIMIT %s",
        (tenant_id, since_ms, after_id, limit),
    ).fetchall()


def active_count(conn: Conn, tenant_id: str) -> int:
    row = one(
        conn.execute(
            "SELECT count(*) AS n FROM sessions WHERE tenant_id = %s AND status = 'active'",
            (tenant_id,),
        )
    )
    return int(row["n"])


def pk_of(conn: Conn, tenant_id: str, session_id: str) -> int | None:
    row = conn.execute(
        "SELECT pk FROM sessions WHERE tenant_id = %s AND id = %s", (tenant_id, session_id)
    ).fetchone()
    return None if row is None else int(row[0])


def _insert(conn: Conn, table: str, values: Mapping[str, Any], key: str) -> Row | None:
    row: Row | None = conn.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING *",
        list(values.values()),
    ).fetchone()
    return row


def _update(conn: Conn, table: str, pk: int, sets: Mapping[str, Any]) -> Row:
    assignments = ", ".join(f"{name} = %s" for name in sets)
    row: Row = one(
        conn.execute(
            f"UPDATE {table} SET {assignments} WHERE pk = %s RETURNING *", (*sets.values(), pk)
        )
    )
    return row


def insert(conn: Conn, values: Mapping[str, Any]) -> Row | None:
    return _insert(conn, "sessions", values, "tenant_id, id")


def by_pk(conn: Conn, pk: int) -> Row:
    row: Row = one(conn.execute("SELECT * FROM sessions WHERE pk = %s", (pk,)))
    return row


def update(conn: Conn, pk: int, sets: Mapping[str, Any]) -> Row:
    return _update(conn, "sessions", pk, sets)


def delete(conn: Conn, pk: int) -> int:
    events = conn.execute("DELETE FROM events WHERE session_pk = %s", (pk,)).rowcount
    conn.execute("DELETE FROM goals WHERE session_pk = %s", (pk,))
    conn.execute("DELETE FROM state_versions WHERE session_pk = %s", (pk,))
    conn.execute("DELETE FROM sessions WHERE pk = %s", (pk,))
    return int(events)


def goal_rows(conn: Conn, session_pk: int) -> Iterable[Row]:
    return conn.execute("SELECT * FROM goals WHERE session_pk = %s ORDER BY pk", (session_pk,))


def child_rows(conn: Conn, tenant_id: str, session_id: str) -> Iterable[Row]:
    return conn.execute(
        "SELECT id, agent, status FROM sessions WHERE tenant_id = %s AND parent_id = %s "
        "ORDER BY pk",
        (tenant_id, session_id),
    )


def list_rows(
    conn: Conn, tenant_id: str, f: SessionFilter, *, cursor: int | None, limit: int
) -> Iterable[Row]:
    sql = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = %s"
    params: list[Any] = [tenant_id]
    for column, value in (
        ("status", f.status),
        ("agent", f.agent),
        ("user_id", f.user_id),
        ("parent_id", f.parent_id),
    ):
        if value is not None:
            sql += f" AND {column} = %s"
            params.append(value)
    if f.tag is not None:
        sql += " AND tags::jsonb @> jsonb_build_array(%s::text)"
        params.append(f.tag)
    for word in f.words:  # each in the id, title, agent or user id (case-insensitive)
        sql += f" AND {_TEXT} LIKE %s ESCAPE '\\'"
        params.append(like_pattern(word))
    if f.since_ms is not None:
        sql += " AND created_at >= %s"
        params.append(f.since_ms)
    if f.until_ms is not None:
        sql += " AND created_at < %s"
        params.append(f.until_ms)
    if cursor is not None:
        sql += " AND pk < %s"
        params.append(cursor)
    sql += " ORDER BY pk DESC LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params)


def state_of(
    conn: Conn, tenant_id: str, session_id: str, *, lock: bool
) -> tuple[int, str, int] | None:
    row = conn.execute(
        "SELECT pk, state, state_version FROM sessions WHERE tenant_id = %s AND id = %s"
        + _lock(lock),
        (tenant_id, session_id),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1], int(row[2]))


def find_goal(conn: Conn, session_pk: int, goal_id: str, *, lock: bool) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM goals WHERE session_pk = %s AND id = %s" + _lock(lock),
        (session_pk, goal_id),
    ).fetchone()
    return row


def insert_goal(conn: Conn, values: Mapping[str, Any]) -> Row | None:
    return _insert(conn, "goals", values, "session_pk, id")


def update_goal(conn: Conn, pk: int, sets: Mapping[str, Any]) -> Row:
    return _update(conn, "goals", pk, sets)


def insert_state_version(conn: Conn, values: Mapping[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO state_versions ({', '.join(values)}) "
        f"VALUES ({', '.join(['%s'] * len(values))})",
        list(values.values()),
    )


def state_version_rows(conn: Conn, session_pk: int, *, after: int, limit: int) -> Iterable[Row]:
    return conn.execute(
        "SELECT * FROM state_versions WHERE session_pk = %s AND version > %s "
        "ORDER BY version LIMIT %s",
        (session_pk, after, limit),
    )

"""Session, state, goal and sub-agent SQL (runs inside store write/read callbacks)."""

from __future__ import annotations

import sqlite3
from typing import Any

from tether.domain.changes import SESSIONS_TOPIC, Change
from tether.domain.filters import SessionFilter
from tether.domain.records import Created, Goal, Session, SessionDetail, StateDoc
from tether.domain.sessions import GoalIn, GoalPatch, SessionPatch
from tether.domain.time import new_id
from tether.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from tether.store.common import body_hash, dumps, emit, loads, merge_json, take_page
from tether.store.prepared import prepare_events, server_event
from tether.store.rows import (
    SESSION_COLUMNS,
    child_record,
    goal_record,
    session_record,
)
from tether.store.sqlite.events import append_events

TERMINAL = frozenset({"completed", "failed", "abandoned"})


def get_row(conn: sqlite3.Connection, tenant_id: str, session_id: str) -> sqlite3.Row:
    """The session row, or :class:`NotFound` (also for another tenant's id)."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"session {session_id!r} not found", details={"session_id": session_id})
    return row


def _by_pk(conn: sqlite3.Connection, pk: int) -> Session:
    return session_record(conn.execute("SELECT * FROM sessions WHERE pk=?", (pk,)).fetchone())


def get_pk(conn: sqlite3.Connection, tenant_id: str, session_id: str) -> int:
    """The session's row key (cheaper than :func:`get_row` on hot paths), or :class:`NotFound`."""
    row = conn.execute(
        "SELECT pk FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"session {session_id!r} not found", details={"session_id": session_id})
    return int(row[0])


def _server_event(
    conn: sqlite3.Connection,
    tenant_id: str,
    parent: sqlite3.Row,
    *,
    name: str,
    key: str,
    payload: dict[str, Any],
    status: str,
    correlation_id: str | None,
    now: int,
) -> None:
    event = server_event(name=name, key=key, payload=payload, status=status)
    prepared = prepare_events([event], tenant_id=tenant_id, correlation_id=correlation_id, now=now)
    append_events(
        conn, session_pk=parent["pk"], session_id=parent["id"], prepared=prepared, now=now
    )


def _changed(tenant_id: str, session_id: str, kind: str, now: int) -> None:
    emit(Change(SESSIONS_TOPIC, tenant_id, kind, now, {"id": session_id}))


def create_session(
    conn: sqlite3.Connection,
    tenant_id: str,
    fields: dict[str, Any],
    *,
    now: int,
    correlation_id: str | None,
    strict: bool = True,
) -> Created[Session]:
    """Create a session from the request's explicitly-set ``fields`` (``id`` optional).

    With ``strict`` (the REST create), an existing id with the same body returns it and a
    different body raises :class:`Conflict`; without (the batch path), first write wins.
    A session with ``parent_id`` logs an ``agent.spawned`` event in its parent, keyed
    ``agent-spawn:<id>`` so retries log it once.

    Raises:
        NotFound: ``parent_id`` names no session of this tenant.
        Conflict: strict, and the id exists with a different body.
    """
    fields = dict(fields)
    session_id = fields.pop("id", None) or new_id()
    digest = body_hash(fields)
    existing = conn.execute(
        "SELECT * FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
    ).fetchone()
    if existing is not None:
        if strict and existing["create_hash"] != digest:
            raise Conflict(
                f"session {session_id!r} exists with a different body",
                details={"session_id": session_id},
            )
        return Created(session_record(existing), created=False)
    parent_id = fields.get("parent_id")
    parent = get_row(conn, tenant_id, parent_id) if parent_id else None
    cur = conn.execute(
        "INSERT INTO sessions (tenant_id, id, parent_id, user_id, agent, title, tags, metadata, "
        "created_at, updated_at, create_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            tenant_id,
            session_id,
            parent_id,
            fields.get("user_id"),
            fields.get("agent"),
            fields.get("title"),
            dumps(fields.get("tags") or []),
            dumps(fields.get("metadata") or {}),
            now,
            now,
            digest,
        ),
    )
    if parent is not None:
        _server_event(
            conn,
            tenant_id,
            parent,
            name="agent.spawned",
            key=f"agent-spawn:{session_id}",
            payload={"child_id": session_id, "agent": fields.get("agent")},
            status="ok",
            correlation_id=correlation_id,
            now=now,
        )
    row = conn.execute("SELECT * FROM sessions WHERE pk=?", (cur.lastrowid,)).fetchone()
    _changed(tenant_id, session_id, "session.created", now)
    return Created(session_record(row), created=True)


def session_detail(conn: sqlite3.Connection, tenant_id: str, session_id: str) -> SessionDetail:
    """A session with its goals and its children (id, agent, status)."""
    row = get_row(conn, tenant_id, session_id)
    goals = [
        goal_record(g)
        for g in conn.execute("SELECT * FROM goals WHERE session_pk=? ORDER BY pk", (row["pk"],))
    ]
    children = [
        child_record(c)
        for c in conn.execute(
            "SELECT id, agent, status FROM sessions WHERE tenant_id=? AND parent_id=? ORDER BY pk",
            (tenant_id, session_id),
        )
    ]
    session = session_record(row)
    fields = {name: getattr(session, name) for name in Session.__dataclass_fields__}
    return SessionDetail(**fields, goals=goals, children=children)


def list_sessions(
    conn: sqlite3.Connection,
    tenant_id: str,
    f: SessionFilter,
    *,
    cursor: int | None,
    limit: int,
    max_bytes: int,
) -> tuple[list[Session], str | None]:
    """Newest first, at most ``limit`` and about ``max_bytes`` of stored JSON (the state
    document is not part of a list item and is not read). ``cursor`` is the opaque
    ``next_cursor`` of the previous page."""
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
    params.append(limit + 1)
    rows, more = take_page(conn.execute(sql, params), limit=limit, max_bytes=max_bytes)
    return [session_record(r) for r in rows], (str(rows[-1]["pk"]) if more and rows else None)


def patch_session(
    conn: sqlite3.Connection, tenant_id: str, session_id: str, patch: SessionPatch, *, now: int
) -> Session:
    """Replace the sent fields; merge ``metadata`` (RFC 7386)."""
    row = get_row(conn, tenant_id, session_id)
    sets: list[str] = []
    params: list[Any] = []
    for name in sorted(patch.model_fields_set):
        value = getattr(patch, name)
        if name == "metadata":
            _, value = merge_json(row["metadata"], value or {}, loc=["body", "metadata"])
        elif name == "tags":
            value = dumps(value or [])
        sets.append(f"{name}=?")
        params.append(value)
    if sets:
        conn.execute(
            f"UPDATE sessions SET {', '.join(sets)}, updated_at=? WHERE pk=?",
            (*params, now, row["pk"]),
        )
        _changed(tenant_id, session_id, "session.updated", now)
    return _by_pk(conn, row["pk"])


def end_session(
    conn: sqlite3.Connection,
    tenant_id: str,
    session_id: str,
    *,
    status: str,
    summary: str | None,
    now: int,
    correlation_id: str | None,
    strict: bool = True,
) -> Session:
    """End a session. Ending it again with the same status is a no-op; with another
    status, :class:`Conflict` when ``strict``. A child's end logs ``agent.completed`` in
    its parent (key ``agent-end:<id>``)."""
    row = get_row(conn, tenant_id, session_id)
    if row["status"] in TERMINAL:
        if strict and row["status"] != status:
            raise Conflict(
                f"session {session_id!r} already ended as {row['status']!r}",
                details={"status": row["status"]},
            )
        return session_record(row)
    conn.execute(
        "UPDATE sessions SET status=?, summary=coalesce(?, summary), ended_at=?, updated_at=? "
        "WHERE pk=?",
        (status, summary, now, now, row["pk"]),
    )
    if row["parent_id"]:
        parent = conn.execute(
            "SELECT pk, id FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, row["parent_id"])
        ).fetchone()
        if parent is not None:
            _server_event(
                conn,
                tenant_id,
                parent,
                name="agent.completed",
                key=f"agent-end:{session_id}",
                payload={"child_id": session_id, "status": status, "summary": summary},
                status=status,
                correlation_id=correlation_id,
                now=now,
            )
    _changed(tenant_id, session_id, "session.ended", now)
    return _by_pk(conn, row["pk"])


def delete_session(conn: sqlite3.Connection, tenant_id: str, session_id: str, *, now: int) -> int:
    """Delete a session with its events and goals. Children keep their ``parent_id``."""
    row = get_row(conn, tenant_id, session_id)
    events = conn.execute("DELETE FROM events WHERE session_pk=?", (row["pk"],)).rowcount
    conn.execute("DELETE FROM goals WHERE session_pk=?", (row["pk"],))
    conn.execute("DELETE FROM sessions WHERE pk=?", (row["pk"],))
    _changed(tenant_id, session_id, "session.deleted", now)
    return int(events)


# -- state -------------------------------------------------------------------------------
def get_state(conn: sqlite3.Connection, tenant_id: str, session_id: str) -> StateDoc:
    row = get_row(conn, tenant_id, session_id)
    return StateDoc(state=loads(row["state"]), version=row["state_version"])


def patch_state(
    conn: sqlite3.Connection,
    tenant_id: str,
    session_id: str,
    patch: Any,
    *,
    if_match: int | None,
    now: int,
    max_bytes: int,
) -> StateDoc:
    """Apply a JSON Merge Patch (RFC 7386) to the state document; bump its version.

    Raises:
        InvalidInput: the patch is not a JSON object (state is always an object), or the
            new document would exceed ``max_bytes`` as JSON.
        PreconditionFailed: ``if_match`` is not the current version.
    """
    if not isinstance(patch, dict):
        raise InvalidInput("a state patch must be a JSON object (RFC 7386 merge patch)")
    row = get_row(conn, tenant_id, session_id)
    if if_match is not None and if_match != row["state_version"]:
        raise PreconditionFailed(
            "state version mismatch",
            details={"expected": if_match, "current": row["state_version"]},
        )
    state, text = merge_json(row["state"], patch, loc=["body"], max_bytes=max_bytes)
    version = row["state_version"] + 1
    conn.execute(
        "UPDATE sessions SET state=?, state_version=?, updated_at=? WHERE pk=?",
        (text, version, now, row["pk"]),
    )
    _changed(tenant_id, session_id, "session.updated", now)
    return StateDoc(state=state, version=version)


# -- goals -------------------------------------------------------------------------------
def create_goal(
    conn: sqlite3.Connection, tenant_id: str, session_id: str, goal: GoalIn, *, now: int
) -> Created[Goal]:
    """Add a goal. A client-chosen ``id`` makes the create idempotent (same body 200,
    different body :class:`Conflict`)."""
    session = get_row(conn, tenant_id, session_id)
    fields = goal.model_dump(mode="json", exclude={"id"})
    digest = body_hash(fields)
    goal_id = goal.id or new_id()
    existing = conn.execute(
        "SELECT * FROM goals WHERE session_pk=? AND id=?", (session["pk"], goal_id)
    ).fetchone()
    if existing is not None:
        if existing["create_hash"] != digest:
            raise Conflict(f"goal {goal_id!r} exists with a different body")
        return Created(goal_record(existing), created=False)
    done = now if goal.status in ("done", "failed", "cancelled") else None
    cur = conn.execute(
        "INSERT INTO goals (tenant_id, session_pk, id, description, priority, status, progress, "
        "metadata, created_at, updated_at, completed_at, create_hash) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            tenant_id,
            session["pk"],
            goal_id,
            goal.description,
            goal.priority,
            goal.status.value,
            goal.progress,
            dumps(goal.metadata),
            now,
            now,
            done,
            digest,
        ),
    )
    row = conn.execute("SELECT * FROM goals WHERE pk=?", (cur.lastrowid,)).fetchone()
    _changed(tenant_id, session_id, "session.updated", now)
    return Created(goal_record(row), created=True)


def patch_goal(
    conn: sqlite3.Connection,
    tenant_id: str,
    session_id: str,
    goal_id: str,
    patch: GoalPatch,
    *,
    now: int,
) -> Goal:
    session = get_row(conn, tenant_id, session_id)
    row = conn.execute(
        "SELECT * FROM goals WHERE session_pk=? AND id=?", (session["pk"], goal_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"goal {goal_id!r} not found", details={"goal_id": goal_id})
    sets: list[str] = []
    params: list[Any] = []
    for name in sorted(patch.model_fields_set):
        value = getattr(patch, name)  # never None: GoalPatch refuses nulls
        if name == "metadata":
            _, value = merge_json(row["metadata"], value, loc=["body", "metadata"])
        elif name == "status":
            value = value.value
            terminal = value in ("done", "failed", "cancelled")
            sets.append("completed_at=?")
            params.append(now if terminal else None)
        sets.append(f"{name}=?")
        params.append(value)
    if sets:
        conn.execute(
            f"UPDATE goals SET {', '.join(sets)}, updated_at=? WHERE pk=?",
            (*params, now, row["pk"]),
        )
    _changed(tenant_id, session_id, "session.updated", now)
    return goal_record(conn.execute("SELECT * FROM goals WHERE pk=?", (row["pk"],)).fetchone())

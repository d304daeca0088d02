"""Session, state, goal and sub-agent logic, once for every backend; and the batch
ingest (``POST /v1/events/batch``) that combines sessions and events.

Functions take the backend's session SQL (:class:`SessionSql`) and, where a write logs
an event in a parent session or appends events, its event SQL; a connection inside one
of the engine's jobs; they never commit. Writes read what they change with the row held
for update (``lock=True``), so two replicas patching one session serialise on its row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from tether.domain.changes import SESSIONS_TOPIC, Change, session_topic
from tether.domain.common import MAX_SAFE_INT
from tether.domain.events import EventBatchIn
from tether.domain.filters import SessionFilter
from tether.domain.records import (
    BatchResult,
    Created,
    Goal,
    Session,
    SessionDetail,
    StateDoc,
    StateVersion,
)
from tether.domain.sessions import GoalIn, GoalPatch, SessionPatch
from tether.domain.time import iso, new_id
from tether.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from tether.store.common import body_hash, dumps, emit, loads, merge_json, take_page
from tether.store.prepared import PreparedEvents, prepare_events, server_event
from tether.store.rows import Row, child_record, goal_record, session_record
from tether.store.shared.events import EventSql, append_events

TERMINAL = frozenset({"completed", "failed", "abandoned"})
_GOAL_DONE = frozenset({"done", "failed", "cancelled"})


class SessionSql(Protocol):
    """The SQL a backend supplies (``store/<backend>/sessions.py``)."""

    def find(self, conn: Any, tenant_id: str, session_id: str, *, lock: bool) -> Row | None:
        """The session row (``SELECT *``); ``lock``: held for update to the commit."""

    def pk_of(self, conn: Any, tenant_id: str, session_id: str) -> int | None: ...

    def active_count(self, conn: Any, tenant_id: str) -> int:
        """The tenant's sessions with status ``active``."""

    def rows_by_id(self, conn: Any, tenant_id: str, ids: Sequence[str]) -> Iterable[Row]:
        """The tenant's session rows among ``ids`` (any order)."""

    def changed_rows(
        self, conn: Any, tenant_id: str, *, since_ms: int, after_id: str, limit: int
    ) -> Iterable[Row]:
        """The tenant's session rows with ``(updated_at, id) > (since_ms, after_id)``, in
        that order."""

    def insert(self, conn: Any, values: Mapping[str, Any]) -> Row | None:
        """Insert a session; ``None`` when the id exists (or was just committed by another
        replica) and nothing was inserted."""

    def by_pk(self, conn: Any, pk: int) -> Row: ...

    def update(self, conn: Any, pk: int, sets: Mapping[str, Any]) -> Row:
        """Set columns of row ``pk``; the row after."""

    def delete(self, conn: Any, pk: int) -> int:
        """Delete the session, its events and goals; how many events went."""

    def goal_rows(self, conn: Any, session_pk: int) -> Iterable[Row]: ...

    def child_rows(self, conn: Any, tenant_id: str, session_id: str) -> Iterable[Row]:
        """``id, agent, status`` of the sessions whose parent is this one."""

    def list_rows(
        self, conn: Any, tenant_id: str, f: SessionFilter, *, cursor: int | None, limit: int
    ) -> Iterable[Row]:
        """``SESSION_COLUMNS`` of the matching sessions, newest (largest pk) first."""

    def state_of(
        self, conn: Any, tenant_id: str, session_id: str, *, lock: bool
    ) -> tuple[int, str, int] | None:
        """``(pk, state JSON, state_version)`` of the session."""

    def find_goal(self, conn: Any, session_pk: int, goal_id: str, *, lock: bool) -> Row | None: ...

    def insert_goal(self, conn: Any, values: Mapping[str, Any]) -> Row | None:
        """Insert a goal; ``None`` when its id exists in the session."""

    def update_goal(self, conn: Any, pk: int, sets: Mapping[str, Any]) -> Row: ...

    def insert_state_version(self, conn: Any, values: Mapping[str, Any]) -> None:
        """Insert a ``state_versions`` row."""

    def state_version_rows(
        self, conn: Any, session_pk: int, *, after: int, limit: int
    ) -> Iterable[Row]:
        """``state_versions`` rows of a session with ``version > after``, ascending."""


def _missing(session_id: str) -> NotFound:
    return NotFound(f"session {session_id!r} not found", details={"session_id": session_id})


def get_row(
    q: SessionSql, conn: Any, tenant_id: str, session_id: str, *, lock: bool = False
) -> Row:
    """The session row, or :class:`NotFound` (also for another tenant's id)."""
    row = q.find(conn, tenant_id, session_id, lock=lock)
    if row is None:
        raise _missing(session_id)
    return row


def get_pk(q: SessionSql, conn: Any, tenant_id: str, session_id: str) -> int:
    """The session's row key, or :class:`NotFound`."""
    pk = q.pk_of(conn, tenant_id, session_id)
    if pk is None:
        raise _missing(session_id)
    return pk


def _changed(tenant_id: str, session_id: str, kind: str, now: int) -> None:
    emit(Change(SESSIONS_TOPIC, tenant_id, kind, now, {"id": session_id}))


def _parent_event(
    qe: EventSql,
    conn: Any,
    tenant_id: str,
    parent: Row,
    *,
    name: str,
    key: str,
    payload: dict[str, Any],
    status: str,
    correlation_id: str | None,
    now: int,
) -> None:
    """Log a server event (``agent.spawned``/``agent.completed``) in the parent session;
    its idempotency ``key`` makes a retry log it once."""
    event = server_event(name=name, key=key, payload=payload, status=status)
    prepared = prepare_events([event], tenant_id=tenant_id, correlation_id=correlation_id, now=now)
    append_events(
        qe, conn, session_pk=parent["pk"], session_id=parent["id"], prepared=prepared, now=now
    )


def _existing(row: Row, digest: str, *, strict: bool) -> Created[Session]:
    if strict and row["create_hash"] != digest:
        raise Conflict(
            f"session {row['id']!r} exists with a different body", details={"session_id": row["id"]}
        )
    return Created(session_record(row), created=False)


def create_session(
    q: SessionSql,
    qe: EventSql,
    conn: Any,
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
    existing = q.find(conn, tenant_id, session_id, lock=False)
    if existing is not None:
        return _existing(existing, digest, strict=strict)
    parent_id = fields.get("parent_id")
    parent = get_row(q, conn, tenant_id, parent_id) if parent_id else None
    row = q.insert(
        conn,
        {
            "tenant_id": tenant_id,
            "id": session_id,
            "parent_id": parent_id,
            "user_id": fields.get("user_id"),
            "agent": fields.get("agent"),
            "title": fields.get("title"),
            "tags": dumps(fields.get("tags") or []),
            "metadata": dumps(fields.get("metadata") or {}),
            "created_at": now,
            "updated_at": now,
            "create_hash": digest,
        },
    )
    if row is None:  # created meanwhile by another replica
        return _existing(get_row(q, conn, tenant_id, session_id), digest, strict=strict)
    if parent is not None:
        _parent_event(
            qe,
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
    _changed(tenant_id, session_id, "session.created", now)
    return Created(session_record(row), created=True)


def session_detail(q: SessionSql, conn: Any, tenant_id: str, session_id: str) -> SessionDetail:
    """A session with its goals and its children (id, agent, status)."""
    row = get_row(q, conn, tenant_id, session_id)
    goals = [goal_record(g) for g in q.goal_rows(conn, row["pk"])]
    children = [child_record(c) for c in q.child_rows(conn, tenant_id, session_id)]
    session = session_record(row)
    fields = {name: getattr(session, name) for name in Session.__dataclass_fields__}
    return SessionDetail(**fields, goals=goals, children=children)


def list_sessions(
    q: SessionSql,
    conn: Any,
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
    rows, more = take_page(
        q.list_rows(conn, tenant_id, f, cursor=cursor, limit=limit + 1),
        limit=limit,
        max_bytes=max_bytes,
    )
    return [session_record(r) for r in rows], (str(rows[-1]["pk"]) if more and rows else None)


def patch_session(
    q: SessionSql, conn: Any, tenant_id: str, session_id: str, patch: SessionPatch, *, now: int
) -> Session:
    """Replace the sent fields; merge ``metadata`` (RFC 7386)."""
    row = get_row(q, conn, tenant_id, session_id, lock=True)
    sets: dict[str, Any] = {}
    for name in sorted(patch.model_fields_set):
        value = getattr(patch, name)
        if name == "metadata":
            _, value = merge_json(row["metadata"], value or {}, loc=["body", "metadata"])
        elif name == "tags":
            value = dumps(value or [])
        sets[name] = value
    if not sets:
        return session_record(row)
    updated = q.update(conn, row["pk"], {**sets, "updated_at": now})
    _changed(tenant_id, session_id, "session.updated", now)
    return session_record(updated)


def end_session(
    q: SessionSql,
    qe: EventSql,
    conn: Any,
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
    row = get_row(q, conn, tenant_id, session_id, lock=True)
    if row["status"] in TERMINAL:
        if strict and row["status"] != status:
            raise Conflict(
                f"session {session_id!r} already ended as {row['status']!r}",
                details={"status": row["status"]},
            )
        return session_record(row)
    sets = {"status": status, "ended_at": now, "updated_at": now}
    if summary is not None:
        sets["summary"] = summary
    q.update(conn, row["pk"], sets)
    if row["parent_id"]:
        parent = q.find(conn, tenant_id, row["parent_id"], lock=False)
        if parent is not None:
            _parent_event(
                qe,
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
    return session_record(q.by_pk(conn, row["pk"]))


def delete_session(q: SessionSql, conn: Any, tenant_id: str, session_id: str, *, now: int) -> int:
    """Delete a session with its events and goals. Children keep their ``parent_id``."""
    row = get_row(q, conn, tenant_id, session_id, lock=True)
    events = q.delete(conn, row["pk"])
    _changed(tenant_id, session_id, "session.deleted", now)
    # Its followers too (cursor: past any seq, so every live tail reads and finds it gone).
    emit(Change(session_topic(session_id), tenant_id, "session.deleted", MAX_SAFE_INT, {}))
    return events


# -- state -------------------------------------------------------------------------------
def get_state(q: SessionSql, conn: Any, tenant_id: str, session_id: str) -> StateDoc:
    found = q.state_of(conn, tenant_id, session_id, lock=False)
    if found is None:
        raise _missing(session_id)
    return StateDoc(state=loads(found[1]), version=found[2])


def patch_state(
    q: SessionSql,
    conn: Any,
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
    found = q.state_of(conn, tenant_id, session_id, lock=True)
    if found is None:
        raise _missing(session_id)
    pk, stored, current = found
    if if_match is not None and if_match != current:
        raise PreconditionFailed(
            "state version mismatch", details={"expected": if_match, "current": current}
        )
    state, text = merge_json(stored, patch, loc=["body"], max_bytes=max_bytes)
    q.update(conn, pk, {"state": text, "state_version": current + 1, "updated_at": now})
    q.insert_state_version(
        conn,
        {
            "session_pk": pk,
            "version": current + 1,
            "tenant_id": tenant_id,
            "patch": dumps(patch),
            "state": text,
            "at": now,
        },
    )
    _changed(tenant_id, session_id, "session.updated", now)
    return StateDoc(state=state, version=current + 1)


def state_versions(
    q: SessionSql, conn: Any, tenant_id: str, session_id: str, *, after: int, limit: int
) -> tuple[list[StateVersion], int | None]:
    """Versions ``> after`` of a session's state, oldest first; ``(items, next after or
    None)``. Versions written before the history existed (migration 0008) are absent.
    Raises NotFound."""
    pk = get_pk(q, conn, tenant_id, session_id)
    rows = list(q.state_version_rows(conn, pk, after=after, limit=limit + 1))
    items = [
        StateVersion(
            version=int(r["version"]),
            state=loads(r["state"]),
            patch=loads(r["patch"]),
            at=iso(r["at"]) or "",
        )
        for r in rows[:limit]
    ]
    return items, (items[-1].version if len(rows) > limit else None)


# -- goals -------------------------------------------------------------------------------
def create_goal(
    q: SessionSql, conn: Any, tenant_id: str, session_id: str, goal: GoalIn, *, now: int
) -> Created[Goal]:
    """Add a goal. A client-chosen ``id`` makes the create idempotent (same body 200,
    different body :class:`Conflict`)."""
    session_pk = get_pk(q, conn, tenant_id, session_id)
    fields = goal.model_dump(mode="json", exclude={"id"})
    digest = body_hash(fields)
    goal_id = goal.id or new_id()
    row = q.insert_goal(
        conn,
        {
            "tenant_id": tenant_id,
            "session_pk": session_pk,
            "id": goal_id,
            "description": goal.description,
            "priority": goal.priority,
            "status": goal.status.value,
            "progress": goal.progress,
            "metadata": dumps(goal.metadata),
            "created_at": now,
            "updated_at": now,
            "completed_at": now if goal.status.value in _GOAL_DONE else None,
            "create_hash": digest,
        },
    )
    if row is None:
        existing = q.find_goal(conn, session_pk, goal_id, lock=False)
        assert existing is not None
        if existing["create_hash"] != digest:
            raise Conflict(f"goal {goal_id!r} exists with a different body")
        return Created(goal_record(existing), created=False)
    _changed(tenant_id, session_id, "session.updated", now)
    return Created(goal_record(row), created=True)


def patch_goal(
    q: SessionSql,
    conn: Any,
    tenant_id: str,
    session_id: str,
    goal_id: str,
    patch: GoalPatch,
    *,
    now: int,
) -> Goal:
    """Replace the sent fields (``metadata`` merged, RFC 7386); a terminal status sets
    ``completed_at``, another clears it.

    Raises:
        NotFound: the session or the goal.
    """
    session_pk = get_pk(q, conn, tenant_id, session_id)
    row = q.find_goal(conn, session_pk, goal_id, lock=True)
    if row is None:
        raise NotFound(f"goal {goal_id!r} not found", details={"goal_id": goal_id})
    sets: dict[str, Any] = {}
    for name in sorted(patch.model_fields_set):
        value = getattr(patch, name)  # never None: GoalPatch refuses nulls
        if name == "metadata":
            _, value = merge_json(row["metadata"], value, loc=["body", "metadata"])
        elif name == "status":
            value = value.value
            sets["completed_at"] = now if value in _GOAL_DONE else None
        sets[name] = value
    if sets:
        row = q.update_goal(conn, row["pk"], {**sets, "updated_at": now})
    _changed(tenant_id, session_id, "session.updated", now)
    return goal_record(row)


# -- the batch ---------------------------------------------------------------------------
def ingest_batch(
    q: SessionSql,
    qe: EventSql,
    conn: Any,
    tenant_id: str,
    batch: EventBatchIn,
    groups: dict[str, tuple[list[int], PreparedEvents]],
    *,
    now: int,
    correlation_id: str | None,
) -> BatchResult:
    """Sessions (first write wins), then each session's events (a session named only by
    its events is created), then ends (an ended session ends again as a no-op), in the
    caller's transaction: all or nothing."""
    created: list[str] = []
    for s in batch.sessions:
        fields = s.model_dump(mode="json", exclude_unset=True)
        made = create_session(
            q, qe, conn, tenant_id, fields, now=now, correlation_id=correlation_id, strict=False
        )
        if made.created:
            created.append(s.id)
    seqs = [0] * len(batch.events)
    duplicates = 0
    for session_id, (idxs, prepared) in groups.items():
        found = qe.lock_session(conn, tenant_id, session_id)
        if found is None:
            made = create_session(  # not strict: another replica may have just made it
                q,
                qe,
                conn,
                tenant_id,
                {"id": session_id},
                now=now,
                correlation_id=correlation_id,
                strict=False,
            )
            if made.created:
                created.append(session_id)
            found = qe.lock_session(conn, tenant_id, session_id)
            assert found is not None
        pk, count = found
        res = append_events(
            qe, conn, session_pk=pk, session_id=session_id, prepared=prepared, now=now, count=count
        )
        duplicates += res.duplicates
        for i, seq in zip(idxs, res.seqs, strict=True):
            seqs[i] = seq
    for end in batch.ends:
        end_session(
            q,
            qe,
            conn,
            tenant_id,
            end.session_id,
            status=end.status,
            summary=end.summary,
            now=now,
            correlation_id=correlation_id,
            strict=False,
        )
    return BatchResult(seqs=seqs, duplicates=duplicates, created_sessions=created)

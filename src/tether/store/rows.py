"""Rows to records: the column names every backend's schema shares, and the one place
that turns a row (any mapping of column name to value: ``sqlite3.Row``, psycopg's
``dict_row``) into a :mod:`tether.domain.records` record.

Stored times are integer ms since the epoch (rendered RFC 3339 here); JSON columns are
text (decoded here), so a record is the same whichever backend read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from tether.domain.records import (
    ApiKey,
    AuditEntry,
    Child,
    Counters,
    Event,
    Goal,
    Memory,
    MemoryChange,
    ModelPrice,
    OutboxJob,
    Session,
)
from tether.domain.time import iso
from tether.store.common import dumps, loads


class Row(Protocol):
    """A row whose values are read by column name or position and iterated in column
    order (``sqlite3.Row``, the PostgreSQL backend's rows)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


#: The columns :func:`session_record` reads, plus ``pk``: lists select these, not ``*``
#: (the state document can be a megabyte and is served by its own route).
SESSION_COLUMNS = ", ".join(
    [
        "pk",
        "id",
        "parent_id",
        "user_id",
        "agent",
        "title",
        "status",
        "phase",
        "current_step",
        "summary",
        "tags",
        "metadata",
        "created_at",
        "updated_at",
        "ended_at",
        "event_count",
        "error_count",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "state_version",
    ]
)


def session_record(row: Row) -> Session:
    """A session row (at least :data:`SESSION_COLUMNS`) as a record."""
    return Session(
        id=row["id"],
        parent_id=row["parent_id"],
        user_id=row["user_id"],
        agent=row["agent"],
        title=row["title"],
        status=row["status"],
        phase=row["phase"],
        current_step=row["current_step"],
        summary=row["summary"],
        tags=loads(row["tags"]),
        metadata=loads(row["metadata"]),
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
        ended_at=iso(row["ended_at"]),
        counters=Counters(
            event_count=row["event_count"],
            error_count=row["error_count"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=row["cost_usd"],
            cache_read_tokens=row["cache_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
        ),
        state_version=row["state_version"],
    )


def goal_record(row: Row) -> Goal:
    """A goal row as a record."""
    return Goal(
        id=row["id"],
        description=row["description"],
        priority=row["priority"],
        status=row["status"],
        progress=row["progress"],
        metadata=loads(row["metadata"]),
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
        completed_at=iso(row["completed_at"]),
    )


def child_record(row: Row) -> Child:
    """A child session's ``id``, ``agent``, ``status`` as its parent lists it."""
    return Child(id=row["id"], agent=row["agent"], status=row["status"])


def event_record(row: Row, session_id: str) -> Event:
    """An event row as a record of session ``session_id``."""
    return Event(
        id=row["id"],
        session_id=session_id,
        seq=row["seq"],
        kind=row["kind"],
        name=row["name"],
        role=row["role"],
        status=row["status"],
        level=row["level"],
        started_at=iso(row["started_at"]),
        ended_at=iso(row["ended_at"]),
        duration_ms=row["duration_ms"],
        parent_id=row["parent_id"],
        span_id=row["span_id"],
        trace_id=row["trace_id"],
        input=loads(row["input"]),
        output=loads(row["output"]),
        attributes=loads(row["attributes"]),
        model=row["model"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        idempotency_key=row["idempotency_key"],
        correlation_id=row["correlation_id"],
        created_at=iso(row["created_at"]) or "",
    )


#: The columns :func:`memory_record` reads, plus ``pk``, qualified by alias ``m``: a read
#: that only renders memories selects these rather than ``*`` (the ``terms`` column, the
#: analyzed text, is as long as the text and only the keyword index reads it).
MEMORY_COLUMNS: Final = ", ".join(
    f"m.{name}"
    for name in [
        "pk",
        "id",
        "namespace",
        "text",
        "kind",
        "tags",
        "metadata",
        "importance",
        "source_session_id",
        "source_event_id",
        "occurred_at",
        "created_at",
        "updated_at",
        "last_accessed_at",
        "access_count",
        "expires_at",
        "deleted_at",
        "content_hash",
        "embedding_model",
        "version",
    ]
)


def memory_record(row: Row) -> Memory:
    """A memory row (at least :data:`MEMORY_COLUMNS`) as a record."""
    return Memory(
        id=row["id"],
        namespace=row["namespace"],
        text=row["text"],
        kind=row["kind"],
        tags=loads(row["tags"]),
        metadata=loads(row["metadata"]),
        importance=row["importance"],
        source_session_id=row["source_session_id"],
        source_event_id=row["source_event_id"],
        occurred_at=iso(row["occurred_at"]),
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
        last_accessed_at=iso(row["last_accessed_at"]),
        access_count=row["access_count"],
        expires_at=iso(row["expires_at"]),
        deleted_at=iso(row["deleted_at"]),
        content_hash=row["content_hash"],
        embedding_model=row["embedding_model"],
        version=row["version"],
    )


def change_record(row: Row) -> MemoryChange:
    """A ``memory_changes`` row as a record (``memory``: the snapshot, ``None`` once
    purged)."""
    return MemoryChange(
        lsn=row["lsn"],
        op=row["op"],
        memory_id=row["memory_id"],
        namespace=row["namespace"],
        version=row["version"],
        at=iso(row["at"]) or "",
        memory=loads(row["snapshot"]),
    )


def job_record(row: Row) -> OutboxJob:
    """A ``memory_outbox`` row joined with its memory's ``memory_id`` as a record."""
    return OutboxJob(
        id=row["id"],
        memory_id=row["memory_id"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=iso(row["next_attempt_at"]),
        last_error=row["last_error"],
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
    )


def key_record(row: Row) -> ApiKey:
    """An ``api_keys`` row as a record (the secret's hash stays behind)."""
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        scope=row["scope"],
        namespaces=loads(row["namespaces"]),
        created_at=iso(row["created_at"]) or "",
        expires_at=iso(row["expires_at"]),
        revoked_at=iso(row["revoked_at"]),
        last_used_at=iso(row["last_used_at"]),
        created_by=row["created_by"],
    )


def audit_record(row: Row) -> AuditEntry:
    """An ``audit_log`` row as a record."""
    return AuditEntry(
        seq=row["seq"],
        tenant_id=row["tenant_id"],
        at=iso(row["at"]) or "",
        key_id=row["key_id"],
        action=row["action"],
        target=row["target"],
        detail=loads(row["detail"]),
        correlation_id=row["correlation_id"],
    )


#: Columns of an audit entry as written (``seq`` is the store's).
AUDIT_COLUMNS: Final = ("tenant_id", "at", "key_id", "action", "target", "detail", "correlation_id")


def audit_params(entries: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Parameter rows for ``INSERT INTO audit_log (AUDIT_COLUMNS)`` (``detail`` as JSON)."""
    return [
        tuple(
            dumps(e["detail"]) if c == "detail" and e.get("detail") is not None else e.get(c)
            for c in AUDIT_COLUMNS
        )
        for e in entries
    ]


def page_of_audit(rows: Sequence[Row], limit: int) -> tuple[list[AuditEntry], int | None]:
    """A page from ``limit + 1`` rows in ``seq`` order: the entries and the next cursor."""
    items = [audit_record(r) for r in rows[:limit]]
    return items, (items[-1].seq if len(rows) > limit and items else None)


def price_record(row: Row) -> ModelPrice:
    """A ``model_prices`` row (a tenant's override) as a record."""
    return ModelPrice(
        model=row["model"],
        input=row["input"],
        cached_input=row["cached_input"],
        cache_write=row["cache_write"],
        output=row["output"],
        reasoning=row["reasoning"],
        source="tenant",
        updated_at=iso(row["updated_at"]),
    )

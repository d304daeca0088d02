"""The tables a deployment consists of, as every backend's schema names them: what
``tether migrate`` copies, page by page, from one store to another.

Pure names, no SQL: each backend's ``copy`` module reads and writes these columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tether.store.prepared import COLUMNS as EVENT_COLUMNS

__all__ = ["TABLES", "TableSpec"]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table: its ``columns`` in copy order, and the ``key`` columns rows are paged by
    (unique, ascending)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


_SESSIONS = (
    "pk", "tenant_id", "id", "parent_id", "user_id", "agent", "title", "status", "phase",
    "current_step", "summary", "tags", "metadata", "created_at", "updated_at", "ended_at",
    "event_count", "error_count", "input_tokens", "output_tokens", "cost_usd", "state",
    "state_version", "create_hash", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens",
)  # fmt: skip
_STATE_VERSIONS = ("session_pk", "version", "tenant_id", "patch", "state", "at")
_PRICES = (
    "tenant_id", "model", "input", "cached_input", "cache_write", "output", "reasoning",
    "updated_at",
)  # fmt: skip
_GOALS = (
    "pk", "tenant_id", "session_pk", "id", "description", "priority", "status", "progress",
    "metadata", "created_at", "updated_at", "completed_at", "create_hash",
)  # fmt: skip
_MEMORIES = (
    "pk", "tenant_id", "id", "namespace", "text", "kind", "tags", "metadata", "importance",
    "source_session_id", "source_event_id", "occurred_at", "created_at", "updated_at",
    "last_accessed_at", "access_count", "expires_at", "deleted_at", "content_hash",
    "embedding_model", "version", "terms",
)  # fmt: skip
_CHANGES = (
    "lsn", "tenant_id", "memory_id", "memory_pk", "namespace", "op", "version", "at", "snapshot",
)  # fmt: skip
_OUTBOX = (
    "id", "tenant_id", "memory_pk", "state", "attempts", "next_attempt_at", "last_error",
    "created_at", "updated_at",
)  # fmt: skip
_VECTORS = ("memory_pk", "model", "tenant_id", "content_hash", "dim", "vector", "created_at")
_IDEMPOTENCY = ("tenant_id", "key", "body_hash", "result", "created_at")
_KEYS = (
    "id", "tenant_id", "name", "scope", "namespaces", "secret_hash", "created_at",
    "expires_at", "revoked_at", "last_used_at", "created_by",
)  # fmt: skip
_AUDIT = ("seq", "tenant_id", "at", "key_id", "action", "target", "detail", "correlation_id")

#: In copy order. ``memory_changes`` is the change feed: its ``lsn`` values are kept, so a
#: consumer's cursor stays valid on the new store.
TABLES: Final = (
    TableSpec("sessions", _SESSIONS, ("pk",)),
    TableSpec("goals", _GOALS, ("pk",)),
    TableSpec("state_versions", _STATE_VERSIONS, ("session_pk", "version")),
    TableSpec("events", ("pk", *EVENT_COLUMNS), ("pk",)),
    TableSpec("memories", _MEMORIES, ("pk",)),
    TableSpec("memory_changes", _CHANGES, ("lsn",)),
    TableSpec("memory_outbox", _OUTBOX, ("id",)),
    TableSpec("memory_vectors", _VECTORS, ("memory_pk", "model")),
    TableSpec("memory_idempotency", _IDEMPOTENCY, ("tenant_id", "key")),
    TableSpec("api_keys", _KEYS, ("id",)),
    TableSpec("audit_log", _AUDIT, ("seq",)),
    TableSpec("model_prices", _PRICES, ("tenant_id", "model")),
)

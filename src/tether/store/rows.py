"""Row <-> JSON helpers shared by the SQL modules."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from tether.domain.common import MAX_METADATA_BYTES
from tether.domain.merge_patch import merge_patch
from tether.domain.time import iso
from tether.errors import InvalidInput


def dumps(value: Any) -> str:
    """Compact JSON text for a TEXT column (orjson; keys in insertion order)."""
    return orjson.dumps(value).decode()


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def merge_json(
    stored: str | None,
    patch: Any,
    *,
    loc: list[str],
    max_bytes: int = MAX_METADATA_BYTES,
) -> tuple[Any, str]:
    """Apply a JSON Merge Patch (RFC 7386) to a stored JSON column.

    Returns:
        ``(merged value, its JSON text)``.

    Raises:
        InvalidInput: the merged document would exceed ``max_bytes`` as compact JSON (422
            naming ``loc``): repeated patches must not grow a document without bound.
    """
    merged = merge_patch(loads(stored), patch)
    raw = orjson.dumps(merged)
    if len(raw) > max_bytes:
        raise InvalidInput(
            f"the merged document would be {len(raw)} bytes; the limit is {max_bytes}",
            details=[{"loc": loc, "type": "too_large", "max_bytes": max_bytes}],
        )
    return merged, raw.decode()


def row_bytes(row: sqlite3.Row) -> int:
    """Stored size of a row in bytes, roughly: the length of its text and blob values
    (numbers and NULLs are noise beside the JSON columns that make rows large)."""
    return sum(len(v) for v in row if isinstance(v, str | bytes))


def take_page(
    rows: Iterable[sqlite3.Row], *, limit: int, max_bytes: int
) -> tuple[list[sqlite3.Row], bool]:
    """Up to ``limit`` rows from a lazily iterated cursor, stopping before their stored
    bytes (:func:`row_bytes`) would exceed ``max_bytes``; the first row is always taken.

    Iterate a cursor (not ``fetchall()``) so that no more than one row past the page is
    ever read: a page of 1,000 events of 200 kB each would otherwise hold 200 MB.

    Returns:
        ``(rows, more)``: ``more`` is true when a further row exists (the query should
        ask for ``limit + 1`` rows so that a full page can tell).
    """
    page: list[sqlite3.Row] = []
    total = 0
    for row in rows:
        if len(page) == limit:
            return page, True
        size = row_bytes(row)
        if page and total + size > max_bytes:
            return page, True
        page.append(row)
        total += size
    return page, False


def body_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys): tells "same body" from "different body"."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


#: The columns :func:`session_dict` reads, plus ``pk``: lists select these, not ``*``
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
        "state_version",
    ]
)


def session_dict(row: sqlite3.Row) -> dict[str, Any]:
    """The public shape of a session row (times RFC 3339, counters grouped)."""
    return {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "user_id": row["user_id"],
        "agent": row["agent"],
        "title": row["title"],
        "status": row["status"],
        "phase": row["phase"],
        "current_step": row["current_step"],
        "summary": row["summary"],
        "tags": loads(row["tags"]),
        "metadata": loads(row["metadata"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "ended_at": iso(row["ended_at"]),
        "counters": {
            "event_count": row["event_count"],
            "error_count": row["error_count"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cost_usd": row["cost_usd"],
        },
        "state_version": row["state_version"],
    }


def goal_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "description": row["description"],
        "priority": row["priority"],
        "status": row["status"],
        "progress": row["progress"],
        "metadata": loads(row["metadata"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "completed_at": iso(row["completed_at"]),
    }


def event_dict(row: sqlite3.Row, session_id: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "session_id": session_id,
        "seq": row["seq"],
        "kind": row["kind"],
        "name": row["name"],
        "role": row["role"],
        "status": row["status"],
        "level": row["level"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "duration_ms": row["duration_ms"],
        "parent_id": row["parent_id"],
        "span_id": row["span_id"],
        "trace_id": row["trace_id"],
        "input": loads(row["input"]),
        "output": loads(row["output"]),
        "attributes": loads(row["attributes"]),
        "model": row["model"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost_usd": row["cost_usd"],
        "idempotency_key": row["idempotency_key"],
        "correlation_id": row["correlation_id"],
        "created_at": iso(row["created_at"]),
    }

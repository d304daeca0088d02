"""Row <-> JSON helpers shared by the SQL modules."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import orjson

from tether.domain.time import iso


def dumps(value: Any) -> str:
    """Compact JSON text for a TEXT column (orjson; keys in insertion order)."""
    return orjson.dumps(value).decode()


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def body_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys): tells "same body" from "different body"."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


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

"""Outbox and vector SQL for the memory indexer (ARCHITECTURE §3).

A job is a row of ``memory_outbox``: ``pending`` until its vector is committed (then the
row is deleted), retried with backoff (``attempts``, ``next_attempt_at``), and moved to
``dead`` after too many attempts, where an admin can list and replay it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tether.domain.records import OutboxJob
from tether.store.base import Job
from tether.store.rows import Row, job_record

# Keys per IN (...) list.
_IN_CHUNK = 500


def claim_jobs(conn: sqlite3.Connection, *, now: int, limit: int, lease_ms: int) -> list[Job]:
    """Up to ``limit`` pending jobs due at ``now``, oldest due first, across tenants, each
    made due again ``lease_ms`` later (a write: run it in the writer)."""
    rows = conn.execute(
        "SELECT o.id, o.tenant_id, o.memory_pk, o.attempts, m.namespace, m.text, "
        "m.content_hash, m.deleted_at FROM memory_outbox o "
        "LEFT JOIN memories m ON m.pk = o.memory_pk "
        "WHERE o.state='pending' AND o.next_attempt_at<=? ORDER BY o.next_attempt_at, o.id "
        "LIMIT ?",
        (now, limit),
    ).fetchall()
    if rows:
        ids = [r["id"] for r in rows]
        conn.execute(
            f"UPDATE memory_outbox SET next_attempt_at=? WHERE id IN ({','.join('?' * len(ids))})",
            (now + lease_ms, *ids),
        )
    out = []
    for r in rows:
        gone = r["text"] is None or r["deleted_at"] is not None
        out.append(
            Job(
                id=r["id"],
                tenant_id=r["tenant_id"],
                memory_pk=r["memory_pk"],
                attempts=r["attempts"],
                namespace=None if gone else r["namespace"],
                text=None if gone else r["text"],
                content_hash=None if gone else r["content_hash"],
            )
        )
    return out


def release(conn: sqlite3.Connection, job_ids: Sequence[int], *, due_at: int) -> None:
    """Make pending jobs due at ``due_at`` (ms), ending their lease early."""
    for i in range(0, len(job_ids), _IN_CHUNK):
        chunk = list(job_ids[i : i + _IN_CHUNK])
        conn.execute(
            f"UPDATE memory_outbox SET next_attempt_at=? WHERE state='pending' "
            f"AND id IN ({','.join('?' * len(chunk))})",
            (due_at, *chunk),
        )


def next_due_at(conn: sqlite3.Connection) -> int | None:
    """When the earliest pending job is due (ms since the epoch), or ``None`` if none."""
    value = conn.execute(
        "SELECT min(next_attempt_at) FROM memory_outbox WHERE state='pending'"
    ).fetchone()[0]
    return None if value is None else int(value)


def live_row(conn: sqlite3.Connection, memory_pk: int, digest: str) -> Row | None:
    """The memory if live with this content hash (one writer: no lock to take)."""
    row: Row | None = conn.execute(
        "SELECT * FROM memories WHERE pk=? AND content_hash=? AND deleted_at IS NULL",
        (memory_pk, digest),
    ).fetchone()
    return row


def delete_jobs(conn: sqlite3.Connection, job_ids: Sequence[int]) -> None:
    for i in range(0, len(job_ids), _IN_CHUNK):
        chunk = list(job_ids[i : i + _IN_CHUNK])
        conn.execute(f"DELETE FROM memory_outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk)


def charge(
    conn: sqlite3.Connection,
    job_id: int,
    *,
    attempts: int,
    state: str,
    due_at: int,
    error: str,
    now: int,
) -> None:
    conn.execute(
        "UPDATE memory_outbox SET attempts=?, state=?, next_attempt_at=?, last_error=?, "
        "updated_at=? WHERE id=?",
        (attempts, state, due_at, error, now, job_id),
    )


def list_jobs(
    conn: sqlite3.Connection, tenant_id: str, *, state: str, after: int, limit: int
) -> tuple[list[OutboxJob], int | None]:
    """The tenant's jobs in ``state`` by id: ``(items, next_after or None)``."""
    rows = conn.execute(
        "SELECT o.*, m.id AS memory_id FROM memory_outbox o "
        "LEFT JOIN memories m ON m.pk = o.memory_pk "
        "WHERE o.tenant_id=? AND o.state=? AND o.id>? ORDER BY o.id LIMIT ?",
        (tenant_id, state, after, limit + 1),
    ).fetchall()
    items = [job_record(r) for r in rows[:limit]]
    return items, (items[-1].id if len(rows) > limit and items else None)


def replay(conn: sqlite3.Connection, tenant_id: str, ids: Sequence[int] | None, *, now: int) -> int:
    """Requeue the tenant's dead jobs (all, or those in ``ids``) with a fresh attempt count.

    Returns:
        How many jobs were requeued.
    """
    sql = (
        "UPDATE memory_outbox SET state='pending', attempts=0, next_attempt_at=?, updated_at=? "
        "WHERE tenant_id=? AND state='dead'"
    )
    if ids is None:
        return conn.execute(sql, (now, now, tenant_id)).rowcount
    total = 0
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[i : i + _IN_CHUNK])
        total += conn.execute(
            f"{sql} AND id IN ({','.join('?' * len(chunk))})", (now, now, tenant_id, *chunk)
        ).rowcount
    return total


def enqueue_reindex(
    conn: sqlite3.Connection, tenant_id: str, *, model: str, everything: bool, now: int
) -> int:
    """Queue embedding jobs for the tenant's live memories lacking a ``model`` vector.

    With ``everything``, every live memory is re-embedded. Memories that already have a
    pending job are skipped.

    Returns:
        How many jobs were queued.
    """
    stale = "" if everything else "AND (m.embedding_model IS NULL OR m.embedding_model<>?)"
    params: list[Any] = [now, now, now, tenant_id]
    if not everything:
        params.append(model)
    return conn.execute(
        "INSERT INTO memory_outbox (tenant_id, memory_pk, next_attempt_at, created_at, "
        "updated_at) SELECT m.tenant_id, m.pk, ?, ?, ? FROM memories m "
        f"WHERE m.tenant_id=? AND m.deleted_at IS NULL {stale} AND NOT EXISTS "
        "(SELECT 1 FROM memory_outbox o WHERE o.memory_pk=m.pk AND o.state='pending')",
        params,
    ).rowcount

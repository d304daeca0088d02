"""Outbox and vector SQL for the memory indexer on PostgreSQL (ARCHITECTURE §3).

As in SQLite, a job is a ``memory_outbox`` row: ``pending`` until its vector is
committed (then deleted), retried with backoff, ``dead`` after too many attempts. The
indexers of several replicas claim jobs with ``FOR UPDATE SKIP LOCKED``: a job being
claimed by one is skipped by the others, and once claimed it is leased (due again only
after ``lease_ms``), so each job is embedded by one replica at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.domain.records import OutboxJob
from tether.store.base import Job
from tether.store.postgres.engine import Conn, one
from tether.store.rows import Row, job_record


def claim_jobs(conn: Conn, *, now: int, limit: int, lease_ms: int) -> list[Job]:
    """Up to ``limit`` pending jobs due at ``now``, oldest due first, across tenants, each
    made due again ``lease_ms`` later (a write: run it in the writer)."""
    rows = conn.execute(
        "WITH due AS (SELECT id FROM memory_outbox WHERE state = 'pending' "
        "AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT %s "
        "FOR UPDATE SKIP LOCKED), "
        "leased AS (UPDATE memory_outbox o SET next_attempt_at = %s FROM due "
        "WHERE o.id = due.id RETURNING o.id, o.tenant_id, o.memory_pk, o.attempts) "
        "SELECT l.id, l.tenant_id, l.memory_pk, l.attempts, m.namespace, m.text, "
        "m.content_hash, m.deleted_at FROM leased l LEFT JOIN memories m ON m.pk = l.memory_pk "
        "ORDER BY l.id",
        (now, limit, now + lease_ms),
    ).fetchall()
    out = []
    for job_id, tenant_id, memory_pk, attempts, namespace, text, digest, deleted_at in rows:
        gone = text is None or deleted_at is not None
        out.append(
            Job(
                id=job_id,
                tenant_id=tenant_id,
                memory_pk=memory_pk,
                attempts=attempts,
                namespace=None if gone else namespace,
                text=None if gone else text,
                content_hash=None if gone else digest,
            )
        )
    return out


def release(conn: Conn, job_ids: Sequence[int], *, due_at: int) -> None:
    """Make pending jobs due at ``due_at`` (ms), ending their lease early."""
    conn.execute(
        "UPDATE memory_outbox SET next_attempt_at = %s WHERE state = 'pending' "
        "AND id = ANY(%s::int8[])",
        (due_at, list(job_ids)),
    )


def next_due_at(conn: Conn) -> int | None:
    """When the earliest pending job is due (ms since the epoch), or ``None`` if none."""
    (value,) = one(
        conn.execute("SELECT min(next_attempt_at) FROM memory_outbox WHERE state = 'pending'")
    )
    return None if value is None else int(value)


def live_row(conn: Conn, memory_pk: int, digest: str) -> Row | None:
    """The memory if live with this content hash, locked to the commit."""
    row: Row | None = conn.execute(
        "SELECT * FROM memories WHERE pk = %s AND content_hash = %s AND deleted_at IS NULL "
        "FOR UPDATE",
        (memory_pk, digest),
    ).fetchone()
    return row


def delete_jobs(conn: Conn, job_ids: Sequence[int]) -> None:
    conn.execute("DELETE FROM memory_outbox WHERE id = ANY(%s::int8[])", (list(job_ids),))


def charge(
    conn: Conn, job_id: int, *, attempts: int, state: str, due_at: int, error: str, now: int
) -> None:
    conn.execute(
        "UPDATE memory_outbox SET attempts = %s, state = %s, next_attempt_at = %s, "
        "last_error = %s, updated_at = %s WHERE id = %s",
        (attempts, state, due_at, error, now, job_id),
    )


def list_jobs(
    conn: Conn, tenant_id: str, *, state: str, after: int, limit: int
) -> tuple[list[OutboxJob], int | None]:
    """The tenant's jobs in ``state`` by id: ``(items, next_after or None)``."""
    rows = conn.execute(
        "SELECT o.*, m.id AS memory_id FROM memory_outbox o "
        "LEFT JOIN memories m ON m.pk = o.memory_pk "
        "WHERE o.tenant_id = %s AND o.state = %s AND o.id > %s ORDER BY o.id LIMIT %s",
        (tenant_id, state, after, limit + 1),
    ).fetchall()
    items = [job_record(r) for r in rows[:limit]]
    return items, (items[-1].id if len(rows) > limit and items else None)


def replay(conn: Conn, tenant_id: str, ids: Sequence[int] | None, *, now: int) -> int:
    """Requeue the tenant's dead jobs (all, or those in ``ids``) with a fresh attempt count.

    Returns:
        How many jobs were requeued.
    """
    sql = (
        "UPDATE memory_outbox SET state = 'pending', attempts = 0, next_attempt_at = %s, "
        "updated_at = %s WHERE tenant_id = %s AND state = 'dead'"
    )
    if ids is None:
        return conn.execute(sql, (now, now, tenant_id)).rowcount
    return conn.execute(
        f"{sql} AND id = ANY(%s::int8[])", (now, now, tenant_id, list(ids))
    ).rowcount


def enqueue_reindex(conn: Conn, tenant_id: str, *, model: str, everything: bool, now: int) -> int:
    """Queue embedding jobs for the tenant's live memories lacking a ``model`` vector.

    With ``everything``, every live memory is re-embedded. Memories that already have a
    pending job are skipped.

    Returns:
        How many jobs were queued.
    """
    stale = "" if everything else "AND m.embedding_model IS DISTINCT FROM %s"
    params: list[Any] = [now, now, now, tenant_id]
    if not everything:
        params.append(model)
    return conn.execute(
        "INSERT INTO memory_outbox (tenant_id, memory_pk, next_attempt_at, created_at, "
        "updated_at) SELECT m.tenant_id, m.pk, %s, %s, %s FROM memories m "
        f"WHERE m.tenant_id = %s AND m.deleted_at IS NULL {stale} AND NOT EXISTS "
        "(SELECT 1 FROM memory_outbox o WHERE o.memory_pk = m.pk AND o.state = 'pending')",
        params,
    ).rowcount

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
from tether.store.base import EmbeddedJob, Job
from tether.store.postgres.engine import Conn, one
from tether.store.postgres.memories import store_vector
from tether.store.rows import job_record


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


def complete(
    conn: Conn,
    model: str,
    done: Sequence[EmbeddedJob],
    drop: Sequence[int],
    now: int,
) -> int:
    """Store vectors whose memory still has the embedded text, and delete the jobs.

    Args:
        model: The embedder's name, stored with each vector.
        done: Embedded jobs.
        drop: Ids of jobs to delete without a vector (their memory is gone).

    Returns:
        How many vectors were stored (a memory whose text changed or that was deleted
        meanwhile is skipped: a newer job, or none, covers it).
    """
    stored = 0
    for item in done:
        job = item.job
        live = conn.execute(
            "SELECT * FROM memories WHERE pk = %s AND content_hash = %s AND deleted_at IS NULL "
            "FOR UPDATE",
            (job.memory_pk, job.content_hash),
        ).fetchone()
        if live is not None:
            store_vector(conn, live, model=model, dim=item.dim, vector=item.vector, now=now)
            stored += 1
    ids = [item.job.id for item in done] + list(drop)
    if ids:
        conn.execute("DELETE FROM memory_outbox WHERE id = ANY(%s::int8[])", (ids,))
    return stored


def fail(
    conn: Conn,
    jobs: Sequence[Job],
    *,
    error: str,
    now: int,
    max_attempts: int,
    backoff_ms: Sequence[int],
) -> int:
    """Charge one failed attempt to each job: retry later, or dead-letter at the limit.

    Args:
        backoff_ms: Delay before the next attempt, aligned with ``jobs``.

    Returns:
        How many jobs went to the dead letters.
    """
    dead = 0
    for job, delay in zip(jobs, backoff_ms, strict=True):
        attempts = job.attempts + 1
        state = "dead" if attempts >= max_attempts else "pending"
        dead += state == "dead"
        conn.execute(
            "UPDATE memory_outbox SET attempts = %s, state = %s, next_attempt_at = %s, "
            "last_error = %s, updated_at = %s WHERE id = %s",
            (attempts, state, now + delay, error[:2000], now, job.id),
        )
    return dead


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

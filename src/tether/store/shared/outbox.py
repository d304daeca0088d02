"""Outbox logic for the memory indexer, once for every backend (ARCHITECTURE §3).

A job is a row of ``memory_outbox``: ``pending`` until its vector is committed (then the
row is deleted), retried with backoff (``attempts``, ``next_attempt_at``), and moved to
``dead`` after too many attempts, where an admin can list and replay it. Claims, lists,
replays and reindex requests are plain SQL in each backend (``store/<backend>/outbox.py``);
what an embedded or failed batch does is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tether.domain.records import OutboxJob
from tether.store.base import EmbeddedJob, Job
from tether.store.rows import Row
from tether.store.shared.memories import MemorySql, store_vector


class OutboxSql(Protocol):
    """The SQL a backend supplies (``store/<backend>/outbox.py``): claims, lists, replays
    and reindex requests as they are, and the primitives for settling jobs."""

    def claim_jobs(self, conn: Any, *, now: int, limit: int, lease_ms: int) -> list[Job]:
        """Up to ``limit`` due pending jobs, oldest first, each leased for ``lease_ms``
        (no two claimers get the same job)."""

    def release(self, conn: Any, job_ids: Sequence[int], *, due_at: int) -> None: ...

    def next_due_at(self, conn: Any) -> int | None: ...

    def list_jobs(
        self, conn: Any, tenant_id: str, *, state: str, after: int, limit: int
    ) -> tuple[list[OutboxJob], int | None]: ...

    def replay(self, conn: Any, tenant_id: str, ids: Sequence[int] | None, *, now: int) -> int: ...

    def enqueue_reindex(
        self, conn: Any, tenant_id: str, *, model: str, everything: bool, now: int
    ) -> int: ...

    def live_row(self, conn: Any, memory_pk: int, digest: str) -> Row | None:
        """The memory if it is live and still has this content hash (held for update)."""

    def delete_jobs(self, conn: Any, job_ids: Sequence[int]) -> None: ...

    def charge(
        self,
        conn: Any,
        job_id: int,
        *,
        attempts: int,
        state: str,
        due_at: int,
        error: str,
        now: int,
    ) -> None:
        """Record a failed attempt: its count, the state, when it is due, the error."""


def complete(
    q: OutboxSql,
    qm: MemorySql,
    conn: Any,
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
        if job.content_hash is None:
            continue
        live = q.live_row(conn, job.memory_pk, job.content_hash)
        if live is not None:
            store_vector(qm, conn, live, model=model, dim=item.dim, vector=item.vector, now=now)
            stored += 1
    ids = [item.job.id for item in done] + list(drop)
    if ids:
        q.delete_jobs(conn, ids)
    return stored


def fail(
    q: OutboxSql,
    conn: Any,
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
        q.charge(
            conn,
            job.id,
            attempts=attempts,
            state=state,
            due_at=now + delay,
            error=error[:2000],
            now=now,
        )
    return dead

"""``POST /v1/events/batch`` in one transaction: the SDK's flush path."""

from __future__ import annotations

import sqlite3

from tether.domain.events import EventBatchIn
from tether.domain.records import BatchResult
from tether.store.prepared import PreparedEvents
from tether.store.sqlite import sessions as qs
from tether.store.sqlite.events import append_events


def ingest_batch(
    conn: sqlite3.Connection,
    tenant_id: str,
    batch: EventBatchIn,
    groups: dict[str, tuple[list[int], PreparedEvents]],
    *,
    now: int,
    correlation_id: str | None,
) -> BatchResult:
    """Sessions (first write wins), then each session's events, then ends (an ended
    session ends again as a no-op), in the caller's transaction: all or nothing."""
    created: list[str] = []
    for s in batch.sessions:
        fields = s.model_dump(mode="json", exclude_unset=True)
        made = qs.create_session(
            conn, tenant_id, fields, now=now, correlation_id=correlation_id, strict=False
        )
        if made.created:
            created.append(s.id)
    seqs = [0] * len(batch.events)
    duplicates = 0
    for session_id, (idxs, prepared) in groups.items():
        row = conn.execute(
            "SELECT pk FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
        ).fetchone()
        if row is None:
            qs.create_session(
                conn, tenant_id, {"id": session_id}, now=now, correlation_id=correlation_id
            )
            created.append(session_id)
            row = conn.execute(
                "SELECT pk FROM sessions WHERE tenant_id=? AND id=?", (tenant_id, session_id)
            ).fetchone()
        res = append_events(
            conn, session_pk=row["pk"], session_id=session_id, prepared=prepared, now=now
        )
        duplicates += res.duplicates
        for i, seq in zip(idxs, res.seqs, strict=True):
            seqs[i] = seq
    for end in batch.ends:
        qs.end_session(
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

"""``POST /v1/events/batch`` in one transaction on PostgreSQL: the SDK's flush path."""

from __future__ import annotations

from tether.domain.events import EventBatchIn
from tether.domain.records import BatchResult
from tether.store.postgres import sessions as qs
from tether.store.postgres.engine import Conn
from tether.store.postgres.events import append_events
from tether.store.prepared import PreparedEvents


def _session_pk(conn: Conn, tenant_id: str, session_id: str) -> int | None:
    row = conn.execute(
        "SELECT pk FROM sessions WHERE tenant_id = %s AND id = %s", (tenant_id, session_id)
    ).fetchone()
    return None if row is None else int(row[0])


def ingest_batch(
    conn: Conn,
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
        made = qs.create_session(
            conn, tenant_id, fields, now=now, correlation_id=correlation_id, strict=False
        )
        if made.created:
            created.append(s.id)
    seqs = [0] * len(batch.events)
    duplicates = 0
    for session_id, (idxs, prepared) in groups.items():
        pk = _session_pk(conn, tenant_id, session_id)
        if pk is None:
            made = qs.create_session(  # not strict: another replica may have just made it
                conn,
                tenant_id,
                {"id": session_id},
                now=now,
                correlation_id=correlation_id,
                strict=False,
            )
            if made.created:
                created.append(session_id)
            pk = _session_pk(conn, tenant_id, session_id)
            assert pk is not None
        res = append_events(conn, session_pk=pk, session_id=session_id, prepared=prepared, now=now)
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

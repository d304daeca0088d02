"""Event ingest (one session, or many sessions in one call) and reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tether.domain.events import EventBatchIn, EventIn
from tether.domain.time import now_ms
from tether.services.context import RequestContext
from tether.store import sql_events as qe
from tether.store import sql_sessions as qs
from tether.store.sqlite import SQLiteStore

_DAY_MS = 86_400_000


def _ingest_batch(
    conn: sqlite3.Connection,
    ctx: RequestContext,
    batch: EventBatchIn,
    groups: dict[str, tuple[list[int], qe.PreparedEvents]],
    now: int,
) -> dict[str, Any]:
    created: list[str] = []
    for s in batch.sessions:
        fields = s.model_dump(mode="json", exclude_unset=True)
        if qs.create_session(
            conn, ctx.tenant_id, fields, now=now, correlation_id=ctx.correlation_id, strict=False
        ).created:
            created.append(s.id)
    seqs = [0] * len(batch.events)
    duplicates = 0
    for session_id, (idxs, prepared) in groups.items():
        row = conn.execute(
            "SELECT pk FROM sessions WHERE tenant_id=? AND id=?", (ctx.tenant_id, session_id)
        ).fetchone()
        if row is None:
            fields = {"id": session_id}
            qs.create_session(
                conn, ctx.tenant_id, fields, now=now, correlation_id=ctx.correlation_id
            )
            created.append(session_id)
            row = conn.execute(
                "SELECT pk FROM sessions WHERE tenant_id=? AND id=?", (ctx.tenant_id, session_id)
            ).fetchone()
        res = qe.append_events(conn, session_pk=row["pk"], prepared=prepared, now=now)
        duplicates += res.duplicates
        for i, seq in zip(idxs, res.seqs, strict=True):
            seqs[i] = seq
    for end in batch.ends:
        qs.end_session(
            conn,
            ctx.tenant_id,
            end.session_id,
            status=end.status,
            summary=end.summary,
            now=now,
            correlation_id=ctx.correlation_id,
            strict=False,
        )
    return {"seqs": seqs, "duplicates": duplicates, "created_sessions": created}


class EventService:
    """Append and read events; every call is scoped to ``ctx.tenant_id``."""

    def __init__(self, store: SQLiteStore, *, max_page_bytes: int) -> None:
        self.store = store
        self.max_page_bytes = max_page_bytes

    async def append(
        self, ctx: RequestContext, session_id: str, events: Sequence[EventIn]
    ) -> qe.AppendResult:
        """Append to one existing session in one transaction.

        Raises:
            NotFound: unknown session.
        """

        now = now_ms()
        prepared = qe.prepare_events(
            events, tenant_id=ctx.tenant_id, correlation_id=ctx.correlation_id, now=now
        )

        def job(conn: sqlite3.Connection) -> qe.AppendResult:
            pk = qs.get_pk(conn, ctx.tenant_id, session_id)
            return qe.append_events(conn, session_pk=pk, prepared=prepared, now=now)

        return await self.store.write(job)

    async def ingest_batch(self, ctx: RequestContext, batch: EventBatchIn) -> dict[str, Any]:
        """The SDK's flush path: sessions on first sight, events, then ends; all or nothing.

        Returns ``{"seqs": [...], "duplicates": n, "created_sessions": [...]}`` with seqs
        aligned to ``batch.events``.
        """
        now = now_ms()
        # Group by session, keeping each session's order; seqs go back in input order.
        by_session: dict[str, list[int]] = {}
        for i, e in enumerate(batch.events):
            by_session.setdefault(e.session_id, []).append(i)
        groups = {
            sid: (
                idxs,
                qe.prepare_events(
                    [batch.events[i] for i in idxs],
                    tenant_id=ctx.tenant_id,
                    correlation_id=ctx.correlation_id,
                    now=now,
                ),
            )
            for sid, idxs in by_session.items()
        }
        return await self.store.write(lambda c: _ingest_batch(c, ctx, batch, groups, now))

    async def list(
        self,
        ctx: RequestContext,
        session_id: str,
        *,
        after_seq: int,
        kinds: Sequence[str],
        limit: int,
    ) -> tuple[list[dict[str, Any]], int | None]:
        def job(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], int | None]:
            return qe.list_events(
                conn,
                session_pk=qs.get_pk(conn, ctx.tenant_id, session_id),
                session_id=session_id,
                after_seq=after_seq,
                kinds=kinds,
                limit=limit,
                max_bytes=self.max_page_bytes,
            )

        return await self.store.read(job)

    async def stats(self, ctx: RequestContext) -> dict[str, Any]:
        since = now_ms() - _DAY_MS
        return await self.store.read(lambda c: qe.stats(c, tenant_id=ctx.tenant_id, since_ms=since))

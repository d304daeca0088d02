"""The Store contract's methods, once, over a backend's engine and SQL modules.

A backend (``store/sqlite/``, ``store/postgres/``) supplies an engine (``write(fn)``:
``fn(conn)`` in the next group commit; ``read(fn)``: ``fn(conn)`` on a pooled read
connection) and its SQL modules, whose functions have the same names and signatures in
every backend; :class:`BackendStore` turns each contract method into one job, running
the logic of :mod:`tether.store.shared` over the backend's SQL primitives. Writes that
append to the memory change feed say so (``feed=True``), so a backend that must serialise
the feed's ``lsn`` with commits (PostgreSQL, several replicas) takes its lock first.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from tether.domain.events import EventBatchIn, EventIn
from tether.domain.filters import MemoryFilter, SessionFilter
from tether.domain.memories import MemoryImport, MemoryIn
from tether.domain.records import (
    ApiKey,
    AppendResult,
    AuditEntry,
    BatchResult,
    Created,
    Event,
    Goal,
    ImportResult,
    Memory,
    MemoryChange,
    MemoryStats,
    ModelPrice,
    NamespaceCount,
    OutboxJob,
    Purged,
    Remembered,
    Session,
    SessionDetail,
    StateDoc,
    StateVersion,
    Stats,
)
from tether.domain.sessions import GoalIn, GoalPatch, SessionPatch
from tether.errors import NotFound
from tether.store.base import EmbeddedJob, IndexRow, Job, RankingRow, Store
from tether.store.prepared import group_batch, prepare_events
from tether.store.rows import price_record, session_record
from tether.store.shared import events as es
from tether.store.shared import memories as ms
from tether.store.shared import outbox as os_
from tether.store.shared import sessions as ss
from tether.store.shared.events import EventSql
from tether.store.shared.memories import MemorySql
from tether.store.shared.outbox import OutboxSql
from tether.store.shared.sessions import SessionSql
from tether.store.tables import TABLES, TableSpec

__all__ = ["BackendStore", "SqlModules"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SqlModules:
    """A backend's SQL, one module per resource (the same functions in every backend).

    The first four implement the primitives :mod:`tether.store.shared` runs the logic
    over (checked by mypy against the protocols); recall, feed and copy are plain reads
    and writes called as they are.
    """

    sessions: SessionSql
    events: EventSql
    memories: MemorySql
    outbox: OutboxSql
    recall: ModuleType
    feed: ModuleType
    copy: ModuleType
    keys: ModuleType
    prices: ModuleType


class BackendStore(Store):
    """The contract over :attr:`sql` and the engine's :meth:`write` and :meth:`read`."""

    sql: SqlModules

    @abc.abstractmethod
    async def write(self, fn: Callable[[Any], T], *, feed: bool = False) -> T:
        """Run ``fn(conn)`` in the next group commit; its result once committed.
        ``feed``: it appends to the memory change feed."""

    @abc.abstractmethod
    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` on a read connection."""

    # -- sessions ----------------------------------------------------------------------
    async def create_session(
        self,
        tenant_id: str,
        fields: Mapping[str, Any],
        *,
        now: int,
        correlation_id: str | None,
        strict: bool = True,
    ) -> Created[Session]:
        return await self.write(
            lambda c: ss.create_session(
                self.sql.sessions,
                self.sql.events,
                c,
                tenant_id,
                dict(fields),
                now=now,
                correlation_id=correlation_id,
                strict=strict,
            )
        )

    async def sessions_by_id(self, tenant_id: str, ids: Sequence[str]) -> list[Session]:
        if not ids:
            return []

        def read(c: Any) -> list[Session]:
            by_id = {
                r["id"]: session_record(r) for r in self.sql.sessions.rows_by_id(c, tenant_id, ids)
            }
            return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

        return await self.read(read)

    async def sessions_changed(
        self, tenant_id: str, *, since_ms: int, after_id: str, limit: int
    ) -> list[Session]:
        return await self.read(
            lambda c: [
                session_record(r)
                for r in self.sql.sessions.changed_rows(
                    c, tenant_id, since_ms=since_ms, after_id=after_id, limit=limit
                )
            ]
        )

    async def active_sessions(self, tenant_id: str) -> int:
        return await self.read(lambda c: self.sql.sessions.active_count(c, tenant_id))

    async def get_session(self, tenant_id: str, session_id: str) -> SessionDetail:
        return await self.read(
            lambda c: ss.session_detail(self.sql.sessions, c, tenant_id, session_id)
        )

    async def list_sessions(
        self, tenant_id: str, f: SessionFilter, *, cursor: int | None, limit: int, max_bytes: int
    ) -> tuple[list[Session], str | None]:
        return await self.read(
            lambda c: ss.list_sessions(
                self.sql.sessions, c, tenant_id, f, cursor=cursor, limit=limit, max_bytes=max_bytes
            )
        )

    async def update_session(
        self, tenant_id: str, session_id: str, patch: SessionPatch, *, now: int
    ) -> Session:
        return await self.write(
            lambda c: ss.patch_session(self.sql.sessions, c, tenant_id, session_id, patch, now=now)
        )

    async def end_session(
        self,
        tenant_id: str,
        session_id: str,
        *,
        status: str,
        summary: str | None,
        now: int,
        correlation_id: str | None,
        strict: bool = True,
    ) -> Session:
        return await self.write(
            lambda c: ss.end_session(
                self.sql.sessions,
                self.sql.events,
                c,
                tenant_id,
                session_id,
                status=status,
                summary=summary,
                now=now,
                correlation_id=correlation_id,
                strict=strict,
            )
        )

    async def delete_session(self, tenant_id: str, session_id: str, *, now: int) -> int:
        return await self.write(
            lambda c: ss.delete_session(self.sql.sessions, c, tenant_id, session_id, now=now)
        )

    async def state_versions(
        self, tenant_id: str, session_id: str, *, after: int, limit: int
    ) -> tuple[list[StateVersion], int | None]:
        return await self.read(
            lambda c: ss.state_versions(
                self.sql.sessions, c, tenant_id, session_id, after=after, limit=limit
            )
        )

    async def get_state(self, tenant_id: str, session_id: str) -> StateDoc:
        return await self.read(lambda c: ss.get_state(self.sql.sessions, c, tenant_id, session_id))

    async def patch_state(
        self,
        tenant_id: str,
        session_id: str,
        patch: dict[str, Any],
        *,
        if_match: int | None,
        now: int,
        max_bytes: int,
    ) -> StateDoc:
        return await self.write(
            lambda c: ss.patch_state(
                self.sql.sessions,
                c,
                tenant_id,
                session_id,
                patch,
                if_match=if_match,
                now=now,
                max_bytes=max_bytes,
            )
        )

    async def add_goal(
        self, tenant_id: str, session_id: str, goal: GoalIn, *, now: int
    ) -> Created[Goal]:
        return await self.write(
            lambda c: ss.create_goal(self.sql.sessions, c, tenant_id, session_id, goal, now=now)
        )

    async def update_goal(
        self, tenant_id: str, session_id: str, goal_id: str, patch: GoalPatch, *, now: int
    ) -> Goal:
        return await self.write(
            lambda c: ss.patch_goal(
                self.sql.sessions, c, tenant_id, session_id, goal_id, patch, now=now
            )
        )

    # -- events ------------------------------------------------------------------------
    async def append_events(
        self,
        tenant_id: str,
        session_id: str,
        events: Sequence[EventIn],
        *,
        now: int,
        correlation_id: str | None,
    ) -> AppendResult:
        # Rows are built here, before the job is queued: the writer thread only numbers
        # and inserts them (see tether.store.prepared).
        prepared = prepare_events(
            events, tenant_id=tenant_id, correlation_id=correlation_id, now=now
        )

        def job(conn: Any) -> AppendResult:
            found = self.sql.events.lock_session(conn, tenant_id, session_id)
            if found is None:
                raise NotFound(
                    f"session {session_id!r} not found", details={"session_id": session_id}
                )
            return es.append_events(
                self.sql.events,
                conn,
                session_pk=found[0],
                session_id=session_id,
                prepared=prepared,
                now=now,
                count=found[1],
            )

        return await self.write(job)

    async def ingest_batch(
        self, tenant_id: str, batch: EventBatchIn, *, now: int, correlation_id: str | None
    ) -> BatchResult:
        groups = group_batch(
            batch.events, tenant_id=tenant_id, correlation_id=correlation_id, now=now
        )
        return await self.write(
            lambda c: ss.ingest_batch(
                self.sql.sessions,
                self.sql.events,
                c,
                tenant_id,
                batch,
                groups,
                now=now,
                correlation_id=correlation_id,
            )
        )

    async def list_events(
        self,
        tenant_id: str,
        session_id: str,
        *,
        after_seq: int,
        kinds: Sequence[str],
        limit: int,
        max_bytes: int,
    ) -> tuple[list[Event], int | None]:
        def job(conn: Any) -> tuple[list[Event], int | None]:
            page: tuple[list[Event], int | None] = es.list_events(
                self.sql.events,
                conn,
                session_pk=ss.get_pk(self.sql.sessions, conn, tenant_id, session_id),
                session_id=session_id,
                after_seq=after_seq,
                kinds=kinds,
                limit=limit,
                max_bytes=max_bytes,
            )
            return page

        return await self.read(job)

    async def stats(self, tenant_id: str, *, since_ms: int) -> Stats:
        return await self.read(
            lambda c: es.stats(self.sql.events, c, tenant_id=tenant_id, since_ms=since_ms)
        )

    # -- memories ----------------------------------------------------------------------
    async def remember(
        self, tenant_id: str, items: Sequence[MemoryIn], *, now: int
    ) -> list[Remembered]:
        return await self.write(
            lambda c: ms.remember(self.sql.memories, c, tenant_id, items, now=now), feed=True
        )

    async def get_memory(
        self, tenant_id: str, memory_id: str, *, include_deleted: bool = False
    ) -> Memory:
        return await self.read(
            lambda c: ms.get_memory(
                self.sql.memories, c, tenant_id, memory_id, include_deleted=include_deleted
            )
        )

    async def update_memory(
        self, tenant_id: str, memory_id: str, fields: Mapping[str, Any], *, now: int
    ) -> Memory:
        return await self.write(
            lambda c: ms.patch_memory(self.sql.memories, c, tenant_id, memory_id, fields, now=now),
            feed=True,
        )

    async def forget_memory(
        self, tenant_id: str, memory_id: str, *, purge: bool, now: int
    ) -> Memory | Purged:
        return await self.write(
            lambda c: ms.forget(self.sql.memories, c, tenant_id, memory_id, purge=purge, now=now),
            feed=True,
        )

    async def memory_history(
        self, tenant_id: str, memory_id: str, *, after: int, limit: int, max_bytes: int
    ) -> tuple[list[MemoryChange], int | None]:
        return await self.read(
            lambda c: ms.history(
                self.sql.memories,
                c,
                tenant_id,
                memory_id,
                after=after,
                limit=limit,
                max_bytes=max_bytes,
            )
        )

    async def memory_changes(
        self, tenant_id: str, *, after: int, limit: int, max_bytes: int
    ) -> tuple[list[MemoryChange], int]:
        return await self.read(
            lambda c: ms.changes(
                self.sql.memories, c, tenant_id, after=after, limit=limit, max_bytes=max_bytes
            )
        )

    async def browse_memories(
        self,
        tenant_id: str,
        f: MemoryFilter,
        *,
        before: int | None,
        limit: int,
        now: int,
        max_bytes: int,
    ) -> tuple[list[Memory], str | None]:
        return await self.read(
            lambda c: ms.browse(
                self.sql.memories,
                c,
                tenant_id,
                f,
                before=before,
                limit=limit,
                now=now,
                max_bytes=max_bytes,
            )
        )

    async def memory_namespaces(
        self, tenant_id: str, f: MemoryFilter, *, after: str | None, limit: int, now: int
    ) -> tuple[list[NamespaceCount], str | None]:
        return await self.read(
            lambda c: ms.namespaces(
                self.sql.memories, c, tenant_id, f, after=after, limit=limit, now=now
            )
        )

    async def export_memories(
        self,
        tenant_id: str,
        f: MemoryFilter,
        *,
        after: int,
        limit: int,
        now: int,
        max_bytes: int,
        vectors_of: str | None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        return await self.read(
            functools.partial(
                ms.export_page,
                self.sql.memories,
                tenant_id=tenant_id,
                f=f,
                after=after,
                limit=limit,
                now=now,
                max_bytes=max_bytes,
                vectors_of=vectors_of,
            )
        )

    async def import_memories(
        self, tenant_id: str, items: Sequence[MemoryImport], *, now: int, model: str, dim: int
    ) -> ImportResult:
        return await self.write(
            lambda c: ms.import_memories(
                self.sql.memories, c, tenant_id, items, now=now, model=model, dim=dim
            ),
            feed=True,
        )

    async def memory_head(self) -> int:
        return await self.read(self.sql.memories.head)

    async def memory_stats(self, tenant_id: str) -> MemoryStats:
        return await self.read(lambda c: ms.stats(self.sql.memories, c, tenant_id))

    # -- recall ------------------------------------------------------------------------
    async def ranking_rows(
        self, tenant_id: str, f: MemoryFilter, pks: Sequence[int], *, now: int
    ) -> dict[int, RankingRow]:
        if not pks:
            return {}
        return await self.read(
            lambda c: self.sql.recall.rows_passing(c, tenant_id, f, pks, now=now)
        )

    async def memories_by_pk(self, tenant_id: str, pks: Sequence[int]) -> dict[int, Memory]:
        if not pks:
            return {}
        return await self.read(lambda c: self.sql.recall.rows_by_pk(c, tenant_id, pks))

    async def touch_memories(self, accesses: Sequence[tuple[str, int, int, int]]) -> None:
        await self.write(lambda c: self.sql.recall.touch(c, accesses))

    # -- the feed ----------------------------------------------------------------------
    async def memory_snapshot(
        self, *, model: str, after_pk: int, limit: int
    ) -> tuple[int, list[IndexRow]]:
        def job(conn: Any) -> tuple[int, list[IndexRow]]:
            # The lsn first: a change committed between the two reads is applied again by
            # the next catch-up, which is harmless (changes apply the current row).
            lsn = self.sql.feed.feed_lsn(conn)
            return lsn, self.sql.feed.snapshot(conn, model=model, after_pk=after_pk, limit=limit)

        return await self.read(job)

    async def memory_feed(self, *, model: str, after: int, limit: int) -> list[IndexRow]:
        return await self.read(
            lambda c: self.sql.feed.feed(c, model=model, after=after, limit=limit)
        )

    # -- outbox ------------------------------------------------------------------------
    async def claim_jobs(self, *, now: int, limit: int, lease_ms: int) -> list[Job]:
        return await self.write(
            lambda c: self.sql.outbox.claim_jobs(c, now=now, limit=limit, lease_ms=lease_ms)
        )

    async def release_jobs(self, job_ids: Sequence[int], *, due_at: int) -> None:
        await self.write(lambda c: self.sql.outbox.release(c, job_ids, due_at=due_at))

    async def next_due_at(self) -> int | None:
        return await self.read(self.sql.outbox.next_due_at)

    async def complete_jobs(
        self, model: str, done: Sequence[EmbeddedJob], drop: Sequence[int], *, now: int
    ) -> int:
        return await self.write(
            lambda c: os_.complete(self.sql.outbox, self.sql.memories, c, model, done, drop, now),
            feed=True,
        )

    async def fail_jobs(
        self,
        jobs: Sequence[Job],
        *,
        error: str,
        now: int,
        max_attempts: int,
        backoff_ms: Sequence[int],
    ) -> int:
        return await self.write(
            lambda c: os_.fail(
                self.sql.outbox,
                c,
                jobs,
                error=error,
                now=now,
                max_attempts=max_attempts,
                backoff_ms=backoff_ms,
            )
        )

    async def list_jobs(
        self, tenant_id: str, *, state: str, after: int, limit: int
    ) -> tuple[list[OutboxJob], int | None]:
        return await self.read(
            lambda c: self.sql.outbox.list_jobs(c, tenant_id, state=state, after=after, limit=limit)
        )

    async def replay_jobs(self, tenant_id: str, ids: Sequence[int] | None, *, now: int) -> int:
        return await self.write(lambda c: self.sql.outbox.replay(c, tenant_id, ids, now=now))

    async def enqueue_reindex(
        self, tenant_id: str, *, model: str, everything: bool, now: int
    ) -> int:
        return await self.write(
            lambda c: self.sql.outbox.enqueue_reindex(
                c, tenant_id, model=model, everything=everything, now=now
            )
        )

    # -- model prices ------------------------------------------------------------------
    async def list_prices(self, tenant_id: str) -> list[ModelPrice]:
        rows = await self.read(lambda c: self.sql.prices.list_rows(c, tenant_id))
        return [price_record(r) for r in rows]

    async def put_price(
        self, tenant_id: str, model: str, prices: Mapping[str, float | None], *, now: int
    ) -> ModelPrice:
        row = await self.write(lambda c: self.sql.prices.upsert(c, tenant_id, model, prices, now))
        return price_record(row)

    async def delete_price(self, tenant_id: str, model: str) -> bool:
        deleted: bool = await self.write(lambda c: self.sql.prices.delete(c, tenant_id, model))
        return deleted

    # -- API keys and the audit log ----------------------------------------------------
    async def create_key(self, values: Mapping[str, Any]) -> ApiKey:
        key: ApiKey = await self.write(lambda c: self.sql.keys.create(c, values))
        return key

    async def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        found: tuple[ApiKey, str] | None = await self.read(lambda c: self.sql.keys.find(c, key_id))
        return found

    async def list_keys(self, tenant_id: str | None) -> list[ApiKey]:
        keys: list[ApiKey] = await self.read(lambda c: self.sql.keys.list_keys(c, tenant_id))
        return keys

    async def revoke_key(self, tenant_id: str | None, key_id: str, *, now: int) -> ApiKey:
        key: ApiKey | None = await self.write(
            lambda c: self.sql.keys.revoke(c, tenant_id, key_id, now)
        )
        if key is None:
            raise NotFound(f"key {key_id!r} not found", details={"key_id": key_id})
        return key

    async def touch_keys(self, used: Mapping[str, int]) -> None:
        if used:
            await self.write(lambda c: self.sql.keys.touch(c, used))

    async def live_key_count(self, *, now: int) -> int:
        count: int = await self.read(lambda c: self.sql.keys.live_count(c, now))
        return count

    async def append_audit(self, entries: Sequence[Mapping[str, Any]]) -> None:
        if entries:
            await self.write(lambda c: self.sql.keys.append_audit(c, entries))

    async def audit_page(
        self, tenant_id: str | None, *, after: int, limit: int
    ) -> tuple[list[AuditEntry], int | None]:
        page: tuple[list[AuditEntry], int | None] = await self.read(
            lambda c: self.sql.keys.audit_page(c, tenant_id, after=after, limit=limit)
        )
        return page

    # -- copying a deployment ----------------------------------------------------------
    async def read_table(
        self, table: str, *, after: Sequence[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        spec = _spec(table)
        return await self.read(lambda c: self.sql.copy.read_page(c, spec, after=after, limit=limit))

    async def write_table(self, table: str, rows: Sequence[Sequence[Any]]) -> int:
        spec = _spec(table)
        return await self.write(lambda c: self.sql.copy.write_page(c, spec, rows))

    async def is_empty(self) -> bool:
        def job(conn: Any) -> bool:
            return not any(self.sql.copy.has_rows(conn, spec) for spec in TABLES)

        return await self.read(job)

    async def finish_load(self) -> None:
        await self.write(self.sql.copy.after_load)


def _spec(table: str) -> TableSpec:
    for spec in TABLES:
        if spec.name == table:
            return spec
    raise KeyError(f"not a table of a Tether store: {table!r}")

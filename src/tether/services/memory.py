"""Memory use-cases: remember, recall, patch, forget, history, feed, browse, export/import,
the outbox admin, and the lifecycle of the in-process indexes.

Every call is scoped to ``ctx.tenant_id``. A write commits text, keyword terms, change and
embedding job in one store transaction; the vector follows asynchronously (ARCHITECTURE
§3), and the indexes follow the change feed (:class:`~tether.memory.follower.
IndexFollower`), so nothing here updates them after a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import orjson

from tether.config import Settings
from tether.domain.filters import MemoryFilter
from tether.domain.keys import Scope
from tether.domain.memories import MemoryImport, MemoryIn, MemoryPatch, SearchIn
from tether.domain.records import (
    ImportResult,
    Memory,
    MemoryChange,
    NamespaceCount,
    OutboxJob,
    Purged,
    Remembered,
    SearchResults,
)
from tether.domain.time import now_ms
from tether.errors import Forbidden, NotFound
from tether.memory.embedders import Embedder, build_embedder
from tether.memory.follower import IndexFollower
from tether.memory.indexer import Indexer
from tether.memory.postings import KeywordIndex
from tether.memory.query_embedder import OPEN_AFTER, QueryEmbedder, QueryVector
from tether.memory.ranking import RankingParams, with_overrides
from tether.memory.recall import Recall
from tether.memory.vectors import VectorIndex
from tether.services.context import RequestContext
from tether.services.keys import AuditLog
from tether.store.base import Store

__all__ = ["MemoryService", "build_memory"]

log = logging.getLogger("tether.services.memory")

# Memories per page of an export stream (also capped in bytes by max_page_bytes).
_PAGE = 2000
# Probe the embedder in the background at most this often (s), when /readyz or /v1/deps
# asks: they may be polled every second, and each probe of a hung embedder holds a query
# thread for up to its HTTP timeout.
_PROBE_EVERY_S = 5.0
# A search query's HTTP timeout (remote embedders), in budgets: a hung request frees its
# thread after 2 budgets (0.6 s by default), and an answer just after the budget still
# lands in the query cache, so the same question asked again is fast.
_QUERY_REQUEST_BUDGETS = 2
# Server-Timing `desc` of the `embed` stage when a search had no query vector, by
# QueryVector.miss.
_MISS_DESC = {
    "timeout": "timeout",
    "error": "error",
    "open": "breaker open",
    "down": "embedder down",
}
# Access statistics of searches are coalesced per memory and written at most this often
# (one transaction instead of one per search; a crash loses at most this window of them).
_ACCESS_FLUSH_S = 1.0


class MemoryService:
    """Memory use-cases over a store, an embedder and the in-process indexes.

    Args:
        store: The store.
        embedder: The embedder used for queries (and, by the indexer, for memories).
        index: The in-process vector index.
        recall: The search use-case (its ``follower`` keeps the indexes current).
        max_page_bytes: Stored JSON per list page or export page, at most (bytes).
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index: VectorIndex,
        recall: Recall,
        *,
        max_page_bytes: int = Settings.model_fields["max_page_bytes"].default,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        #: Called after each search with its time in the service (s), mode and whether
        #: it was degraded (the container sets it to the metrics' ``recalled``).
        self.on_search: Callable[..., None] | None = None
        self.embedder = embedder
        self.index = index
        self.recall = recall
        self.max_page_bytes = max_page_bytes
        self._pending: set[asyncio.Task[None]] = set()
        # (tenant, pk) -> (last access ms, searches) not yet written; see _record_access.
        self._access: dict[tuple[str, int], tuple[int, int]] = {}
        self._flush_at: asyncio.TimerHandle | None = None
        # The last background probe: (time.monotonic() it started, its outcome).
        self._probe: tuple[float, QueryVector] | None = None
        self._probe_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def load_index(self) -> int:
        """Build the keyword postings and the vector index from the store, then follow
        its feed. Returns how many memories were loaded."""
        return await self.recall.follower.load()

    async def drain(self) -> None:
        """Write the access statistics not yet written, wait for background writes still
        in flight, then stop the vector index's graph threads."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        await self._flush_access()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        self.recall.queries.close()
        await asyncio.to_thread(self.index.close)

    async def embedder_check(self) -> dict[str, Any]:
        """Readiness of the embedder from its last known state: never waits on it.

        Returns:
            ``{name: "embedder", kind, status, latency_ms, detail, breaker}``. ``status``
            is ``"down"`` while the indexer's outage backoff runs, while the query breaker
            is not closed, or when the last probe got no vector within the search budget;
            ``"ok"`` when it got one; ``"unknown"`` before the first probe has answered.
            ``latency_ms`` is the last probe's wait in ms (``None`` before one);
            ``breaker`` is ``"closed"``, ``"open"`` or ``"half_open"``.

        When the last probe started :data:`_PROBE_EVERY_S` or more ago, a new one starts
        in its own task (:meth:`QueryEmbedder.probe`: one short query embedding through
        the breaker, within the search budget); this call does not await it.
        """
        self._start_probe()
        queries = self.recall.queries
        breaker = queries.breaker
        probe = self._probe[1] if self._probe is not None else None
        status, detail = "ok", None
        if queries.outage():
            status, detail = "down", "the indexer's last embedding failed; it retries with backoff"
        elif breaker.state != "closed":
            status = "down"
            detail = (
                f"breaker {breaker.state} after {OPEN_AFTER} failed or late query embeddings "
                f"(last: {breaker.last_error}); next trial in {breaker.retry_in_s:.1f} s"
            )
        elif probe is None:
            status, detail = "unknown", "first probe running"
        elif probe.vector is None:
            status, detail = "down", probe.detail
        return {
            "name": "embedder",
            "kind": self.embedder.name,
            "status": status,
            "latency_ms": probe.ms if probe is not None else None,
            "detail": detail,
            "breaker": breaker.state,
        }

    def _start_probe(self) -> None:
        """Start a background probe unless one runs or the last started < _PROBE_EVERY_S ago."""
        now = time.monotonic()
        if self._probe_task is not None and not self._probe_task.done():
            return
        if self._probe is not None and now - self._probe[0] < _PROBE_EVERY_S:
            return
        self._probe_task = asyncio.get_running_loop().create_task(
            self._run_probe(now), name="embedder-probe"
        )

    async def _run_probe(self, started: float) -> None:
        try:
            self._probe = (started, await self.recall.queries.probe())
        except Exception:  # a bug in the embedder: reported as down, never raised
            log.exception("embedder probe failed")
            self._probe = (started, QueryVector(None, 0.0, "error", "the probe raised"))

    # -- remember ------------------------------------------------------------------------
    async def remember(self, ctx: RequestContext, items: Sequence[MemoryIn]) -> list[Remembered]:
        """Store items in one transaction (all or nothing).

        Raises:
            Conflict: An idempotency key reused with a different body.
            Forbidden: an item's namespace is outside the key's prefixes.
        """
        _writable(ctx, (item.namespace for item in items))
        return await self.store.remember(ctx.tenant_id, items, now=now_ms())

    async def remember_one(self, ctx: RequestContext, item: MemoryIn) -> tuple[Remembered, Memory]:
        """Store one memory; returns its outcome and the memory as stored.

        A memory purged between the write and the read (another request) is stored again:
        the purge also forgot the idempotency key, so the retry is a fresh create.
        """
        for attempt in range(2):
            (res,) = await self.remember(ctx, [item])
            try:
                return res, await self.get(ctx, res.id, include_deleted=True)
            except NotFound:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def get(
        self, ctx: RequestContext, memory_id: str, *, include_deleted: bool = False
    ) -> Memory:
        """The memory. Raises NotFound (also outside the key's namespace prefixes)."""
        memory = await self.store.get_memory(
            ctx.tenant_id, memory_id, include_deleted=include_deleted
        )
        if not ctx.may_use(memory.namespace):
            raise NotFound(f"memory {memory_id!r} not found", details={"memory_id": memory_id})
        return memory

    async def patch(self, ctx: RequestContext, memory_id: str, body: MemoryPatch) -> Memory:
        """A new version; a new text is re-embedded. Raises NotFound, Conflict."""
        fields = {name: getattr(body, name) for name in body.model_fields_set}
        if ctx.namespaces:  # namespaces never change: one check before the write holds
            await self.get(ctx, memory_id)
        return await self.store.update_memory(ctx.tenant_id, memory_id, fields, now=now_ms())

    async def forget(self, ctx: RequestContext, memory_id: str, *, purge: bool) -> Memory | Purged:
        """Tombstone (or purge: ``admin`` only, audited) a memory.

        Raises:
            NotFound: unknown, another tenant's, or outside the key's namespace prefixes.
            Forbidden: a purge by a key below ``admin``.
        """
        if purge:
            ctx.require(Scope.admin)
        if ctx.namespaces:
            await self.get(ctx, memory_id, include_deleted=True)
        done = await self.store.forget_memory(ctx.tenant_id, memory_id, purge=purge, now=now_ms())
        if purge and self.audit is not None:
            await self.audit.record(ctx, "memory.purged", target=memory_id)
        return done

    # -- read ----------------------------------------------------------------------------
    async def history(
        self,
        ctx: RequestContext,
        memory_id: str,
        *,
        after: int,
        limit: int,
        include_deleted: bool = False,
    ) -> tuple[list[MemoryChange], int | None]:
        """A page of the memory's changes; a forgotten memory's only with
        ``include_deleted`` (as :meth:`get`).

        Raises:
            NotFound: no such memory (another tenant's, outside a limited key's
                prefixes, purged, or forgotten without ``include_deleted``).
        """
        await self.get(ctx, memory_id, include_deleted=include_deleted)
        return await self.store.memory_history(
            ctx.tenant_id, memory_id, after=after, limit=limit, max_bytes=self.max_page_bytes
        )

    async def changes(
        self, ctx: RequestContext, *, after: int, limit: int
    ) -> tuple[list[MemoryChange], int]:
        """A page of the tenant's change feed; for a namespace-limited key only the
        changes under its prefixes (the cursor still moves past the others)."""
        items, nxt = await self.store.memory_changes(
            ctx.tenant_id, after=after, limit=limit, max_bytes=self.max_page_bytes
        )
        if ctx.namespaces:
            items = [item for item in items if ctx.may_use(item.namespace)]
        return items, nxt

    async def browse(
        self, ctx: RequestContext, f: MemoryFilter, *, before: int | None, limit: int
    ) -> tuple[list[Memory], str | None]:
        return await self.store.browse_memories(
            ctx.tenant_id,
            _limited(ctx, f),
            before=before,
            limit=limit,
            now=now_ms(),
            max_bytes=self.max_page_bytes,
        )

    async def namespaces(
        self, ctx: RequestContext, *, after: str | None, limit: int
    ) -> tuple[list[NamespaceCount], str | None]:
        """The namespaces holding live memories, with their counts, in code point order
        (a namespace-limited key: only under its prefixes)."""
        return await self.store.memory_namespaces(
            ctx.tenant_id, _limited(ctx, MemoryFilter()), after=after, limit=limit, now=now_ms()
        )

    async def export(
        self, ctx: RequestContext, f: MemoryFilter, *, vectors: bool = False
    ) -> AsyncIterator[bytes]:
        """NDJSON lines (one memory each, ingest order), read page by page; with
        ``vectors``, each line carries its current vector of the server's model. The
        checks and the audit entry happen here, before any line is produced (a response
        cannot turn into an error once it has started).

        Raises:
            Forbidden: every namespace at once (no namespace filter) by a key below
                ``admin`` that is not limited to namespaces.
        """
        if not f.namespaces and not ctx.namespaces:
            ctx.require(Scope.admin)
        f = _limited(ctx, f)
        if self.audit is not None:
            await self.audit.record(
                ctx,
                "memory.exported",
                target=",".join(f.namespaces) or None,
                detail={"vectors": vectors, "namespace_prefixes": list(ctx.namespaces)},
            )
        return self._export_pages(ctx.tenant_id, f, self.embedder.name if vectors else None)

    async def _export_pages(
        self, tenant_id: str, f: MemoryFilter, vectors_of: str | None
    ) -> AsyncIterator[bytes]:
        now = now_ms()
        after: int | None = 0
        while after is not None:
            items, after = await self.store.export_memories(
                tenant_id,
                f,
                after=after,
                limit=_PAGE,
                now=now,
                max_bytes=self.max_page_bytes,
                vectors_of=vectors_of,
            )
            if items:
                yield b"".join(orjson.dumps(item) + b"\n" for item in items)

    async def import_(self, ctx: RequestContext, items: Sequence[MemoryImport]) -> ImportResult:
        """Import export lines in one transaction; a line's vector of the server's model
        is stored instead of queueing its text for embedding."""
        _writable(ctx, (item.namespace for item in items))
        return await self.store.import_memories(
            ctx.tenant_id, items, now=now_ms(), model=self.embedder.name, dim=self.embedder.dim
        )

    async def search(
        self, ctx: RequestContext, body: SearchIn
    ) -> tuple[SearchResults, dict[str, float]]:
        """Hybrid recall: the results and ``timings`` (ms per stage, see
        :meth:`Recall.search`, for the ``Server-Timing`` header; without a query vector the
        ``embed`` key carries a ``desc``: ``timeout``, ``error``, ``breaker open`` or
        ``embedder down``).

        Returned memories get ``last_accessed_at``/``access_count`` updated by a background
        write within ~1 s (coalesced across searches; written at shutdown by :meth:`drain`).
        """
        now = now_ms()
        if ctx.namespaces:  # a namespace-limited key searches its own namespaces only
            wanted = [body.namespace] if isinstance(body.namespace, str) else body.namespace
            allowed = [ns for ns in wanted if ctx.may_use(ns)]
            if not allowed:
                empty = SearchResults([], False, body.mode, self.embedder.name)
                return empty, {}
            body = body.model_copy(update={"namespace": allowed})
        t0 = time.perf_counter()
        outcome = await self.recall.search(ctx.tenant_id, body, now=now)
        if self.on_search is not None:
            self.on_search(time.perf_counter() - t0, mode=body.mode, degraded=outcome.degraded)
        if outcome.pks and body.touch:
            self._record_access(ctx.tenant_id, outcome.pks, now)
        timings = outcome.timings
        if outcome.embed_miss is not None:
            # The route renders each entry as `{name};dur={ms}`, and a Server-Timing
            # metric's parameters may come in any order (W3C Server Timing), so this key
            # gives `embed;desc="timeout";dur=300.1`: why the search had no query vector.
            desc = _MISS_DESC.get(outcome.embed_miss, outcome.embed_miss)
            timings = {
                (f'embed;desc="{desc}"' if k == "embed" else k): v for k, v in timings.items()
            }
        results = SearchResults(outcome.results, outcome.degraded, body.mode, self.embedder.name)
        return results, timings

    def _record_access(self, tenant_id: str, pks: Sequence[int], now: int) -> None:
        """Count one access of each memory; schedule a flush within ``_ACCESS_FLUSH_S``.

        Access is statistics, not content: a search does not wait for it, and many
        searches in a busy second cost one write transaction instead of one each.
        """
        for pk in pks:
            last, count = self._access.get((tenant_id, pk), (0, 0))
            self._access[(tenant_id, pk)] = (max(last, now), count + 1)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(
                _ACCESS_FLUSH_S, self._start_flush
            )

    def _start_flush(self) -> None:
        self._flush_at = None
        task = asyncio.get_running_loop().create_task(self._flush_access())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _flush_access(self) -> None:
        batch, self._access = self._access, {}
        if not batch:
            return
        rows = [(t, pk, last, count) for (t, pk), (last, count) in batch.items()]
        try:
            await self.store.touch_memories(rows)
        except Exception:  # statistics: logged and dropped, never retried into a loop
            log.exception("writing access statistics of %d memories failed", len(rows))

    async def stats(self, ctx: RequestContext) -> dict[str, Any]:
        """``{count, deleted, index_backlog, dead_letters, embedding_model, indexed,
        vector_search}`` (``vector_search``: ``"exact"`` or ``"hnsw"``).

        Raises:
            Forbidden: a namespace-limited key (the counts are the whole tenant's).
        """
        if ctx.namespaces:
            raise Forbidden(
                "memory statistics cover every namespace: not for a key limited to some"
            )
        counts = await self.store.memory_stats(ctx.tenant_id)
        model = self.embedder.name
        return {
            "count": counts.count,
            "deleted": counts.deleted,
            "index_backlog": counts.index_backlog,
            "dead_letters": counts.dead_letters,
            "embedding_model": model,
            "indexed": self.index.count(ctx.tenant_id, model),
            "vector_search": "hnsw" if self.index.uses_hnsw(ctx.tenant_id, model) else "exact",
        }

    # -- outbox admin --------------------------------------------------------------------
    async def outbox(
        self, ctx: RequestContext, *, state: str, after: int, limit: int
    ) -> tuple[list[OutboxJob], int | None]:
        return await self.store.list_jobs(ctx.tenant_id, state=state, after=after, limit=limit)

    async def replay(self, ctx: RequestContext, ids: Sequence[int] | None) -> int:
        """Requeue dead jobs (all, or ``ids``); returns how many (audited)."""
        n = await self.store.replay_jobs(ctx.tenant_id, ids, now=now_ms())
        if self.audit is not None:
            await self.audit.record(ctx, "outbox.replayed", detail={"replayed": n})
        return n

    async def reindex(self, ctx: RequestContext, *, everything: bool) -> int:
        """Queue re-embedding of memories lacking a current-model vector (or all);
        audited."""
        n = await self.store.enqueue_reindex(
            ctx.tenant_id, model=self.embedder.name, everything=everything, now=now_ms()
        )
        if self.audit is not None:
            await self.audit.record(
                ctx, "memory.reindexed", detail={"queued": n, "everything": everything}
            )
        return n


def _writable(ctx: RequestContext, namespaces: Iterable[str]) -> None:
    """Raise :class:`Forbidden` for a namespace outside the key's prefixes."""
    for namespace in namespaces:
        if not ctx.may_use(namespace):
            raise Forbidden(
                f"this key may not write namespace {namespace!r}",
                details={"namespace": namespace, "prefixes": list(ctx.namespaces)},
            )


def _limited(ctx: RequestContext, f: MemoryFilter) -> MemoryFilter:
    """``f`` within the key's namespace prefixes (unchanged for an unlimited key)."""
    if not ctx.namespaces:
        return f
    return dataclasses.replace(f, namespace_prefixes=ctx.namespaces)


def build_memory(store: Store, settings: Settings) -> tuple[MemoryService, Indexer]:
    """The memory service and its indexer for ``settings`` (nothing starts or loads yet:
    the ONNX model loads on first use; the container loads the indexes and starts the
    indexer).

    Raises:
        ValueError: ``settings.embedder`` is not a valid embedder spec.
    """
    key = settings.embedder_api_key
    embedder = build_embedder(
        settings.embedder,
        api_key=key.get_secret_value() if key else None,
        query_threads=settings.embedder_query_threads,
        query_timeout_s=settings.embed_query_timeout_ms * _QUERY_REQUEST_BUDGETS / 1000,
    )
    index = VectorIndex(hnsw_threshold=settings.hnsw_threshold)
    keywords = KeywordIndex()
    follower = IndexFollower(store, keywords, index, model=embedder.name)
    indexer = Indexer(
        store,
        embedder,
        batch_size=settings.indexer_batch_size,
        max_attempts=settings.indexer_max_attempts,
        retry_base_ms=settings.indexer_retry_base_ms,
        retry_max_ms=settings.indexer_retry_max_ms,
    )
    params = with_overrides(
        RankingParams(half_life_days=settings.recall_half_life_days), settings.recall_params
    )
    queries = QueryEmbedder(
        embedder,
        budget_ms=settings.embed_query_timeout_ms,
        outage=lambda: indexer.embedder_down,
    )
    recall = Recall(
        store,
        embedder,
        index,
        params=params,
        keywords=keywords,
        follower=follower,
        queries=queries,
    )
    service = MemoryService(store, embedder, index, recall, max_page_bytes=settings.max_page_bytes)
    return service, indexer

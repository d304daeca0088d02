"""Memory use-cases: remember, recall, patch, forget, history, feed, browse, export/import,
the outbox admin, and the in-process vector index's lifecycle.

Every call is scoped to ``ctx.tenant_id``. Writes commit text, keyword index, change log
and outbox job in one ``store.write`` and then wake the indexer; the vector follows
asynchronously (ARCHITECTURE §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import orjson

from tether.config import Settings
from tether.domain.time import now_ms
from tether.memory.embedders import Embedder, build_embedder
from tether.memory.indexer import Indexer
from tether.memory.query_embedder import OPEN_AFTER, QueryEmbedder, QueryVector
from tether.memory.ranking import RankingParams
from tether.memory.recall import Recall
from tether.memory.schemas import MemoryImport, MemoryIn, MemoryPatch, SearchIn
from tether.memory.vectors import VectorIndex
from tether.services.context import RequestContext
from tether.store import sql_memory as qm
from tether.store import sql_outbox as qo
from tether.store import sql_recall as qr
from tether.store.sqlite import SQLiteStore

__all__ = ["MemoryService", "build_memory"]

log = logging.getLogger("tether.services.memory")

# Rows per read when rebuilding the vector index at start or streaming an export.
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
    """Memory use-cases over a store, an embedder and a vector index.

    Args:
        store: The SQLite store.
        embedder: The embedder used for queries (and, by the indexer, for memories).
        index: The in-process vector index.
        recall: The search use-case.
        wake: Called after each commit that queued embedding jobs (the indexer's ``wake``).
    """

    def __init__(
        self,
        store: SQLiteStore,
        embedder: Embedder,
        index: VectorIndex,
        recall: Recall,
        *,
        wake: Callable[[], None] = lambda: None,
        max_page_bytes: int = Settings.model_fields["max_page_bytes"].default,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self.recall = recall
        self.wake = wake
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
        """Build the keyword postings, and rebuild the vector index from the store's
        vectors of the current model.

        Returns:
            How many vectors were loaded.
        """
        started = time.perf_counter()
        await self.store.read(self.recall.keywords.refresh)
        log.info(
            "keyword index loaded up to lsn %d in %.1f s",
            self.recall.keywords.lsn,
            time.perf_counter() - started,
        )
        model = self.embedder.name
        after = 0
        total = 0
        while True:
            page = await self.store.read(
                functools.partial(qo.load_vectors, model=model, after_pk=after, limit=_PAGE)
            )
            if not page:
                break
            by_tenant: dict[str, list[tuple[str, str, int, str, bytes]]] = {}
            for row in page:
                by_tenant.setdefault(row[0], []).append(row)
            for tenant_id, rows in by_tenant.items():
                vectors = np.stack([np.frombuffer(r[4], dtype="<f4") for r in rows])
                entries = [(r[2], r[1], r[3]) for r in rows]
                total += await asyncio.to_thread(self.index.add, tenant_id, model, entries, vectors)
            after = page[-1][2]
        log.info("vector index loaded: %d vectors of %s", total, model)
        return total

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
    async def remember(
        self, ctx: RequestContext, items: Sequence[MemoryIn]
    ) -> list[dict[str, Any]]:
        """Store items in one transaction (all or nothing).

        Returns:
            Per item ``{id, created, deduplicated, replayed}``.

        Raises:
            Conflict: An idempotency key reused with a different body.
        """
        now = now_ms()
        out = await self.store.write(lambda c: qm.remember(c, ctx.tenant_id, items, now=now))
        if any(r["created"] and not r["replayed"] for r in out):
            self.wake()
        return out

    async def remember_one(self, ctx: RequestContext, item: MemoryIn) -> dict[str, Any]:
        """Store one memory; returns ``{memory, created, deduplicated, replayed}``."""
        (res,) = await self.remember(ctx, [item])
        memory = await self.get(ctx, res["id"], include_deleted=True)
        return {**res, "memory": memory}

    async def get(
        self, ctx: RequestContext, memory_id: str, *, include_deleted: bool = False
    ) -> dict[str, Any]:
        return await self.store.read(
            lambda c: qm.get_memory(c, ctx.tenant_id, memory_id, include_deleted=include_deleted)
        )

    async def patch(self, ctx: RequestContext, memory_id: str, body: MemoryPatch) -> dict[str, Any]:
        """A new version; a new text is re-embedded. Raises NotFound, Conflict."""
        fields = {name: getattr(body, name) for name in body.model_fields_set}
        now = now_ms()
        res = await self.store.write(
            lambda c: qm.patch_memory(c, ctx.tenant_id, memory_id, fields, now=now)
        )
        if res.text_changed:
            self.index.invalidate(ctx.tenant_id, res.pk, res.content_hash)
            self.wake()
        return res.record

    async def forget(self, ctx: RequestContext, memory_id: str, *, purge: bool) -> dict[str, Any]:
        """Tombstone (or purge) a memory. Raises NotFound."""
        now = now_ms()
        res = await self.store.write(
            lambda c: qm.forget(c, ctx.tenant_id, memory_id, purge=purge, now=now)
        )
        if res.text_changed:
            self.index.invalidate(ctx.tenant_id, res.pk, None)
        return res.record

    # -- read ----------------------------------------------------------------------------
    async def history(
        self, ctx: RequestContext, memory_id: str, *, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of the memory's changes (see :func:`qm.history`). Raises NotFound."""
        return await self.store.read(
            lambda c: qm.history(
                c,
                ctx.tenant_id,
                memory_id,
                after=after,
                limit=limit,
                max_bytes=self.max_page_bytes,
            )
        )

    async def changes(
        self, ctx: RequestContext, *, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        return await self.store.read(
            lambda c: qm.changes(
                c, ctx.tenant_id, after=after, limit=limit, max_bytes=self.max_page_bytes
            )
        )

    async def browse(
        self, ctx: RequestContext, f: qm.MemoryFilter, *, before: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        now = now_ms()
        return await self.store.read(
            lambda c: qm.browse(
                c,
                ctx.tenant_id,
                f,
                before=before,
                limit=limit,
                now=now,
                max_bytes=self.max_page_bytes,
            )
        )

    async def export(
        self, ctx: RequestContext, f: qm.MemoryFilter, *, vectors: bool = False
    ) -> AsyncIterator[bytes]:
        """NDJSON lines (one memory each, ingest order), read page by page; with
        ``vectors``, each line carries its current vector of the server's model."""
        now = now_ms()
        after: int | None = 0
        vectors_of = self.embedder.name if vectors else None
        while after is not None:
            items, after = await self.store.read(
                functools.partial(
                    qm.export_page,
                    tenant_id=ctx.tenant_id,
                    f=f,
                    after=after,
                    limit=_PAGE,
                    max_bytes=self.max_page_bytes,
                    now=now,
                    vectors_of=vectors_of,
                )
            )
            if items:
                yield b"".join(orjson.dumps(item) + b"\n" for item in items)

    async def import_(self, ctx: RequestContext, items: Sequence[MemoryImport]) -> dict[str, Any]:
        """Import export lines in one transaction (see :func:`qm.import_memories`); lines
        carrying a vector of the server's model go straight into the vector index."""
        now = now_ms()
        model, dim = self.embedder.name, self.embedder.dim
        res, vectors = await self.store.write(
            lambda c: qm.import_memories(c, ctx.tenant_id, items, now=now, model=model, dim=dim)
        )
        if vectors:
            matrix = np.stack([np.frombuffer(v.vector, dtype="<f4") for v in vectors])
            entries = [(v.memory_pk, v.namespace, v.content_hash) for v in vectors]
            await asyncio.to_thread(self.index.add, ctx.tenant_id, model, entries, matrix)
        if res["imported"] > len(vectors):
            self.wake()
        return res

    async def search(self, ctx: RequestContext, body: SearchIn) -> dict[str, Any]:
        """Hybrid recall; returns ``{results, degraded, mode, embedding_model, timings}``
        (``timings``: ms per stage, see :meth:`Recall.search`, for the ``Server-Timing``
        header; without a query vector the ``embed`` key carries a ``desc``: ``timeout``,
        ``error``, ``breaker open`` or ``embedder down``).

        Returned memories get ``last_accessed_at``/``access_count`` updated by a background
        write within ~1 s (coalesced across searches; written at shutdown by :meth:`drain`).
        """
        now = now_ms()
        outcome = await self.recall.search(ctx.tenant_id, body, now=now)
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
        return {
            "results": outcome.results,
            "degraded": outcome.degraded,
            "mode": body.mode,
            "embedding_model": self.embedder.name,
            "timings": timings,
        }

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
            await self.store.write(lambda c: qr.touch(c, rows))
        except Exception:  # statistics: logged and dropped, never retried into a loop
            log.exception("writing access statistics of %d memories failed", len(rows))

    async def stats(self, ctx: RequestContext) -> dict[str, Any]:
        """``{count, deleted, index_backlog, dead_letters, embedding_model, indexed,
        vector_search}`` (``vector_search``: ``"exact"`` or ``"hnsw"``)."""
        counts = await self.store.read(lambda c: qm.stats(c, ctx.tenant_id))
        model = self.embedder.name
        return {
            **counts,
            "embedding_model": model,
            "indexed": self.index.count(ctx.tenant_id, model),
            "vector_search": "hnsw" if self.index.uses_hnsw(ctx.tenant_id, model) else "exact",
        }

    # -- outbox admin --------------------------------------------------------------------
    async def outbox(
        self, ctx: RequestContext, *, state: str, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        return await self.store.read(
            lambda c: qo.list_jobs(c, ctx.tenant_id, state=state, after=after, limit=limit)
        )

    async def replay(self, ctx: RequestContext, ids: Sequence[int] | None) -> int:
        """Requeue dead jobs (all, or ``ids``); returns how many."""
        now = now_ms()
        n = await self.store.write(lambda c: qo.replay(c, ctx.tenant_id, ids, now=now))
        if n:
            self.wake()
        return n

    async def reindex(self, ctx: RequestContext, *, everything: bool) -> int:
        """Queue re-embedding of memories lacking a current-model vector (or all)."""
        now = now_ms()
        model = self.embedder.name
        n = await self.store.write(
            lambda c: qo.enqueue_reindex(
                c, ctx.tenant_id, model=model, everything=everything, now=now
            )
        )
        if n:
            self.wake()
        return n


def build_memory(store: SQLiteStore, settings: Settings) -> tuple[MemoryService, Indexer]:
    """The memory service and its indexer for ``settings`` (nothing starts or loads yet:
    the ONNX model loads on first use; the app lifespan loads the index and starts the
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
    indexer = Indexer(
        store,
        embedder,
        index,
        batch_size=settings.indexer_batch_size,
        max_attempts=settings.indexer_max_attempts,
        retry_base_ms=settings.indexer_retry_base_ms,
        retry_max_ms=settings.indexer_retry_max_ms,
    )
    params = RankingParams(half_life_days=settings.recall_half_life_days)
    queries = QueryEmbedder(
        embedder,
        budget_ms=settings.embed_query_timeout_ms,
        outage=lambda: indexer.embedder_down,
    )
    recall = Recall(store, embedder, index, params=params, queries=queries)
    service = MemoryService(
        store,
        embedder,
        index,
        recall,
        wake=indexer.wake,
        max_page_bytes=settings.max_page_bytes,
    )
    return service, indexer

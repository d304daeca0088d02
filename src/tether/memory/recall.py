"""Hybrid recall over the store and the in-process vector index (ARCHITECTURE §4).

``Recall.search`` runs, for one request:

1. the query embedding in a worker thread (``asyncio.to_thread``), concurrently with
2. the keyword candidates in a reader thread: exact BM25 top-k from
   :class:`~tether.memory.postings.KeywordIndex` (namespaces applied in the index), their
   ranking columns read and the other filters checked in SQL
   (:func:`tether.store.sql_recall.rows_passing`), over-fetching until
   ``candidate_depth`` pass or the matches are exhausted;
3. then, in one reader job (no thread hop between the steps): the vector candidates from
   :class:`~tether.memory.vectors.VectorIndex`, filtered the same way (only rows the
   keyword step did not read are read); :func:`tether.memory.ranking.rank` over the union
   (convex fusion, recency, importance); the full rows of the returned results only.

If the embedder is down, hybrid recall degrades to BM25 and says so (``degraded``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tether.domain.time import to_ms
from tether.errors import EmbedderUnavailable
from tether.memory.analyzer import query_stems
from tether.memory.embedders import Embedder, FloatMatrix
from tether.memory.postings import KeywordIndex
from tether.memory.ranking import MemoryFeatures, RankingParams, rank
from tether.memory.schemas import SearchIn
from tether.memory.vectors import VectorIndex
from tether.store import sql_recall as qr
from tether.store.sql_memory import MemoryFilter, memory_dict
from tether.store.sqlite import SQLiteStore

__all__ = ["Recall", "SearchOutcome", "search_filter"]

# Over-fetch from either index: with kind/tags/metadata/time/session filters ask for this
# many times the depth (the indexes know namespaces only), growing x4 while too many are
# rejected.
# Without them only expiry can reject a row: ask for the depth plus a small margin.
_OVERFETCH = 2
_MARGIN = 8
# Query vectors kept per Recall (keyed by model and text): an agent often asks the same
# question again within a session. The latency benchmark uses distinct queries.
_QUERY_CACHE = 256


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _features(row: sqlite3.Row) -> MemoryFeatures:
    """A candidate's ranking inputs (epoch-ms timestamps, importance) from its row."""
    return MemoryFeatures.from_ms(
        row["created_at"], row["occurred_at"], row["last_accessed_at"], float(row["importance"])
    )


def search_filter(body: SearchIn) -> MemoryFilter:
    """The SQL filter for a search request."""
    f = body.filters
    kinds = [] if f.kind is None else [f.kind] if isinstance(f.kind, str) else list(f.kind)
    return MemoryFilter(
        namespaces=body.namespaces,
        kinds=kinds,
        tags=f.tags,
        metadata=f.metadata,
        since_ms=to_ms(f.since),
        until_ms=to_ms(f.until),
        session=f.session,
        include_expired=body.include_expired,
    )


@dataclass(slots=True)
class SearchOutcome:
    """``results`` (``{memory, score, scores}`` best first), their row keys (for access
    statistics), whether vector retrieval was skipped (``degraded``), and how long each
    stage took in ms (``timings``: ``embed`` and ``keyword`` overlap; see
    :meth:`Recall.search`)."""

    results: list[dict[str, Any]]
    pks: list[int]
    degraded: bool
    timings: dict[str, float] = field(default_factory=dict)


class Recall:
    """Search use-case over a store, an embedder, a keyword index and a vector index.

    Args:
        keywords: The BM25 postings; a new one (loaded on first search) when not given.
        embedder_down: Returns True while the indexer knows the embedder is down, so a
            request does not wait on it (degrades at once).
    """

    def __init__(
        self,
        store: SQLiteStore,
        embedder: Embedder,
        index: VectorIndex,
        *,
        params: RankingParams,
        keywords: KeywordIndex | None = None,
        embedder_down: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self.keywords = keywords if keywords is not None else KeywordIndex()
        self.params = params
        self.embedder_down = embedder_down
        self._query_vectors: OrderedDict[tuple[str, str], FloatMatrix] = OrderedDict()

    async def _embed_query(self, text: str, timings: dict[str, float] | None = None) -> FloatMatrix:
        """The query's vector (LRU-cached per model); its wall time in ms goes to
        ``timings["embed"]`` (0 on a cache hit)."""
        spent = timings if timings is not None else {}
        key = (self.embedder.name, text)
        cached = self._query_vectors.get(key)
        if cached is not None:
            self._query_vectors.move_to_end(key)
            spent["embed"] = 0.0
            return cached
        started = time.perf_counter()
        row = await asyncio.to_thread(self.embedder.embed_query, text)
        spent["embed"] = _ms_since(started)
        self._query_vectors[key] = row
        if len(self._query_vectors) > _QUERY_CACHE:
            self._query_vectors.popitem(last=False)
        return row

    async def search(self, tenant_id: str, body: SearchIn, *, now: int) -> SearchOutcome:
        """Run one search (see the module docstring).

        The outcome's ``timings`` (ms, wall clock) are ``embed`` (query embedding, 0 on a
        cache hit) and ``keyword`` (BM25 candidates and their rows), which run
        concurrently, then ``vector`` (index search and the rows it adds) and ``rank``
        (fusion and rendering); a stage that did not run is absent.

        Raises:
            EmbedderUnavailable: ``mode="vector"`` while the embedder is down (503).
        """
        timings: dict[str, float] = {}
        f = search_filter(body)
        depth = max(self.params.candidate_depth, body.limit)
        want_vector = body.mode != "bm25"
        embed_task: asyncio.Task[FloatMatrix] | None = None
        degraded = False
        if want_vector:
            if self.embedder_down():
                if body.mode == "vector":
                    raise EmbedderUnavailable("the embedder is down; vector search unavailable")
                degraded = True
            else:
                embed_task = asyncio.create_task(self._embed_query(body.query, timings))
        stems = query_stems(body.query) if body.mode != "vector" else []
        keyword: list[tuple[int, float]] = []
        rows: dict[int, sqlite3.Row] = {}
        try:
            if stems:
                started = time.perf_counter()
                keyword, rows = await self.store.read(
                    lambda c: self._keyword_candidates(c, tenant_id, f, stems, depth, now)
                )
                timings["keyword"] = _ms_since(started)
        finally:
            query_vec: FloatMatrix | None = None
            if embed_task is not None:
                try:
                    query_vec = await embed_task
                except EmbedderUnavailable:
                    if body.mode == "vector":
                        raise
                    degraded = True
        # One reader job for the rest, so no thread hop separates its steps: the vector
        # candidates (and their rows), the ranking, and the full rows of the results.
        limit = body.limit
        results, pks = await self.store.read(
            lambda c: self._finish(
                c, tenant_id, f, limit, keyword, rows, query_vec, depth, now, timings
            )
        )
        return SearchOutcome(results, pks, degraded, timings)

    def _finish(
        self,
        conn: sqlite3.Connection,
        tenant_id: str,
        f: MemoryFilter,
        limit: int,
        keyword: list[tuple[int, float]],
        rows: dict[int, sqlite3.Row],
        query_vec: FloatMatrix | None,
        depth: int,
        now: int,
        timings: dict[str, float],
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Vector candidates, ranking and rendering, in a reader thread; returns the
        results and their row keys, and adds ``vector`` and ``rank`` to ``timings``."""
        vector: list[tuple[int, float]] = []
        if query_vec is not None:
            started = time.perf_counter()
            vector = self._vector_candidates(conn, tenant_id, f, query_vec, rows, depth, now)
            timings["vector"] = _ms_since(started)
        started = time.perf_counter()
        features = {str(pk): _features(rows[pk]) for pk in {pk for pk, _ in keyword + vector}}
        ranked = rank(
            [(str(pk), s) for pk, s in keyword],
            [(str(pk), s) for pk, s in vector],
            features,
            now=_dt(now) or datetime.now(UTC),
            params=self.params,
            limit=limit,
        )
        full = qr.rows_by_pk(conn, tenant_id, [int(r.memory_id) for r in ranked])
        results = []
        pks = []
        for r in ranked:
            pk = int(r.memory_id)
            row = full.get(pk)
            if row is None:  # forgotten since its candidate row was read
                continue
            pks.append(pk)
            scores = {**r.breakdown, "bm25_raw": r.bm25_raw, "cosine": r.cosine}
            results.append({"memory": memory_dict(row), "score": r.score, "scores": scores})
        timings["rank"] = _ms_since(started)
        return results, pks

    def _keyword_candidates(
        self,
        conn: sqlite3.Connection,
        tenant_id: str,
        f: MemoryFilter,
        stems: list[str],
        depth: int,
        now: int,
    ) -> tuple[list[tuple[int, float]], dict[int, sqlite3.Row]]:
        """The ``depth`` best BM25 candidates passing the filter, and their ranking rows
        (in a reader thread, while the query embedding runs in another)."""
        fetch = depth * _OVERFETCH if _selective(f) else depth + _MARGIN
        while True:
            hits = self.keywords.search(conn, tenant_id, f.namespaces, stems, fetch)
            rows = qr.rows_passing(conn, tenant_id, f, [pk for pk, _ in hits], now=now)
            passing = [(pk, s) for pk, s in hits if pk in rows]
            if len(passing) >= depth or len(hits) < fetch:
                return passing[:depth], rows
            fetch *= 4

    def _vector_candidates(
        self,
        conn: sqlite3.Connection,
        tenant_id: str,
        f: MemoryFilter,
        query_vec: FloatMatrix,
        rows: dict[int, sqlite3.Row],
        depth: int,
        now: int,
    ) -> list[tuple[int, float]]:
        """Vector candidates passing the filter; their ranking rows are added to ``rows``
        (only those the keyword candidates did not already bring are read)."""
        model = self.embedder.name
        fetch = depth * _OVERFETCH if _selective(f) else depth + _MARGIN
        while True:
            hits = self.index.search(tenant_id, model, query_vec, fetch, namespaces=f.namespaces)
            missing = [pk for pk, _ in hits if pk not in rows]
            rows.update(qr.rows_passing(conn, tenant_id, f, missing, now=now))
            passing = [(pk, s) for pk, s in hits if pk in rows]
            if len(passing) >= depth or len(hits) < fetch:
                return passing[:depth]
            fetch *= 4


def _selective(f: MemoryFilter) -> bool:
    """Whether a filter can reject many of an index's candidates (beyond namespace and
    expiry): then candidates are over-fetched by :data:`_OVERFETCH` rather than a margin."""
    return bool(f.kinds or f.tags or f.metadata or f.session or f.q) or (
        f.since_ms is not None or f.until_ms is not None
    )

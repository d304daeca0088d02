"""Hybrid recall over the store and the in-process vector index (ARCHITECTURE §4).

``Recall.search`` runs, for one request:

1. the query embedding (:class:`~tether.memory.query_embedder.QueryEmbedder`: cached, on
   its own threads, within a budget, behind a circuit breaker), concurrently with
2. the keyword candidates in a reader thread: exact BM25 top-k from
   :class:`~tether.memory.postings.KeywordIndex` (namespaces applied in the index), their
   ranking columns read and the other filters checked in SQL
   (:func:`tether.store.sql_recall.rows_passing`), over-fetching until
   ``candidate_depth`` pass or the matches are exhausted;
3. then, in one reader job (no thread hop between the steps): the vector candidates from
   :class:`~tether.memory.vectors.VectorIndex`, filtered the same way (only rows the
   keyword step did not read are read); :func:`tether.memory.ranking.rank` over the union
   (convex fusion, recency, importance); the full rows of the returned results only.

If there is no query vector in time (the embedder is down, failing, hung or slower than
the budget, or its breaker is open), hybrid recall degrades to BM25 and says so
(``degraded``); a ``mode="vector"`` search is then a 503 ``embedder_unavailable``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tether.domain.time import to_ms
from tether.errors import EmbedderUnavailable
from tether.memory.analyzer import query_stems
from tether.memory.embedders import Embedder, FloatMatrix
from tether.memory.postings import KeywordIndex
from tether.memory.query_embedder import QueryEmbedder, QueryVector
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
    statistics), whether vector retrieval was skipped (``degraded``), how long each
    stage took in ms (``timings``: ``embed`` and ``keyword`` overlap; see
    :meth:`Recall.search`), and why a wanted query vector is missing (``embed_miss``:
    ``"timeout"``, ``"error"``, ``"open"`` or ``"down"``, see
    :class:`~tether.memory.query_embedder.QueryVector`)."""

    results: list[dict[str, Any]]
    pks: list[int]
    degraded: bool
    timings: dict[str, float] = field(default_factory=dict)
    embed_miss: str | None = None


class Recall:
    """Search use-case over a store, an embedder, a keyword index and a vector index.

    Args:
        keywords: The BM25 postings; a new one (loaded on first search) when not given.
        embedder_down: Returns True while the indexer knows the embedder is down, so a
            request does not wait on it (degrades at once). Used only when ``queries`` is
            not given.
        queries: The query embedder (budget, breaker, cache); by default one over
            ``embedder`` with the default budget (300 ms).
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
        queries: QueryEmbedder | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self.keywords = keywords if keywords is not None else KeywordIndex()
        self.params = params
        self.queries = (
            queries if queries is not None else QueryEmbedder(embedder, outage=embedder_down)
        )

    async def search(self, tenant_id: str, body: SearchIn, *, now: int) -> SearchOutcome:
        """Run one search (see the module docstring).

        The outcome's ``timings`` (ms, wall clock) are ``embed`` (the wait for the query
        vector: 0 on a cache hit or when the embedder was not called, at most about the
        budget) and ``keyword`` (BM25 candidates and their rows), which run concurrently,
        then ``vector`` (index search and the rows it adds) and ``rank`` (fusion and
        rendering); a stage that did not run is absent.

        Raises:
            EmbedderUnavailable: ``mode="vector"`` without a query vector in time (503).
        """
        timings: dict[str, float] = {}
        f = search_filter(body)
        depth = max(self.params.candidate_depth, body.limit)
        embed_task: asyncio.Task[QueryVector] | None = None
        if body.mode != "bm25":
            embed_task = asyncio.create_task(self.queries.embed(body.query))
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
        except BaseException:  # incl. cancellation: stop waiting for the vector too
            if embed_task is not None:
                embed_task.cancel()
            raise
        # Never raises EmbedderUnavailable, and ends within the embedding budget.
        query = await embed_task if embed_task is not None else None
        query_vec = query.vector if query is not None else None
        if query is not None:
            timings["embed"] = query.ms
            if query_vec is None and body.mode == "vector":
                raise EmbedderUnavailable(
                    f"no query vector, vector search unavailable: {query.detail}"
                )
        # One reader job for the rest, so no thread hop separates its steps: the vector
        # candidates (and their rows), the ranking, and the full rows of the results.
        limit = body.limit
        results, pks = await self.store.read(
            lambda c: self._finish(
                c, tenant_id, f, limit, keyword, rows, query_vec, depth, now, timings
            )
        )
        miss = query.miss if query is not None else None
        return SearchOutcome(results, pks, miss is not None, timings, miss)

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

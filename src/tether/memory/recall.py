"""Hybrid recall over the store's candidate reader and the in-process indexes (ARCHITECTURE §4).

``Recall.search`` runs, for one request:

1. the query embedding (:class:`~tether.memory.query_embedder.QueryEmbedder`: cached, on
   its own threads, within a budget, behind a circuit breaker), concurrently with
2. the indexes catching up with the memory feed (:class:`~tether.memory.follower.
   IndexFollower`: read-your-writes, whichever replica wrote), then the keyword
   candidates: exact BM25 top-k from :class:`~tether.memory.postings.KeywordIndex`
   (namespaces applied in the index), their ranking columns read and the other filters
   checked by the store (``Store.ranking_rows``), over-fetching until ``candidate_depth``
   pass or the matches are exhausted;
3. then the vector candidates from :class:`~tether.memory.vectors.VectorIndex`, filtered
   the same way (only rows the keyword step did not read are read);
   :func:`tether.memory.ranking.rank` over the union (convex fusion; in ``hybrid`` mode
   conversation context: neighbouring turns, episodes, subject and period match; recency,
   importance); the records of the returned results only (``Store.memories_by_pk``).

If there is no query vector in time (the embedder is down, failing, hung or slower than
the budget, or its breaker is open), hybrid recall degrades to BM25 and says so
(``degraded``); a ``mode="vector"`` search is then a 503 ``embedder_unavailable``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether.domain.filters import MemoryFilter
from tether.domain.memories import SearchIn
from tether.domain.records import SearchResult
from tether.domain.text import query_stems
from tether.domain.time import to_ms
from tether.errors import EmbedderUnavailable
from tether.memory.embedders import Embedder, FloatMatrix
from tether.memory.follower import IndexFollower
from tether.memory.postings import KeywordIndex
from tether.memory.query_embedder import QueryEmbedder, QueryVector
from tether.memory.ranking import MemoryFeatures, Period, RankingParams, query_period, rank
from tether.memory.vectors import VectorIndex
from tether.store.base import RankingRow, Store

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


def _features(row: RankingRow) -> MemoryFeatures:
    """A candidate's ranking inputs (epoch-ms timestamps, importance, write order) from
    its row."""
    return MemoryFeatures.from_ms(
        row.created_at, row.occurred_at, row.last_accessed_at, row.importance, row.pk
    )


def search_filter(body: SearchIn) -> MemoryFilter:
    """The store filter for a search request."""
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

    results: list[SearchResult]
    pks: list[int]
    degraded: bool
    timings: dict[str, float] = field(default_factory=dict)
    embed_miss: str | None = None


class Recall:
    """Search use-case over a store, an embedder and the in-process indexes.

    Args:
        store: The store (the candidate reader: ranking columns, records).
        embedder: The embedder whose vectors the index holds.
        index: The vector index.
        params: Ranking parameters.
        keywords: The BM25 postings.
        follower: Keeps ``keywords`` and ``index`` current with the store's memory feed;
            caught up before every search.
        embedder_down: Returns True while the indexer knows the embedder is down, so a
            request does not wait on it (degrades at once). Used only when ``queries`` is
            not given.
        queries: The query embedder (budget, breaker, cache); by default one over
            ``embedder`` with the default budget (300 ms).
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index: VectorIndex,
        *,
        params: RankingParams,
        keywords: KeywordIndex,
        follower: IndexFollower,
        embedder_down: Callable[[], bool] = lambda: False,
        queries: QueryEmbedder | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self.keywords = keywords
        self.follower = follower
        self.params = params
        self.queries = (
            queries if queries is not None else QueryEmbedder(embedder, outage=embedder_down)
        )

    async def search(self, tenant_id: str, body: SearchIn, *, now: int) -> SearchOutcome:
        """Run one search (see the module docstring).

        The outcome's ``timings`` (ms, wall clock) are ``embed`` (the wait for the query
        vector: 0 on a cache hit or when the embedder was not called, at most about the
        budget) and ``keyword`` (feed catch-up, BM25 candidates and their rows), which
        run concurrently, then ``vector`` (index search and the rows it adds) and
        ``rank`` (fusion and the records of the results); a stage that did not run is
        absent.

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
        rows: dict[int, RankingRow] = {}
        try:
            started = time.perf_counter()
            await self.follower.catch_up()
            if stems:
                keyword, rows = await self._keyword_candidates(tenant_id, f, stems, depth, now)
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
        vector: list[tuple[int, float]] = []
        if query_vec is not None:
            started = time.perf_counter()
            vector = await self._vector_candidates(tenant_id, f, query_vec, rows, depth, now)
            timings["vector"] = _ms_since(started)
        started = time.perf_counter()
        context = body.mode == "hybrid"
        subject = (
            self.keywords.leading(tenant_id, list(rows), stems) if context and stems else set()
        )
        period = query_period(body.query) if context else None
        results, pks = await self._rank(
            tenant_id, body.limit, keyword, vector, rows, now, subject, period, context
        )
        timings["rank"] = _ms_since(started)
        miss = query.miss if query is not None else None
        return SearchOutcome(results, pks, miss is not None, timings, miss)

    async def _rank(
        self,
        tenant_id: str,
        limit: int,
        keyword: list[tuple[int, float]],
        vector: list[tuple[int, float]],
        rows: dict[int, RankingRow],
        now: int,
        subject: set[int],
        period: Period | None,
        context: bool,
    ) -> tuple[list[SearchResult], list[int]]:
        """Fuse and rank the candidates (with conversation context: ``context``;
        ``subject``: the candidates whose first term the query names; ``period``: the
        months/years it names); read the records of the results only."""
        features = {str(pk): _features(rows[pk]) for pk in {pk for pk, _ in keyword + vector}}
        ranked = rank(
            [(str(pk), s) for pk, s in keyword],
            [(str(pk), s) for pk, s in vector],
            features,
            now=_dt(now) or datetime.now(UTC),
            params=self.params,
            limit=limit,
            subject={str(pk) for pk in subject},
            period=period,
            context=context,
        )
        records = await self.store.memories_by_pk(tenant_id, [int(r.memory_id) for r in ranked])
        results = []
        pks = []
        for r in ranked:
            pk = int(r.memory_id)
            memory = records.get(pk)
            if memory is None:  # forgotten since its candidate row was read
                continue
            pks.append(pk)
            scores = {**r.breakdown, "bm25_raw": r.bm25_raw, "cosine": r.cosine}
            results.append(SearchResult(memory, r.score, scores))
        return results, pks

    async def _keyword_candidates(
        self,
        tenant_id: str,
        f: MemoryFilter,
        stems: list[str],
        depth: int,
        now: int,
    ) -> tuple[list[tuple[int, float]], dict[int, RankingRow]]:
        """The ``depth`` best BM25 candidates passing the filter, and their ranking rows
        (scored in a worker thread, while the query embedding runs in another)."""
        fetch = depth * _OVERFETCH if f.selective else depth + _MARGIN
        while True:
            hits = await asyncio.to_thread(
                self.keywords.search, tenant_id, f.namespaces, stems, fetch
            )
            rows = await self.store.ranking_rows(tenant_id, f, [pk for pk, _ in hits], now=now)
            passing = [(pk, s) for pk, s in hits if pk in rows]
            if len(passing) >= depth or len(hits) < fetch:
                return passing[:depth], rows
            fetch *= 4

    async def _vector_candidates(
        self,
        tenant_id: str,
        f: MemoryFilter,
        query_vec: FloatMatrix,
        rows: dict[int, RankingRow],
        depth: int,
        now: int,
    ) -> list[tuple[int, float]]:
        """Vector candidates passing the filter; their ranking rows are added to ``rows``
        (only those the keyword candidates did not already bring are read)."""
        model = self.embedder.name
        fetch = depth * _OVERFETCH if f.selective else depth + _MARGIN
        while True:
            hits = self.index.search(tenant_id, model, query_vec, fetch, namespaces=f.namespaces)
            missing = [pk for pk, _ in hits if pk not in rows]
            rows.update(await self.store.ranking_rows(tenant_id, f, missing, now=now))
            passing = [(pk, s) for pk, s in hits if pk in rows]
            if len(passing) >= depth or len(hits) < fetch:
                return passing[:depth]
            fetch *= 4

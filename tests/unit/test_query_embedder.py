"""Query embeddings under a budget and behind a circuit breaker (issue 10).

The embedders here are fakes standing in for the model or an embeddings API: one that
blocks on a ``threading.Event`` (a hung API), one that fails on demand. Time in the breaker
tests is a fake clock; the budget tests never assert on wall time, only on what happened
while the embedder was still blocked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from tether.domain.memories import MemoryIn, SearchIn
from tether.errors import EmbedderUnavailable
from tether.memory.embedders import Embedder, FloatMatrix
from tether.memory.follower import IndexFollower
from tether.memory.postings import KeywordIndex
from tether.memory.query_embedder import OPEN_AFTER, Breaker, QueryEmbedder
from tether.memory.ranking import RankingParams
from tether.memory.recall import Recall
from tether.memory.vectors import VectorIndex
from tether.services.memory import MemoryService
from tether.store.base import Store
from tether.store.sqlite import SQLiteStore


def _recall(store: Store, embedder: Embedder, queries: QueryEmbedder) -> Recall:
    index, keywords = VectorIndex(hnsw_threshold=10), KeywordIndex()
    follower = IndexFollower(store, keywords, index, model=embedder.name)
    return Recall(
        store,
        embedder,
        index,
        params=RankingParams(),
        keywords=keywords,
        follower=follower,
        queries=queries,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Fake(Embedder):
    """Unit vectors; blocks while ``gate`` is clear, fails while ``failing`` is set."""

    name = "fake"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.failing = False

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        self.calls.extend(texts)
        self.gate.wait()
        if self.failing:
            raise EmbedderUnavailable("fake embedder is down")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


async def _until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate`` holds (a late answer arrives via the loop)."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


# -- the breaker ---------------------------------------------------------------------------
def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = Breaker(clock=clock)
    for _ in range(OPEN_AFTER - 1):
        assert breaker.allow()
        breaker.failure("boom")
    breaker.success()  # not consecutive: the streak starts again
    for _ in range(OPEN_AFTER - 1):
        breaker.failure("boom")
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.failure("boom")
    assert breaker.state == "open"
    assert breaker.last_error == "boom"
    assert not breaker.allow()
    assert breaker.retry_in_s == pytest.approx(1.0)


def test_breaker_half_open_lets_one_trial_through_and_doubles_the_cooldown() -> None:
    clock = FakeClock()
    breaker = Breaker(cooldown_s=1.0, max_cooldown_s=4.0, clock=clock)
    for _ in range(OPEN_AFTER):
        breaker.failure("timeout")
    clock.now += 0.999
    assert not breaker.allow()
    clock.now += 0.001
    assert breaker.allow()  # the trial
    assert breaker.state == "half_open"
    assert not breaker.allow()  # one at a time
    breaker.failure("timeout again")
    assert breaker.state == "open"
    assert breaker.retry_in_s == pytest.approx(2.0)  # doubled
    for cooldown in (4.0, 4.0):  # doubled again, then capped
        clock.now += breaker.retry_in_s
        assert breaker.allow()
        breaker.failure("timeout")
        assert breaker.retry_in_s == pytest.approx(cooldown)
    # A trial whose caller went away frees the slot at once.
    clock.now += 4.0
    assert breaker.allow()
    breaker.abandon()
    assert breaker.state == "open"
    assert breaker.allow()


def test_breaker_trial_success_closes_and_resets_the_cooldown() -> None:
    clock = FakeClock()
    breaker = Breaker(cooldown_s=1.0, clock=clock)
    for _ in range(OPEN_AFTER):
        breaker.failure("x")
    clock.now += 1.0
    assert breaker.allow()
    breaker.failure("x")  # cool-down now 2 s
    clock.now += 2.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.last_error is None
    for _ in range(OPEN_AFTER):
        breaker.failure("x")
    assert breaker.retry_in_s == pytest.approx(1.0)  # back to the first cool-down


# -- the query embedder ----------------------------------------------------------------------
def test_a_hung_embedder_costs_the_budget_and_its_late_answer_fills_the_cache() -> None:
    fake = Fake()
    fake.gate.clear()
    queries = QueryEmbedder(fake, budget_ms=50)

    async def main() -> None:
        first = await queries.embed("where is the harbour?")
        # The wait ended while the embedder was still blocked: the budget, not the call.
        assert not fake.gate.is_set()
        assert first.vector is None
        assert first.miss == "timeout"
        assert first.ms >= 50
        assert "50 ms" in (first.detail or "")
        fake.gate.set()  # it answers late
        await _until(lambda: len(queries._cache) == 1)
        again = await queries.embed("where is the harbour?")
        assert again.vector is not None
        assert again.ms == 0.0  # from the cache
        assert fake.calls == ["where is the harbour?"]  # embedded once
        assert queries.breaker.state == "closed"  # one timeout is not an outage

    try:
        asyncio.run(main())
    finally:
        fake.gate.set()
        queries.close()


def test_a_call_still_queued_when_its_budget_ends_never_runs() -> None:
    fake = Fake()
    fake.gate.clear()
    queries = QueryEmbedder(fake, budget_ms=30, workers=1)

    async def main() -> None:
        a = asyncio.create_task(queries.embed("a"))
        await _until(lambda: fake.calls == ["a"])  # running (blocked) on the only thread
        b = await queries.embed("b")  # queued behind it
        assert ((await a).miss, b.miss) == ("timeout", "timeout")
        fake.gate.set()
        await _until(lambda: len(queries._cache) == 1)
        await asyncio.sleep(0.05)
        assert fake.calls == ["a"]  # "b" was dropped from the queue, not run late

    try:
        asyncio.run(main())
    finally:
        fake.gate.set()
        queries.close()


def test_the_breaker_stops_calls_then_one_trial_closes_it() -> None:
    fake = Fake()
    fake.failing = True
    clock = FakeClock()
    queries = QueryEmbedder(fake, breaker=Breaker(clock=clock))

    async def main() -> None:
        for _ in range(OPEN_AFTER):
            assert (await queries.embed("q")).miss == "error"
        skipped = await queries.embed("q")
        assert skipped.miss == "open"
        assert skipped.ms == 0.0
        assert "fake embedder is down" in (skipped.detail or "")
        assert len(fake.calls) == OPEN_AFTER  # not called while open
        # Cool-down over; the embedder recovered but is slow: the first caller is the
        # trial, a concurrent caller does not call it.
        clock.now += 1.0
        fake.failing = False
        fake.gate.clear()
        trial = asyncio.create_task(queries.embed("q"))
        await _until(lambda: len(fake.calls) == OPEN_AFTER + 1)
        assert queries.breaker.state == "half_open"
        assert (await queries.embed("other")).miss == "open"
        fake.gate.set()
        assert (await trial).vector is not None
        assert queries.breaker.state == "closed"
        assert (await queries.embed("other")).vector is not None

    try:
        asyncio.run(main())
    finally:
        fake.gate.set()
        queries.close()


def test_the_indexers_outage_skips_the_call() -> None:
    fake = Fake()
    queries = QueryEmbedder(fake, outage=lambda: True)
    try:
        got = asyncio.run(queries.embed("q"))
    finally:
        queries.close()
    assert got.miss == "down"
    assert fake.calls == []


# -- through recall and the readiness check ---------------------------------------------------
def test_search_degrades_to_bm25_within_the_budget_and_vector_mode_is_a_503(
    tmp_path: Path,
) -> None:
    fake = Fake()
    fake.gate.clear()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "r.db")
        await store.start()
        queries = QueryEmbedder(fake, budget_ms=50)
        recall = _recall(store, fake, queries)
        try:
            item = MemoryIn(namespace="n", text="the harbour pilot boards at dawn")
            await store.remember("t", [item], now=1)
            body = SearchIn(namespace="n", query="harbour pilot")
            out = await recall.search("t", body, now=2)
            assert not fake.gate.is_set()  # answered while the embedder hangs
            assert out.degraded is True
            assert out.embed_miss == "timeout"
            assert out.timings["embed"] >= 50
            assert [r.memory.text for r in out.results] == [item.text]
            with pytest.raises(EmbedderUnavailable, match="no query vector"):
                await recall.search(
                    "t", SearchIn(namespace="n", query="dawn", mode="vector"), now=2
                )
            fake.gate.set()
            await _until(lambda: len(queries._cache) == 2)
            again = await recall.search("t", body, now=3)  # the late vector, from the cache
            assert again.degraded is False
            assert again.timings["embed"] == 0.0
        finally:
            fake.gate.set()
            queries.close()
            await store.close()

    asyncio.run(main())


def test_the_readiness_check_never_waits_on_a_hung_embedder() -> None:
    fake = Fake()
    fake.gate.clear()
    queries = QueryEmbedder(fake, budget_ms=50)
    no_store = cast(Any, None)  # the check never reads the store
    recall = _recall(no_store, fake, queries)
    service = MemoryService(no_store, fake, recall.index, recall)

    async def main() -> None:
        first = await service.embedder_check()
        assert first["status"] == "unknown"  # the probe started, in the background
        assert first["latency_ms"] is None
        await _until(lambda: service._probe is not None)
        assert not fake.gate.is_set()
        second = await service.embedder_check()
        assert second["status"] == "down"
        assert "within 50 ms" in second["detail"]
        assert second["breaker"] == "closed"
        # Failed searches open the breaker: reported at once, no new call.
        for _ in range(OPEN_AFTER):
            await queries.embed("q")
        third = await service.embedder_check()
        assert (third["status"], third["breaker"]) == ("down", "open")
        assert "breaker open" in third["detail"]

    try:
        asyncio.run(main())
    finally:
        fake.gate.set()
        queries.close()

"""Hybrid ranking: fusion math, candidate union, recency decay and importance."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tether.memory.ranking import (
    DEFAULT_PARAMS,
    MemoryFeatures,
    RankingParams,
    convex_fusion,
    importance_factor,
    minmax_normalise,
    rank,
    recency_score,
    rrf_fusion,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3 * 365)


def feats(*ids: str, when: datetime = OLD, importance: float = 0.5) -> dict[str, MemoryFeatures]:
    return {i: MemoryFeatures(created_at=when, importance=importance) for i in ids}


def test_minmax_normalise() -> None:
    assert minmax_normalise({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert minmax_normalise({"a": 7.0}) == {"a": 1.0}
    assert minmax_normalise({"a": 1.0, "b": 1.0}) == {"a": 1.0, "b": 1.0}
    assert minmax_normalise({}) == {}
    assert minmax_normalise({"a": float("nan"), "b": 1.0, "c": 3.0})["a"] == 0.0


def test_convex_fusion_math_and_union() -> None:
    # FTS5 bm25 is negated: -6 is the best match, -2 the worst.
    bm25 = [("a", -6.0), ("b", -4.0), ("c", -2.0)]
    vector = [("b", 0.8), ("d", 0.6), ("a", 0.4)]
    fused = convex_fusion(bm25, vector, alpha=0.6)
    assert set(fused) == {"a", "b", "c", "d"}
    assert fused["a"] == pytest.approx((1.0, 0.0, 0.6))
    assert fused["b"] == pytest.approx((0.5, 1.0, 0.6 * 0.5 + 0.4 * 1.0))
    assert fused["c"] == pytest.approx((0.0, 0.0, 0.0))
    assert fused["d"] == pytest.approx((0.0, 0.5, 0.4 * 0.5))


def test_convex_fusion_alpha_extremes_reproduce_each_retriever() -> None:
    bm25 = [("a", -6.0), ("b", -4.0), ("c", -2.0)]
    vector = [("c", 0.9), ("b", 0.5), ("a", 0.1)]
    only_bm25 = convex_fusion(bm25, vector, alpha=1.0)
    only_vec = convex_fusion(bm25, vector, alpha=0.0)
    assert sorted(only_bm25, key=lambda k: -only_bm25[k][2]) == ["a", "b", "c"]
    assert sorted(only_vec, key=lambda k: -only_vec[k][2]) == ["c", "b", "a"]


def test_duplicate_candidates_keep_first_score() -> None:
    fused = convex_fusion([("a", -5.0), ("a", -1.0), ("b", -1.0)], [])
    assert set(fused) == {"a", "b"}
    assert fused["a"][0] == 1.0


def test_rrf_fusion_math() -> None:
    fused = rrf_fusion([("x", -1.0), ("y", -9.0)], [("x", 0.9)], k=60)
    # y has the better (lower) bm25, so it is rank 1 there.
    assert fused["y"] == pytest.approx((1 / 61, 0.0, 1 / 61))
    assert fused["x"] == pytest.approx((1 / 62, 1 / 61, 1 / 62 + 1 / 61))


def test_recency_halves_at_one_half_life() -> None:
    f = MemoryFeatures(created_at=NOW - timedelta(days=30))
    assert recency_score(f, NOW, half_life_days=30) == pytest.approx(0.5)
    f2 = MemoryFeatures(created_at=NOW - timedelta(days=60))
    assert recency_score(f2, NOW, half_life_days=30) == pytest.approx(0.25)
    assert recency_score(MemoryFeatures(created_at=NOW), NOW) == 1.0


def test_recency_prefers_occurred_at_and_access_resets() -> None:
    occurred = MemoryFeatures(created_at=NOW, occurred_at=NOW - timedelta(days=10))
    assert recency_score(occurred, NOW, half_life_days=10) == pytest.approx(0.5)
    accessed = MemoryFeatures(
        created_at=NOW - timedelta(days=400),
        occurred_at=NOW - timedelta(days=500),
        last_accessed_at=NOW - timedelta(days=10),
    )
    assert recency_score(accessed, NOW, half_life_days=10) == pytest.approx(0.5)
    # An access older than the event time does not age the memory.
    stale_access = MemoryFeatures(
        created_at=NOW, occurred_at=NOW - timedelta(days=1), last_accessed_at=OLD
    )
    assert recency_score(stale_access, NOW, half_life_days=1) == pytest.approx(0.5)


def test_recency_of_future_memory_is_one() -> None:
    assert recency_score(MemoryFeatures(created_at=NOW + timedelta(days=5)), NOW) == 1.0


def test_importance_factor() -> None:
    assert importance_factor(0.5) == 1.0
    assert importance_factor(1.0, weight=0.2) == pytest.approx(1.1)
    assert importance_factor(0.0, weight=0.2) == pytest.approx(0.9)
    assert importance_factor(7.0, weight=0.2) == pytest.approx(1.1)
    assert importance_factor(float("nan")) == 1.0


def test_rank_breakdown_and_order() -> None:
    results = rank(
        [("a", -6.0), ("b", -2.0)], [("b", 0.9), ("c", 0.1)], feats("a", "b", "c"), now=NOW
    )
    assert results[0].memory_id in {"a", "b"}
    for r in results:
        assert set(r.breakdown) == {
            "bm25",
            "vector",
            "fused",
            "neighbour",
            "episode",
            "subject",
            "period",
            "relevance",
            "recency",
            "importance",
            "final",
        }
        assert r.score == r.breakdown["final"]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    b = next(r for r in results if r.memory_id == "b")
    assert b.bm25_raw == -2.0
    assert b.cosine == 0.9
    assert next(r for r in results if r.memory_id == "c").bm25_raw is None


def test_old_neutral_memories_rank_by_relevance_alone() -> None:
    bm25 = [("a", -6.0), ("b", -4.0), ("c", -2.0)]
    vector = [("c", 0.7), ("a", 0.6), ("d", 0.2)]
    fused = convex_fusion(bm25, vector, alpha=DEFAULT_PARAMS.alpha)
    expected = sorted(fused, key=lambda k: (-fused[k][2], k))
    # Years-old memories at default importance: recency ~ 0, factor 1.
    results = rank(bm25, vector, feats("a", "b", "c", "d"), now=NOW)
    assert [r.memory_id for r in results] == expected
    assert all(r.breakdown["recency"] < 1e-9 for r in results)


def test_recency_and_importance_break_ties_but_do_not_override_relevance() -> None:
    bm25 = [("old", -5.0), ("new", -5.0), ("irrelevant", -1.0)]
    features = {
        "old": MemoryFeatures(created_at=OLD),
        "new": MemoryFeatures(created_at=NOW),
        "irrelevant": MemoryFeatures(created_at=NOW, importance=1.0),
    }
    results = rank(bm25, [], features, now=NOW)
    assert [r.memory_id for r in results] == ["new", "old", "irrelevant"]
    assert results[-1].score == 0.0
    important = rank(
        [("x", -5.0), ("y", -5.0)],
        [],
        {"x": MemoryFeatures(created_at=OLD, importance=0.9), "y": MemoryFeatures(created_at=OLD)},
        now=NOW,
    )
    assert [r.memory_id for r in important] == ["x", "y"]


def test_access_reset_changes_rank() -> None:
    features = {
        "a": MemoryFeatures(created_at=OLD),
        "b": MemoryFeatures(created_at=OLD, last_accessed_at=NOW - timedelta(hours=1)),
    }
    results = rank([("a", -5.0), ("b", -5.0)], [], features, now=NOW)
    assert results[0].memory_id == "b"
    assert results[0].breakdown["recency"] > 0.99


def test_missing_features_are_neutral() -> None:
    results = rank([("a", -3.0)], [("b", 0.5)], {}, now=NOW)
    assert {r.memory_id for r in results} == {"a", "b"}
    assert all(r.breakdown["recency"] == 0.0 for r in results)
    assert all(r.breakdown["importance"] == 0.5 for r in results)


def test_embedder_down_degrades_to_bm25_order() -> None:
    bm25 = [("a", -9.0), ("b", -5.0), ("c", -1.0)]
    results = rank(bm25, [], feats("a", "b", "c"), now=NOW)
    assert [r.memory_id for r in results] == ["a", "b", "c"]


def test_no_keywords_degrades_to_vector_order() -> None:
    vector = [("a", 0.9), ("b", 0.5), ("c", 0.2)]
    results = rank([], vector, feats("a", "b", "c"), now=NOW)
    assert [r.memory_id for r in results] == ["a", "b", "c"]


def test_empty_and_limit() -> None:
    assert rank([], [], {}, now=NOW) == []
    results = rank([("a", -2.0), ("b", -1.0), ("c", -0.5)], [], {}, now=NOW, limit=2)
    assert [r.memory_id for r in results] == ["a", "b"]


def test_rrf_mode() -> None:
    params = RankingParams(fusion="rrf")
    results = rank([("a", -2.0), ("b", -1.0)], [("b", 0.9)], {}, now=NOW, params=params)
    assert results[0].memory_id == "b"
    assert math.isclose(results[0].breakdown["fused"], 1 / 62 + 1 / 61)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": -0.1},
        {"alpha": 1.5},
        {"half_life_days": 0},
        {"candidate_depth": 0},
        {"recency_weight": -1},
        {"importance_weight": 3},
    ],
)
def test_params_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RankingParams(**kwargs)  # type: ignore[arg-type]

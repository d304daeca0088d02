"""Conversation context in hybrid ranking: neighbouring turns, episodes, subject and
period match.

Every case uses BM25 candidates only, so ``fused = alpha * bm25_norm`` and the expected
scores can be worked out by hand (alpha 0.6: min-max of -4, -2, -1 gives 1, 1/3, 0, so
fused 0.6, 0.2, 0). The memories are years old: recency ~1e-11, importance neutral, so
``final`` equals ``relevance`` to 1e-9.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tether.domain.text import analyze, query_stems
from tether.memory.postings import KeywordIndex
from tether.memory.ranking import (
    DEFAULT_PARAMS,
    EPISODE_GAP_MS,
    MemoryFeatures,
    Period,
    RankedMemory,
    RankingParams,
    episode_context,
    query_period,
    rank,
    with_overrides,
)
from tether.store.base import IndexRow

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
T = NOW - timedelta(days=3 * 365)
BM25 = [("a", -4.0), ("b", -2.0), ("c", -1.0)]  # fused 0.6, 0.2, 0.0
OFF = {"neighbour_weight": 0.0, "subject_weight": 0.0, "period_weight": 0.0, "episode": False}
ONLY_NEIGHBOUR = RankingParams(alpha=0.6, **{**OFF, "neighbour_weight": 0.5})  # type: ignore[arg-type]
ONLY_EPISODE = RankingParams(alpha=0.6, **{**OFF, "episode": True})  # type: ignore[arg-type]
ONLY_SUBJECT = RankingParams(alpha=0.6, **{**OFF, "subject_weight": 0.5})  # type: ignore[arg-type]
ONLY_PERIOD = RankingParams(alpha=0.6, **{**OFF, "period_weight": 0.5})  # type: ignore[arg-type]


def at(minutes: float, seq: int | None = None) -> MemoryFeatures:
    return MemoryFeatures(created_at=NOW, occurred_at=T + timedelta(minutes=minutes), seq=seq)


def by_id(results: list[RankedMemory]) -> dict[str, RankedMemory]:
    return {r.memory_id: r for r in results}


def test_defaults_are_the_documented_ones() -> None:
    assert (DEFAULT_PARAMS.alpha, DEFAULT_PARAMS.neighbour_weight) == (0.6, 1.0)
    assert (DEFAULT_PARAMS.subject_weight, DEFAULT_PARAMS.episode) == (0.5, True)
    assert DEFAULT_PARAMS.period_weight == 0.5
    assert EPISODE_GAP_MS == 1_800_000


def test_a_turn_gains_half_its_best_neighbours_score() -> None:
    # a and b were written one after the other in one episode; c is further away.
    features = {"a": at(0, seq=1), "b": at(0, seq=2), "c": at(0, seq=10)}
    got = by_id(rank(BM25, [], features, now=NOW, params=ONLY_NEIGHBOUR))
    assert got["a"].breakdown["neighbour"] == pytest.approx(0.2)
    assert got["b"].breakdown["neighbour"] == pytest.approx(0.6)
    assert got["c"].breakdown["neighbour"] == 0.0
    assert got["a"].breakdown["relevance"] == pytest.approx(0.6 + 0.5 * 0.2)
    assert got["b"].breakdown["relevance"] == pytest.approx(0.2 + 0.5 * 0.6)
    assert got["c"].score == pytest.approx(0.0)
    assert got["b"].score == pytest.approx(0.5, abs=1e-9)


def test_neighbours_must_share_an_episode() -> None:
    # Adjacent row keys, but two hours apart: not the same conversation.
    features = {"a": at(0, seq=1), "b": at(120, seq=2), "c": at(0, seq=10)}
    got = by_id(rank(BM25, [], features, now=NOW, params=ONLY_NEIGHBOUR))
    assert got["a"].breakdown["neighbour"] == 0.0
    assert got["b"].breakdown["relevance"] == pytest.approx(0.2)


def test_a_turn_averages_its_score_with_its_episodes_best() -> None:
    bm25 = [*BM25, ("d", -1.0), ("e", -1.0)]  # d, e: fused 0.0
    # a, b, d chain into one episode (gaps of 20 min; a to d is 40 min); c is 3 days
    # later, alone; e has no event time, so no episode.
    features = {"a": at(0), "b": at(20), "d": at(40), "c": at(3 * 24 * 60)}
    features["e"] = MemoryFeatures(created_at=T)
    got = by_id(rank(bm25, [], features, now=NOW, params=ONLY_EPISODE))
    assert got["b"].breakdown["episode"] == pytest.approx(0.6)
    assert got["b"].breakdown["relevance"] == pytest.approx((0.2 + 0.6) / 2)
    assert got["d"].breakdown["relevance"] == pytest.approx((0.0 + 0.6) / 2)
    assert got["a"].breakdown["relevance"] == pytest.approx(0.6)
    assert got["c"].breakdown["episode"] == 0.0
    assert got["c"].score == pytest.approx(0.0)
    assert got["e"].breakdown["episode"] == 0.0  # its own fused
    assert [r.memory_id for r in rank(bm25, [], features, now=NOW, params=ONLY_EPISODE)][:3] == [
        "a",
        "b",
        "d",
    ]


def test_episode_context_cuts_at_gaps_longer_than_30_minutes() -> None:
    fused = {"a": 0.9, "b": 0.1, "c": 0.5}
    features = {"a": at(0, seq=1), "b": at(30, seq=2), "c": at(61, seq=3)}
    assert episode_context(fused, features) == {
        "a": (0.1, 0.9),
        "b": (0.9, 0.9),  # its neighbour c is in the next episode
        "c": (0.0, 0.5),
    }


def test_a_memory_whose_first_word_the_query_names_gets_the_subject_boost() -> None:
    got = by_id(rank(BM25, [], {}, now=NOW, params=ONLY_SUBJECT, subject={"b"}))
    assert got["b"].breakdown["subject"] == 1.0
    assert got["a"].breakdown["subject"] == 0.0
    assert got["b"].breakdown["relevance"] == pytest.approx(0.2 * 1.5)
    assert got["b"].score == pytest.approx(0.3)


def test_without_context_relevance_is_the_fused_score() -> None:
    features = {"a": at(0, seq=1), "b": at(0, seq=2), "c": at(0, seq=3)}
    period = query_period(T.strftime("%B %Y"))
    results = rank(BM25, [], features, now=NOW, subject={"c"}, period=period, context=False)
    for r in results:
        assert r.breakdown["relevance"] == r.breakdown["fused"]
        assert r.breakdown["neighbour"] == 0.0
        assert r.breakdown["subject"] == 0.0
        assert r.breakdown["period"] == 0.0
    assert [r.memory_id for r in results] == ["a", "b", "c"]


def test_query_period() -> None:
    assert query_period("What did Maria do in May 2023?") == Period(
        frozenset({5}), frozenset({2023})
    )
    assert query_period("what happened on 7 july, 2023 and in August?") == Period(
        frozenset({7, 8}), frozenset({2023})
    )
    assert query_period("What happened in 2022?") == Period(frozenset(), frozenset({2022}))
    assert query_period("May I ask what Caroline may do?") is None
    assert query_period("Where did she go camping?") is None


def test_a_memory_in_the_period_the_query_names_gets_the_period_boost() -> None:
    features = {"a": at(0), "b": at(0), "c": at(0)}
    month = T.strftime("%B %Y")  # the month and year of T
    got = by_id(rank(BM25, [], features, now=NOW, params=ONLY_PERIOD, period=query_period(month)))
    assert got["b"].breakdown["period"] == 1.0
    assert got["b"].breakdown["relevance"] == pytest.approx(0.2 * 1.5)
    other = query_period(f"in {T.year + 1}")
    got = by_id(rank(BM25, [], features, now=NOW, params=ONLY_PERIOD, period=other))
    assert got["b"].breakdown["period"] == 0.0
    assert got["b"].breakdown["relevance"] == pytest.approx(0.2)
    # A memory without an event time is never in a period.
    plain = {"b": MemoryFeatures(created_at=T)}
    got = by_id(rank(BM25, [], plain, now=NOW, params=ONLY_PERIOD, period=query_period(month)))
    assert got["b"].breakdown["period"] == 0.0


def test_all_four_with_the_defaults() -> None:
    features = {"a": at(0, seq=1), "b": at(0, seq=2), "c": at(0, seq=10)}
    period = query_period(T.strftime("%B"))
    got = by_id(rank(BM25, [], features, now=NOW, subject={"c"}, period=period))
    # c: fused 0, no neighbour, episode best 0.6 -> (0 + 0.6) / 2, x1.5 subject, x1.5 period.
    assert got["c"].breakdown["relevance"] == pytest.approx(0.3 * 1.5 * 1.5)
    # b: (0.2 + 1.0 * 0.6 + 0.6) / 2, x1.5 period.
    assert got["b"].breakdown["relevance"] == pytest.approx(0.7 * 1.5)
    assert got["b"].score == pytest.approx(1.05, abs=1e-9)


def test_overrides() -> None:
    params = with_overrides(DEFAULT_PARAMS, {"alpha": 0.5, "episode": 0, "candidate_depth": 20})
    assert (params.alpha, params.episode, params.candidate_depth) == (0.5, False, 20)
    with pytest.raises(ValueError, match="unknown"):
        with_overrides(DEFAULT_PARAMS, {"beta": 1.0})
    with pytest.raises(ValueError, match="neighbour_weight"):
        with_overrides(DEFAULT_PARAMS, {"neighbour_weight": 3.0})


def test_keyword_index_knows_each_memorys_first_term() -> None:
    texts = [
        "Caroline: I researched adoption agencies.",
        "Melanie: Caroline told me about adoption.",
        "Caroline: The support group helped.",
    ]
    keywords = KeywordIndex()
    rows = [
        IndexRow(0, "t", f"m{pk}", pk, "ns", 1, " ".join(analyze(text)), "", None)
        for pk, text in enumerate(texts)
    ]
    keywords.apply(rows)
    stems = query_stems("What did Caroline research?")
    assert keywords.leading("t", [0, 1, 2], stems) == {0, 2}
    assert keywords.leading("t", [1, 2], stems) == {2}
    assert keywords.leading("other", [0, 1, 2], stems) == set()
    keywords.apply([IndexRow(1, "t", "m2", 2, "ns", 2, None, None, None)])
    assert keywords.leading("t", [0, 1, 2], stems) == {0}

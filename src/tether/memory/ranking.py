"""Hybrid recall ranking: fuse BM25 and vector candidates, then apply recency and importance.

Pure functions over candidate lists (numpy/stdlib only, no I/O). The server fetches

- keyword candidates: ``(memory_id, bm25)`` from the in-process postings
  (:mod:`tether.memory.postings`), negated Okapi BM25 as FTS5's ``bm25()`` gave it
  (*lower is better*),
- vector candidates: ``(memory_id, cosine)`` from exact or HNSW search over unit vectors,

each up to :attr:`RankingParams.candidate_depth` deep, plus per-memory
:class:`MemoryFeatures`, and calls :func:`rank`.

Default fusion (``"convex"``): a convex combination of per-query min-max normalised scores,
``fused = alpha * bm25_norm + (1 - alpha) * cosine_norm``, over the *union* of candidates;
a memory absent from one list scores 0 on that side. Bruch, Gai & Ingber, "An Analysis of
Fusion Functions for Hybrid Retrieval" (ACM TOIS 2023) show this convex combination beats
reciprocal-rank fusion and that alpha transfers well across collections. RRF (Cormack,
Clarke & Büttcher, SIGIR 2009, k = 60) is kept as ``fusion="rrf"`` for comparison: on the
LoCoMo dev set it is below BM25 alone because it discards how far apart the scores are.

The fused relevance is then gently re-weighted (multiplicatively, so an irrelevant memory
never rises just for being recent or important; cf. the recency x importance x relevance
retrieval score of Park et al., "Generative Agents", UIST 2023):

``final = fused * (1 + recency_weight * recency) * (1 + importance_weight * (importance - 0.5))``

with ``recency = 0.5 ** (age / half_life)`` (exponential decay; age from the later of the
event time and the last access, so recalling a memory resets its decay) and
``importance`` in [0, 1] (0.5 = neutral, the default). With the defaults the two factors
move a score by at most +15 % and +/-10 %: tie-breakers among comparably relevant
memories, not a second ranking signal. See docs/memory.md for the measured numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

__all__ = [
    "DEFAULT_PARAMS",
    "BreakdownKey",
    "MemoryFeatures",
    "RankedMemory",
    "RankingParams",
    "convex_fusion",
    "importance_factor",
    "minmax_normalise",
    "rank",
    "recency_score",
    "rrf_fusion",
]

BreakdownKey = Literal["bm25", "vector", "fused", "recency", "importance", "final"]

_MS_PER_DAY: Final = 86_400_000.0
#: Default importance of a memory that has none (neutral: factor 1).
NEUTRAL_IMPORTANCE: Final = 0.5


@dataclass(frozen=True, slots=True)
class RankingParams:
    """Knobs of :func:`rank`; the defaults are the measured, documented defaults.

    Attributes:
        fusion: ``"convex"`` (default) or ``"rrf"``.
        alpha: BM25 weight in the convex combination, in [0, 1] (vector gets
            ``1 - alpha``). 0.55 leans slightly to keywords, which carry names, dates and
            rare terms that small sentence embedders blur. On the LoCoMo dev set every
            alpha in 0.5-0.7 (depth 20-100) gives R@5 0.577-0.604: a plateau, not a spike.
        rrf_k: RRF rank constant (60, Cormack et al. 2009); only for ``fusion="rrf"``.
        candidate_depth: How many candidates the caller should fetch from *each* retriever
            (the union is ranked). 50 is where dev-set recall saturates; deeper lists
            only add low-scoring noise to the min-max range.
        half_life_days: Recency half-life in days: a memory untouched for this long gets
            half the recency of a fresh one.
        recency_weight: Max relative boost from recency (0.15 -> at most x1.15).
        importance_weight: Importance slope around 0.5 (0.2 -> x0.9 ... x1.1).
    """

    fusion: Literal["convex", "rrf"] = "convex"
    alpha: float = 0.55
    rrf_k: int = 60
    candidate_depth: int = 50
    half_life_days: float = 30.0
    recency_weight: float = 0.15
    importance_weight: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.rrf_k < 0 or self.candidate_depth < 1:
            raise ValueError("rrf_k must be >= 0 and candidate_depth >= 1")
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")
        if self.recency_weight < 0 or not 0 <= self.importance_weight <= 2:
            raise ValueError("recency_weight must be >= 0 and importance_weight in [0, 2]")


DEFAULT_PARAMS: Final = RankingParams()


def _epoch_ms(when: datetime) -> float:
    """Milliseconds since the Unix epoch (a naive datetime is read as local time, as
    :meth:`datetime.timestamp` does: keep features and ``now`` consistent)."""
    return when.timestamp() * 1000.0


class MemoryFeatures:
    """Per-memory inputs to recency and importance.

    Built from timezone-aware datetimes (``MemoryFeatures(created_at=...)``) or, on the
    recall hot path, from epoch milliseconds (:meth:`from_ms`, no datetime objects: a
    search ranks ~100 candidates). Held as epoch milliseconds either way.

    Attributes:
        created_ms: Ingest time, ms since the epoch.
        occurred_ms: Event time supplied by the client, if any (preferred over
            ``created_ms`` as the memory's age origin).
        last_accessed_ms: Last time a recall returned it, if ever.
        importance: In [0, 1]; out-of-range values are clamped, NaN counts as 0.5.
    """

    __slots__ = ("created_ms", "importance", "last_accessed_ms", "occurred_ms")

    def __init__(
        self,
        created_at: datetime,
        occurred_at: datetime | None = None,
        last_accessed_at: datetime | None = None,
        importance: float = NEUTRAL_IMPORTANCE,
    ) -> None:
        self.created_ms = _epoch_ms(created_at)
        self.occurred_ms = None if occurred_at is None else _epoch_ms(occurred_at)
        self.last_accessed_ms = None if last_accessed_at is None else _epoch_ms(last_accessed_at)
        self.importance = importance

    @classmethod
    def from_ms(
        cls,
        created_ms: float,
        occurred_ms: float | None = None,
        last_accessed_ms: float | None = None,
        importance: float = NEUTRAL_IMPORTANCE,
    ) -> MemoryFeatures:
        """Features from epoch milliseconds (as the store keeps them)."""
        features = cls.__new__(cls)
        features.created_ms = created_ms
        features.occurred_ms = occurred_ms
        features.last_accessed_ms = last_accessed_ms
        features.importance = importance
        return features

    def origin_ms(self) -> float:
        """Where the memory's age counts from: the later of its event time (else ingest
        time) and its last access."""
        origin = self.occurred_ms if self.occurred_ms is not None else self.created_ms
        last = self.last_accessed_ms
        return last if last is not None and last > origin else origin


@dataclass(frozen=True, slots=True)
class RankedMemory:
    """One ranked result.

    Attributes:
        memory_id: The memory's id.
        score: Final score (``breakdown["final"]``); higher is better, not a probability.
        breakdown: ``{bm25, vector, fused, recency, importance, final}``: the normalised
            BM25 and vector scores in [0, 1] that were fused (0 when the memory was not a
            candidate of that retriever), the fused relevance, recency in [0, 1], the
            importance used, and the final score.
        bm25_raw: The negated BM25 score as given (negative, lower = better), or None.
        cosine: The cosine similarity as given, or None.
    """

    memory_id: str
    score: float
    breakdown: dict[str, float] = field(default_factory=dict)
    bm25_raw: float | None = None
    cosine: float | None = None


def minmax_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Min-max normalise scores to [0, 1] within one candidate list (higher = better).

    Args:
        scores: memory_id -> score, higher is better (non-finite values count as the min).

    Returns:
        memory_id -> (s - min) / (max - min). When all scores are equal (including a
        single candidate) every candidate gets 1.0: being retrieved at all is the only
        evidence there is.
    """
    finite = [s for s in scores.values() if math.isfinite(s)]
    if not finite:
        return dict.fromkeys(scores, 1.0)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    if span <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {k: (s - lo) / span if math.isfinite(s) else 0.0 for k, s in scores.items()}


def _first_occurrence(candidates: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Candidate list -> dict, keeping each id's first (best-ranked) score."""
    out: dict[str, float] = {}
    for memory_id, score in candidates:
        out.setdefault(memory_id, float(score))
    return out


def convex_fusion(
    bm25: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    *,
    alpha: float = DEFAULT_PARAMS.alpha,
) -> dict[str, tuple[float, float, float]]:
    """Convex combination of min-max normalised BM25 and cosine scores (Bruch et al. 2023).

    Args:
        bm25: ``(memory_id, bm25)``, BM25 negated as FTS5's ``bm25()`` is: negative, lower is
            better (relevance = ``-bm25``). Order does not matter.
        vector: ``(memory_id, cosine)``, cosine in [-1, 1], higher is better.
        alpha: Weight of BM25 in [0, 1].

    Returns:
        For every id in the union: ``(bm25_norm, vector_norm, fused)``, each in [0, 1],
        ``fused = alpha * bm25_norm + (1 - alpha) * vector_norm``; a missing side is 0.
    """
    bm25_norm = minmax_normalise({k: -s for k, s in _first_occurrence(bm25).items()})
    vec_norm = minmax_normalise(_first_occurrence(vector))
    out: dict[str, tuple[float, float, float]] = {}
    for memory_id in bm25_norm.keys() | vec_norm.keys():
        b = bm25_norm.get(memory_id, 0.0)
        v = vec_norm.get(memory_id, 0.0)
        out[memory_id] = (b, v, alpha * b + (1.0 - alpha) * v)
    return out


def rrf_fusion(
    bm25: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    *,
    k: int = DEFAULT_PARAMS.rrf_k,
) -> dict[str, tuple[float, float, float]]:
    """Reciprocal-rank fusion, ``sum 1 / (k + rank)`` (Cormack, Clarke & Büttcher 2009).

    Each list is ranked by its own score (BM25 ascending, since the score is negated;
    cosine descending); ranks start at 1.

    Returns:
        For every id in the union: ``(1/(k+rank_bm25), 1/(k+rank_vector), sum)``; a
        missing side contributes 0.
    """
    b_sorted = sorted(_first_occurrence(bm25).items(), key=lambda kv: kv[1])
    v_sorted = sorted(_first_occurrence(vector).items(), key=lambda kv: -kv[1])
    b_rr = {mid: 1.0 / (k + r) for r, (mid, _) in enumerate(b_sorted, start=1)}
    v_rr = {mid: 1.0 / (k + r) for r, (mid, _) in enumerate(v_sorted, start=1)}
    return {
        mid: (b_rr.get(mid, 0.0), v_rr.get(mid, 0.0), b_rr.get(mid, 0.0) + v_rr.get(mid, 0.0))
        for mid in b_rr.keys() | v_rr.keys()
    }


def recency_score(
    features: MemoryFeatures, now: datetime, *, half_life_days: float = 30.0
) -> float:
    """Exponential recency decay, ``0.5 ** (age_days / half_life_days)``, in (0, 1].

    Age counts from ``max(occurred_at or created_at, last_accessed_at)``: the event time
    when known, reset by each access. A timestamp in the future counts as age 0.

    Args:
        features: The memory's timestamps (aware or naive, consistently with ``now``).
        now: The reference time.
        half_life_days: Days for the score to halve (> 0).

    Returns:
        1.0 for a memory touched at ``now``, 0.5 one half-life later, and so on.
    """
    return _recency(features.origin_ms(), _epoch_ms(now), half_life_days * _MS_PER_DAY)


def _recency(origin_ms: float, now_ms: float, half_life_ms: float) -> float:
    return float(0.5 ** (max(now_ms - origin_ms, 0.0) / half_life_ms))


def _clamp_importance(value: float) -> float:
    if not math.isfinite(value):
        return NEUTRAL_IMPORTANCE
    return min(max(value, 0.0), 1.0)


def importance_factor(importance: float, *, weight: float = 0.2) -> float:
    """Multiplier ``1 + weight * (importance - 0.5)``; importance clamped to [0, 1].

    With the default weight the factor spans [0.9, 1.1] and is exactly 1 at 0.5.
    """
    return 1.0 + weight * (_clamp_importance(importance) - NEUTRAL_IMPORTANCE)


def rank(
    bm25: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    features: Mapping[str, MemoryFeatures],
    *,
    now: datetime,
    params: RankingParams = DEFAULT_PARAMS,
    limit: int | None = None,
) -> list[RankedMemory]:
    """Rank the union of keyword and vector candidates.

    Args:
        bm25: ``(memory_id, bm25)``, negated BM25 (negative, lower = better), at
            most ``params.candidate_depth`` of them; may be empty (no keywords in the
            query, or keyword search disabled).
        vector: ``(memory_id, cosine)``, at most ``params.candidate_depth``; may be empty
            (embedder down: ranking degrades to BM25 order).
        features: Per-memory timestamps and importance. A candidate missing here gets
            neutral importance and recency 0 (no boost, no penalty).
        now: Reference time for recency (use the request time).
        params: Fusion and re-weighting parameters.
        limit: Return at most this many results (``None``: all candidates).

    Returns:
        Results sorted by ``score`` descending (ties broken by memory id for stable
        output), each with its score breakdown.
    """
    if params.fusion == "rrf":
        fused = rrf_fusion(bm25, vector, k=params.rrf_k)
    else:
        fused = convex_fusion(bm25, vector, alpha=params.alpha)
    scored: list[tuple[float, str, float, float, float, float, float]] = []
    now_ms = _epoch_ms(now)
    half_life_ms = params.half_life_days * _MS_PER_DAY
    recency_weight, importance_weight = params.recency_weight, params.importance_weight
    for memory_id, (b, v, f) in fused.items():
        feat = features.get(memory_id)
        if feat is None:
            recency, importance = 0.0, NEUTRAL_IMPORTANCE
        else:
            recency = _recency(feat.origin_ms(), now_ms, half_life_ms)
            importance = _clamp_importance(feat.importance)
        final = (
            f
            * (1.0 + recency_weight * recency)
            * (1.0 + importance_weight * (importance - NEUTRAL_IMPORTANCE))
        )
        scored.append((final, memory_id, b, v, f, recency, importance))
    scored.sort(key=lambda r: (-r[0], r[1]))
    if limit is not None:
        scored = scored[:limit]  # only the returned ones get a breakdown object
    bm25_raw = _first_occurrence(bm25)
    cosines = _first_occurrence(vector)
    return [
        RankedMemory(
            memory_id=memory_id,
            score=final,
            breakdown={
                "bm25": b,
                "vector": v,
                "fused": f,
                "recency": recency,
                "importance": importance,
                "final": final,
            },
            bm25_raw=bm25_raw.get(memory_id),
            cosine=cosines.get(memory_id),
        )
        for final, memory_id, b, v, f, recency, importance in scored
    ]

"""Hybrid recall ranking: fuse BM25 and vector candidates, weigh conversation context, then
apply recency and importance.

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

The relevance (``fused`` weighed by the conversation context below) is then gently
re-weighted (multiplicatively, so an irrelevant memory never rises just for being recent
or important; cf. the recency x importance x relevance retrieval score of Park et al.,
"Generative Agents", UIST 2023):

``final = relevance * (1 + recency_weight * recency)
* (1 + importance_weight * (importance - 0.5))``

with ``recency = 0.5 ** (age / half_life)`` (exponential decay; age from the later of the
event time and the last access, so recalling a memory resets its decay) and
``importance`` in [0, 1] (0.5 = neutral, the default). With the defaults the two factors
move a score by at most +15 % and +/-10 %: tie-breakers among comparably relevant
memories, not a second ranking signal.

Conversation context (hybrid search; :func:`rank` with ``context=True``; otherwise
``relevance = fused``):

``relevance = ((fused + neighbour_weight * neighbour) + episode) / 2
* (1 + subject_weight * subject) * (1 + period_weight * period)``

- ``episode``: the best ``fused`` among the candidates of the memory's *episode*: the
  candidates whose event times (``occurred_at``) chain together with gaps of at most
  :data:`EPISODE_GAP_MS` (30 minutes, the usual inactivity timeout of session
  identification: Catledge & Pitkow 1995; Jones & Klinkner, CIKM 2008). Passage-to-document
  "MaxP" aggregation (Dai & Callan, SIGIR 2019) applied to a conversation's sessions, as in
  LongMemEval's session-level retrieval (Wu et al., ICLR 2025): a turn inherits half of
  the best evidence of its session. A memory without ``occurred_at`` is its own episode
  (``episode = fused``), so it ranks exactly as without context.
- ``neighbour``: the best ``fused`` of the memory's immediate neighbours: candidates of the
  same episode whose row keys are one apart (written one after the other). The turn
  before a question's answer often holds the question's words.
- ``subject``: 1 when the memory's first word (the speaker of ``"Name: text"``
  transcripts) is one of the query's keyword terms, else 0.
- ``period``: 1 when the query names a month and/or a year (:func:`query_period`) and the
  memory's event time falls in it (UTC), else 0: the time-aware narrowing of LongMemEval
  (Wu et al., ICLR 2025), as a boost rather than a filter.

See docs/memory.md for the formula's sources and the measured numbers (leave-one-
conversation-out on the LoCoMo dev set).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final, Literal, get_args

__all__ = [
    "DEFAULT_PARAMS",
    "EPISODE_GAP_MS",
    "BreakdownKey",
    "MemoryFeatures",
    "Period",
    "RankedMemory",
    "RankingParams",
    "convex_fusion",
    "episode_context",
    "importance_factor",
    "minmax_normalise",
    "query_period",
    "rank",
    "recency_score",
    "rrf_fusion",
    "with_overrides",
]

BreakdownKey = Literal[
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
]

_MS_PER_DAY: Final = 86_400_000.0
# The breakdown entries before "final", in the order rank() computes them.
_PARTS: Final[tuple[str, ...]] = get_args(BreakdownKey)[:-1]
#: Largest gap between consecutive event times (ms) inside one episode: 30 minutes.
EPISODE_GAP_MS: Final = 30 * 60_000.0
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
            0.6 with conversation context. The context constants below are the
            best point of ``benchmarks/ranking_offline.py``'s grid on all three dev
            conversations; chosen on two and scored on the third they keep R@5 0.709
            (mean of the three folds; docs/memory.md).
        rrf_k: RRF rank constant (60, Cormack et al. 2009); only for ``fusion="rrf"``.
        candidate_depth: How many candidates the caller should fetch from *each* retriever
            (the union is ranked). 50 is where dev-set recall saturates; deeper lists
            only add low-scoring noise to the min-max range.
        half_life_days: Recency half-life in days: a memory untouched for this long gets
            half the recency of a fresh one.
        recency_weight: Max relative boost from recency (0.15 -> at most x1.15).
        importance_weight: Importance slope around 0.5 (0.2 -> x0.9 ... x1.1).
        neighbour_weight: Weight of the best adjacent turn's ``fused`` in a memory's
            relevance (0 turns it off).
        subject_weight: Relative boost of a memory whose first word is a query term
            (0.5 -> x1.5; 0 turns it off).
        episode: Whether a memory's relevance averages its own with its episode's best
            (False: ``relevance = fused + neighbour_weight * neighbour``).
        period_weight: Relative boost of a memory whose event time falls in the month or
            year the query names (0.5 -> x1.5; 0 turns it off).
    """

    fusion: Literal["convex", "rrf"] = "convex"
    alpha: float = 0.6
    rrf_k: int = 60
    candidate_depth: int = 50
    half_life_days: float = 30.0
    recency_weight: float = 0.15
    importance_weight: float = 0.2
    neighbour_weight: float = 1.0
    subject_weight: float = 0.5
    episode: bool = True
    period_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.rrf_k < 0 or self.candidate_depth < 1:
            raise ValueError("rrf_k must be >= 0 and candidate_depth >= 1")
        if not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be > 0, got {self.half_life_days}")
        if self.recency_weight < 0 or not 0 <= self.importance_weight <= 2:
            raise ValueError("recency_weight must be >= 0 and importance_weight in [0, 2]")
        weights = (self.neighbour_weight, self.subject_weight, self.period_weight)
        if not all(0 <= w <= 2 for w in weights):
            raise ValueError("neighbour_weight, subject_weight, period_weight must be in [0, 2]")


DEFAULT_PARAMS: Final = RankingParams()

_NUMERIC = {
    "alpha": float,
    "rrf_k": int,
    "candidate_depth": int,
    "half_life_days": float,
    "recency_weight": float,
    "importance_weight": float,
    "neighbour_weight": float,
    "subject_weight": float,
    "episode": bool,
    "period_weight": float,
}


def with_overrides(params: RankingParams, overrides: Mapping[str, float]) -> RankingParams:
    """``params`` with some numeric constants replaced (``TETHER_RECALL_PARAMS``, for
    evaluation runs), e.g. ``{"alpha": 0.5, "episode": 0}``.

    Raises:
        ValueError: An unknown name, or a value :class:`RankingParams` refuses.
    """
    unknown = set(overrides) - _NUMERIC.keys()
    if unknown:
        raise ValueError(f"unknown ranking constants: {sorted(unknown)}")
    return replace(params, **{k: _NUMERIC[k](v) for k, v in overrides.items()})


def _epoch_ms(when: datetime) -> float:
    """Milliseconds since the Unix epoch (a naive datetime is read as local time, as
    :meth:`datetime.timestamp` does: keep features and ``now`` consistent)."""
    return when.timestamp() * 1000.0


class MemoryFeatures:
    """Per-memory inputs to recency, importance and conversation context.

    Built from timezone-aware datetimes (``MemoryFeatures(created_at=...)``) or, on the
    recall hot path, from epoch milliseconds (:meth:`from_ms`, no datetime objects: a
    search ranks ~100 candidates). Held as epoch milliseconds either way.

    Attributes:
        created_ms: Ingest time, ms since the epoch.
        occurred_ms: Event time supplied by the client, if any (preferred over
            ``created_ms`` as the memory's age origin; groups memories into episodes).
        last_accessed_ms: Last time a recall returned it, if ever.
        importance: In [0, 1]; out-of-range values are clamped, NaN counts as 0.5.
        seq: Write order (the store's row key), if known: memories of one episode whose
            ``seq`` differ by one are neighbours.
    """

    __slots__ = ("created_ms", "importance", "last_accessed_ms", "occurred_ms", "seq")

    def __init__(
        self,
        created_at: datetime,
        occurred_at: datetime | None = None,
        last_accessed_at: datetime | None = None,
        importance: float = NEUTRAL_IMPORTANCE,
        seq: int | None = None,
    ) -> None:
        self.created_ms = _epoch_ms(created_at)
        self.occurred_ms = None if occurred_at is None else _epoch_ms(occurred_at)
        self.last_accessed_ms = None if last_accessed_at is None else _epoch_ms(last_accessed_at)
        self.importance = importance
        self.seq = seq

    @classmethod
    def from_ms(
        cls,
        created_ms: float,
        occurred_ms: float | None = None,
        last_accessed_ms: float | None = None,
        importance: float = NEUTRAL_IMPORTANCE,
        seq: int | None = None,
    ) -> MemoryFeatures:
        """Features from epoch milliseconds (as the store keeps them)."""
        features = cls.__new__(cls)
        features.created_ms = created_ms
        features.occurred_ms = occurred_ms
        features.last_accessed_ms = last_accessed_ms
        features.importance = importance
        features.seq = seq
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
        breakdown: ``{bm25, vector, fused, neighbour, episode, subject, period,
            relevance, recency, importance, final}``: the normalised BM25 and vector
            scores in [0, 1] that were fused (0 when the memory was not a candidate of that
            retriever), the fused score, the conversation context (the best adjacent
            ``fused``, 0 if none; the episode's best ``fused``; 1 or 0 for a subject match
            and for an event time in the query's period), the
            relevance it gave (see the module docstring; ``fused`` without context),
            recency in [0, 1], the importance used, and the final score.
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


_MONTHS: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
# Month names (any case, except "May", which must be capitalised and not open the query:
# "may" is mostly a verb) and four-digit years 1900-2199.
_MONTH_RE: Final = re.compile(r"\b(" + "|".join(m for m in _MONTHS if m != "may") + r")\b", re.I)
_MAY_RE: Final = re.compile(r"(?<=\S)\s+May\b")
_YEAR_RE: Final = re.compile(r"\b(19\d\d|2[01]\d\d)\b")


@dataclass(frozen=True, slots=True)
class Period:
    """Months (1-12) and years a query names; an empty set places no constraint."""

    months: frozenset[int]
    years: frozenset[int]

    def holds(self, ms: float) -> bool:
        """Whether the instant ``ms`` (epoch ms) falls in one of the months of one of the
        years (UTC)."""
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return (not self.months or when.month in self.months) and (
            not self.years or when.year in self.years
        )


def query_period(query: str) -> Period | None:
    """The month names (English) and four-digit years in ``query``, or None if none.

    ``"What did Maria do in May 2023?"`` -> months {5}, years {2023};
    ``"What happened in 2022?"`` -> years {2022}; ``"May I ask ..."`` -> None.
    """
    months = {_MONTHS.index(m.lower()) + 1 for m in _MONTH_RE.findall(query)}
    if _MAY_RE.search(query):
        months.add(5)
    years = {int(y) for y in _YEAR_RE.findall(query)}
    if not months and not years:
        return None
    return Period(frozenset(months), frozenset(years))


def episode_context(
    fused: Mapping[str, float],
    features: Mapping[str, MemoryFeatures],
    *,
    gap_ms: float = EPISODE_GAP_MS,
) -> dict[str, tuple[float, float]]:
    """Each candidate's conversation context: ``(neighbour, episode)``.

    Candidates with an event time (``occurred_ms``) are sorted by it and cut into episodes
    wherever consecutive times are more than ``gap_ms`` apart. ``episode`` is the best
    ``fused`` in the candidate's episode (its own for a candidate without an event time);
    ``neighbour`` is the best ``fused`` of the candidates of the same episode whose
    ``seq`` is one below or above its own (0.0 if none).

    Args:
        fused: memory_id -> fused score in [0, 1].
        features: memory_id -> features (missing: no event time, no ``seq``).
        gap_ms: Largest gap (ms) between consecutive event times inside one episode.
    """
    out = {mid: (0.0, f) for mid, f in fused.items()}
    timed = sorted(
        (t, mid)
        for mid in fused
        if (feat := features.get(mid)) is not None and (t := feat.occurred_ms) is not None
    )
    episode: list[str] = []
    for i, (t, mid) in enumerate(timed):
        episode.append(mid)
        if i + 1 < len(timed) and timed[i + 1][0] - t <= gap_ms:
            continue
        best = max(fused[m] for m in episode)
        by_seq = {s: fused[m] for m in episode if (s := features[m].seq) is not None}
        for m in episode:
            s = features[m].seq
            near = 0.0 if s is None else max(by_seq.get(s - 1, 0.0), by_seq.get(s + 1, 0.0))
            out[m] = (near, best)
        episode = []
    return out


def rank(
    bm25: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    features: Mapping[str, MemoryFeatures],
    *,
    now: datetime,
    params: RankingParams = DEFAULT_PARAMS,
    limit: int | None = None,
    subject: Collection[str] = (),
    period: Period | None = None,
    context: bool = True,
) -> list[RankedMemory]:
    """Rank the union of keyword and vector candidates.

    Args:
        bm25: ``(memory_id, bm25)``, negated BM25 (negative, lower = better), at
            most ``params.candidate_depth`` of them; may be empty (no keywords in the
            query, or keyword search disabled).
        vector: ``(memory_id, cosine)``, at most ``params.candidate_depth``; may be empty
            (embedder down: ranking degrades to BM25 order).
        features: Per-memory timestamps, importance and write order. A candidate missing
            here gets neutral importance, recency 0 and no episode (no boost, no penalty).
        now: Reference time for recency (use the request time).
        params: Fusion and re-weighting parameters.
        limit: Return at most this many results (``None``: all candidates).
        subject: The candidates whose first word is one of the query's keyword terms.
        period: The months/years the query names (:func:`query_period`), if any.
        context: Apply the conversation context (neighbour, episode, subject, period; see
            the module docstring). False: ``relevance = fused``, as single-retriever searches
            rank.

    Returns:
        Results sorted by ``score`` descending (ties broken by memory id for stable
        output), each with its score breakdown.
    """
    if params.fusion == "rrf":
        fused = rrf_fusion(bm25, vector, k=params.rrf_k)
    else:
        fused = convex_fusion(bm25, vector, alpha=params.alpha)
    plain = {m: f for m, (_, _, f) in fused.items()}
    around = episode_context(plain, features) if context else {}
    scored: list[tuple[float, str, tuple[float, ...]]] = []
    now_ms = _epoch_ms(now)
    half_life_ms = params.half_life_days * _MS_PER_DAY
    recency_weight, importance_weight = params.recency_weight, params.importance_weight
    neighbour_weight, subject_weight = params.neighbour_weight, params.subject_weight
    period_weight = params.period_weight
    in_period = period if context else None
    for memory_id, (b, v, f) in fused.items():
        feat = features.get(memory_id)
        if feat is None:
            recency, importance = 0.0, NEUTRAL_IMPORTANCE
        else:
            recency = _recency(feat.origin_ms(), now_ms, half_life_ms)
            importance = _clamp_importance(feat.importance)
        near, best = around.get(memory_id, (0.0, f))
        named = 1.0 if context and memory_id in subject else 0.0
        dated = 0.0
        if in_period is not None and feat is not None and feat.occurred_ms is not None:
            dated = 1.0 if in_period.holds(feat.occurred_ms) else 0.0
        own = f + neighbour_weight * near
        relevance = (own + best) / 2 if params.episode else own
        relevance *= (1.0 + subject_weight * named) * (1.0 + period_weight * dated)
        final = (
            relevance
            * (1.0 + recency_weight * recency)
            * (1.0 + importance_weight * (importance - NEUTRAL_IMPORTANCE))
        )
        scored.append(
            (final, memory_id, (b, v, f, near, best, named, dated, relevance, recency, importance))
        )
    scored.sort(key=lambda r: (-r[0], r[1]))
    if limit is not None:
        scored = scored[:limit]  # only the returned ones get a breakdown object
    bm25_raw = _first_occurrence(bm25)
    cosines = _first_occurrence(vector)
    return [
        RankedMemory(
            memory_id=memory_id,
            score=final,
            breakdown={**dict(zip(_PARTS, parts, strict=True)), "final": final},
            bm25_raw=bm25_raw.get(memory_id),
            cosine=cosines.get(memory_id),
        )
        for final, memory_id, parts in scored
    ]

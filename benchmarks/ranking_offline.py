"""Offline recall experiments on LoCoMo with Tether's own ranking code (no server).

Runs the retrieval protocol of ``shared/data/README.md`` in-process, with the server's
pieces: per conversation, one :class:`~tether.memory.postings.KeywordIndex` (BM25 over the
analyzer's terms), one matrix of the default embedder's vectors, and
:func:`tether.memory.ranking.rank` with the same features the server passes (event time,
write order, subject match). Fast enough (~0.1 s per configuration) to compare ranking
variants and to choose constants.

**Leave-one-conversation-out** (``loco``): every tuned constant (``GRID``: alpha, the
neighbour, subject and period weights, episode on/off) is chosen on two conversations (best mean
R@5 over their category 1-4 questions) and scored on the third; all three folds and their
mean are reported beside the in-sample figure (constants chosen and scored on all three).
``benchmarks/memory_recall.py --loco`` replays those choices through the HTTP API.

Data: LoCoMo (Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM
Agents", ACL 2024, arXiv 2402.17753), snap-research, CC BY-NC 4.0.

Usage::

    .venv/bin/python benchmarks/ranking_offline.py [--data PATH]

Embeddings are cached under ``$TMPDIR/tether-bench-emb`` (never in the repo).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.domain.text import analyze, query_stems
from tether.memory.embedders import Embedder, OnnxMiniLMEmbedder
from tether.memory.postings import KeywordIndex
from tether.memory.ranking import (
    DEFAULT_PARAMS,
    MemoryFeatures,
    Period,
    RankingParams,
    query_period,
    rank,
    with_overrides,
)
from tether.store.base import IndexRow

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev.json"
EVIDENCE_RE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")
KS = (1, 5, 10)
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # after every session: recency ~0 for all turns

#: The tuned constants and the values tried (the product is searched in each fold).
GRID: dict[str, tuple[float, ...]] = {
    "alpha": (0.5, 0.55, 0.6),
    "neighbour_weight": (0.0, 0.25, 0.5, 1.0),
    "subject_weight": (0.0, 0.1, 0.25, 0.5),
    "episode": (0.0, 1.0),
    "period_weight": (0.0, 0.1, 0.25, 0.5),
}


def evidence_ids(qa: dict[str, Any], known: set[str]) -> set[str]:
    """A LoCoMo question's evidence turn ids (``"D<session>:<turn>"``) among ``known``
    (``EVIDENCE_RE`` tolerates spaces and a colon after the ``D``)."""
    found = {f"D{int(m[1])}:{int(m[2])}" for e in qa["evidence"] for m in EVIDENCE_RE.finditer(e)}
    return found & known


Candidates = list[tuple[str, float]]


@dataclass
class Question:
    text: str
    category: int
    evidence: set[str]
    bm25: Candidates  # (dia_id, -bm25) best first, full depth
    vector: Candidates  # (dia_id, cosine) best first, full depth
    subject: set[str]  # dia_ids whose first term is a query term
    period: Period | None  # months/years the question names


@dataclass
class Conversation:
    sample_id: str
    features: dict[str, MemoryFeatures]
    questions: list[Question]


def parse_session_date(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> aware UTC datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def cached_embed(embedder: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    digest = hashlib.sha256(("\x00".join([embedder.name, *texts])).encode()).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / "tether-bench-emb" / f"{digest}.npy"
    if cache.exists():
        return np.load(cache)  # type: ignore[no-any-return]
    vectors = embedder.embed(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def load(path: Path, embedder: Embedder, depth: int = 100) -> list[Conversation]:
    """Each conversation with every question's candidates (``depth`` from each retriever,
    cut further per configuration by :func:`evaluate`)."""
    conversations = []
    ingested = datetime.now(UTC)
    for sample in json.loads(path.read_text()):
        conv = sample["conversation"]
        sessions = sorted(
            (k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:])
        )
        ids: list[str] = []
        texts: list[str] = []
        features: dict[str, MemoryFeatures] = {}
        for key in sessions:
            occurred = parse_session_date(conv[f"{key}_date_time"])
            for turn in conv[key]:
                features[turn["dia_id"]] = MemoryFeatures(
                    created_at=ingested, occurred_at=occurred, seq=len(ids)
                )
                ids.append(turn["dia_id"])
                texts.append(f"{turn['speaker']}: {turn['text']}")
        keywords = KeywordIndex()
        keywords.apply(
            [
                IndexRow(0, "t", mid, pk, "ns", 1, " ".join(analyze(text)), "", None)
                for pk, (mid, text) in enumerate(zip(ids, texts, strict=True))
            ]
        )
        qas = [(qa, evidence_ids(qa, set(ids))) for qa in sample["qa"]]
        qas = [(qa, ev) for qa, ev in qas if ev]
        vectors = cached_embed(embedder, texts)
        qvecs = cached_embed(embedder, [qa["question"] for qa, _ in qas])
        questions = []
        for (qa, evidence), qvec in zip(qas, qvecs, strict=True):
            stems = query_stems(qa["question"])
            hits = keywords.search("t", ["ns"], stems, depth)
            sims = vectors @ qvec
            top = np.argsort(-sims, kind="stable")[:depth]
            subject = keywords.leading("t", list(range(len(ids))), stems)
            questions.append(
                Question(
                    qa["question"],
                    int(qa["category"]),
                    evidence,
                    [(ids[pk], s) for pk, s in hits],
                    [(ids[i], float(sims[i])) for i in top],
                    {ids[pk] for pk in subject},
                    query_period(qa["question"]),
                )
            )
        conversations.append(Conversation(sample["sample_id"], features, questions))
    return conversations


Ranker = Callable[[Conversation, Question], list[str]]


def ranked_by(params: RankingParams, context: bool = True) -> Ranker:
    """The server's hybrid ranking with ``params`` (``context``: conversation context)."""

    def run(conv: Conversation, q: Question) -> list[str]:
        d = params.candidate_depth
        ranked = rank(
            q.bm25[:d],
            q.vector[:d],
            conv.features,
            now=NOW,
            params=params,
            limit=10,
            subject=q.subject,
            period=q.period,
            context=context,
        )
        return [r.memory_id for r in ranked]

    return run


def bm25_only(_conv: Conversation, q: Question) -> list[str]:
    return [m for m, _ in q.bm25[:10]]


def vector_only(_conv: Conversation, q: Question) -> list[str]:
    return [m for m, _ in q.vector[:10]]


def evaluate(convs: Sequence[Conversation], ranker: Ranker) -> dict[str, list[float]]:
    """-> {"1-4": [R@1, R@5, R@10, MRR, n], "5": [...]} (means over questions)."""
    buckets: dict[str, list[list[float]]] = {"1-4": [], "5": []}
    for conv in convs:
        for q in conv.questions:
            top = ranker(conv, q)[:10]
            row = [len(q.evidence & set(top[:k])) / len(q.evidence) for k in KS]
            row.append(next((1.0 / (i + 1) for i, m in enumerate(top) if m in q.evidence), 0.0))
            buckets["5" if q.category == 5 else "1-4"].append(row)
    return {
        k: [*np.mean(v, axis=0).tolist(), len(v)] if v else [0.0] * 5 for k, v in buckets.items()
    }


def per_category(convs: Sequence[Conversation], ranker: Ranker) -> dict[int, list[float]]:
    """-> {category: [R@1, R@5, R@10, MRR, n]} for categories 1-4."""
    out = {}
    for cat in (1, 2, 3, 4):
        subset = [
            Conversation(c.sample_id, c.features, [q for q in c.questions if q.category == cat])
            for c in convs
        ]
        out[cat] = evaluate(subset, ranker)["1-4"]
    return out


def grid() -> list[dict[str, float]]:
    """Every combination of :data:`GRID`."""
    return [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]


def params_of(overrides: dict[str, float]) -> RankingParams:
    """The default with ``overrides``, as the server applies ``TETHER_RECALL_PARAMS``."""
    return with_overrides(DEFAULT_PARAMS, overrides)


def choose(convs: Sequence[Conversation]) -> dict[str, float]:
    """The :data:`GRID` point with the best category 1-4 R@5 on ``convs`` (ties: the
    first in grid order, i.e. the smallest constants)."""
    best: tuple[float, dict[str, float]] | None = None
    for point in grid():
        r5 = evaluate(convs, ranked_by(params_of(point)))["1-4"][1]
        if best is None or r5 > best[0] + 1e-12:
            best = (r5, point)
    assert best is not None
    return best[1]


def loco(convs: Sequence[Conversation]) -> list[tuple[str, dict[str, float], list[float]]]:
    """Leave-one-conversation-out: per held-out conversation, ``(sample_id, constants
    chosen on the other two, [R@1, R@5, R@10, MRR, n] on it)``."""
    out = []
    for i, held in enumerate(convs):
        chosen = choose([c for j, c in enumerate(convs) if j != i])
        out.append((held.sample_id, chosen, evaluate([held], ranked_by(params_of(chosen)))["1-4"]))
    return out


def fmt(name: str, a: Sequence[float]) -> str:
    return f"| {name} | {a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | {a[3]:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    embedder = OnnxMiniLMEmbedder()
    convs = load(args.data, embedder)
    print(f"LoCoMo dev: {len(convs)} conversations; embedder {embedder.name}; categories 1-4\n")
    print("| ranking | R@1 | R@5 | R@10 | MRR |\n|---|---|---|---|---|")
    old = replace(DEFAULT_PARAMS, alpha=0.55)
    off = {"neighbour_weight": 0.0, "subject_weight": 0.0, "period_weight": 0.0}

    def only(**on: float) -> Ranker:
        return ranked_by(replace(old, **{**off, "episode": False, **on}))  # type: ignore[arg-type]

    d = DEFAULT_PARAMS
    rows: list[tuple[str, Ranker]] = [
        ("BM25 only", bm25_only),
        ("vector only", vector_only),
        ("RRF k=60, no context", ranked_by(replace(d, fusion="rrf"), False)),
        ("convex a=0.55, no context (previous default)", ranked_by(old, False)),
        (f"+ neighbour {d.neighbour_weight}", only(neighbour_weight=d.neighbour_weight)),
        ("+ episode", only(episode=True)),
        (f"+ subject {d.subject_weight}", only(subject_weight=d.subject_weight)),
        (f"+ period {d.period_weight}", only(period_weight=d.period_weight)),
        ("+ neighbour + episode", only(neighbour_weight=d.neighbour_weight, episode=True)),
        ("all four at a=0.55", ranked_by(replace(d, alpha=0.55))),
        (f"default (a={d.alpha}, all four)", ranked_by(d)),
        ("default without neighbour", ranked_by(replace(d, neighbour_weight=0))),
        ("default without episode", ranked_by(replace(d, episode=False))),
        ("default without subject", ranked_by(replace(d, subject_weight=0))),
        ("default without period", ranked_by(replace(d, period_weight=0))),
        ("default, depth 100", ranked_by(replace(d, candidate_depth=100))),
    ]
    for name, ranker in rows:
        print(fmt(name, evaluate(convs, ranker)["1-4"]), flush=True)
    print("\nleave-one-conversation-out (constants chosen on the other two):\n")
    folds = loco(convs)
    for sample_id, chosen, a in folds:
        print(fmt(f"held out {sample_id}: {chosen}", a))
    mean = np.mean([a for _, _, a in folds], axis=0).tolist()
    print(fmt("mean of folds", mean))
    chosen = choose(convs)
    print(
        fmt(
            f"in-sample (chosen on all three): {chosen}",
            evaluate(convs, ranked_by(params_of(chosen)))["1-4"],
        )
    )


if __name__ == "__main__":
    main()

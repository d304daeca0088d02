"""Offline recall benchmark of Tether's hybrid ranking on LoCoMo (no server).

Runs the retrieval protocol of ``shared/data/README.md`` in-process: one SQLite in-memory
FTS5 index (Tether's keyword index before its BM25 postings, ``_fts.py``) and one numpy
matrix of all-MiniLM-L6-v2 vectors per conversation, queried with ``build_match_query``
and ranked with the production ``tether.memory.ranking.rank``.

Data: LoCoMo (Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM
Agents", ACL 2024, arXiv 2402.17753), snap-research, CC BY-NC 4.0.

Usage::

    .venv/bin/python benchmarks/ranking_offline.py [--data PATH] [--sweep]

Embeddings are cached under ``$TMPDIR/tether-bench-emb`` (never in the repo).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from _fts import FTS_TABLE_DDL, build_match_query
from tether.memory.embedders import Embedder, OnnxMiniLMEmbedder
from tether.memory.ranking import DEFAULT_PARAMS, MemoryFeatures, RankingParams, rank

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev.json"
EVIDENCE_RE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")
KS = (1, 5, 10)


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


@dataclass
class Conversation:
    sample_id: str
    ids: list[str]  # dia_id per memory, row order
    texts: list[str]
    features: dict[str, MemoryFeatures]
    questions: list[Question]
    db: sqlite3.Connection
    vectors: npt.NDArray[np.float32]
    question_vectors: npt.NDArray[np.float32]


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


def load(path: Path, embedder: Embedder) -> list[Conversation]:
    conversations = []
    for sample in json.loads(path.read_text()):
        conv = sample["conversation"]
        sessions = sorted(
            (k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:])
        )
        ids: list[str] = []
        texts: list[str] = []
        features: dict[str, MemoryFeatures] = {}
        ingested = datetime.now(UTC)
        for key in sessions:
            occurred = parse_session_date(conv[f"{key}_date_time"])
            for turn in conv[key]:
                ids.append(turn["dia_id"])
                texts.append(f"{turn['speaker']}: {turn['text']}")
                features[turn["dia_id"]] = MemoryFeatures(created_at=ingested, occurred_at=occurred)
        known = set(ids)
        questions = []
        for qa in sample["qa"]:
            evidence = evidence_ids(qa, known)
            if evidence:
                questions.append(Question(qa["question"], int(qa["category"]), evidence))
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE memories (rowid INTEGER PRIMARY KEY, id TEXT, text TEXT)")
        db.execute(FTS_TABLE_DDL)
        rows = [(i + 1, mid, text) for i, (mid, text) in enumerate(zip(ids, texts, strict=True))]
        db.executemany("INSERT INTO memories VALUES (?, ?, ?)", rows)
        db.executemany(
            "INSERT INTO memories_fts(rowid, text) VALUES (?, ?)", [(r, t) for r, _, t in rows]
        )
        conversations.append(
            Conversation(
                sample["sample_id"],
                ids,
                texts,
                features,
                questions,
                db,
                cached_embed(embedder, texts),
                cached_embed(embedder, [q.text for q in questions]),
            )
        )
    return conversations


def bm25_candidates(conv: Conversation, query: str, depth: int) -> Candidates:
    match = build_match_query(query)
    if match is None:
        return []
    rows = conv.db.execute(
        "SELECT m.id, bm25(memories_fts) FROM memories_fts JOIN memories m"
        " ON m.rowid = memories_fts.rowid WHERE memories_fts MATCH ?"
        " ORDER BY bm25(memories_fts) LIMIT ?",
        (match, depth),
    ).fetchall()
    return [(str(mid), float(score)) for mid, score in rows]


def vector_candidates(conv: Conversation, qvec: npt.NDArray[np.float32], depth: int) -> Candidates:
    sims = conv.vectors @ qvec
    top = np.argpartition(-sims, min(depth, len(sims) - 1))[:depth]
    top = top[np.argsort(-sims[top])]
    return [(conv.ids[i], float(sims[i])) for i in top]


Ranker = Callable[[Conversation, Candidates, Candidates], list[str]]


def evaluate(convs: list[Conversation], ranker: Ranker, depth: int) -> dict[str, list[float]]:
    """-> {"1-4": [R@1, R@5, R@10, MRR, n], "5": [...]}"""
    buckets: dict[str, list[list[float]]] = {"1-4": [], "5": []}
    for conv in convs:
        for qi, q in enumerate(conv.questions):
            b = bm25_candidates(conv, q.text, depth)
            v = vector_candidates(conv, conv.question_vectors[qi], depth)
            top = ranker(conv, b, v)[:10]
            row = [len(q.evidence & set(top[:k])) / len(q.evidence) for k in KS]
            row.append(next((1.0 / (i + 1) for i, m in enumerate(top) if m in q.evidence), 0.0))
            buckets["5" if q.category == 5 else "1-4"].append(row)
    return {k: [*np.mean(v, axis=0).tolist(), len(v)] for k, v in buckets.items()}


def ranked_by(params: RankingParams, now: datetime | None = None) -> Ranker:
    def run(conv: Conversation, b: Candidates, v: Candidates) -> list[str]:
        when = now or datetime.now(UTC)
        return [r.memory_id for r in rank(b, v, conv.features, now=when, params=params)]

    return run


def latency(convs: list[Conversation], embedder: Embedder, n: int = 200) -> dict[str, float]:
    """Median/p95 ms of: query embedding, FTS5 query, vector search, rank()."""
    times: dict[str, list[float]] = {"embed": [], "fts5": [], "vector": [], "rank": []}
    questions = [(c, q) for c in convs for q in c.questions][:n]
    embedder.embed(["warm up"])
    for conv, q in questions:
        t0 = time.perf_counter()
        qvec = embedder.embed([q.text])[0]
        t1 = time.perf_counter()
        b = bm25_candidates(conv, q.text, DEFAULT_PARAMS.candidate_depth)
        t2 = time.perf_counter()
        v = vector_candidates(conv, qvec, DEFAULT_PARAMS.candidate_depth)
        t3 = time.perf_counter()
        rank(b, v, conv.features, now=datetime.now(UTC))
        t4 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[key].append(dt * 1000)
    out = {}
    for key, values in times.items():
        values.sort()
        out[f"{key}_p50"] = statistics.median(values)
        out[f"{key}_p95"] = values[int(0.95 * (len(values) - 1))]
    return out


def fmt(name: str, res: dict[str, list[float]]) -> str:
    a, c = res["1-4"], res["5"]
    return (
        f"| {name:<34} | {a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | {a[3]:.3f} "
        f"| {c[0]:.3f} | {c[1]:.3f} | {c[2]:.3f} | {c[3]:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sweep", action="store_true", help="also sweep alpha and depth")
    args = parser.parse_args()

    embedder = OnnxMiniLMEmbedder()
    convs = load(args.data, embedder)
    depth = DEFAULT_PARAMS.candidate_depth
    last_session = datetime.fromtimestamp(
        max(f.origin_ms() for c in convs for f in c.features.values()) / 1000, tz=UTC
    )

    print(f"LoCoMo dev: {len(convs)} conversations, {sum(len(c.ids) for c in convs)} memories")
    print(f"candidate depth {depth} per retriever; embedder {embedder.name}\n")
    hdr = "| R@1   | R@5   | R@10  | MRR   "
    print(f"| {'':<34} | cats 1-4{' ' * 22}| cat 5 (adversarial){' ' * 11}|")
    print(f"| {'ranking':<34} {hdr}{hdr}|")
    print("|---|---|---|---|---|---|---|---|---|")
    rows: list[tuple[str, Ranker]] = [
        ("BM25 only (FTS5 porter)", lambda _c, b, _v: [m for m, _ in b]),
        ("vector only (MiniLM cosine)", lambda _c, _b, v: [m for m, _ in v]),
        ("naive RRF (k=60)", ranked_by(replace(DEFAULT_PARAMS, fusion="rrf"))),
        ("default (convex a=0.55), now=today", ranked_by(DEFAULT_PARAMS)),
        (
            "default, now=last session + 1 day",
            ranked_by(DEFAULT_PARAMS, now=last_session + timedelta(days=1)),
        ),
    ]
    for name, ranker in rows:
        print(fmt(name, evaluate(convs, ranker, depth)))
    if args.sweep:
        print()
        for d in (20, 50, 100):
            for alpha in (0.4, 0.5, 0.55, 0.6, 0.7):
                params = replace(DEFAULT_PARAMS, alpha=alpha, candidate_depth=d)
                print(fmt(f"convex a={alpha} depth={d}", evaluate(convs, ranked_by(params), d)))
    print()
    lat = latency(convs, embedder)
    print("per-query latency, ms (p50 / p95):")
    for key in ("embed", "fts5", "vector", "rank"):
        print(f"  {key:<7} {lat[f'{key}_p50']:.2f} / {lat[f'{key}_p95']:.2f}")


if __name__ == "__main__":
    main()

"""Where should search run: in-process indexes on every replica, or in PostgreSQL?

Run: ``.venv/bin/python benchmarks/search_placement.py --db postgresql://... [--sizes
10000,100000]`` (``--db``: a PostgreSQL *server*; a fresh database is created on it per
size and dropped afterwards; ``postgres`` starts a private one from the pgserver wheel).

On the memories of ``memory_latency.py`` (its ~20k distinct real LoCoMo texts, repeated in
namespaces ``bench/0``, ``bench/1``, ... beyond that, each with its real MiniLM int8 vector
from the on-disk cache of ``_embed_cache.py``), top-10 retrieval, measured for each size:

**In-process** (the baseline: what every replica runs now, fed from the store's snapshot
as :class:`~tether.memory.follower.IndexFollower` feeds it):

- vector: :class:`tether.memory.vectors.VectorIndex` as the server configures it (exact
  numpy search for a namespace of at most 10,000 vectors; above that a usearch HNSW graph
  per namespace, bfloat16, M = 16, plus the wide graph over the whole collection, built
  by its background thread; exact rescoring);
- keyword: :class:`tether.memory.postings.KeywordIndex` (exact Okapi BM25 over postings,
  the stored analyzer terms).

**In PostgreSQL** (one table ``placement(pk, namespace, text, tsv, embedding)``):

- vector: pgvector ``vector(384)``, HNSW index ``vector_cosine_ops`` (m = 16,
  ef_construction = 64, pgvector's defaults), ``ORDER BY embedding <=> q LIMIT 10``, at
  several ``hnsw.ef_search`` values; a one-namespace search adds ``WHERE namespace = ...``
  with ``hnsw.iterative_scan = strict_order`` (pgvector 0.8), so the filter cannot leave
  fewer than 10;
- keyword: a stored ``tsvector`` (``to_tsvector('english', text)``, generated) with a GIN
  index, the query's terms (Tether's query analyzer, stopwords dropped) OR'ed into a
  ``to_tsquery('english', ...)``, ``ORDER BY ts_rank_cd(tsv, q) DESC LIMIT 10``.

Each query is sent from this process over psycopg (Unix socket or TCP, as the URL says):
the latency a replica would see, round trip included. Questions are LoCoMo questions
(never stored), embedded once in this process before timing; ``--queries`` per scope (one
namespace, and all namespaces when there are several), after 10 warm-up queries.

Reported per size: build time (in-process: applying the snapshot rows, then until every
HNSW graph serves; PostgreSQL: COPY of the rows, incl. computing the tsvector, and each
CREATE INDEX, ``maintenance_work_mem`` raised to 1 GB so the graph is built in memory,
parallel workers as the server allows), memory (in-process: RSS growth of this process
while the index was built, and the arrays' ``nbytes`` plus usearch's ``memory_usage``;
PostgreSQL: ``pg_relation_size`` of each index and the columns' ``pg_column_size``),
latency median and p95 (ms), vector recall@10 against exact search (ties counted: a
result is right if its cosine is at least the 10th best exact cosine), the keyword
top-10's overlap with BM25's, and each number's ratio to the in-process baseline.

A last table: keyword ranking quality on the LoCoMo dev protocol of ``memory_recall.py``
(1,451 turns, one namespace per conversation, categories 1-4): R@5 of the in-process BM25
against ``ts_rank_cd`` and ``ts_rank`` over the same GIN index.

Data: LoCoMo (Maharana et al., ACL 2024, arXiv 2402.17753), snap-research, CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _embed_cache import MODEL, EmbeddingCache, precompute
from _server import cpu_times, fresh_database, postgres_server, steal_share
from memory_latency import DEFAULT_DATA, corpus, items_for

K = 10
TENANT = "default"
# The server's default Settings.hnsw_threshold.
HNSW_THRESHOLD = 10_000
# A result counts as a true top-k neighbour if its cosine is within this of the k-th best
# exact cosine (the corpus repeats texts across namespaces, so exact ties are common).
TIE_EPS = 1e-5


# -- measurement helpers ------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss() -> int:
    """This process's resident set size in bytes, after releasing freed heap pages."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[Any], Any], queries: Sequence[Any]) -> tuple[list[float], list[Any]]:
    """ms per call of ``fn(q)`` for each query (after 10 warm-up calls), and the results."""
    for q in queries[:10]:
        fn(q)
    ms: list[float] = []
    out: list[Any] = []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q))
        ms.append((time.perf_counter() - t) * 1000)
    return ms, out


def recall_at_k(
    results: list[list[int]], queries: np.ndarray, matrix: np.ndarray, rows: np.ndarray
) -> float:
    """Mean recall@K of ``results`` (pks = row numbers + 1) against exact search over
    ``rows`` of ``matrix``, ties counted (see ``TIE_EPS``)."""
    sub = matrix[rows]
    shares = []
    for got, q in zip(results, queries, strict=True):
        sims = sub @ q
        kth = np.partition(sims, len(sims) - K)[len(sims) - K]
        good = sum(1 for pk in got[:K] if float(matrix[pk - 1] @ q) >= kth - TIE_EPS)
        shares.append(good / K)
    return statistics.fmean(shares)


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean share of ``a``'s top-K found in ``b``'s top-K."""
    return statistics.fmean(
        len(set(x[:K]) & set(y[:K])) / max(1, min(K, len(x))) for x, y in zip(a, b, strict=True)
    )


# -- data ---------------------------------------------------------------------------------
def tsquery(terms: Sequence[str]) -> str:
    """Query terms as quoted ``to_tsquery`` lexemes, OR'ed (``''`` matches nothing)."""
    return " | ".join("'" + t.replace("'", "''") + "'" for t in terms) or "''"


class Data:
    """The corpus, its vectors and terms, and the questions with their query forms."""

    def __init__(self, n_queries: int) -> None:
        from tether.domain.text import analyze, query_stems, query_terms
        from tether.memory.embedders import OnnxMiniLMEmbedder

        self.texts, questions = corpus(DEFAULT_DATA)
        questions = list(dict.fromkeys(questions))
        cache = EmbeddingCache()
        missing = cache.missing(self.texts)
        if missing:
            print(f"computing {len(missing)} missing cached embeddings", flush=True)
            precompute(missing)
        self.vectors = np.stack(cache.get_many(self.texts)).astype(np.float32)
        self.terms = [" ".join(analyze(t)) for t in self.texts]
        self.questions = questions[: 2 * n_queries]
        embedder = OnnxMiniLMEmbedder(threads=1)
        self.query_vectors = np.asarray(embedder.embed(self.questions), dtype=np.float32)
        self.stems = [query_stems(q) for q in self.questions]
        # The same query terms (unstemmed: PostgreSQL's english config stems them) as
        # tsquery literals, OR'ed.
        self.tsqueries = [tsquery(query_terms(q)) for q in self.questions]


def item_vectors(
    items: list[dict[str, Any]], data: Data, position: dict[str, int], jitter: float
) -> np.ndarray:
    """Each memory's unit vector: its text's real embedding in ``bench/0``; in the repeats
    (``bench/1``, ...) that embedding plus Gaussian noise of norm ~``jitter``,
    renormalised (cosine to the original ~1/sqrt(1 + jitter^2): 0.95 at 0.33), so a 100k
    collection holds 100k distinct vectors around the real ones. pgvector's HNSW keeps
    one graph element for identical vectors (up to 10 rows each), so exact repeats would
    make its index look 5x smaller and its build 5x faster than on distinct memories."""
    rng = np.random.default_rng(0)
    out = np.stack([data.vectors[position[i["text"]]] for i in items]).astype(np.float32)
    repeat = np.array([i["namespace"] != "bench/0" for i in items])
    if jitter > 0 and repeat.any():
        noise = rng.standard_normal((int(repeat.sum()), out.shape[1])).astype(np.float32)
        noisy = out[repeat] + noise * (jitter / np.sqrt(out.shape[1]))
        out[repeat] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


# -- in-process ---------------------------------------------------------------------------
def index_rows(
    items: list[dict[str, Any]], data: Data, position: dict[str, int], matrix: np.ndarray
) -> list[Any]:
    from tether.store.base import IndexRow

    rows = []
    for pk, item in enumerate(items, 1):
        i = position[item["text"]]
        rows.append(
            IndexRow(
                lsn=0,
                tenant_id=TENANT,
                memory_id=f"m{pk}",
                pk=pk,
                namespace=item["namespace"],
                version=1,
                terms=data.terms[i],
                content_hash=str(i),
                vector=matrix[pk - 1].astype("<f4").tobytes(),
            )
        )
    return rows


def _settled(coll: Any) -> bool:
    """Every graph built and in step with its rows (none dirty). ``uses_hnsw`` is true
    from 1,024 unsynced rows down, but until the graph thread has caught up a search also
    scores the unsynced rows one by one (1.8 vs 0.12 ms at 25k in a one-off check)."""
    with coll.lock:
        return all(g.index is not None and not g.dirty for _, g in coll._all_graphs())


def vector_bytes(index: Any) -> tuple[int, int]:
    """(float32 blocks' nbytes incl. spare capacity, usearch graphs' memory_usage)."""
    arrays = graphs = 0
    for coll in index._collections.values():
        for block in [coll.pool, *coll.blocks.values()]:
            arrays += block.vecs.nbytes + block.keys.nbytes + block.codes.nbytes
        for _, graph in coll._all_graphs():
            if graph.index is not None:
                graphs += int(graph.index.memory_usage)
    return arrays, graphs


def keyword_bytes(index: Any) -> int:
    """The postings' and per-memory columns' numpy nbytes (dicts and strings not counted)."""
    total = 0
    for tenant in index._tenants.values():
        total += sum(g.view().nbytes for g in (tenant.pk, tenant.ns, tenant.length))
        total += len(tenant.alive)
        for postings in tenant.terms.values():
            total += postings.slots.view().nbytes + postings.tf.view().nbytes
    return total


def in_process(
    rows: list[Any], data: Data, scopes: list[tuple[str, list[str]]], qn: int
) -> dict[str, Any]:
    from tether.memory.postings import KeywordIndex
    from tether.memory.vectors import VectorIndex

    out: dict[str, Any] = {"n": len(rows)}
    before = rss()
    t = time.perf_counter()
    keywords = KeywordIndex()
    for start in range(0, len(rows), 2000):  # the follower applies snapshot pages of 2,000
        keywords.apply(rows[start : start + 2000])
    out["kw_build_s"] = time.perf_counter() - t
    out["kw_rss"] = rss() - before
    out["kw_nbytes"] = keyword_bytes(keywords)
    before = rss()
    t = time.perf_counter()
    vectors = VectorIndex(hnsw_threshold=HNSW_THRESHOLD)
    for start in range(0, len(rows), 2000):
        vectors.apply(MODEL, rows[start : start + 2000])
    out["vec_apply_s"] = time.perf_counter() - t
    coll = vectors._collections[(TENANT, MODEL)]
    while not _settled(coll):
        time.sleep(0.05)
    out["vec_build_s"] = time.perf_counter() - t
    out["vec_rss"] = rss() - before
    out["vec_arrays"], out["vec_graphs"] = vector_bytes(vectors)
    out["vec_kind"] = "HNSW graphs" if coll.graphs else "exact"
    print(
        f"  in-process: keyword index {out['kw_build_s']:.1f} s, vector index "
        f"{out['vec_build_s']:.1f} s ({out['vec_kind']})",
        flush=True,
    )
    for label, namespaces in scopes:
        qs = range(qn) if label.startswith("1") else range(qn, 2 * qn)
        ms, hits = timed(
            lambda i, ns=namespaces: vectors.search(
                TENANT, MODEL, data.query_vectors[i], K, namespaces=ns
            ),
            list(qs),
        )
        out[("vec", label)] = (ms, [[pk for pk, _ in h] for h in hits])
        ms, hits = timed(
            lambda i, ns=namespaces: keywords.search(TENANT, ns, data.stems[i], K), list(qs)
        )
        out[("kw", label)] = (ms, [[pk for pk, _ in h] for h in hits])
    vectors.close()
    return out


# -- PostgreSQL ---------------------------------------------------------------------------
_DDL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE placement (
    pk        bigint PRIMARY KEY,
    namespace text   NOT NULL,
    text      text   NOT NULL,
    tsv       tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    embedding vector(384) NOT NULL
);
"""


def in_postgres(
    url: str,
    items: list[dict[str, Any]],
    data: Data,
    matrix: np.ndarray,
    scopes: list[tuple[str, list[str]]],
    all_namespaces: list[str],
    qn: int,
    ef_values: list[int],
) -> dict[str, Any]:
    import psycopg
    from pgvector.psycopg import register_vector

    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_DDL)
        register_vector(conn)
        t = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY placement (pk, namespace, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "text", "vector"])
            for pk, item in enumerate(items, 1):
                copy.write_row((pk, item["namespace"], item["text"], matrix[pk - 1]))
        out["load_s"] = time.perf_counter() - t
        conn.execute("SET maintenance_work_mem = '1GB'")
        t = time.perf_counter()
        conn.execute(
            "CREATE INDEX placement_hnsw ON placement USING hnsw (embedding vector_cosine_ops)"
        )
        out["hnsw_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute("CREATE INDEX placement_gin ON placement USING gin (tsv)")
        out["gin_build_s"] = time.perf_counter() - t
        conn.execute("CREATE INDEX placement_ns ON placement (namespace)")
        conn.execute("VACUUM ANALYZE placement")
        out["workers"] = conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0]
        sizes = conn.execute(
            "SELECT pg_relation_size('placement_hnsw'), pg_relation_size('placement_gin'), "
            "pg_relation_size('placement'), pg_total_relation_size('placement')"
        ).fetchone()
        out["hnsw_bytes"], out["gin_bytes"], out["heap_bytes"], out["total_bytes"] = sizes
        out["emb_col"], out["tsv_col"] = conn.execute(
            "SELECT sum(pg_column_size(embedding)), sum(pg_column_size(tsv)) FROM placement"
        ).fetchone()
        print(
            f"  postgres: COPY {out['load_s']:.1f} s, HNSW {out['hnsw_build_s']:.1f} s, "
            f"GIN {out['gin_build_s']:.1f} s",
            flush=True,
        )
        conn.execute("SET hnsw.iterative_scan = strict_order")
        out["select1"], _ = timed(
            lambda i: conn.execute("SELECT %s::int", (i,)).fetchone(), range(200)
        )
        for label, namespaces in scopes:
            qs = list(range(qn) if label.startswith("1") else range(qn, 2 * qn))
            scoped = sorted(namespaces) != sorted(all_namespaces)
            where = "WHERE namespace = ANY(%s) " if scoped else ""
            ns_arg: tuple[Any, ...] = (namespaces,) if scoped else ()
            vec_sql = f"SELECT pk FROM placement {where}ORDER BY embedding <=> %s LIMIT {K}"
            for ef in ef_values:
                conn.execute(f"SET hnsw.ef_search = {ef}")
                ms, hits = timed(
                    lambda i, sql=vec_sql, a=ns_arg: [
                        r[0] for r in conn.execute(sql, (*a, data.query_vectors[i]))
                    ],
                    qs,
                )
                out[("vec", label, ef)] = (ms, hits)
            plan = conn.execute(
                "EXPLAIN " + vec_sql, (*ns_arg, data.query_vectors[qs[0]])
            ).fetchall()
            text = " / ".join(r[0].strip() for r in plan[:3])
            out[("plan", label)] = re.sub(r"'\[[^']*\]'", "'[q]'", text)
            kw_sql = (
                "SELECT pk FROM placement, to_tsquery('english', %s) q "
                f"WHERE tsv @@ q {'AND namespace = ANY(%s) ' if scoped else ''}"
                f"ORDER BY ts_rank_cd(tsv, q) DESC, pk LIMIT {K}"
            )
            ms, hits = timed(
                lambda i, sql=kw_sql, a=ns_arg: [
                    r[0] for r in conn.execute(sql, (data.tsqueries[i], *a))
                ],
                qs,
            )
            out[("kw", label)] = (ms, hits)
    return out


# -- keyword quality on the LoCoMo dev protocol --------------------------------------------
def keyword_quality(url: str) -> list[tuple[str, float, float, float]]:
    """``(ranker, R@1, R@5, R@10)`` for categories 1-4 of the dev protocol."""
    import psycopg

    from memory_recall import load
    from tether.domain.text import analyze, query_stems, query_terms
    from tether.memory.postings import KeywordIndex
    from tether.store.base import IndexRow

    convs = load(DEFAULT_DATA.parent / "locomo-dev.json")
    keywords = KeywordIndex()
    rows: list[IndexRow] = []
    texts: list[str] = []
    dia: dict[int, str] = {}
    for conv in convs:
        for item in conv["items"]:
            pk = len(rows) + 1
            dia[pk] = item["metadata"]["dia_id"]
            texts.append(item["text"])
            terms = " ".join(analyze(item["text"]))
            rows.append(IndexRow(0, TENANT, f"m{pk}", pk, item["namespace"], 1, terms, None, None))
    keywords.apply(rows)
    rankers = {
        "in-process BM25 (k1 0.9, b 0.4)": None,
        "PostgreSQL ts_rank_cd": "ts_rank_cd(tsv, q)",
        "PostgreSQL ts_rank": "ts_rank(tsv, q)",
        "PostgreSQL ts_rank, length-normalised (1)": "ts_rank(tsv, q, 1)",
    }
    scores: dict[str, list[list[float]]] = {name: [] for name in rankers}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_DDL.replace("vector(384) NOT NULL", "vector(384)"))
        sql = "COPY placement (pk, namespace, text) FROM STDIN"
        with conn.cursor() as cur, cur.copy(sql) as copy:
            for row, text in zip(rows, texts, strict=True):
                copy.write_row((row.pk, row.namespace, text))
        conn.execute("CREATE INDEX placement_gin ON placement USING gin (tsv)")
        for conv in convs:
            ns = f"locomo/{conv['sample_id']}"
            for text, category, evidence in conv["questions"]:
                if category == 5:
                    continue
                tsq = tsquery(query_terms(text))
                for name, expr in rankers.items():
                    if expr is None:
                        top = [pk for pk, _ in keywords.search(TENANT, [ns], query_stems(text), K)]
                    else:
                        top = [
                            r[0]
                            for r in conn.execute(
                                "SELECT pk FROM placement, to_tsquery('english', %s) q "
                                f"WHERE tsv @@ q AND namespace = %s ORDER BY {expr} DESC, pk "
                                f"LIMIT {K}",
                                (tsq, ns),
                            )
                        ]
                    ids = [dia[pk] for pk in top]
                    scores[name].append(
                        [len(evidence & set(ids[:k])) / len(evidence) for k in (1, 5, 10)]
                    )
    return [
        (name, *(statistics.fmean(col) for col in zip(*v, strict=True)))  # type: ignore[misc]
        for name, v in scores.items()
    ]


# -- report -------------------------------------------------------------------------------
def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def line(*cells: object) -> None:
    """One markdown table row."""
    print("| " + " | ".join(str(c) for c in cells) + " |")


def report(
    size: int,
    ip: dict[str, Any],
    pg: dict[str, Any],
    scopes: list[tuple[str, list[str]]],
    efs: list[int],
    matrix: np.ndarray,
    item_rows: dict[str, np.ndarray],
    data: Data,
    qn: int,
) -> None:
    """The two tables of one size: build and memory, then query latency and quality."""
    print(f"\n### {size:,} memories\n")
    line("what", "in-process", "bytes/memory", "PostgreSQL", "bytes/memory", "PG / in-process")
    line(*["---"] * 6)
    vec_ip = ip["vec_arrays"] + ip["vec_graphs"]
    line(
        "vector index memory (in-process: float32 arrays + graphs; PG: HNSW index)",
        f"{mib(vec_ip)} (RSS +{mib(ip['vec_rss'])})",
        f"{vec_ip / size:,.0f}",
        mib(pg["hnsw_bytes"]),
        f"{pg['hnsw_bytes'] / size:,.0f}",
        f"{pg['hnsw_bytes'] / vec_ip:.2f}",
    )
    line(
        "keyword index memory (in-process: RSS growth, postings arrays; PG: GIN index)",
        f"RSS +{mib(ip['kw_rss'])} (arrays {mib(ip['kw_nbytes'])})",
        f"{ip['kw_rss'] / size:,.0f}",
        mib(pg["gin_bytes"]),
        f"{pg['gin_bytes'] / size:,.0f}",
        f"{pg['gin_bytes'] / ip['kw_rss']:.2f}",
    )
    line(
        "PG columns the indexes read (vector, tsvector; in the table)",
        "",
        "",
        f"{mib(pg['emb_col'])}, {mib(pg['tsv_col'])}",
        f"{pg['emb_col'] / size:,.0f}, {pg['tsv_col'] / size:,.0f}",
        "",
    )
    line(
        "vector index build (in-process: apply + graphs settled; PG: CREATE INDEX hnsw)",
        f"{ip['vec_build_s']:.2f} s ({ip['vec_kind']})",
        "",
        f"{pg['hnsw_build_s']:.1f} s (≤ {pg['workers']} parallel workers)",
        "",
        f"{pg['hnsw_build_s'] / ip['vec_build_s']:.2f}",
    )
    line(
        "keyword index build (in-process: apply; PG: CREATE INDEX gin)",
        f"{ip['kw_build_s']:.2f} s",
        "",
        f"{pg['gin_build_s']:.2f} s (+ COPY, tsvector computed: {pg['load_s']:.1f} s)",
        "",
        f"{pg['gin_build_s'] / ip['kw_build_s']:.2f}",
    )
    print()
    line(
        "scope",
        "search",
        "where",
        "p50 ms",
        "p95 ms",
        "recall@10 vs exact (vector) / overlap with BM25 (keyword)",
        "p50 ratio",
        "p95 ratio",
    )
    line(*["---"] * 8)
    for label, namespaces in scopes:
        qs = np.arange(qn) if label.startswith("1") else np.arange(qn, 2 * qn)
        in_scope = np.concatenate([item_rows[ns] for ns in namespaces])
        qv = data.query_vectors[qs]
        for kind, search in (("vec", "vector top-10"), ("kw", "keyword top-10")):
            base_ms, base_hits = ip[(kind, label)]
            b50, b95 = statistics.median(base_ms), pct(base_ms, 0.95)
            where = f"in-process ({ip['vec_kind']})" if kind == "vec" else "in-process BM25"
            quality = recall_at_k(base_hits, qv, matrix, in_scope) if kind == "vec" else 1.0
            line(label, search, where, f"{b50:.3f}", f"{b95:.3f}", f"{quality:.3f}", "1.00", "1.00")
            if kind == "vec":
                runs = [(f"PG HNSW, ef_search={ef}", pg[("vec", label, ef)]) for ef in efs]
            else:
                runs = [("PG GIN + ts_rank_cd", pg[("kw", label)])]
            for name, (ms, hits) in runs:
                p50, p95 = statistics.median(ms), pct(ms, 0.95)
                if kind == "vec":
                    quality = recall_at_k(hits, qv, matrix, in_scope)
                else:
                    quality = overlap(base_hits, hits)
                line(
                    label,
                    search,
                    name,
                    f"{p50:.3f}",
                    f"{p95:.3f}",
                    f"{quality:.3f}",
                    f"{p50 / b50:.2f}",
                    f"{p95 / b95:.2f}",
                )
    ms = pg["select1"]
    print(
        f"\nPG round trip from this process (SELECT %s::int, the floor of any query above): "
        f"p50 {statistics.median(ms):.3f} ms, p95 {pct(ms, 0.95):.3f} ms\n"
    )
    for label, _ in scopes:
        print(f"PG plan, vector, {label}: {pg[('plan', label)]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db", required=True, help="a PostgreSQL server URL (postgresql://...), or 'postgres'"
    )
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=248, help="questions per scope")
    ap.add_argument("--ef-search", default="40,100,200", help="hnsw.ef_search values to measure")
    ap.add_argument("--no-quality", action="store_true", help="skip the keyword quality table")
    ap.add_argument(
        "--jitter",
        type=float,
        default=0.33,
        help="noise added to the vectors of repeated texts (0: exact repeats; see item_vectors)",
    )
    args = ap.parse_args()
    efs = [int(x) for x in args.ef_search.split(",")]
    cpu0 = cpu_times()
    data = Data(args.queries)
    qn = min(args.queries, len(data.questions) // 2)
    position = {t: i for i, t in enumerate(data.texts)}
    print(f"{len(data.texts)} distinct texts, {len(data.questions)} questions ({qn} per scope)")
    with postgres_server(args.db) as server:
        for size in (int(s) for s in args.sizes.split(",")):
            items = items_for(data.texts, size)
            namespaces = sorted({i["namespace"] for i in items})
            scopes = [("1 namespace (bench/0)", ["bench/0"])]
            if len(namespaces) > 1:
                scopes.append((f"all {len(namespaces)} namespaces", namespaces))
            matrix = item_vectors(items, data, position, args.jitter)
            ns_of = np.array([i["namespace"] for i in items])
            item_rows = {ns: np.flatnonzero(ns_of == ns) for ns in namespaces}
            print(f"\n{size:,} memories in {len(namespaces)} namespaces", flush=True)
            rows = index_rows(items, data, position, matrix)
            ip = in_process(rows, data, scopes, qn)
            del rows
            with fresh_database(server) as url:
                pg = in_postgres(url, items, data, matrix, scopes, namespaces, qn, efs)
            report(size, ip, pg, scopes, efs, matrix, item_rows, data, qn)
        if not args.no_quality:
            with fresh_database(server) as url:
                quality = keyword_quality(url)
            print("\nkeyword ranking quality, LoCoMo dev protocol (categories 1-4)\n")
            print("| ranker | R@1 | R@5 | R@10 | R@5 vs BM25 |\n|---|---|---|---|---|")
            base = quality[0][2]
            for name, r1, r5, r10 in quality:
                print(f"| {name} | {r1:.3f} | {r5:.3f} | {r10:.3f} | {r5 / base:.3f} |")
    print(f"\nhypervisor steal during the run: {steal_share(cpu0, cpu_times()):.1%}")


if __name__ == "__main__":
    main()

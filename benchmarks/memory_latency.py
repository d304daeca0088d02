"""Memory latency and throughput through the HTTP API of a real ``tether serve``.

For each size (default 10k and 100k memories) on a fresh store (``--db``: ``sqlite``, the
default, or a PostgreSQL server URL, on which a database is created per size and dropped
afterwards; several, comma-separated, run one after another per size and the table gives
each one's server latency ratio to the first):

1. **Embedder ceiling** (once, before any server starts, so nothing competes): the
   default embedder (all-MiniLM-L6-v2 int8 ONNX, one intra-op thread, as the server runs
   it) embeds a 2,000-text sample of the same corpus in this process, sorted by length,
   in calls of 64, 32 and 16 texts; the best rate is the ceiling.
2. **Remember throughput**: ``POST /v1/memories/batch`` (1,000 items per request) as fast
   as the server acknowledges, then wait until ``index_backlog`` is 0: memories per second
   from the first request until every memory is stored, keyword-indexed *and* embedded and
   vector-searchable. The acknowledgement rate alone is printed too.
3. **Recall latency**: once the index is final (HNSW built when above the threshold),
   distinct LoCoMo questions (never repeated within a run, so the server's small
   query-vector cache never hits) searched sequentially, default hybrid mode, in two
   scopes: one namespace (``bench/0``), then all namespaces (the whole store in play).
   Server-side (envelope ``duration_ms``) and client-side (wall time around the request)
   p50 / p95 / p99 in ms.
4. **Remember into the full store** (``--top-up``, default 2,000): new memories in a new
   namespace through ``POST /v1/memories/batch``, embedded by the server's own embedder,
   until ``index_backlog`` is 0: the remember rate of a store that already holds the
   size (for 100k, whose bulk was imported, the only live-embedder rate), beside the
   ceiling.
5. **Stages**: with the server stopped, the same database is opened in this process (the
   same backend), its indexes loaded from the store's snapshot, and each stage of a recall
   is timed on its own (query embedding, keyword candidates, vector search per scope,
   ``ranking_rows``, ranking and the results' records), then ``Recall.search`` end to
   end; with an HNSW graph, its recall@50 against exact search too.

**Embeddings.** Sizes up to 20k (``--cached auto``) run the server's own default embedder:
their remember rate is the real pipeline against the ceiling. Larger sizes would spend most
of an hour embedding on the reference box, so their memories are loaded through
``POST /v1/memories/import`` with real vectors computed once by the same ONNX model and
cached on disk (``~/.cache/tether-bench``, see ``_embed_cache.py``), each line carrying
its vector as ``GET /v1/memories/export?vectors=true`` writes it: the server stores them
instead of embedding. On those rows the remember rate measures the import path (write path,
vector rows, vector index, HNSW maintenance) without the embedder: not comparable to the
ceiling (the table says so). Their recall latency is the real thing: the server runs its
default in-process embedder, and the questions are never stored, so every query vector is
computed live.

**Box speed.** The reference box is a shared 2-core VM whose speed drifts by up to 2x
within an hour (other tenants; CPU steal). The benchmark embeds 200 questions one at a
time in its own process before and after the runs and prints both p50/p95: compare runs
only at a similar box speed.

Corpus (real text, no random vectors): from LoCoMo dev (``shared/data/locomo-dev.json``)
every turn, every shared-photo caption, every answer, and every window of 2 and 3
consecutive turns of a session, each in four framings (``"<speaker>: <text>"``, the bare
text, ``"On <date>, <speaker> said: <text>"``, ``"<speaker> told <other>: <text>"``), and
the questions in three of those framings (the bare question text is left out: it is the
query); about 20k distinct texts. Sizes beyond that reuse the texts in further namespaces
(``bench/0``, ``bench/1``, ...): dedupe is per namespace, so each is a separate memory that
is indexed on its own.

Data: LoCoMo (Maharana et al., ACL 2024, arXiv 2402.17753), snap-research, CC BY-NC 4.0.

**Side by side** (``--against OTHER/src``, e.g. a git worktree of the previous commit):
recall latency only. The store is built once by the other checkout's server (an older
schema that this tree's migrations can take forward), copied, and both servers serve
their own copy at the same time, each question sent to one and then the other, so both
see the same box at the same moment; their percentiles and this tree's ratio are printed.

Usage::

    .venv/bin/python benchmarks/memory_latency.py [--sizes 10000,100000] [--cached auto]
    .venv/bin/python benchmarks/memory_latency.py --sizes 100000 --against /tmp/base/src
    .venv/bin/python benchmarks/memory_latency.py --db sqlite,postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _server import (
    DB_HELP,
    fresh_database,
    fresh_store,
    is_postgres,
    postgres_server,
    running_server,
    store_label,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev.json"
# The server's default Settings.hnsw_threshold: a namespace above it gets a graph.
_HNSW_THRESHOLD = 10000
# ``--cached auto``: sizes up to this run the server's own embedder (~35 texts/s here).
_EMBED_LIVE_MAX = 20000


def corpus(path: Path) -> tuple[list[str], list[str]]:
    """(distinct real texts, questions) from LoCoMo dev; see the module docstring."""
    texts: dict[str, None] = {}
    questions: list[str] = []
    for sample in json.loads(path.read_text()):
        conv = sample["conversation"]
        a, b = conv["speaker_a"], conv["speaker_b"]
        keys = sorted(
            (k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:])
        )
        units: list[tuple[str, str, str]] = []  # (speaker, text, date)
        for key in keys:
            date = conv[f"{key}_date_time"]
            turns = conv[key]
            for i, turn in enumerate(turns):
                units.append((turn["speaker"], turn["text"], date))
                if turn.get("blip_caption"):
                    units.append(
                        (turn["speaker"], f"shared a photo of {turn['blip_caption']}", date)
                    )
                for width in (2, 3):
                    if i + width <= len(turns):
                        window = " ".join(t["text"] for t in turns[i : i + width])
                        units.append((turn["speaker"], window, date))
        for qa in sample["qa"]:
            questions.append(qa["question"])
            units.append((a, qa["question"], ""))
            if "answer" in qa:
                units.append((b, str(qa["answer"]), ""))
        for speaker, text, date in units:
            other = b if speaker == a else a
            texts[f"{speaker}: {text}"] = None
            texts[text] = None
            if date:
                texts[f"On {date}, {speaker} said: {text}"] = None
            texts[f"{speaker} told {other}: {text}"] = None
    # The benchmark's queries are never stored verbatim (their vectors must be computed,
    # not found in the embedding cache; see _embed_cache.py).
    for question in questions:
        texts.pop(question, None)
    return list(texts), questions


def items_for(texts: list[str], n: int) -> list[dict[str, Any]]:
    return [
        {"namespace": f"bench/{i // len(texts)}", "text": texts[i % len(texts)]} for i in range(n)
    ]


def embedder_ceiling(texts: list[str], n: int = 2000) -> tuple[float, int]:
    """(texts per second, call size) of the default embedder on a length-sorted sample."""
    from tether.memory.embedders import OnnxMiniLMEmbedder

    sample = sorted(texts[:: max(1, len(texts) // n)][:n], key=len)
    embedder = OnnxMiniLMEmbedder()
    embedder.embed(["warm up"])
    best = (0.0, 0)
    for chunk in (64, 32, 16):  # the embedder's own batch size, and smaller calls
        t0 = time.perf_counter()
        for i in range(0, len(sample), chunk):
            embedder.embed(sample[i : i + chunk])
        best = max(best, (len(sample) / (time.perf_counter() - t0), chunk))
    return best


def box_speed(questions: list[str], n: int = 200) -> dict[str, float]:
    """p50 / p95 ms of embedding one question alone (one thread), in this process: how
    fast the machine is right now. Shared 2-core VMs drift by 2x within an hour, so the
    benchmark prints this before and after the runs to date its latency figures."""
    from tether.memory.embedders import OnnxMiniLMEmbedder

    embedder = OnnxMiniLMEmbedder(query_threads=1)
    embedder.embed(["warm up"])
    spent = []
    for q in questions[:n]:
        t = time.perf_counter()
        embedder.embed_query(q)
        spent.append((time.perf_counter() - t) * 1000)
    return {"p50": pct(spent, 0.5), "p95": pct(spent, 0.95)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(http: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = http.get("/v1/memory/stats").json()["data"]
    return data


def import_bodies(items: list[dict[str, Any]], distinct: list[str]) -> list[bytes]:
    """NDJSON bodies of 1,000 import lines, each memory with its cached real vector in the
    shape ``GET /v1/memories/export?vectors=true`` writes (computing any missing ones)."""
    import base64

    import orjson

    from _embed_cache import DIM, MODEL, EmbeddingCache, precompute

    cache = EmbeddingCache()
    missing = cache.missing(distinct)
    if missing:
        print(f"computing {len(missing)} missing cached embeddings", flush=True)
        precompute(missing)
    encoded = {
        text: base64.b64encode(vector.astype("<f4").tobytes()).decode()
        for text, vector in zip(distinct, cache.get_many(distinct), strict=True)
        if vector is not None
    }
    lines = [
        orjson.dumps(
            {**item, "embedding": {"model": MODEL, "dim": DIM, "vector": encoded[item["text"]]}}
        )
        for item in items
    ]
    return [b"\n".join(lines[i : i + 1000]) + b"\n" for i in range(0, len(lines), 1000)]


def recall_latency(
    http: httpx.Client, namespaces: list[str], queries: list[str]
) -> dict[str, float]:
    """Server- and client-side percentiles (ms) of one search per query, sequentially."""
    for i in range(5):  # warm-up (connections, caches), not questions
        http.post("/v1/memories/search", json={"namespace": namespaces, "query": f"warm up {i}"})
    server_ms: list[float] = []
    client_ms: list[float] = []
    for q in queries:
        t = time.perf_counter()
        r = http.post("/v1/memories/search", json={"namespace": namespaces, "query": q})
        client_ms.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        server_ms.append(r.json()["duration_ms"])
    out: dict[str, float] = {}
    for name, values in (("server", server_ms), ("client", client_ms)):
        for level in (0.5, 0.95, 0.99):
            out[f"{name}_p{int(level * 100)}"] = pct(values, level)
    out["server_mean"] = statistics.fmean(server_ms)
    return out


def remember_on_top(http: httpx.Client, texts: list[str], size: int) -> dict[str, float]:
    """Remember ``texts`` into a new namespace of a store already holding ``size``
    memories, through the server's own embedder (the store's memories are searchable
    throughout): memories per second until the backlog is 0, as step 2 measures it."""
    items = [{"namespace": "bench/top-up", "text": t} for t in texts]
    t0 = time.perf_counter()
    for start in range(0, len(items), 1000):
        r = http.post("/v1/memories/batch", json={"items": items[start : start + 1000]})
        r.raise_for_status()
    while stats(http)["index_backlog"]:
        time.sleep(0.25)
    assert stats(http)["count"] >= size + len(items)
    return {"n": len(items), "per_s": len(items) / (time.perf_counter() - t0)}


def run(
    size: int,
    texts: list[str],
    questions: list[str],
    *,
    cached: bool,
    hnsw_wait_s: float,
    top_up: int = 0,
    stages: bool = True,
    store: str = "sqlite",
) -> dict[str, Any]:
    """One size on a fresh store (``store``: ``sqlite`` or a PostgreSQL server URL, on
    which a database is created for the run and dropped after the stages)."""
    items = items_for(texts, size)
    namespaces = sorted({i["namespace"] for i in items})
    out: dict[str, Any] = {
        "size": size,
        "namespaces": len(namespaces),
        "cached": cached,
        "store": store_label(store),
    }
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        db = stack.enter_context(fresh_store(store, Path(tmp), "latency"))
        with contextlib.ExitStack() as serving:
            bodies: list[bytes] = []
            if cached:
                bodies = import_bodies(items, texts[: min(size, len(texts))])
            url = serving.enter_context(running_server(db, {}, home=Path(tmp)))
            http = serving.enter_context(httpx.Client(base_url=url, timeout=300))
            t0 = time.perf_counter()
            for body in bodies:  # cached: the import API, each line carrying its vector
                r = http.post(
                    "/v1/memories/import",
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                )
                r.raise_for_status()
            for start in range(0, size if not cached else 0, 1000):
                r = http.post("/v1/memories/batch", json={"items": items[start : start + 1000]})
                r.raise_for_status()
            acked = time.perf_counter()
            while stats(http)["index_backlog"]:
                time.sleep(0.5)
            done = time.perf_counter()
            out["ack_per_s"] = size / (acked - t0)
            out["remember_per_s"] = size / (done - t0)
            deadline = time.monotonic() + hnsw_wait_s
            while (
                stats(http)["vector_search"] != "hnsw" and min(size, len(texts)) > _HNSW_THRESHOLD
            ):
                if time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            out["vector_search"] = stats(http)["vector_search"]
            out["model"] = stats(http)["embedding_model"]
            # Distinct questions, never repeated within a run (half per scope).
            half = len(questions) // 2
            out["one"] = recall_latency(http, namespaces[:1], questions[:half])
            out["all"] = recall_latency(http, namespaces, questions[half : 2 * half])
            out["queries"] = half
            if top_up:
                out["top_up"] = remember_on_top(http, texts[:top_up], size)
        print(json.dumps(out), flush=True)
        if stages:
            out["stages"] = asyncio.run(
                stage_breakdown(db, out["model"], namespaces, questions[:half])
            )
    return out


def _wait_ready(http: httpx.Client, size: int, texts: list[str], hnsw_wait_s: float) -> None:
    """Until the backlog is empty and, above the threshold, the HNSW graphs serve."""
    while stats(http)["index_backlog"]:
        time.sleep(0.5)
    deadline = time.monotonic() + hnsw_wait_s
    while stats(http)["vector_search"] != "hnsw" and min(size, len(texts)) > _HNSW_THRESHOLD:
        if time.monotonic() > deadline:
            return
        time.sleep(1.0)


def compare_recall(
    size: int,
    texts: list[str],
    questions: list[str],
    against: Path,
    *,
    cached: bool,
    hnsw_wait_s: float,
    store: str = "sqlite",
) -> None:
    """Recall latency of this tree beside another checkout's server, on the same data.

    Prints one table row per (scope, server): server-side p50 / p95 / p99 ms and this
    tree's p95 over the other's. ``store``: ``sqlite`` (the file is copied) or a
    PostgreSQL server URL (the database is copied with ``CREATE DATABASE ... TEMPLATE``).
    """
    items = items_for(texts, size)
    namespaces = sorted({i["namespace"] for i in items})
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as databases:
        (Path(tmp) / "base").mkdir()
        (Path(tmp) / "ours").mkdir()
        base_db: Path | str = Path(tmp) / "base" / "latency.db"
        ours_db: Path | str = Path(tmp) / "ours" / "latency.db"
        if is_postgres(store):
            base_db = databases.enter_context(fresh_database(store))
        bodies = import_bodies(items, texts[: min(size, len(texts))]) if cached else []
        with (
            running_server(base_db, {}, src=against, home=Path(tmp) / "base") as url,
            httpx.Client(base_url=url, timeout=300) as http,
        ):
            for body in bodies:
                headers = {"content-type": "application/x-ndjson"}
                http.post("/v1/memories/import", content=body, headers=headers).raise_for_status()
            for start in range(0, size if not cached else 0, 1000):
                batch = {"items": items[start : start + 1000]}
                http.post("/v1/memories/batch", json=batch).raise_for_status()
            _wait_ready(http, size, texts, hnsw_wait_s)
        if isinstance(base_db, str):  # PostgreSQL: the server stopped, nobody is connected
            name = base_db.split("?")[0].rsplit("/", 1)[1]
            ours_db = databases.enter_context(fresh_database(store, template=name))
        else:  # Stopped cleanly: the WAL is checkpointed into the file, which is now complete.
            shutil.copyfile(base_db, ours_db)
        with contextlib.ExitStack() as stack:
            clients = {}
            for label, db, src, home in (
                ("against", base_db, against, "base"),
                ("this tree", ours_db, None, "ours"),
            ):
                url = stack.enter_context(running_server(db, {}, src=src, home=Path(tmp) / home))
                clients[label] = stack.enter_context(httpx.Client(base_url=url, timeout=300))
            for http in clients.values():
                _wait_ready(http, size, texts, hnsw_wait_s)
                for i in range(5):  # warm-up (connections, caches), not questions
                    body = {"namespace": namespaces, "query": f"warm up {i}"}
                    http.post("/v1/memories/search", json=body)
            half = len(questions) // 2
            print(f"\n{size:,} memories, {half} distinct questions per scope, interleaved")
            head = ("scope", "server", "p50 ms", "p95 ms", "p99 ms", "p95 ratio")
            print(f"{head[0]:<14} {head[1]:<12} " + " ".join(f"{h:>8}" for h in head[2:]))
            for scope, selection, qs in (
                ("1 namespace", namespaces[:1], questions[:half]),
                (f"{len(namespaces)} namespaces", namespaces, questions[half : 2 * half]),
            ):
                server_ms: dict[str, list[float]] = {label: [] for label in clients}
                for q in qs:
                    for label, http in clients.items():
                        r = http.post(
                            "/v1/memories/search", json={"namespace": selection, "query": q}
                        )
                        r.raise_for_status()
                        server_ms[label].append(r.json()["duration_ms"])
                base95 = pct(server_ms["against"], 0.95)
                for label, values in server_ms.items():
                    p50, p95, p99 = (pct(values, q) for q in (0.5, 0.95, 0.99))
                    cells = f"{p50:>8.2f} {p95:>8.2f} {p99:>8.2f} {p95 / base95:>10.3f}"
                    print(f"{scope:<14} {label:<12} {cells}")


async def stage_breakdown(
    db: Path | str, model: str, namespaces: list[str], queries: list[str]
) -> dict[str, dict[str, float]]:
    """Per-stage ms (p50, p95) of recall, in this process, on the benchmark's database
    (``db``: the SQLite file or the PostgreSQL database URL the server used).

    The same functions as ``Recall.search``, timed one after another (in a request the
    query embedding overlaps the keyword query), then ``Recall.search`` itself end to end.
    The query embedder is the in-process ONNX model under the stored vectors' model name;
    the indexes are loaded from the store's snapshot, as a starting server loads them.
    """
    from tether.domain.memories import SearchIn
    from tether.domain.text import query_stems
    from tether.domain.time import now_ms
    from tether.memory.embedders import OnnxMiniLMEmbedder
    from tether.memory.follower import IndexFollower
    from tether.memory.postings import KeywordIndex
    from tether.memory.ranking import RankingParams, query_period
    from tether.memory.recall import Recall, search_filter
    from tether.memory.vectors import VectorIndex
    from tether.store.base import Store

    store: Store
    if isinstance(db, str) and is_postgres(db):
        from tether.store.postgres import PostgresStore

        store = PostgresStore(db)
    else:
        from tether.store.sqlite import SQLiteStore

        store = SQLiteStore(Path(db))
    await store.start()
    embedder = OnnxMiniLMEmbedder()
    embedder.name = model  # the stored vectors' name (the same ONNX model either way)
    embedder.embed(["warm up"])
    index = VectorIndex(hnsw_threshold=_HNSW_THRESHOLD)
    keywords = KeywordIndex()
    follower = IndexFollower(store, keywords, index, model=model)
    await follower.load()
    recall = Recall(
        store, embedder, index, params=RankingParams(), keywords=keywords, follower=follower
    )
    deadline = time.monotonic() + 900
    tenant = next(iter(index._collections))[0]
    graphs = index._collections[(tenant, model)].graphs  # namespaces above the threshold
    while graphs and not index.uses_hnsw(tenant, model):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    times: dict[str, list[float]] = {}
    overlap: dict[str, list[float]] = {}

    def lap(name: str, t: float) -> float:
        now = time.perf_counter()
        times.setdefault(name, []).append((now - t) * 1000)
        return now

    depth = RankingParams().candidate_depth
    for scope, selection in (("1 ns", namespaces[:1]), (f"{len(namespaces)} ns", namespaces)):
        for q in queries:
            body = SearchIn.model_validate({"namespace": selection, "query": q})
            f = search_filter(body)
            now = now_ms()
            t = time.perf_counter()
            vec = embedder.embed([q])[0]
            t = lap("query embedding (1 thread)", t)
            kw, rows = await recall._keyword_candidates(tenant, f, query_stems(q), depth, now)
            t = lap("keyword candidates (BM25 postings + their ranking rows)", t)
            hits = index.search(tenant, model, vec, depth + 8, namespaces=body.namespaces)
            t = lap(f"vector search, {scope}", t)
            if index.uses_hnsw(tenant, model):  # the graph's recall against exact search
                coll = index._collections[(tenant, model)]
                codes = sorted(coll.ns_code[ns] for ns in selection)
                with coll.lock:
                    exact = coll._exact(vec, depth, codes)
                got = {pk for pk, _ in hits[:depth]}
                overlap.setdefault(scope, []).append(len(got & {pk for pk, _ in exact}) / depth)
                t = time.perf_counter()
            missing = [pk for pk, _ in hits if pk not in rows]
            rows.update(await store.ranking_rows(tenant, f, missing, now=now))
            t = lap("ranking_rows (ranking columns of vector hits not already read)", t)
            passing = [(pk, s) for pk, s in hits if pk in rows][:depth]
            stems = query_stems(q)
            subject = keywords.leading(tenant, list(rows), stems)
            period = query_period(q)
            await recall._rank(tenant, body.limit, kw, passing, rows, now, subject, period, True)
            t = lap("rank (with conversation context) + records of the results", t)
            recall.queries._cache.clear()  # embed again, as the distinct questions would
            t = time.perf_counter()
            await recall.search(tenant, body, now=now)
            lap(f"Recall.search end to end, {scope}", t)
    index.close()
    await store.close()
    out = {
        name: {"p50": pct(values, 0.5), "p95": pct(values, 0.95)} for name, values in times.items()
    }
    for scope, values in overlap.items():  # not ms: the mean share, reported in both columns
        share = statistics.fmean(values)
        out[f"HNSW recall@{depth} vs exact, {scope} (share, not ms)"] = {"p50": share, "p95": share}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument(
        "--cached",
        choices=("auto", "always", "never"),
        default="auto",
        help="serve cached real embeddings to the server (auto: sizes above 20k)",
    )
    parser.add_argument("--sample", type=int, default=2000, help="texts for the ceiling")
    parser.add_argument("--hnsw-wait", type=float, default=600.0, help="max s to wait for HNSW")
    parser.add_argument(
        "--top-up",
        type=int,
        default=2000,
        help="memories then remembered into each full store through the embedder (0: skip)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="compare recall latency with the server of another checkout's src/ (see above)",
    )
    parser.add_argument(
        "--db",
        default="sqlite",
        help=DB_HELP + "; several, comma-separated, run one after another per size, and the "
        "table gives each one's latency ratio to the first",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(postgres_server(db)) for db in args.db.split(",")]
        _main(args, stores)


def _main(args: argparse.Namespace, stores: list[str]) -> None:
    texts, questions = corpus(args.data)
    questions = list(dict.fromkeys(questions))
    if args.against is not None:
        for size in (int(s) for s in args.sizes.split(",")):
            cached = args.cached == "always" or (args.cached == "auto" and size > _EMBED_LIVE_MAX)
            for store in stores:
                print(f"\nstore: {store_label(store)}")
                compare_recall(
                    size,
                    texts,
                    questions,
                    args.against.resolve(),
                    cached=cached,
                    hnsw_wait_s=args.hnsw_wait,
                    store=store,
                )
        return
    print(f"store: {', '.join(store_label(s) for s in stores)}")
    print(f"corpus: {len(texts)} distinct real texts, {len(questions)} distinct questions")
    ceiling, chunk = embedder_ceiling(texts, args.sample)
    print(
        f"embedder ceiling (MiniLM int8 ONNX, 1 thread, length-sorted, calls of {chunk}): "
        f"{ceiling:.0f}/s",
        flush=True,
    )
    speed_before = box_speed(questions)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        cached = args.cached == "always" or (args.cached == "auto" and size > _EMBED_LIVE_MAX)
        for store in stores:
            r = run(
                size,
                texts,
                questions,
                cached=cached,
                hnsw_wait_s=args.hnsw_wait,
                top_up=args.top_up,
                store=store,
            )
            rows.append(r)
            print(json.dumps(r), flush=True)
    speed_after = box_speed(questions)
    print(
        "\nbox speed (one question embedded alone, one thread; ms p50 / p95): "
        f"before {speed_before['p50']:.1f} / {speed_before['p95']:.1f}, "
        f"after {speed_after['p50']:.1f} / {speed_after['p95']:.1f}"
    )
    several = len(stores) > 1
    first = {(r["size"], r["store"]): r for r in rows}
    print(
        "\n| memories | embeddings | vector search | namespaces searched "
        "| recall p50 / p95 / p99 ms (server) | (client) | ack/s | remembered and embedded/s "
        "| % of embedder |"
        + (f" store | server p50 / p95 vs {store_label(stores[0])} |" if several else "")
        + "\n|---|---|---|---|---|---|---|---|---|"
        + ("---|---|" if several else "")
    )
    for r in rows:
        source = "imported with cached real vectors" if r["cached"] else "in-server ONNX"
        share = (
            "n/a (embedder bypassed)"
            if r["cached"]
            else f"{100 * r['remember_per_s'] / ceiling:.0f} %"
        )
        for scope, label in (("one", "1"), ("all", f"all {r['namespaces']}")):
            lat = r[scope]
            print(
                f"| {r['size']:,} | {source} | {r['vector_search']} | {label} "
                f"| {lat['server_p50']:.1f} / {lat['server_p95']:.1f} / {lat['server_p99']:.1f} "
                f"| {lat['client_p50']:.1f} / {lat['client_p95']:.1f} / {lat['client_p99']:.1f} "
                f"| {r['ack_per_s']:,.0f} | {r['remember_per_s']:,.0f} | {share} |"
                + (_versus(r, first[(r["size"], store_label(stores[0]))], scope) if several else "")
            )
    print(f"\n{rows[0]['queries'] if rows else 0} distinct questions per scope")
    if any("top_up" in r for r in rows):
        print(
            "\nremember into a full store (new namespace, server's own embedder)\n\n"
            "| store holds | remembered | remembered and embedded/s | % of embedder |"
            + (" store |" if several else "")
            + "\n|---|---|---|---|"
            + ("---|" if several else "")
        )
        for r in rows:
            if "top_up" in r:
                t = r["top_up"]
                print(
                    f"| {r['size']:,} | {t['n']:,} | {t['per_s']:.1f} "
                    f"| {100 * t['per_s'] / ceiling:.0f} % |"
                    + (f" {r['store']} |" if several else "")
                )
    for r in rows:
        if "stages" in r:
            on = f", {r['store']}" if several else ""
            print(f"\nstages at {r['size']:,}{on} (in-process, sequential; ms p50 / p95)\n")
            print("| stage | p50 | p95 |\n|---|---|---|")
            for name, v in r["stages"].items():
                print(f"| {name} | {v['p50']:.2f} | {v['p95']:.2f} |")


def _versus(r: dict[str, Any], base: dict[str, Any], scope: str) -> str:
    """`` store | p50 / p95 ratio |`` cells: ``r``'s server latency over ``base``'s."""
    mine, theirs = r[scope], base[scope]
    p50 = mine["server_p50"] / theirs["server_p50"]
    p95 = mine["server_p95"] / theirs["server_p95"]
    return f" {r['store']} | {p50:.3f} / {p95:.3f} |"


if __name__ == "__main__":
    main()

"""Memory latency and throughput through the HTTP API of a real ``tether serve``.

For each size (default 10k and 100k memories) on a fresh database:

1. **Embedder ceiling**: the default embedder (all-MiniLM-L6-v2 int8 ONNX, one intra-op
   thread, as the server runs it) embeds a 2,000-text sample of the same corpus in this
   process, sorted by length, in calls of 64 and of 16 texts (the indexer's chunking); the
   better rate is the ceiling. It runs before the server starts, so nothing competes.
2. **Remember throughput**: ``POST /v1/memories/batch`` (1,000 items per request) as fast
   as the server acknowledges, then wait until ``index_backlog`` is 0: memories per second
   from the first request until every memory is stored, keyword-indexed *and* embedded and
   vector-searchable. The acknowledgement rate alone is printed too.
3. **Recall latency**: once the index is final (HNSW built when above the threshold),
   300 LoCoMo questions searched sequentially over *all* namespaces (so the whole store
   is in play), default hybrid mode: server-side (envelope ``duration_ms``) and
   client-side (wall time around the request) p50 / p95 / p99 in ms.

Corpus (real text, no random vectors): from LoCoMo dev (``shared/data/locomo-dev.json``)
every turn, every shared-photo caption, every question and answer, and every window of 2
and 3 consecutive turns of a session, each in four framings (``"<speaker>: <text>"``, the
bare text, ``"On <date>, <speaker> said: <text>"``, ``"<speaker> told <other>: <text>"``);
about 24k distinct texts. Sizes beyond that reuse the texts in further namespaces
(``bench/0``, ``bench/1``, ...): dedupe is per namespace, so each is a separate memory that
is embedded and indexed on its own.

Data: LoCoMo (Maharana et al., ACL 2024, arXiv 2402.17753), snap-research, CC BY-NC 4.0.

Usage::

    .venv/bin/python benchmarks/memory_latency.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _server import running_server

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev.json"
_QUERIES = 300


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
    return list(texts), questions


def items_for(texts: list[str], n: int) -> list[dict[str, Any]]:
    return [
        {"namespace": f"bench/{i // len(texts)}", "text": texts[i % len(texts)]} for i in range(n)
    ]


def embedder_ceiling(texts: list[str]) -> float:
    """Texts per second of the default embedder on a length-sorted sample (in-process)."""
    from tether.memory.embedders import OnnxMiniLMEmbedder

    sample = sorted(texts[:: max(1, len(texts) // 2000)][:2000], key=len)
    embedder = OnnxMiniLMEmbedder()
    embedder.embed(["warm up"])
    best = 0.0
    for chunk in (64, 16):  # the embedder's own batch size, and the indexer's chunking
        t0 = time.perf_counter()
        for i in range(0, len(sample), chunk):
            embedder.embed(sample[i : i + chunk])
        best = max(best, len(sample) / (time.perf_counter() - t0))
    return best


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(http: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = http.get("/v1/memory/stats").json()["data"]
    return data


def run(size: int, texts: list[str], questions: list[str], hnsw_wait_s: float) -> dict[str, Any]:
    items = items_for(texts, size)
    namespaces = sorted({i["namespace"] for i in items})
    out: dict[str, Any] = {"size": size, "namespaces": len(namespaces)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp) / "latency.db") as url,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        t0 = time.perf_counter()
        for start in range(0, size, 1000):
            r = http.post("/v1/memories/batch", json={"items": items[start : start + 1000]})
            r.raise_for_status()
        acked = time.perf_counter()
        while stats(http)["index_backlog"]:
            time.sleep(0.5)
        done = time.perf_counter()
        out["ack_per_s"] = size / (acked - t0)
        out["remember_per_s"] = size / (done - t0)
        deadline = time.monotonic() + hnsw_wait_s
        while stats(http)["vector_search"] != "hnsw" and size > 20000:
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        out["vector_search"] = stats(http)["vector_search"]
        server_ms: list[float] = []
        client_ms: list[float] = []
        for q in (questions * (1 + _QUERIES // len(questions)))[:_QUERIES]:
            t = time.perf_counter()
            r = http.post("/v1/memories/search", json={"namespace": namespaces, "query": q})
            client_ms.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            server_ms.append(r.json()["duration_ms"])
        for name, values in (("server", server_ms), ("client", client_ms)):
            for q in (0.5, 0.95, 0.99):
                out[f"{name}_p{int(q * 100)}"] = pct(values, q)
        out["server_mean"] = statistics.fmean(server_ms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--hnsw-wait", type=float, default=600.0, help="max s to wait for HNSW")
    args = parser.parse_args()
    texts, questions = corpus(args.data)
    print(f"corpus: {len(texts)} distinct real texts, {len(questions)} questions")
    ceiling = embedder_ceiling(texts)
    print(f"embedder ceiling (MiniLM int8 ONNX, 1 thread, length-sorted): {ceiling:.0f}/s")
    print(
        "\n| memories | vector search | recall p50 / p95 / p99 ms (server) "
        "| (client) | ack/s | remember/s (embedded) | % of embedder |"
        "\n|---|---|---|---|---|---|---|"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        r = run(size, texts, questions, args.hnsw_wait)
        print(
            f"| {size:,} | {r['vector_search']} "
            f"| {r['server_p50']:.1f} / {r['server_p95']:.1f} / {r['server_p99']:.1f} "
            f"| {r['client_p50']:.1f} / {r['client_p95']:.1f} / {r['client_p99']:.1f} "
            f"| {r['ack_per_s']:.0f} | {r['remember_per_s']:.0f} "
            f"| {100 * r['remember_per_s'] / ceiling:.0f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Recall benchmark through the HTTP API of a real ``tether serve`` (LoCoMo dev protocol).

Runs the retrieval protocol of ``shared/data/README.md``: one namespace per conversation,
every turn remembered as ``"<speaker>: <text>"`` (metadata ``dia_id``, ``session``;
``occurred_at`` = the session date) through ``POST /v1/memories/batch``; once the
embedding backlog has drained, every question with valid evidence is asked verbatim
through ``POST /v1/memories/search`` (top 10) in each ``mode``: ``bm25``, ``vector`` and
``hybrid`` (Tether's default). Prints R@1/5/10 and MRR for categories 1-4 and, apart,
category 5, plus the server-side search latency (envelope ``duration_ms``).

The three ranking rows search with ``touch: false`` (no access statistics), so every
question sees the same store. A last row repeats the default with ``touch: true``, as in
production: each search resets the recency of what it returned (at most +15 %), so
earlier questions nudge later ones.

``--loco`` adds the honest figure: **leave-one-conversation-out**. Every tuned ranking
constant is chosen on two conversations (``ranking_offline.choose``: the server's ranking
code in-process, best category 1-4 R@5 over ``ranking_offline.GRID``) and the third is
then searched through a server started with those constants (``TETHER_RECALL_PARAMS``)
holding only that conversation; the table gives each fold, their mean and, beside it, the
in-sample default (constants chosen on all three), with R@1/5/10 and MRR per category and
the server's p50/p95 search latency.

``--db`` picks the store under test (``sqlite``, the default, or a PostgreSQL server URL on
which a fresh database is created and dropped afterwards); several, comma-separated, run
one after another on the same data, and the first is the baseline: a last table gives
each later store's R@5 and MRR difference and its server latency ratio to it
(``--db sqlite,postgresql://...`` compares the two backends).

Data: LoCoMo (Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM
Agents", ACL 2024, arXiv 2402.17753), snap-research, CC BY-NC 4.0.

Usage::

    .venv/bin/python benchmarks/memory_recall.py [--data PATH] [--db sqlite,postgresql://...]
        [--loco]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from _server import DB_HELP, fresh_store, postgres_server, running_server, store_label
from ranking_offline import evidence_ids

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev.json"
KS = (1, 5, 10)
MODES = (("BM25 only", "bm25"), ("vector only", "vector"), ("Tether default (hybrid)", "hybrid"))


def session_date(text: str) -> str:
    """'1:56 pm on 8 May, 2023' -> RFC 3339 UTC."""
    dt = datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
    return dt.isoformat()


def load(path: Path) -> list[dict[str, Any]]:
    """-> [{sample_id, items: [memory bodies], questions: [(text, category, evidence)]}]"""
    out = []
    for sample in json.loads(path.read_text()):
        conv = sample["conversation"]
        keys = sorted(
            (k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:])
        )
        items = []
        for key in keys:
            when = session_date(conv[f"{key}_date_time"])
            for turn in conv[key]:
                items.append(
                    {
                        "namespace": f"locomo/{sample['sample_id']}",
                        "text": f"{turn['speaker']}: {turn['text']}",
                        "kind": "episode",
                        "metadata": {"dia_id": turn["dia_id"], "session": int(key[8:])},
                        "occurred_at": when,
                    }
                )
        known = {i["metadata"]["dia_id"] for i in items}
        questions = []
        for qa in sample["qa"]:
            evidence = evidence_ids(qa, known)
            if evidence:
                questions.append((qa["question"], int(qa["category"]), evidence))
        out.append({"sample_id": sample["sample_id"], "items": items, "questions": questions})
    return out


def ingest(http: httpx.Client, convs: list[dict[str, Any]]) -> None:
    for conv in convs:
        items = conv["items"]
        for start in range(0, len(items), 1000):
            r = http.post("/v1/memories/batch", json={"items": items[start : start + 1000]})
            r.raise_for_status()
    while http.get("/v1/memory/stats").json()["data"]["index_backlog"]:
        time.sleep(0.2)


def evaluate(
    http: httpx.Client, convs: list[dict[str, Any]], mode: str, touch: bool
) -> tuple[dict[str, list[float]], list[float]]:
    """-> ({"1-4" | "5" | "cat1".."cat4": [R@1, R@5, R@10, MRR, n]}, server ms per
    question)."""
    buckets: dict[str, list[list[float]]] = {
        "1-4": [],
        "5": [],
        **{f"cat{c}": [] for c in (1, 2, 3, 4)},
    }
    server_ms: list[float] = []
    for conv in convs:
        ns = f"locomo/{conv['sample_id']}"
        for text, category, evidence in conv["questions"]:
            r = http.post(
                "/v1/memories/search",
                json={"namespace": ns, "query": text, "mode": mode, "touch": touch},
            )
            r.raise_for_status()
            body = r.json()
            server_ms.append(body["duration_ms"])
            top = [res["memory"]["metadata"]["dia_id"] for res in body["data"]["results"]]
            row = [len(evidence & set(top[:k])) / len(evidence) for k in KS]
            row.append(next((1.0 / (i + 1) for i, m in enumerate(top) if m in evidence), 0.0))
            buckets["5" if category == 5 else "1-4"].append(row)
            if category != 5:
                buckets[f"cat{category}"].append(row)
    means = {
        k: [statistics.fmean(col) for col in zip(*v, strict=True)] + [len(v)]
        for k, v in buckets.items()
        if v
    }
    return means, server_ms


def category_table(title: str, rows: list[tuple[str, dict[str, list[float]]]]) -> None:
    """Print R@1/5/10 and MRR per category (1 multi-hop, 2 temporal, 3 open-domain,
    4 single-hop) for each named result."""
    print(f"\n{title}\n\n| ranking | category | n | R@1 | R@5 | R@10 | MRR |")
    print("|---|---|---|---|---|---|---|")
    for name, res in rows:
        for key in ("cat1", "cat2", "cat3", "cat4", "1-4"):
            a = res.get(key)
            if a is not None:
                label = "1-4 (all)" if key == "1-4" else key[3:]
                print(
                    f"| {name} | {label} | {int(a[4])} | {a[0]:.3f} | {a[1]:.3f} "
                    f"| {a[2]:.3f} | {a[3]:.3f} |"
                )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(db: str, convs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every ranking row on a fresh store ``db`` (``sqlite`` or a PostgreSQL server URL):
    ``{row name: {"a": [R@1, R@5, R@10, MRR, n] (categories 1-4), "c": category 5,
    "ms": server-side ms per question}}``; prints that store's table."""
    out: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_store(db, Path(tmp), "recall") as store,
        running_server(store, home=Path(tmp)) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        t0 = time.perf_counter()
        ingest(http, convs)
        n = sum(len(c["items"]) for c in convs)
        print(
            f"\nstore: {store_label(db)}; ingested and embedded {n} memories in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        print(
            "\n| ranking (via HTTP) | n | R@1 | R@5 | R@10 | MRR | cat 5 R@5 | cat 5 MRR "
            "| server p50 ms | p95 ms |\n|---|---|---|---|---|---|---|---|---|---|"
        )
        runs = [(name, mode, False) for name, mode in MODES]
        runs.append(("default, touch=true (access resets recency)", "hybrid", True))
        for name, mode, touch in runs:
            res, ms = evaluate(http, convs, mode, touch)
            a, c = res["1-4"], res["5"]
            out[name] = {"a": a, "c": c, "ms": ms}
            print(
                f"| {name} | {int(a[4])} | {a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | {a[3]:.3f} "
                f"| {c[1]:.3f} | {c[3]:.3f} | {statistics.median(ms):.1f} "
                f"| {pct(ms, 0.95):.1f} |",
                flush=True,
            )
            out[name]["res"] = res
    category_table(
        f"per category ({store_label(db)})",
        [(name, out[name]["res"]) for name, _ in MODES],
    )
    return out


def loco(db: str, convs: list[dict[str, Any]], data: Path) -> dict[str, Any]:
    """Leave-one-conversation-out through the HTTP API on store ``db``: per fold, the
    constants chosen on the other two conversations (offline, ``ranking_offline.choose``)
    and a fresh server with them holding only the held-out conversation. Prints the
    folds, their mean and the pooled latency; returns ``{"folds": [...], "mean": [R@1,
    R@5, R@10, MRR], "ms": [...]}``."""
    import ranking_offline
    from tether.memory.embedders import OnnxMiniLMEmbedder

    offline = ranking_offline.load(data, OnnxMiniLMEmbedder())
    folds = []
    all_ms: list[float] = []
    for i, held in enumerate(convs):
        chosen = ranking_offline.choose([c for j, c in enumerate(offline) if j != i])
        env = {"TETHER_RECALL_PARAMS": json.dumps(chosen)}
        with (
            tempfile.TemporaryDirectory() as tmp,
            fresh_store(db, Path(tmp), "loco") as store,
            running_server(store, env=env, home=Path(tmp)) as url,
            httpx.Client(base_url=url, timeout=60) as http,
        ):
            ingest(http, [held])
            res, ms = evaluate(http, [held], "hybrid", False)
        all_ms += ms
        folds.append((held["sample_id"], chosen, res))
    print(
        f"\nleave-one-conversation-out via HTTP ({store_label(db)}; constants chosen on the "
        "other two conversations)\n\n| held out | constants chosen | n | R@1 | R@5 | R@10 "
        "| MRR |\n|---|---|---|---|---|---|---|"
    )
    for sample_id, chosen, res in folds:
        a = res["1-4"]
        print(
            f"| {sample_id} | {json.dumps(chosen)} | {int(a[4])} | {a[0]:.3f} | {a[1]:.3f} "
            f"| {a[2]:.3f} | {a[3]:.3f} |"
        )
    mean = [statistics.fmean(r["1-4"][k] for _, _, r in folds) for k in range(4)]
    print(
        f"| **mean of the 3 folds** | | | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} "
        f"| {mean[3]:.3f} |"
    )
    print(
        f"\nserver search latency over the folds: p50 {statistics.median(all_ms):.1f} ms, "
        f"p95 {pct(all_ms, 0.95):.1f} ms"
    )
    pooled: dict[str, list[float]] = {}
    for key in ("cat1", "cat2", "cat3", "cat4", "1-4"):
        parts = [r[key] for _, _, r in folds if key in r]
        n = sum(p[4] for p in parts)
        pooled[key] = [sum(p[k] * p[4] for p in parts) / n for k in range(4)] + [n]
    category_table(
        f"leave-one-conversation-out per category ({store_label(db)})",
        [*((f"held out {sid}", res) for sid, _, res in folds), ("all folds pooled", pooled)],
    )
    return {"folds": folds, "mean": mean, "ms": all_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--loco", action="store_true", help="also run leave-one-conversation-out (honest)"
    )
    parser.add_argument(
        "--db",
        default="sqlite",
        help=DB_HELP + "; several, comma-separated: the first is the baseline of the last table",
    )
    args = parser.parse_args()
    convs = load(args.data)
    results: list[tuple[str, dict[str, dict[str, Any]]]] = []
    with contextlib.ExitStack() as stack:
        for option in args.db.split(","):
            db = stack.enter_context(postgres_server(option))
            results.append((store_label(db), measure(db, convs)))
            if args.loco:
                folds = loco(db, convs, args.data)
                results[-1][1]["leave-one-conversation-out mean"] = {
                    "a": folds["mean"],
                    "ms": folds["ms"],
                }
    if len(results) < 2:
        return
    base_label, base = results[0]
    print(
        f"\nagainst {base_label} (categories 1-4; server-side latency, median / p95 ratio)\n\n"
        "| store | ranking | R@5 | R@5 - base | MRR - base | server p50 / p95 ms "
        "| p50 ratio | p95 ratio |\n|---|---|---|---|---|---|---|---|"
    )
    for label, rows in results:
        for name, r in rows.items():
            b = base[name]
            p50, p95 = statistics.median(r["ms"]), pct(r["ms"], 0.95)
            print(
                f"| {label} | {name} | {r['a'][1]:.3f} | {r['a'][1] - b['a'][1]:+.3f} "
                f"| {r['a'][3] - b['a'][3]:+.3f} | {p50:.1f} / {p95:.1f} "
                f"| {p50 / statistics.median(b['ms']):.3f} | {p95 / pct(b['ms'], 0.95):.3f} |"
            )


if __name__ == "__main__":
    main()

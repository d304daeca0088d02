"""Ingest throughput: HTTP batched and single-event writes vs raw in-process SQLite.

Run: ``.venv/bin/python benchmarks/ingest.py`` (or ``make bench``).

Starts a real ``tether serve`` on a fresh database; a *separate client process* posts
events over keep-alive connections: batches of 100 to ``POST /v1/sessions/{id}/events``,
then one event per request, each event with a unique idempotency key. The client is
``wrk`` (C; ``apt-get install wrk``) when it is on PATH, because a Python client costs
~250 us of CPU per request on a 2-core machine and would measure itself; without wrk an
aiohttp client runs instead and the table says so. After each run the server's stored
event count is checked against what the client saw acknowledged.

The baseline ("ceiling") inserts the same rows with the server's own ``insert_rows`` (the
statements its append uses) into a fresh database in this process, 100 rows per
transaction. Prints median and p95 request latency and each rate's ratio to the ceiling, and with
``--against OTHER/src`` the same for another checkout's server, measured alternately in
the same run, with this tree's ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _server import running_server


def _event(i: int) -> dict[str, Any]:
    return {
        "kind": "tool" if i % 2 else "llm",
        "name": "search" if i % 2 else "gpt",
        "status": "ok",
        "duration_ms": 12.5,
        "input": {"query": f"what is item {i}?"},
        "output": {"answer": "a short answer of a few words"},
        "attributes": {"i": i},
        "idempotency_key": f"k-{i}",
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(url: str, mode: str, total_events: int, concurrency: int) -> dict[str, Any]:
    import aiohttp

    batch = 100 if mode == "batched" else 1
    requests = total_events // batch
    sessions = [f"bench-{mode}-{i}" for i in range(concurrency)]
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=conn) as http:
        counter = iter(range(requests))

        async def worker(w: int) -> None:
            sid = sessions[w]
            for n in counter:
                body = (
                    {"events": [_event(n * batch + j) for j in range(batch)]}
                    if batch > 1
                    else _event(n)
                )
                t0 = time.perf_counter()
                async with http.post(f"/v1/sessions/{sid}/events", json=body) as r:
                    await r.read()
                    if r.status not in (200, 201):
                        raise RuntimeError(f"{r.status}: {await r.text()}")
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {
        "mode": mode,
        "requests": requests,
        "events": requests * batch,
        "seconds": elapsed,
        "req_per_s": requests / elapsed,
        "events_per_s": requests * batch / elapsed,
        "p50_ms": statistics.median(latencies),
        "p95_ms": _pct(latencies, 0.95),
    }


def _ceiling(total_events: int) -> dict[str, Any]:
    """Same rows, same INSERT, in-process, 100 rows per transaction: what SQLite alone does.

    Rows are built by the server's own ``prepare_events`` (ids, JSON encoding, a correlation
    id per request) inside the timed loop, as the server does, and inserted by its own
    ``insert_rows`` with the statements its append uses; HTTP, parsing, validation, the
    session lookup and counters are what it leaves out.
    """
    from tether.domain.events import EventIn
    from tether.domain.time import new_id, now_ms
    from tether.store.migrate import upgrade
    from tether.store.sql_events import insert_rows, prepare_events

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ceiling.db"
        upgrade(db)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "INSERT INTO sessions (tenant_id, id, created_at, updated_at) "
            "VALUES ('default', 'c', 0, 0)"
        )
        events = [EventIn.model_validate(_event(i)) for i in range(total_events)]
        latencies: list[float] = []
        t0 = time.perf_counter()
        for start in range(0, total_events, 100):
            t1 = time.perf_counter()
            prepared = prepare_events(
                events[start : start + 100],
                tenant_id="default",
                correlation_id=new_id(),
                now=now_ms(),
            )
            for j, row in enumerate(prepared.rows):
                row[1], row[2] = 1, start + j + 1  # session_pk, seq
            conn.execute("BEGIN")
            insert_rows(conn, prepared.rows, prepared.columns, skip_stored_keys=True)
            conn.execute("COMMIT")
            latencies.append((time.perf_counter() - t1) * 1000)
        elapsed = time.perf_counter() - t0
        conn.close()
    return {
        "mode": "ceiling (in-process SQLite, 100/txn)",
        "requests": len(latencies),
        "events": total_events,
        "seconds": elapsed,
        "req_per_s": len(latencies) / elapsed,
        "events_per_s": total_events / elapsed,
        "p50_ms": statistics.median(latencies),
        "p95_ms": _pct(latencies, 0.95),
    }


def _wrk(url: str, mode: str, seconds: int, connections: int) -> dict[str, Any]:
    batch = 100 if mode == "batched" else 1
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(Path(__file__).with_name("ingest.lua")),
            url,
            "--",
            str(batch),
            f"bench-{mode}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("JSON "))
    r = json.loads(line[5:])
    if r["errors"] or r["non2xx"]:
        raise RuntimeError(f"wrk saw failures: {r}\n{out.stdout}")
    return {
        "mode": f"{mode} (wrk, {connections} conns)",
        "requests": r["requests"],
        "events": r["requests"] * batch,
        "seconds": r["seconds"],
        "req_per_s": r["requests"] / r["seconds"],
        "events_per_s": r["requests"] * batch / r["seconds"],
        "p50_ms": r["p50_ms"],
        "p95_ms": r["p95_ms"],
    }


def _stored_events(url: str) -> int:
    import httpx

    total: int = httpx.get(f"{url}/v1/stats", timeout=30).json()["data"]["events"]["total"]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batched-events", type=int, default=100_000)
    ap.add_argument("--single-events", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10, help="wrk run length per mode")
    ap.add_argument("--python-client", action="store_true", help="use aiohttp even if wrk exists")
    ap.add_argument(
        "--against",
        type=Path,
        help="also measure the server of another checkout's src/ (e.g. a git worktree of the "
        "previous release), alternating with this tree, and print the ratio",
    )
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (medians shown)")
    ap.add_argument("--client", help=argparse.SUPPRESS)  # internal: run as the client process
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        total = args.batched_events if args.mode == "batched" else args.single_events
        print(json.dumps(asyncio.run(_client(args.client, args.mode, total, args.concurrency))))
        return

    use_wrk = shutil.which("wrk") is not None and not args.python_client
    ceiling = _ceiling(args.batched_events)
    # Servers to measure, alternating per round so a box that speeds up or slows down
    # during the run affects both alike: this tree, and optionally another checkout.
    servers: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.against is not None:
        servers.insert(0, (f"against {args.against}", args.against.resolve()))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for label, src in servers:
            for r in _serve_and_measure(args, src, use_wrk):
                runs.setdefault((label, r["mode"]), []).append(r)
    print(
        f"{'server':<26} {'mode':<34} {'events/s':>10} {'req/s':>9} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'vs ceiling':>10} {'vs against':>10}"
    )
    c = ceiling
    print(
        f"{'(in-process)':<26} {c['mode']:<34} {c['events_per_s']:>10.0f} {c['req_per_s']:>9.0f} "
        f"{c['p50_ms']:>8.2f} {c['p95_ms']:>8.2f} {1:>10.3f} {'':>10}"
    )
    for (label, mode), rs in runs.items():
        rate = statistics.median(r["events_per_s"] for r in rs)
        base = runs.get((servers[0][0], mode)) if len(servers) > 1 else None
        versus = (
            f"{rate / statistics.median(r['events_per_s'] for r in base):>10.3f}" if base else ""
        )
        print(
            f"{label:<26} {mode:<34} {rate:>10.0f} "
            f"{statistics.median(r['req_per_s'] for r in rs):>9.0f} "
            f"{statistics.median(r['p50_ms'] for r in rs):>8.2f} "
            f"{statistics.median(r['p95_ms'] for r in rs):>8.2f} "
            f"{rate / ceiling['events_per_s']:>10.3f} {versus:>10}"
        )


def _serve_and_measure(
    args: argparse.Namespace, src: Path | None, use_wrk: bool
) -> list[dict[str, Any]]:
    """Both modes against one fresh server (of ``src``, else this tree); stored counts
    are checked against what the client saw acknowledged."""
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp) / "bench.db", src=src) as url,
    ):
        import httpx

        for mode in ("batched", "single"):
            for i in range(1, args.concurrency + 1):  # wrk uses <prefix>-1; aiohttp -0..n-1
                for sid in (f"bench-{mode}-{i}", f"bench-{mode}-{i - 1}"):
                    httpx.post(f"{url}/v1/sessions", json={"id": sid}, timeout=30)
            before = _stored_events(url)
            if use_wrk:
                r = _wrk(url, mode, args.seconds, args.concurrency)
            else:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--client",
                        url,
                        "--mode",
                        mode,
                        "--batched-events",
                        str(args.batched_events),
                        "--single-events",
                        str(args.single_events),
                        "--concurrency",
                        str(args.concurrency),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                r = json.loads(out.stdout)
                r["mode"] = f"{mode} (aiohttp, {args.concurrency} conns)"
            stored = _stored_events(url) - before
            # wrk stops its clock with requests still in flight: those are stored but not
            # counted, so at most one batch per connection may be extra, never fewer.
            in_flight = args.concurrency * (100 if mode == "batched" else 1)
            if not r["events"] <= stored <= r["events"] + in_flight:
                raise RuntimeError(
                    f"{mode}: client saw {r['events']} acknowledged, server stored {stored}"
                )
            results.append(r)
    return results


if __name__ == "__main__":
    main()

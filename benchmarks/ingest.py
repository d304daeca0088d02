"""Ingest throughput: HTTP batched and single-event writes vs the store's raw in-process insert.

Run: ``.venv/bin/python benchmarks/ingest.py [--db sqlite|postgresql://...]`` (or
``make bench``).

Starts a real ``tether serve`` on a fresh database (``--db sqlite``, the default: a SQLite
file in a temp folder; ``--db postgresql://...``: a PostgreSQL *server*, on which a new
database is created per server and dropped afterwards); a *separate client process* posts
events over keep-alive connections: batches of 100 to ``POST /v1/sessions/{id}/events``,
then one event per request, each event with a unique idempotency key. The client is
``wrk`` (C; ``apt-get install wrk``) when it is on PATH, because a Python client costs
~250 us of CPU per request on a 2-core machine and would measure itself; without wrk an
aiohttp client runs instead and the table says so. After each run the server's stored
event count is checked against what the client saw acknowledged.

The baseline ("ceiling") inserts the same rows with the store backend's own ``insert_rows``
(the statements its append uses: multi-row ``INSERT`` on SQLite, ``COPY`` on PostgreSQL)
into a fresh database of the same backend in this process, 100 rows per transaction,
before each round. Prints median and p95 request latency and each rate's ratio to its
store's ceiling, and with ``--against OTHER/src`` the same for another checkout's server,
measured alternately in the same run, with this tree's ratio to it. ``--db`` takes several
stores, comma-separated: each round measures each of them in turn (``--rounds 3 --db
sqlite,postgresql://...`` interleaves the two backends), one table per store.

``--auth`` measures the cost of authentication: the same tree twice per round, in local
mode (no key) and with ``TETHER_REQUIRE_AUTH=true`` and a write key on every request (its
rate limit set high enough never to refuse, so the token-bucket check still runs), with
the keyed server's ratio to local mode.

``--metrics`` measures the cost of the Prometheus metrics (docs/metrics.md): the same tree
twice per round, with ``TETHER_METRICS_ENABLED=false`` and with metrics on (the default),
side by side with the ratio to metrics off. The events are tool and llm calls with
durations, so every one is counted by kind, by name and in a duration histogram. After the
metrics-on run its ``/metrics`` is scraped and its ingested-event count checked against the
store's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _server import (
    DB_HELP,
    cpu_times,
    fresh_database,
    fresh_store,
    is_postgres,
    postgres_server,
    running_server,
    steal_share,
    store_label,
)


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


async def _client(
    url: str, mode: str, total_events: int, concurrency: int, key: str | None
) -> dict[str, Any]:
    import aiohttp

    batch = 100 if mode == "batched" else 1
    requests = total_events // batch
    sessions = [f"bench-{mode}-{i}" for i in range(concurrency)]
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession(url, connector=conn, headers=headers) as http:
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


def _ceiling(total_events: int, db: str) -> dict[str, Any]:
    """Same rows, same statements, in-process, 100 rows per transaction: what the store
    alone does (``db``: ``sqlite`` or a PostgreSQL server URL, as ``--db``).

    Rows are built by the server's own ``prepare_events`` (ids, JSON encoding, a correlation
    id per request) inside the timed loop, as the server does, and inserted by the backend's
    own ``insert_rows`` with the statements its append uses (SQLite: multi-row ``INSERT ...
    ON CONFLICT DO NOTHING``; PostgreSQL: ``COPY``); HTTP, parsing, validation, the session
    lookup and lock, PostgreSQL's idempotency-key lookup and the counters update are what
    it leaves out.
    """
    from tether.domain.events import EventIn

    events = [EventIn.model_validate(_event(i)) for i in range(total_events)]
    if is_postgres(db):
        with fresh_database(db) as url:
            latencies, elapsed = _ceiling_postgres(events, url)
        label = "ceiling (in-process PostgreSQL COPY, 100/txn)"
    else:
        latencies, elapsed = _ceiling_sqlite(events)
        label = "ceiling (in-process SQLite, 100/txn)"
    return {
        "mode": label,
        "requests": len(latencies),
        "events": total_events,
        "seconds": elapsed,
        "req_per_s": len(latencies) / elapsed,
        "events_per_s": total_events / elapsed,
        "p50_ms": statistics.median(latencies),
        "p95_ms": _pct(latencies, 0.95),
    }


def _batches(events: list[Any]) -> Iterator[tuple[int, Any]]:
    """``(first seq - 1, prepared rows)`` per 100 events, built as the server builds them."""
    from tether.domain.time import new_id, now_ms
    from tether.store.prepared import prepare_events

    for start in range(0, len(events), 100):
        prepared = prepare_events(
            events[start : start + 100], tenant_id="default", correlation_id=new_id(), now=now_ms()
        )
        yield start, prepared


def _ceiling_sqlite(events: list[Any]) -> tuple[list[float], float]:
    from tether.store.sqlite.events import insert_rows
    from tether.store.sqlite.migrate import upgrade

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
        latencies: list[float] = []
        t0 = time.perf_counter()
        t1 = t0
        for start, prepared in _batches(events):
            for j, row in enumerate(prepared.rows):
                row[1], row[2] = 1, start + j + 1  # session_pk, seq
            conn.execute("BEGIN")
            insert_rows(conn, prepared.rows, prepared.columns, skip_stored_keys=True)
            conn.execute("COMMIT")
            t2 = time.perf_counter()
            latencies.append((t2 - t1) * 1000)
            t1 = t2
        elapsed = time.perf_counter() - t0
        conn.close()
    return latencies, elapsed


def _ceiling_postgres(events: list[Any], url: str) -> tuple[list[float], float]:
    from tether.store.postgres.engine import _connect
    from tether.store.postgres.events import insert_rows
    from tether.store.postgres.migrate import upgrade

    upgrade(url)
    conn = _connect(url)  # the server's writer connection (settings, row factory)
    with conn.transaction():
        (session_pk,) = conn.execute(
            "INSERT INTO sessions (tenant_id, id, created_at, updated_at) "
            "VALUES ('default', 'c', 0, 0) RETURNING pk"
        ).fetchone()
    latencies: list[float] = []
    t0 = time.perf_counter()
    t1 = t0
    for start, prepared in _batches(events):
        for j, row in enumerate(prepared.rows):
            row[1], row[2] = session_pk, start + j + 1  # session_pk, seq
        with conn.transaction():
            insert_rows(conn, prepared.rows, prepared.columns)
        t2 = time.perf_counter()
        latencies.append((t2 - t1) * 1000)
        t1 = t2
    elapsed = time.perf_counter() - t0
    conn.close()
    return latencies, elapsed


def _wrk(url: str, mode: str, seconds: int, connections: int, key: str | None) -> dict[str, Any]:
    batch = 100 if mode == "batched" else 1
    auth = [f"Bearer {key}"] if key else []
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
            *auth,
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


def _stored_events(url: str, headers: dict[str, str]) -> int:
    import httpx

    stats = httpx.get(f"{url}/v1/stats", timeout=30, headers=headers).json()
    total: int = stats["data"]["events"]["total"]
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
    ap.add_argument(
        "--auth",
        action="store_true",
        help="measure this tree in local mode and with an API key, alternately, and print "
        "the keyed server's ratio to local mode",
    )
    ap.add_argument(
        "--metrics",
        action="store_true",
        help="measure this tree with metrics off and on, alternately, and print the "
        "ratio of metrics on to off",
    )
    ap.add_argument("--key", help=argparse.SUPPRESS)  # internal: the client's API key
    ap.add_argument(
        "--db",
        default="sqlite",
        help=DB_HELP + "; several, comma-separated (e.g. sqlite,postgresql://...), are "
        "measured alternately round by round, a table each",
    )
    ap.add_argument("--client", help=argparse.SUPPRESS)  # internal: run as the client process
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        total = args.batched_events if args.mode == "batched" else args.single_events
        result = _client(args.client, args.mode, total, args.concurrency, args.key)
        print(json.dumps(asyncio.run(result)))
        return

    use_wrk = shutil.which("wrk") is not None and not args.python_client
    with contextlib.ExitStack() as stack:
        dbs = [stack.enter_context(postgres_server(db)) for db in args.db.split(",")]
        _measure(args, dbs, use_wrk)


def _measure(args: argparse.Namespace, dbs: list[str], use_wrk: bool) -> None:
    """Per round, per store: the ceiling, then each server (this tree, and ``--against``)
    on a fresh store of it; then one table per store, medians over the rounds."""
    # Servers to measure, alternating per round so a box that speeds up or slows down
    # during the run affects both alike: this tree, and optionally another checkout.
    servers: list[tuple[str, Path | None, bool]] = [("this tree", None, False)]
    if args.auth:
        servers = [("local mode", None, False), ("with a key", None, True)]
    elif args.metrics:
        servers = [("metrics off", None, False), ("metrics on", None, False)]
    elif args.against is not None:
        servers.insert(0, (f"against {args.against}", args.against.resolve(), False))
    ceilings: dict[str, list[dict[str, Any]]] = {}
    runs: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    cpu_before = cpu_times()
    for _ in range(args.rounds):
        for db in dbs:
            ceilings.setdefault(db, []).append(_ceiling(args.batched_events, db))
            for label, src, auth in servers:
                env = _METRICS_OFF if label == "metrics off" else {}
                for r in _serve_and_measure(args, db, src, use_wrk, auth, env):
                    runs.setdefault(db, {}).setdefault((label, r["mode"]), []).append(r)
    print(f"hypervisor steal during the run: {steal_share(cpu_before, cpu_times()):.1%}")
    for db in dbs:
        _table(db, ceilings[db], runs[db], servers)


def _table(
    db: str,
    ceilings: list[dict[str, Any]],
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    servers: list[tuple[str, Path | None, bool]],
) -> None:
    """One store's table: medians over the rounds, each rate's ratio to the ceiling."""

    def med(rs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    ceiling = med(ceilings, "events_per_s")
    print(f"\nstore: {store_label(db)} ({len(ceilings)} round(s), medians)")
    print(
        f"{'server':<26} {'mode':<46} {'events/s':>10} {'req/s':>9} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'vs ceiling':>10} {'vs ' + servers[0][0]:>14}"
    )
    print(
        f"{'(in-process)':<26} {ceilings[0]['mode']:<46} {ceiling:>10.0f} "
        f"{med(ceilings, 'req_per_s'):>9.0f} {med(ceilings, 'p50_ms'):>8.2f} "
        f"{med(ceilings, 'p95_ms'):>8.2f} {1:>10.3f} {'':>10}"
    )
    for (label, mode), rs in runs.items():
        rate = med(rs, "events_per_s")
        base = runs.get((servers[0][0], mode)) if len(servers) > 1 else None
        versus = f"{rate / med(base, 'events_per_s'):>14.3f}" if base else ""
        print(
            f"{label:<26} {mode:<46} {rate:>10.0f} {med(rs, 'req_per_s'):>9.0f} "
            f"{med(rs, 'p50_ms'):>8.2f} {med(rs, 'p95_ms'):>8.2f} "
            f"{rate / ceiling:>10.3f} {versus:>14}"
        )
    if len(ceilings) > 1:
        rounds = [("ceiling", ceilings)] + [(f"{lb}, {m}", rs) for (lb, m), rs in runs.items()]
        for name, rs in rounds:
            print(f"  per round, {name}: " + " / ".join(f"{r['events_per_s']:.0f}" for r in rs))


def _create_key(store: Path | str, home: Path) -> str:
    """A write key made with ``tether keys create`` on ``store``."""
    out = subprocess.run(
        [
            *(sys.executable, "-m", "tether", "keys", "create", "--db", str(store)),
            *("--tenant", "default", "--scope", "write", "--json"),
        ],
        env={**os.environ, "TETHER_HOME": str(home)},
        check=True,
        capture_output=True,
        text=True,
    )
    secret: str = json.loads(out.stdout)["secret"]
    return secret


#: The server environment of ``--metrics``'s baseline.
_METRICS_OFF = {"TETHER_METRICS_ENABLED": "false"}


def _serve_and_measure(
    args: argparse.Namespace,
    db: str,
    src: Path | None,
    use_wrk: bool,
    auth: bool,
    extra_env: dict[str, str],
) -> list[dict[str, Any]]:
    """Both modes against one fresh server (of ``src``, else this tree; with ``auth``,
    requiring a key and sending one; ``extra_env`` on top); stored counts are checked
    against what the client saw acknowledged, and (with metrics on, ``--metrics``) against
    what ``/metrics`` counted."""
    results = []
    env = {"TETHER_REQUIRE_AUTH": "true", "TETHER_RATE_LIMIT_WRITE": "1000000"} if auth else {}
    env.update(extra_env)
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_store(db, Path(tmp), "bench") as store,
        running_server(store, env=env, src=src, home=Path(tmp)) as url,
    ):
        import httpx

        key = _create_key(store, Path(tmp)) if auth else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        for mode in ("batched", "single"):
            for i in range(1, args.concurrency + 1):  # wrk uses <prefix>-1; aiohttp -0..n-1
                for sid in (f"bench-{mode}-{i}", f"bench-{mode}-{i - 1}"):
                    httpx.post(f"{url}/v1/sessions", json={"id": sid}, timeout=30, headers=headers)
            before = _stored_events(url, headers)
            if use_wrk:
                r = _wrk(url, mode, args.seconds, args.concurrency, key)
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
                        *(["--key", key] if key else []),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                r = json.loads(out.stdout)
                r["mode"] = f"{mode} (aiohttp, {args.concurrency} conns)"
            stored = _stored_events(url, headers) - before
            # wrk stops its clock with requests still in flight: those are stored but not
            # counted, so at most one batch per connection may be extra, never fewer.
            in_flight = args.concurrency * (100 if mode == "batched" else 1)
            if not r["events"] <= stored <= r["events"] + in_flight:
                raise RuntimeError(
                    f"{mode}: client saw {r['events']} acknowledged, server stored {stored}"
                )
            results.append(r)
        if args.metrics and extra_env != _METRICS_OFF:
            _check_counted(url, headers)
    return results


def _check_counted(url: str, headers: dict[str, str]) -> None:
    """The events ``/metrics`` counted equal the events the store holds."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=30).text
    counted = sum(
        s.value
        for f in text_string_to_metric_families(text)
        if f.name == "tether_events_ingested"
        for s in f.samples
        if s.name == "tether_events_ingested_total"
    )
    stored = _stored_events(url, headers)
    if counted != stored:
        raise RuntimeError(f"/metrics counted {counted:.0f} events, the store holds {stored}")


if __name__ == "__main__":
    main()

"""Live fan-out: delivery latency (post to receive) to WebSocket subscribers of one session.

Run: ``.venv/bin/python benchmarks/fanout.py [--subscribers 1,10,100] [--rate 1000]
[--seconds 5] [--db sqlite|postgresql://...]``.

For each bus (in-process; and Redis, when ``redis-server`` is on PATH: a private one is
started) and each subscriber count, a fresh ``tether serve`` (``tether.testing``) on a
fresh store. N real WebSocket clients (``websockets``, in this process) subscribe to
``session:bench`` on ``/v1/ws``; a writer posts events to the session at ``--rate``
events/s, 10 per request every 10 ms, each event carrying in ``attributes.t`` the wall
clock (``time.time_ns()``) taken just before its request is sent; the writer is a
separate process, so the subscribers' work cannot slow its pace. A subscriber's latency
for an event is its receive time minus that: the HTTP request, the commit, the bus
(Redis pub/sub round trip included), the store read of the tail and the WebSocket send.
The first second is warm-up and not counted. Every subscriber must receive every event
once, in order (checked).

Prints per run: events posted per second, p50/p95/p99/max latency in ms over every
(subscriber, event) pair, the server's RSS (MB) before the subscribers connect and after
the run, and each run's p99 as a ratio of the baseline (1 subscriber, in-process bus,
measured in the same process). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

sys.path.insert(0, str(Path(__file__).parent))

from _server import (
    DB_HELP,
    cpu_times,
    free_port,
    fresh_store,
    postgres_server,
    steal_share,
    store_label,
)
from tether.testing import TetherServer

SESSION = "bench"
PER_REQUEST = 10
TICK_S = 0.01


def _rss_mb(srv: TetherServer) -> float:
    assert srv.proc is not None
    status = Path(f"/proc/{srv.proc.pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


@contextlib.contextmanager
def _redis() -> Iterator[str | None]:
    """A private redis-server's URL, or ``None`` when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _subscriber(url: str, ready: asyncio.Event, total: int) -> list[tuple[int, int]]:
    """``(seq, latency ns)`` of every event until ``total`` arrived."""
    out: list[tuple[int, int]] = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(
            orjson.dumps({"op": "subscribe", "channels": [f"session:{SESSION}"]}).decode()
        )
        assert orjson.loads(await ws.recv())["type"] == "subscribed"
        ready.set()
        while len(out) < total:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            now = time.time_ns()
            if message.get("type") != "events":
                raise RuntimeError(f"unexpected message: {message}")
            out.extend((e["seq"], now - e["attributes"]["t"]) for e in message["data"])
    return out


async def _writer(url: str, total: int, rate: int) -> float:
    """Post ``total`` events at ``rate``/s; returns the seconds it took."""
    per_tick = max(1, round(rate * TICK_S))
    per_request = min(PER_REQUEST, per_tick)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        started = time.monotonic()
        sent = 0
        tick = 0
        while sent < total:
            due = started + tick * TICK_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for _ in range(0, per_tick, per_request):
                n = min(per_request, total - sent)
                if n <= 0:
                    break
                t = time.time_ns()
                body = {
                    "events": [
                        {"kind": "log", "name": "tick", "attributes": {"t": t, "i": sent + i}}
                        for i in range(n)
                    ]
                }
                r = await http.post(f"/v1/sessions/{SESSION}/events", json=body)
                if r.status_code != 201:
                    raise RuntimeError(f"{r.status_code}: {r.text}")
                sent += n
            tick += 1
        return time.monotonic() - started


async def _run(srv: TetherServer, subscribers: int, rate: int, seconds: float) -> dict[str, Any]:
    warmup = rate  # one second's worth
    total = warmup + int(rate * seconds)
    rss_before = _rss_mb(srv)
    ws_url = srv.url.replace("http://", "ws://") + "/v1/ws"
    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [asyncio.create_task(_subscriber(ws_url, r, total)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    # The writer runs in its own process, so the subscribers' work in this one cannot
    # slow its pace.
    writer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--writer", srv.url, "--total", str(total),
        "--rate", str(rate), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await writer.communicate()
    if writer.returncode != 0:
        raise RuntimeError("the writer failed")
    took = float(out)
    results = await asyncio.wait_for(asyncio.gather(*tasks), 120)
    rss_after = _rss_mb(srv)
    latencies: list[float] = []
    for got in results:
        seqs = [seq for seq, _ in got]
        if seqs != list(range(1, total + 1)):
            raise RuntimeError("a subscriber missed, repeated or reordered events")
        latencies.extend(ns / 1e6 for seq, ns in got if seq > warmup)
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "subscribers": subscribers,
        "posted_per_s": total / took,
        "p50": statistics.median(latencies),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": latencies[-1],
        "rss_before": rss_before,
        "rss_after": rss_after,
    }


def _measure(db: str, bus: str, redis_url: str | None, counts: list[int], args: Any) -> list[Any]:
    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp, fresh_store(db, Path(tmp), "fanout") as store:
            env = {"TETHER_REDIS_URL": redis_url} if redis_url else {}
            srv = TetherServer(store, home=Path(tmp), env=env).start()
            try:
                httpx.post(f"{srv.url}/v1/sessions", json={"id": SESSION}, timeout=30)
                row = asyncio.run(_run(srv, n, args.rate, args.seconds))
            finally:
                srv.stop()
        row["bus"] = bus
        rows.append(row)
        print(f"  {bus}, {n} subscriber(s): p99 {row['p99']:.1f} ms", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", default="1,10,100", help="comma-separated counts")
    ap.add_argument("--rate", type=int, default=1000, help="events posted per second")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--db", default="sqlite", help=DB_HELP)
    ap.add_argument("--writer", help=argparse.SUPPRESS)  # internal: run as the writer
    ap.add_argument("--total", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        print(asyncio.run(_writer(args.writer, args.total, args.rate)))
        return
    counts = [int(x) for x in args.subscribers.split(",")]
    cpu_before = cpu_times()
    with postgres_server(args.db) as db, _redis() as redis_url:
        rows = _measure(db, "in-process", None, counts, args)
        if redis_url is None:
            print("redis-server not found: the Redis bus is not measured")
        else:
            rows += _measure(db, "redis", redis_url, counts, args)
    print(f"hypervisor steal during the run: {steal_share(cpu_before, cpu_times()):.1%}")
    base = rows[0]["p99"]
    print(
        f"\nstore: {store_label(db)}; {args.rate} events/s posted, {PER_REQUEST} per request, "
        f"{args.seconds:g} s measured per run (after 1 s of warm-up)"
    )
    print(
        f"{'bus':<11} {'subs':>5} {'posted/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'RSS before':>11} {'RSS after':>10} {'p99 vs base':>12}"
    )
    for r in rows:
        print(
            f"{r['bus']:<11} {r['subscribers']:>5} {r['posted_per_s']:>9.0f} {r['p50']:>8.2f} "
            f"{r['p95']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f} {r['rss_before']:>9.1f}MB "
            f"{r['rss_after']:>8.1f}MB {r['p99'] / base:>12.2f}"
        )


if __name__ == "__main__":
    main()

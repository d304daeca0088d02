"""Per-call cost of ``Session.log_action`` with the server up and with it down.

Run: ``.venv/bin/python benchmarks/sdk_overhead.py [--calls 20000]``

Starts a real ``tether serve`` on a free port with a temp DB for the "up" case; the
"down" case points a client at a port where nothing listens (the batcher's retries,
circuit breaker and spool writes all happen in its background threads). Each call is
timed alone with ``time.perf_counter_ns`` in the same process as two baselines: an
empty function call and ``logging.debug`` on a disabled logger. The timer's own cost is
in every row, baselines included. Target (issue 3): median ≤ 50 µs while down.

Not a test: it prints a table and never asserts on time.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tether_client import Client

TARGET_DOWN_MEDIAN_US = 50.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).with_name("tether")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tether"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(workdir / "t.db")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["TETHER_HOME"] = str(workdir)
    log = (workdir / "server.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"tether serve did not start; see {workdir / 'server.log'}")


def measure(fn: Callable[[int], object], calls: int, warmup: int = 1_000) -> list[float]:
    """Per-call durations in microseconds."""
    clock = time.perf_counter_ns
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(calls):
        start = clock()
        fn(i)
        out.append((clock() - start) / 1_000)
    return out


def summarize(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (
        statistics.median(ordered),
        ordered[int(len(ordered) * 0.95)],
        ordered[int(len(ordered) * 0.99)],
    )


def bench_client(url: str, spool_dir: Path, calls: int) -> tuple[list[float], str]:
    client = Client(url, spool_dir=spool_dir, close_timeout=0.5)
    session = client.session(agent="bench")
    payload = {"tool": "search", "query": "weather in Paris"}

    def call(i: int) -> object:
        return session.log_action("search", input=payload, attributes={"i": i})

    samples = measure(call, calls)
    delivered = client.flush(30.0)
    stats = client.stats()
    note = (
        f"delivered={delivered} sent={stats.sent_events} spooled={stats.spooled_events} "
        f"dropped={stats.dropped_events} breaker={stats.breaker}"
    )
    if not delivered:
        client.flush(0.5)
    client.close(0.5)
    return samples, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per row")
    args = parser.parse_args()

    quiet = logging.getLogger("bench.disabled")
    quiet.setLevel(logging.WARNING)
    logging.getLogger("tether_client").setLevel(logging.ERROR)  # keep the table readable
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def empty(i: int) -> None:
        return None

    rows: list[tuple[str, list[float], str]] = [
        ("baseline: empty function call", measure(empty, args.calls), ""),
        (
            "baseline: logging.debug (disabled)",
            measure(lambda i: quiet.debug("x %s", i), args.calls),
            "",
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        work = Path(tmp)
        proc, url = start_server(work)
        try:
            samples, note = bench_client(url, work / "spool-up", args.calls)
            rows.append(("log_action, server up", samples, note))
        finally:
            proc.terminate()
            proc.wait(15)
        dead = f"http://127.0.0.1:{free_port()}"
        samples, note = bench_client(dead, work / "spool-down", args.calls)
        rows.append(("log_action, server down", samples, note))

    base = statistics.median(rows[0][1])
    base_log = statistics.median(rows[1][1])
    print(f"\nper-call cost, {args.calls} calls each, Python {sys.version.split()[0]}")
    header = (
        f"{'case':<36} {'median µs':>10} {'p95 µs':>9} {'p99 µs':>9} {'x empty':>8} {'x debug':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, samples, _ in rows:
        median, p95, p99 = summarize(samples)
        print(
            f"{name:<36} {median:>10.2f} {p95:>9.2f} {p99:>9.2f} "
            f"{median / base:>8.1f} {median / base_log:>8.1f}"
        )
    print()
    for name, _, note in rows:
        if note:
            print(f"{name}: {note}")
    down_median = summarize(rows[-1][1])[0]
    verdict = "meets" if down_median <= TARGET_DOWN_MEDIAN_US else "MISSES"
    print(
        f"server down median {down_median:.2f} µs {verdict} the "
        f"≤ {TARGET_DOWN_MEDIAN_US:.0f} µs target"
    )


if __name__ == "__main__":
    main()

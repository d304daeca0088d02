"""WAL size under write load with concurrent readers, and after writes pause.

Run: ``.venv/bin/python benchmarks/wal_size.py`` (needs ``wrk``; ``make bench`` installs it).

Starts a real ``tether serve`` on a fresh database. One ``wrk`` posts batches of 100 events
over 16 connections for ``--seconds``; a second ``wrk`` reads pages of 1,000 events of the
same session over ``--read-conns`` connections, so readers hold WAL snapshots while the
writer appends (what kept the WAL from restarting in issue 10). The ``-wal`` file's size is
sampled every 100 ms during the load and for ``--idle`` seconds after it. Prints a table:
the largest WAL during load, at the end of the load, and after the pause.

``--src DIR`` runs the server from another source tree (e.g. ``git archive HEAD`` unpacked
somewhere) to compare builds with the same client; ``WAL_TRACE=1`` also prints the samples.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _server import running_server

_HERE = Path(__file__).parent
_READ_LUA = """
function init(args) path = "/v1/sessions/" .. args[1] .. "-1/events?limit=1000" end
request = function() return wrk.format("GET", path) end
"""


def _sampler(wal: Path, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        size = wal.stat().st_size if wal.exists() else 0
        out.append((time.monotonic() - t0, size))
        time.sleep(0.1)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="load duration")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds sampled after the load")
    ap.add_argument("--read-conns", type=int, default=4, help="wrk connections reading (0: none)")
    ap.add_argument("--src", type=Path, default=None, help="run the server from this src/")
    args = ap.parse_args()

    env = {"PYTHONPATH": str(args.src)} if args.src else {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "wal.db"
        wal = Path(f"{db}-wal")
        lua = Path(tmp) / "read.lua"
        lua.write_text(_READ_LUA)
        with running_server(db, env) as url:
            httpx.post(f"{url}/v1/sessions", json={"id": "walbench-1"}, timeout=30)
            samples: list[tuple[float, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=_sampler, args=(wal, stop, samples))
            sampler.start()
            dur = f"-d{args.seconds}s"
            ingest = str(_HERE / "ingest.lua")
            writer = subprocess.Popen(
                ["wrk", "-t1", "-c16", dur, "-s", ingest, url, "--", "100", "walbench"],
                stdout=subprocess.PIPE,
                text=True,
            )
            conns = f"-c{args.read_conns}"
            reader = (
                subprocess.Popen(
                    ["wrk", "-t1", conns, dur, "-s", str(lua), url, "--", "walbench"],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                if args.read_conns
                else None
            )
            wout, _ = writer.communicate()
            rout = reader.communicate()[0] if reader else ""
            load_end = samples[-1][0]
            time.sleep(args.idle)
            stop.set()
            sampler.join()
        during = [s for t, s in samples if t <= load_end]
        after = [s for t, s in samples if t > load_end]
        requests = next(
            (line for line in wout.splitlines() if line.startswith("JSON")), "JSON (none)"
        )
        reads = next((line.strip() for line in rout.splitlines() if "Requests/sec" in line), "")
        print(f"writer: {requests[5:]}")
        print(f"reader: {reads}")
        print()
        print("| build | load s | WAL max MB | WAL at load end MB | WAL after pause MB |")
        print("|---|---|---|---|---|")
        build = str(args.src) if args.src else "this tree"
        print(
            f"| {build} | {args.seconds} | {_mb(max(during))} | {_mb(during[-1])} | "
            f"{_mb(after[-1] if after else -1)} |"
        )
        if os.environ.get("WAL_TRACE"):
            for t, s in samples[:: max(1, len(samples) // 40)]:
                print(f"{t:6.1f}s {_mb(s)} MB")


if __name__ == "__main__":
    main()

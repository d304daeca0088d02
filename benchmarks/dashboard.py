"""Dashboard: time to first useful paint of the sessions list (10,000 sessions) and of a
session view (10,000 events), in headless Chromium.

Run: ``.venv/bin/python benchmarks/dashboard.py [--runs 5] [--sessions 10000]
[--events 10000] [--db sqlite|postgresql://...]``. Needs Debian's ``chromium`` (``make
services``) and Playwright (``dev`` extra).

A fresh ``tether serve`` on a fresh store gets ``--sessions`` sessions (one event each,
through ``POST /v1/events/batch``, 1,000 per request) and one session ``bench-big`` with
``--events`` events: spans of an agent loop (an ``llm`` span, then two ``tool`` spans
nested under it, each a ``running`` event then its final one with the same ``span_id``,
plus ``message`` events). Each run opens a new browser context (empty HTTP cache, a new
WebSocket) and loads ``/#/sessions``, then ``/#/sessions/bench-big``.

*First useful paint* is measured in the page: a script injected before the dashboard's
own (``add_init_script``) watches the DOM and, once the first list row (``.srow[data-id]``)
or waterfall row (``.wrow[data-seq]``) exists, records ``performance.now()`` in the
second animation frame after it (the frame that paints it has run); ``performance.now()``
counts from the navigation's start, so it includes the page, its modules, the API reads
and rendering. *All loaded*: the session view's status line says every event is loaded
(10 pages of 1,000). Prints the median and p95 (nearest rank) over the runs, in ms.
Target (issue 15): under 1 s each. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _server import DB_HELP, fresh_store, postgres_server, running_server, store_label

_WATCH = """
(() => {
  const marks = {};
  window.__marks = marks;
  const watch = { list: ".srow[data-id]", waterfall: ".wrow[data-seq]" };
  const check = () => {
    for (const [name, sel] of Object.entries(watch)) {
      if (marks[name] === undefined && document.querySelector(sel)) {
        marks[name] = null;
        const mark = () => { marks[name] = performance.now(); };
        requestAnimationFrame(() => requestAnimationFrame(mark));
      }
    }
    const info = document.querySelector("#events-info");
    const text = info ? info.textContent : "";
    if (marks.all === undefined && /events ·/.test(text) && !/loading/.test(text)) {
      marks.all = performance.now();
    }
  };
  const all = { childList: true, subtree: true, characterData: true };
  new MutationObserver(check).observe(document, all);
})();
"""


def _seed(url: str, sessions: int, events: int) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        for start in range(0, sessions, 1000):
            batch = [
                {"session_id": f"bench-{i:05d}", "kind": "message", "name": "hello", "input": i}
                for i in range(start, min(sessions, start + 1000))
            ]
            r = http.post("/v1/events/batch", json={"events": batch})
            assert r.status_code in (200, 201), r.text[:300]
        t0 = time.time() - events  # one event a second, ending now
        evs: list[dict[str, Any]] = []
        n = 0
        while len(evs) < events:
            loop = [
                ("llm", f"l{n}", None, "running"),
                ("tool", f"t{n}a", f"l{n}", "running"),
                ("tool", f"t{n}a", f"l{n}", "ok"),
                ("tool", f"t{n}b", f"l{n}", "running"),
                ("tool", f"t{n}b", f"l{n}", "ok"),
                ("llm", f"l{n}", None, "ok"),
                ("message", None, None, "ok"),
            ]
            for kind, span, parent, status in loop:
                at = t0 + len(evs)
                ev: dict[str, Any] = {
                    "kind": kind,
                    "name": {"llm": "plan", "tool": "search", "message": "reply"}[kind],
                    "status": status,
                    "started_at": _iso(at),
                    "input": {"step": n},
                }
                if span:
                    ev["span_id"] = span
                if parent:
                    ev["parent_id"] = parent
                if status == "ok" and span:
                    ev["duration_ms"] = 3000.0 if kind == "llm" else 1000.0
                evs.append(ev)
            n += 1
        evs = evs[:events]
        for start in range(0, len(evs), 1000):
            chunk = [{"session_id": "bench-big", **e} for e in evs[start : start + 1000]]
            r = http.post("/v1/events/batch", json={"events": chunk})
            assert r.status_code in (200, 201), r.text[:300]


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _measure(url: str, runs: int, chromium: str) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"list": [], "waterfall": [], "all": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for run in range(runs + 1):  # run 0 warms the server's caches; not counted
            for route, marks in (
                ("#/sessions", ["list"]),
                ("#/sessions/bench-big", ["waterfall", "all"]),
            ):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.add_init_script(_WATCH)
                page.goto(f"{url}/{route}")
                for mark in marks:
                    page.wait_for_function(
                        f"() => typeof (window.__marks || {{}}).{mark} === 'number'", timeout=60_000
                    )
                    if run:
                        out[mark].append(page.evaluate(f"window.__marks.{mark}"))
                context.close()
        browser.close()
    return out


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="measured page loads per view")
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=10_000, help="events of the big session")
    ap.add_argument("--db", default="sqlite", help=DB_HELP)
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed: make services")
    with (
        postgres_server(args.db) as db,
        tempfile.TemporaryDirectory() as tmp,
        fresh_store(db, Path(tmp), "dashboard") as store,
        running_server(store, home=Path(tmp)) as url,
    ):
        t = time.perf_counter()
        _seed(url, args.sessions, args.events)
        print(
            f"seeded {args.sessions} sessions and {args.events} events in "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )
        marks = _measure(url, args.runs, chromium)
    print(
        f"\nstore: {store_label(db)}; {args.runs} runs, each in a new browser context "
        f"(cold HTTP cache); Chromium at 1280x900"
    )
    print(f"{'view':<44} {'median ms':>10} {'p95 ms':>8} {'min ms':>8}")
    rows = [
        (f"sessions list ({args.sessions:,} sessions): first rows", "list"),
        (f"session view ({args.events:,} events): first rows", "waterfall"),
        (f"session view ({args.events:,} events): all loaded", "all"),
    ]
    for label, key in rows:
        xs = marks[key]
        print(f"{label:<44} {statistics.median(xs):>10.0f} {_p95(xs):>8.0f} {min(xs):>8.0f}")


if __name__ == "__main__":
    main()

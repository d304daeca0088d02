"""The two drills of the SDK issue's "Done when", against a real ``tether serve``.

1. Server outage: a scripted agent logs 5,000 events across 20 sessions and sub-agents;
   the server is SIGKILLed mid-run, stays down 10 s, and restarts on the same DB.
2. Agent crash: the agent process is SIGKILLed mid-run (while the server is also down,
   so the spool holds a backlog) and restarted on the same spool.

After ``flush()`` the server must hold exactly 5,000 events (server-made ``agent``
events with ``attributes.origin == "server"`` excluded), each once, each session's in
the order logged (``attributes.n`` follows ``seq``). Timings are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tether.testing import TetherServer
from tether_client import Client

from .drill_plan import TOTAL_EVENTS, key, plan, session_ids

pytestmark = pytest.mark.slow

OUTAGE_S = 10.0
AGENT = Path(__file__).with_name("drill_agent.py")


def check_server_holds_plan(server: TetherServer, prefix: str) -> dict[str, int]:
    """Assert the exact-count, once-each, per-session-order property; return counts."""
    expected = Counter(sid for sid, _ in plan(prefix))
    total = 0
    for sid, parent in session_ids(prefix):
        events = [
            e for e in server.events(sid) if (e.get("attributes") or {}).get("origin") != "server"
        ]
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        ns = [e["attributes"]["n"] for e in events]
        assert ns == list(range(expected[sid])), f"{sid}: order or count broken"
        keys = [e["idempotency_key"] for e in events]
        assert len(set(keys)) == len(keys)
        session = server.get(f"/v1/sessions/{sid}")
        assert session["parent_id"] == parent
        assert session["status"] == "completed"
        total += len(events)
    assert total == TOTAL_EVENTS
    return {"sessions": len(session_ids(prefix)), "events": total}


def test_server_killed_for_10s_mid_run(tether_server: TetherServer, tmp_path: Path) -> None:
    client = Client(tether_server.url, spool_dir=tmp_path / "spool")
    steps = plan("d1")
    sessions = {}
    for sid, parent in session_ids("d1"):
        if parent is None:
            sessions[sid] = client.session(id=sid, agent="drill-lead")
        else:
            sessions[sid] = sessions[parent].spawn_agent(id=sid, agent="drill-sub")
    marks: dict[str, float] = {}

    def outage() -> None:
        tether_server.kill()
        marks["killed"] = time.monotonic()
        time.sleep(OUTAGE_S)
        tether_server.start()
        marks["restarted"] = time.monotonic()

    started = time.monotonic()
    killer = threading.Thread(target=outage)
    worst_call = 0.0
    peak_spooled = 0
    for index, (sid, n) in enumerate(steps):
        if index == 1_000:
            killer.start()
        before = time.perf_counter()
        sessions[sid].log_action("step", attributes={"n": n}, idempotency_key=key(sid, n))
        worst_call = max(worst_call, time.perf_counter() - before)
        if index % 250 == 0:
            peak_spooled = max(peak_spooled, client.stats().spooled_events)
        time.sleep(0.003)  # ~15 s of logging: the outage falls in the middle
    logged = time.monotonic()
    for sid, parent in session_ids("d1"):
        if parent is not None:
            sessions[parent].complete_agent(sessions[sid])
    for sid, parent in session_ids("d1"):
        if parent is None:
            sessions[sid].end()
    killer.join()
    assert client.flush(60.0)
    flushed = time.monotonic()
    stats = client.stats()
    client.close()
    counts = check_server_holds_plan(tether_server, "d1")
    assert marks["killed"] < logged  # the outage really was mid-run
    print(
        f"\n[drill 1] {counts['events']} events / {counts['sessions']} sessions; "
        f"logging {logged - started:.1f} s, outage {marks['restarted'] - marks['killed']:.1f} s "
        f"(killed at {marks['killed'] - started:.1f} s), flush after restart "
        f"{flushed - max(logged, marks['restarted']):.2f} s, total {flushed - started:.1f} s; "
        f"peak spooled {peak_spooled}, sent {stats.sent_events}, duplicates {stats.duplicates}, "
        f"dropped {stats.dropped_events}; slowest log_action {worst_call * 1e6:.0f} us"
    )


def test_agent_killed_and_restarted_on_same_spool(
    tether_server: TetherServer, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    progress = tmp_path / "progress.json"
    log = (tmp_path / "agent.log").open("ab")
    cmd = [sys.executable, str(AGENT), tether_server.url, str(spool_dir), str(progress)]

    def done() -> int:
        try:
            return int(json.loads(progress.read_text())["done"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def wait_for(count: int, proc: subprocess.Popen[bytes], limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while done() < count:
            assert proc.poll() is None, "the agent exited early; see agent.log"
            assert time.monotonic() < deadline, f"agent stuck at {done()} events"
            time.sleep(0.01)

    started = time.monotonic()
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(1_500, first)
        tether_server.kill()  # so the spool builds a backlog the restart must replay
        wait_for(2_500, first)
        # Between checkpoints: events after the last one are partly spooled (the restart
        # replays them and dedupes their re-logged copies) and partly only in memory.
        time.sleep(0.45)
        first.kill()  # SIGKILL: no atexit, no flush, no close
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    killed_at = done()
    spool_files = list(spool_dir.glob("spool-*.sqlite3"))
    assert len(spool_files) == 1
    tether_server.start()
    restarted = time.monotonic()
    second = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert second.wait(120) == 0, "the restarted agent did not deliver; see agent.log"
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)
    finished = time.monotonic()
    log.close()
    state = json.loads(progress.read_text())
    assert state["starts"] == 2
    assert state["delivered"] is True
    counts = check_server_holds_plan(tether_server, "d2")
    print(
        f"\n[drill 2] {counts['events']} events / {counts['sessions']} sessions; agent killed "
        f"after {killed_at} checkpointed events ({restarted - started:.1f} s in, server down "
        f"too); restarted agent finished in {finished - restarted:.1f} s; total "
        f"{finished - started:.1f} s; second run sent {state['stats']['sent']} "
        f"(duplicates absorbed by idempotency keys: {state['stats']['duplicates']})"
    )

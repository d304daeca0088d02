"""Crash drill: SIGKILL the server under write load; every acknowledged event survives.

Several client threads post events (single and batched) as fast as they can while the
server is killed with SIGKILL and restarted on the same database. Every event whose POST
returned 2xx must be present after the restart, and each session's seqs must be exactly
1..N: no gap, no duplicate.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tether.testing import TetherServer

pytestmark = pytest.mark.slow

_WRITERS = 4
_LOAD_SECONDS = 2.5


def _writer(url: str, sid: str, acked: list[str], stop: threading.Event) -> None:
    n = 0
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while not stop.is_set():
            keys = [f"{sid}-{n + i}" for i in range(1 if n % 3 else 5)]
            body = {"events": [{"kind": "log", "idempotency_key": k, "input": k} for k in keys]}
            try:
                r = client.post(f"/v1/sessions/{sid}/events", json=body)
            except httpx.TransportError:
                return  # the server died mid-request: this batch was never acknowledged
            if r.status_code in (200, 201):
                acked.extend(keys)
            n += len(keys)


def test_acknowledged_events_survive_sigkill(fresh_store: str, tmp_path: Path) -> None:
    srv = TetherServer(fresh_store, home=tmp_path).start()
    try:
        sessions = [f"crash-{i}" for i in range(_WRITERS)]
        with httpx.Client(base_url=srv.url) as c:
            for sid in sessions:
                assert c.post("/v1/sessions", json={"id": sid}).status_code == 201
        acked: dict[str, list[str]] = {sid: [] for sid in sessions}
        stop = threading.Event()
        threads = [
            threading.Thread(target=_writer, args=(srv.url, sid, acked[sid], stop))
            for sid in sessions
        ]
        for t in threads:
            t.start()
        time.sleep(_LOAD_SECONDS)
        srv.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        total_acked = sum(len(v) for v in acked.values())
        assert total_acked > 100, "the load generator did not get going"

        srv.start()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for sid in sessions:
                items: list[dict[str, object]] = []
                after = 0
                while True:
                    page = c.get(
                        f"/v1/sessions/{sid}/events", params={"after_seq": after, "limit": 1000}
                    ).json()["data"]
                    items.extend(page["items"])
                    if page["next_cursor"] is None:
                        break
                    after = page["next_cursor"]
                seqs = [e["seq"] for e in items]
                assert seqs == list(range(1, len(seqs) + 1)), f"{sid}: seqs not gapless"
                stored = [e["idempotency_key"] for e in items]
                assert len(stored) == len(set(stored)), f"{sid}: duplicate events"
                missing = set(acked[sid]) - set(stored)
                assert not missing, f"{sid}: {len(missing)} acknowledged events lost"
                counters = c.get(f"/v1/sessions/{sid}").json()["data"]["counters"]
                assert counters["event_count"] == len(seqs)
    finally:
        srv.stop()

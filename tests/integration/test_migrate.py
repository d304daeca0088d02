"""``tether migrate``: a SQLite deployment moved to PostgreSQL, proved and then served.

A real server on SQLite is given sessions (events, state, goals, a sub-agent) and
memories (updated, forgotten, purged, embedded); it is stopped, the CLI copies the file
into an empty PostgreSQL database, and a server on PostgreSQL must then answer exactly as
the SQLite one did, find memories by meaning without embedding them again, and continue
seqs and the change feed after the copied ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import PostgresService, new_database
from tether.testing import TetherServer, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TETHER = [sys.executable, "-m", "tether"]


def _fill(c: httpx.Client) -> None:
    assert c.post("/v1/sessions", json={"id": "m-1", "agent": "planner", "tags": ["a"]}).is_success
    body = {
        "events": [
            {"kind": "llm", "input": {"q": i}, "idempotency_key": f"k{i}"} for i in range(30)
        ]
    }
    assert c.post("/v1/sessions/m-1/events", json=body).is_success
    assert c.patch("/v1/sessions/m-1/state", json={"step": 3, "plan": ["x"]}).is_success
    assert c.post("/v1/sessions/m-1/goals", json={"id": "g", "description": "ship"}).is_success
    assert c.post("/v1/sessions/m-1/agents", json={"id": "m-1-child", "agent": "coder"}).is_success
    assert c.post("/v1/sessions/m-1/end", json={"status": "completed"}).is_success
    texts = [
        "Caroline adopted a golden retriever puppy",
        "The quarterly budget review moved to Thursday",
        "Melanie paints landscapes on weekends",
        "The launch code is tulip",
    ]
    ids = []
    for i, text in enumerate(texts):
        r = c.post(
            "/v1/memories", json={"namespace": "mig", "text": text, "idempotency_key": f"m{i}"}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["data"]["memory"]["id"])
    assert c.patch(f"/v1/memories/{ids[2]}", json={"importance": 0.9}).is_success
    assert c.delete(f"/v1/memories/{ids[1]}").is_success
    assert c.delete(f"/v1/memories/{ids[3]}", params={"purge": "true"}).is_success
    wait_until(lambda: c.get("/v1/memory/stats").json()["data"]["index_backlog"] == 0)


def _snapshot(c: httpx.Client) -> dict[str, Any]:
    def data(path: str, **params: Any) -> Any:
        r = c.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    return {
        "sessions": data("/v1/sessions", limit=100),
        "detail": data("/v1/sessions/m-1"),
        "events": data("/v1/sessions/m-1/events", limit=1000),
        "child": data("/v1/sessions/m-1-child"),
        "state": data("/v1/sessions/m-1/state"),
        "memories": data("/v1/memories", limit=100, include_deleted="true"),
        "changes": data("/v1/memory/changes", limit=1000),
        "stats": data("/v1/stats"),
    }


def test_a_sqlite_deployment_moves_to_postgres_and_is_served_the_same(
    postgres_service: PostgresService, tmp_path: Path
) -> None:
    sqlite_file = tmp_path / "sqlite" / "tether.db"
    old = TetherServer(sqlite_file).start()
    with httpx.Client(base_url=old.url, timeout=30) as c:
        _fill(c)
        before = _snapshot(c)
    old.stop()
    url = new_database(postgres_service)

    done = subprocess.run(
        [*TETHER, "migrate", "--from", f"sqlite:///{sqlite_file}", "--to", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for table in ("sessions", "events", "goals", "memories", "memory_changes", "memory_vectors"):
        line = next(li for li in done.stdout.splitlines() if f" {table} " in li)
        assert line.rstrip(" │").endswith("ok"), line
    assert "DIFFERENT" not in done.stdout

    new = TetherServer(url, home=tmp_path / "pg").start()
    try:
        with httpx.Client(base_url=new.url, timeout=30) as c:
            after = _snapshot(c)
            assert after == before
            # Found by meaning at once: the vectors came along, nothing is re-embedded.
            assert c.get("/v1/memory/stats").json()["data"]["index_backlog"] == 0
            hit = c.post(
                "/v1/memories/search",
                json={"namespace": "mig", "query": "Does she have a dog?", "mode": "vector"},
            ).json()["data"]["results"][0]
            assert hit["memory"]["text"].startswith("Caroline")
            # Seqs, ids and the feed continue after the copied ones.
            r = c.post("/v1/sessions/m-1/events", json={"kind": "log"})
            assert r.json()["data"]["seqs"] == [len(before["events"]["items"]) + 1]
            assert c.post("/v1/sessions", json={"id": "m-2"}).status_code == 201
            made = c.post("/v1/memories", json={"namespace": "mig", "text": "a new fact"})
            assert made.status_code == 201
            last = before["changes"]["items"][-1]["lsn"]
            feed = c.get("/v1/memory/changes", params={"after": last}).json()["data"]["items"]
            assert [f["op"] for f in feed] == ["add"]
    finally:
        new.stop()

    other = new_database(postgres_service)
    as_json = subprocess.run(
        [*TETHER, "migrate", "--from", f"sqlite:///{sqlite_file}", "--to", other, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["matches"] is True
    rows = {t["table"]: t["target_rows"] for t in report["tables"]}
    assert rows["events"] == len(before["events"]["items"])
    assert all(t["source_sha256"] == t["target_sha256"] for t in report["tables"])

    again = subprocess.run(
        [*TETHER, "migrate", "--from", f"sqlite:///{sqlite_file}", "--to", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1
    assert "the target store is not empty" in again.stdout + again.stderr

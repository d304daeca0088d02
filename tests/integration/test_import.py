"""``tether import conversations`` against a real server: LoCoMo twice (no duplicates), the
tether format (JSON and NDJSON), and clear errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from tether.testing import TetherServer

ROOT = Path(__file__).resolve().parents[2]
LOCOMO = ROOT / "examples" / "data" / "locomo-dev.json"
_CLI = [sys.executable, "-m", "tether", "import", "conversations"]


def _import(server: TetherServer, path: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_CLI, str(path), "--format", fmt, "--url", server.url, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _memories(http: httpx.Client, namespace: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"namespace": namespace, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        data = http.get("/v1/memories", params=params).json()["data"]
        out.extend(data["items"])
        cursor = data["next_cursor"]
        if not cursor:
            return out


def test_locomo_imported_twice_has_no_duplicates(server: TetherServer, http: httpx.Client) -> None:
    samples = json.loads(LOCOMO.read_text())
    expected_turns = {
        s["sample_id"]: sum(
            len(v)
            for k, v in s["conversation"].items()
            if k.startswith("session_") and isinstance(v, list)
        )
        for s in samples
    }
    first = _import(server, LOCOMO, "locomo")
    assert first.returncode == 0, first.stderr + first.stdout
    report = json.loads(first.stdout)
    assert report["sessions"] == report["sessions_new"] == 70
    assert report["events"] == report["events_new"] == sum(expected_turns.values()) == 1451
    assert report["memories_new"] == 1451

    second = _import(server, LOCOMO, "locomo")
    assert second.returncode == 0, second.stderr + second.stdout
    again = json.loads(second.stdout)
    assert (again["sessions_new"], again["events_new"], again["memories_new"]) == (0, 0, 0)

    sessions = server.get("/v1/sessions", tag="locomo", limit=500)["items"]
    assert len(sessions) == 70
    assert all(s["status"] == "completed" for s in sessions)
    s1 = server.events("locomo-conv-26-s1")
    assert [e["seq"] for e in s1] == list(range(1, len(s1) + 1))
    assert s1[0]["kind"] == "message"
    assert s1[0]["name"] == "Caroline"
    assert s1[0]["started_at"] == "2023-05-08T13:56:00.000Z"
    assert len({e["idempotency_key"] for e in s1}) == len(s1)

    for sample_id, turns in expected_turns.items():
        mems = _memories(http, f"locomo/{sample_id}")
        dia = Counter(m["metadata"]["dia_id"] for m in mems)  # type: ignore[index]
        assert len(mems) == turns, sample_id
        assert max(dia.values()) == 1, f"{sample_id}: duplicated turns"
    one = next(m for m in _memories(http, "locomo/conv-26") if m["metadata"]["dia_id"] == "D1:1")  # type: ignore[index]
    assert one["text"] == "Caroline: Hey Mel! Good to see you! How have you been?"
    assert str(one["occurred_at"]).startswith("2023-05-08T13:56:00")


def test_tether_format_json_and_ndjson(
    server: TetherServer, http: httpx.Client, tmp_path: Path
) -> None:
    session = {
        "id": "support-42",
        "namespace": "user/alice",
        "agent": "support-bot",
        "user_id": "alice",
        "turns": [
            {
                "speaker": "alice",
                "text": "My parcel to Lisbon never arrived.",
                "at": "2026-03-01T10:00:00Z",
            },
            {
                "speaker": "bot",
                "role": "assistant",
                "text": "Sorry! A refund is on its way.",
                "id": "t2",
            },
        ],
    }
    as_json = tmp_path / "one.json"
    as_json.write_text(json.dumps([session]))
    as_ndjson = tmp_path / "two.ndjson"
    as_ndjson.write_text(
        json.dumps({**session, "id": "support-43", "namespace": "user/bob"}) + "\n"
    )
    for path in (as_json, as_ndjson):
        done = _import(server, path, "tether")
        assert done.returncode == 0, done.stderr + done.stdout
        assert json.loads(done.stdout)["memories_new"] == 2
    events = server.events("support-42")
    assert [(e["name"], e["role"]) for e in events] == [("alice", "user"), ("bot", "assistant")]
    assert server.get("/v1/sessions/support-42")["user_id"] == "alice"
    texts = sorted(m["text"] for m in _memories(http, "user/bob"))
    assert texts == [
        "alice: My parcel to Lisbon never arrived.",
        "bot: Sorry! A refund is on its way.",
    ]


def test_bad_files_fail_with_a_clear_message(server: TetherServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "has/slash", "turns": []}]))
    done = _import(server, bad, "tether")
    assert done.returncode == 2
    assert "session #1" in done.stdout
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert _import(server, garbage, "tether").returncode == 2
    assert _import(server, LOCOMO, "nope").returncode == 2
    down = TetherServer(tmp_path / "never.db")  # never started: nothing listens on its port
    done = _import(down, LOCOMO, "locomo")
    assert done.returncode == 1
    assert "cannot reach" in done.stdout

"""Events over real HTTP: seqs, idempotency keys, batches, reads, and bad input."""

from __future__ import annotations

import httpx

from tether.testing import TetherServer


def _session(http: httpx.Client, sid: str) -> None:
    assert http.post("/v1/sessions", json={"id": sid}).status_code in (200, 201)


def test_single_and_batched_events_get_gapless_seqs(http: httpx.Client) -> None:
    _session(http, "ev-1")
    r = http.post(
        "/v1/sessions/ev-1/events", json={"kind": "message", "role": "user", "input": "hi"}
    )
    assert r.status_code == 201
    assert r.json()["data"]["seqs"] == [1]
    batch = [
        {"kind": "llm", "model": "m", "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01}
    ] * 3
    r = http.post("/v1/sessions/ev-1/events", json={"events": batch})
    assert r.json()["data"]["seqs"] == [2, 3, 4]
    counters = http.get("/v1/sessions/ev-1").json()["data"]["counters"]
    assert counters["event_count"] == 4
    assert counters["input_tokens"] == 30
    assert counters["output_tokens"] == 15


def test_retried_idempotency_key_returns_original_seq_and_stores_nothing(
    http: httpx.Client,
) -> None:
    _session(http, "ev-idem")
    first = http.post(
        "/v1/sessions/ev-idem/events", json={"kind": "tool", "idempotency_key": "k-1"}
    )
    assert first.json()["data"]["seqs"] == [1]
    retry = http.post(
        "/v1/sessions/ev-idem/events", json={"kind": "tool", "idempotency_key": "k-1"}
    )
    assert retry.status_code == 200
    assert retry.json()["data"] == {"seqs": [1], "duplicates": 1}
    header = http.post(
        "/v1/sessions/ev-idem/events", json={"kind": "tool"}, headers={"Idempotency-Key": "k-2"}
    )
    assert header.json()["data"]["seqs"] == [2]
    mixed = http.post(
        "/v1/sessions/ev-idem/events",
        json={
            "events": [
                {"kind": "log", "idempotency_key": "k-2"},
                {"kind": "log", "idempotency_key": "k-3"},
                {"kind": "log", "idempotency_key": "k-3"},
            ]
        },
    )
    assert mixed.json()["data"] == {"seqs": [2, 3, 3], "duplicates": 2}
    items = http.get("/v1/sessions/ev-idem/events").json()["data"]["items"]
    assert [(e["seq"], e["idempotency_key"]) for e in items] == [(1, "k-1"), (2, "k-2"), (3, "k-3")]


def test_span_running_then_final_and_fields_round_trip(http: httpx.Client) -> None:
    _session(http, "ev-span")
    running = {
        "kind": "stt",
        "name": "whisper",
        "status": "running",
        "span_id": "sp1",
        "trace_id": "tr1",
        "started_at": "2026-01-02T03:04:05.678Z",
    }
    final = {
        **running,
        "status": "ok",
        "ended_at": "2026-01-02T03:04:06.000Z",
        "duration_ms": 322.0,
        "output": {"text": "hello"},
        "attributes": {"lang": "en"},
    }
    http.post("/v1/sessions/ev-span/events", json={"events": [running, final]})
    items = http.get("/v1/sessions/ev-span/events", params={"kind": "stt"}).json()["data"]["items"]
    assert [e["status"] for e in items] == ["running", "ok"]
    assert items[1]["span_id"] == "sp1"
    assert items[1]["started_at"] == "2026-01-02T03:04:05.678Z"
    assert items[1]["duration_ms"] == 322.0
    assert items[1]["output"] == {"text": "hello"}
    assert items[1]["attributes"] == {"lang": "en"}


def test_reading_with_after_seq_kind_and_limit(http: httpx.Client) -> None:
    _session(http, "ev-read")
    kinds = ["message", "tool"] * 10
    http.post("/v1/sessions/ev-read/events", json={"events": [{"kind": k} for k in kinds]})
    page = http.get("/v1/sessions/ev-read/events", params={"after_seq": 5, "limit": 4}).json()[
        "data"
    ]
    assert [e["seq"] for e in page["items"]] == [6, 7, 8, 9]
    assert page["next_cursor"] == 9
    tools = http.get("/v1/sessions/ev-read/events", params={"kind": "tool", "limit": 100}).json()[
        "data"
    ]
    assert [e["seq"] for e in tools["items"]] == list(range(2, 21, 2))
    assert tools["next_cursor"] is None
    assert http.get("/v1/sessions/ev-read/events", params={"kind": "nope"}).status_code == 422
    assert http.get("/v1/sessions/ev-read/events", params={"limit": 5000}).status_code == 422
    assert http.get("/v1/sessions/ev-read/events", params={"after_seq": -1}).status_code == 422


def test_a_rejected_batch_writes_nothing(http: httpx.Client) -> None:
    _session(http, "ev-bad")
    good = {"kind": "log"}
    cases = [
        {"events": [good, {"kind": "telepathy"}]},
        {"events": [good, {"kind": "log", "duration_ms": "slow"}]},
        {"events": [good, {"kind": "log", "surprise": 1}]},
        {"events": []},
        {"events": [good] * 1001},
    ]
    for body in cases:
        r = http.post("/v1/sessions/ev-bad/events", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["code"] == "invalid_input"
        assert r.json()["error"]["details"]
    r = http.post(
        "/v1/sessions/ev-bad/events",
        content=b'{"kind": "log"',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert http.get("/v1/sessions/ev-bad").json()["data"]["counters"]["event_count"] == 0
    assert http.post("/v1/sessions/no-such/events", json=good).status_code == 404


def test_oversize_body_is_413_and_writes_nothing(server: TetherServer, http: httpx.Client) -> None:
    _session(http, "ev-big")
    blob = "x" * (6 * 1024 * 1024)
    r = http.post("/v1/sessions/ev-big/events", json={"kind": "log", "input": blob})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    r = http.post(
        "/v1/sessions/ev-big/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert http.get("/v1/sessions/ev-big").json()["data"]["counters"]["event_count"] == 0


def test_multi_session_batch_creates_sessions_on_first_sight(http: httpx.Client) -> None:
    body = {
        "sessions": [
            {"id": "b-parent", "agent": "sdk"},
            {"id": "b-child", "parent_id": "b-parent", "agent": "sub"},
        ],
        "events": [
            {"session_id": "b-parent", "kind": "action", "idempotency_key": "p1"},
            {"session_id": "b-child", "kind": "tool", "idempotency_key": "c1"},
            {"session_id": "b-parent", "kind": "response", "idempotency_key": "p2"},
            {"session_id": "b-new", "kind": "log", "idempotency_key": "n1"},
        ],
        "ends": [{"session_id": "b-child", "status": "completed"}],
    }
    r = http.post("/v1/events/batch", json=body)
    assert r.status_code == 200
    data = r.json()["data"]
    # The parent's seq 1 is the server's agent.spawned event, logged when the child appeared.
    assert data["seqs"] == [2, 1, 3, 1]
    assert sorted(data["created_sessions"]) == ["b-child", "b-new", "b-parent"]
    again = http.post("/v1/events/batch", json=body).json()["data"]
    assert again == {"seqs": [2, 1, 3, 1], "duplicates": 4, "created_sessions": []}
    parent = http.get("/v1/sessions/b-parent/events").json()["data"]["items"]
    assert [(e["kind"], e["name"]) for e in parent] == [
        ("agent", "agent.spawned"),
        ("action", None),
        ("response", None),
        ("agent", "agent.completed"),
    ]
    assert http.get("/v1/sessions/b-child").json()["data"]["status"] == "completed"


def test_a_rejected_multi_session_batch_writes_nothing(http: httpx.Client) -> None:
    body = {
        "events": [{"session_id": "rej-1", "kind": "log"}, {"session_id": "rej-2", "kind": "nope"}]
    }
    assert http.post("/v1/events/batch", json=body).status_code == 422
    # A batch that fails inside the transaction (unknown parent) is rolled back whole.
    body2 = {
        "sessions": [{"id": "rej-3"}, {"id": "rej-4", "parent_id": "does-not-exist"}],
        "events": [{"session_id": "rej-3", "kind": "log"}],
    }
    r = http.post("/v1/events/batch", json=body2)
    assert r.status_code == 404
    for sid in ("rej-1", "rej-2", "rej-3", "rej-4"):
        assert http.get(f"/v1/sessions/{sid}").status_code == 404

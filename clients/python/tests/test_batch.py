from __future__ import annotations

import json
import math
from typing import Any

from tether_client._batch import BatchBuilder, Op, merge, split


def ev(sid: str, n: int) -> Op:
    return ("e", {"session_id": sid, "kind": "action", "idempotency_key": f"{sid}-{n}", "_ts": 0.0})


def decode(bodies: list[tuple[bytes, int]]) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw, _ in bodies]


def test_bodies_are_self_contained_with_parents_first() -> None:
    registry = {"p": {"id": "p", "agent": "main"}, "c": {"id": "c", "parent_id": "p"}}
    builder = BatchBuilder(registry, batch_size=2)
    ops: list[Op] = [("s", registry["p"]), ("s", registry["c"]), ev("c", 1), ev("c", 2), ev("c", 3)]
    bodies = decode(builder.build(ops))
    assert len(bodies) == 2
    assert [s["id"] for s in bodies[0]["sessions"]] == ["p", "c"]
    # the second body repeats the descriptors it needs (first write wins on the server)
    assert [s["id"] for s in bodies[1]["sessions"]] == ["p", "c"]
    assert [e["idempotency_key"] for e in bodies[1]["events"]] == ["c-3"]
    assert bodies[0]["events"][0]["started_at"] == "1970-01-01T00:00:00+00:00"
    assert "_ts" not in bodies[0]["events"][0]


def test_cut_before_events_of_a_session_ended_in_the_same_body() -> None:
    builder = BatchBuilder({"a": {"id": "a"}}, batch_size=100)
    ops: list[Op] = [ev("a", 1), ("x", {"session_id": "a", "status": "completed"}), ev("a", 2)]
    bodies = decode(builder.build(ops))
    assert [len(b["events"]) for b in bodies] == [1, 1]
    assert bodies[0]["ends"] == [{"session_id": "a", "status": "completed"}]


def test_strange_values_never_poison_a_batch() -> None:
    builder = BatchBuilder({}, batch_size=10)
    event = {
        "session_id": "a",
        "kind": "tool",
        "idempotency_key": "k",
        "input": {1, 2},
        "output": object(),
    }
    event["attributes"] = {"nan": math.nan, "bytes": b"\x00"}
    (body,) = decode(builder.build([("e", event)]))
    assert body["events"][0]["input"] == [1, 2]
    assert body["events"][0]["attributes"] == {"nan": "nan", "bytes": "AA=="}
    assert body["events"][0]["output"].startswith("<object object")


def test_merge_joins_rows_until_order_would_break() -> None:
    builder = BatchBuilder({"a": {"id": "a"}, "b": {"id": "b"}}, batch_size=1)
    rows = [raw for raw, _ in builder.build([ev("a", 1), ev("b", 1)])]
    end_a = builder.build([("x", {"session_id": "a", "status": "completed"})])[0][0]
    after_end = builder.build([ev("a", 2)])[0][0]
    raw, used = merge([*rows, end_a, after_end])
    assert used == 3
    merged = json.loads(raw)
    assert [s["id"] for s in merged["sessions"]] == ["a", "b"]
    assert len(merged["events"]) == 2
    assert merged["ends"] == [{"session_id": "a", "status": "completed"}]
    assert merge([after_end]) == (after_end, 1)


def test_split_keeps_needed_sessions_and_puts_ends_last() -> None:
    body = {
        "sessions": [{"id": "p"}, {"id": "c", "parent_id": "p"}, {"id": "x"}],
        "events": [{"session_id": "x", "kind": "log"}, {"session_id": "c", "kind": "log"}],
        "ends": [{"session_id": "c", "status": "completed"}],
    }
    halves = split(body)
    assert halves is not None
    first, second = halves
    assert [s["id"] for s in first["sessions"]] == ["x"]
    assert first["ends"] == []
    assert [s["id"] for s in second["sessions"]] == ["p", "c"]
    assert second["ends"] == body["ends"]
    assert split({"events": [{"session_id": "x"}]}) is None


def test_split_goes_down_to_one_event_one_end_or_one_orphan_descriptor() -> None:
    body = {
        "sessions": [{"id": "idle"}, {"id": "x"}],
        "events": [{"session_id": "x", "kind": "log", "idempotency_key": "k"}],
        "ends": [{"session_id": "x", "status": "completed"}],
    }
    halves = split(body)
    assert halves is not None
    first, second = halves
    # the descriptor nothing needs is an item of its own, so it cannot take others down
    assert first == {"sessions": [{"id": "idle"}], "events": [], "ends": []}
    assert second["sessions"] == [{"id": "x"}]
    assert second["ends"] == body["ends"]
    leaves = split(second)
    assert leaves is not None
    event_leaf, end_leaf = leaves
    assert event_leaf == {"sessions": [{"id": "x"}], "events": body["events"], "ends": []}
    assert end_leaf == {"sessions": [{"id": "x"}], "events": [], "ends": body["ends"]}
    assert split(event_leaf) is None
    assert split(end_leaf) is None
    assert split(first) is None


def test_split_keeps_an_orphans_parents() -> None:
    body = {
        "sessions": [{"id": "p"}, {"id": "c", "parent_id": "p"}, {"id": "x"}],
        "events": [{"session_id": "x", "kind": "log"}],
        "ends": [],
    }
    halves = split(body)
    assert halves is not None
    # items: orphan p, orphan c, the event; c travels with its parent p
    assert [[s["id"] for s in half["sessions"]] for half in halves] == [["p"], ["p", "c", "x"]]
    assert [len(half["events"]) for half in halves] == [0, 1]

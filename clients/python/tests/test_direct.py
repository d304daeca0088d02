"""Direct calls (state, goals, memory): envelope parsing, errors, retries, breaker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tether_client import (
    UNSET,
    CircuitOpenError,
    Client,
    ClientClosedError,
    NotFoundError,
    PreconditionFailedError,
    ServerUnreachableError,
)

from .sdk_helpers import FakeServer


def test_state_round_trip_and_if_match(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    assert client.flush(5)
    first = session.update_state({"plan": ["a"], "step": 1})
    assert (first.state, first.version) == ({"plan": ["a"], "step": 1}, 1)
    second = session.update_state({"step": None}, if_match=1)
    assert second.state == {"plan": ["a"]}
    with pytest.raises(PreconditionFailedError) as info:
        session.update_state({"step": 3}, if_match=1)
    assert info.value.status == 412
    assert info.value.code == "precondition_failed"
    assert session.get_state().version == 2
    patch = [r for r in fake.requests if r[0] == "PATCH"]
    assert patch[0][2]["content-type"] == "application/merge-patch+json"
    assert patch[1][2]["if-match"] == "1"


def test_goals(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client()
    session = client.session()
    assert client.flush(5)
    goal = session.add_goal("find flights", priority=2)
    assert goal["description"] == "find flights"
    updated = session.update_goal(goal["id"], progress=0.5, status=UNSET)
    assert updated["progress"] == 0.5
    (_, _, headers, _) = next(r for r in fake.requests if r[0] == "POST" and "goals" in r[1])
    assert headers["idempotency-key"]
    (_, _, _, body) = next(r for r in fake.requests if r[0] == "PATCH" and "goals" in r[1])
    assert body == {"progress": 0.5}


def test_unknown_session_is_not_found(make_client: Callable[..., Client]) -> None:
    client = make_client()
    with pytest.raises(NotFoundError) as info:
        client.session(id="never-sent").get_state()  # flush() not called: still queued
    assert info.value.correlation_id == "c-err"


def test_memory_methods(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client()
    memory = client.remember(
        "user/alice", "Alice prefers green tea", kind="preference", tags=["drinks"]
    )
    assert memory["idempotency_key"]
    many = client.remember_many(
        [
            "Alice lives in Lyon",
            {"text": "Bob likes coffee", "namespace": "user/bob", "importance": 0.9},
        ],
        namespace="user/alice",
    )
    assert [m["namespace"] for m in many] == ["user/alice", "user/bob"]
    results = client.recall("user/alice", "tea", limit=5)
    assert [r.memory["text"] for r in results] == ["Alice prefers green tea"]
    assert results[0].scores == {"bm25": 1.0}
    client.forget(memory["id"])
    assert client.recall("user/alice", "tea") == []
    with pytest.raises(NotFoundError):
        client.forget(memory["id"])
    with pytest.raises(ValueError, match="namespace"):
        client.remember_many(["no namespace"])


def test_unreachable_raises_then_circuit_fails_fast(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client(
        max_retries=2, breaker_threshold=2, breaker_open_base=5.0, breaker_open_max=5.0
    )
    session = client.session()
    fake.down = True
    with pytest.raises(ServerUnreachableError, match="cannot reach"):
        session.get_state()
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError) as info:
        client.recall("user/a", "x")
    assert time.perf_counter() - started < 0.05
    assert 0 < info.value.retry_in <= 5.0


def test_503_is_retried_honouring_retry_after(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client(max_retries=3, retry_max=2.0)
    fake.fail_next = [(503, "1"), (429, "0")]
    started = time.monotonic()
    client.remember("user/a", "x")
    assert time.monotonic() - started >= 0.95
    posts = [r for r in fake.requests if r[1] == "/v1/memories"]
    assert len(posts) == 3
    # the same idempotency key on every attempt
    assert len({body["idempotency_key"] for _, _, _, body in posts}) == 1


def test_closed_client_raises(make_client: Callable[..., Client]) -> None:
    client = make_client()
    client.close()
    with pytest.raises(ClientClosedError):
        client.recall("user/a", "x")

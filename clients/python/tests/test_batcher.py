"""The batcher against the in-process fake server: order, outages, replay, poison."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tether_client import Client

from .sdk_helpers import FakeServer


def keys(fake: FakeServer, session_id: str) -> list[str]:
    return [e["idempotency_key"] for e in fake.events.get(session_id, [])]


def test_events_are_delivered_in_order_with_their_keys(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session(agent="a", user_id="u")
    logged = [session.log_action("step", input={"i": i}) for i in range(250)]
    assert client.flush(5)
    assert keys(fake, session.id) == logged
    assert [e["seq"] for e in fake.events[session.id]] == list(range(1, 251))
    assert fake.sessions[session.id] == {"id": session.id, "agent": "a", "user_id": "u"}
    batch_posts = [r for r in fake.requests if r[1] == "/v1/events/batch"]
    assert all(len(body["events"]) <= 500 for _, _, _, body in batch_posts)  # max_batch_events
    assert client.stats().sent_events == 250


def test_flush_interval_sends_without_flush(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client(flush_interval=0.05)
    session = client.session()
    session.log_message("hi")
    deadline = time.monotonic() + 5
    while not fake.events.get(session.id) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fake.events[session.id]) == 1


def test_outage_spools_then_replays_each_event_once(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    fake.down = True
    logged = [session.log_action("a", attributes={"n": i}) for i in range(300)]
    assert client.checkpoint(5)
    assert not client.flush(0.3)
    stats = client.stats()
    assert stats.spooled_events == 300
    assert stats.breaker in {"open", "half_open"}
    fake.down = False
    assert client.flush(5)
    assert keys(fake, session.id) == logged
    assert client.stats().spooled_events == 0


def test_retry_after_is_honoured(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client(retry_max=2.0)
    session = client.session()
    fake.fail_next = [(503, "1")]
    started = time.monotonic()
    session.log_action("x")
    # wait without flush(): flush() probes early on purpose
    deadline = time.monotonic() + 5
    while not fake.events.get(session.id) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.events.get(session.id)
    assert time.monotonic() - started >= 0.95


def test_rejected_event_is_isolated_and_the_rest_delivered(
    make_client: Callable[..., Client], fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    session = client.session()
    fake.reject_kind = "error"
    good = [session.log_action("ok") for _ in range(10)]
    bad = session.log_event("error", name="poison")
    good += [session.log_action("ok") for _ in range(10)]
    with caplog.at_level(logging.WARNING, logger="tether_client"):
        assert client.flush(5)
    assert keys(fake, session.id) == good
    assert bad in caplog.text
    # refused is not lost: it is a dead letter (more in test_dead_letters.py)
    assert client.stats().dropped_events == 0
    assert [d.idempotency_key for d in client.dead_letters()] == [bad]


def test_spool_survives_a_restart_and_replays_in_order(
    tmp_path: Path, fake: FakeServer, make_client: Callable[..., Client]
) -> None:
    fake.down = True
    first = make_client(close_timeout=0.1)
    session = first.session(id="s-restart")
    logged = [session.log_action("a") for _ in range(120)]
    assert first.checkpoint(5)
    first.close()
    assert not fake.events

    fake.down = False
    second = make_client()
    more = second.session(id="s-restart")
    logged.append(more.log_action("after restart"))
    assert second.flush(5)
    assert keys(fake, "s-restart") == logged


def test_replay_with_same_keys_is_deduplicated(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    session.log_action("a", idempotency_key="fixed-1")
    session.log_action("a", idempotency_key="fixed-1")
    assert client.flush(5)
    assert keys(fake, session.id) == ["fixed-1"]
    assert client.stats().duplicates == 1


def test_logging_while_down_costs_no_network_time(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    fake.down = True
    started = time.perf_counter()
    for _ in range(1_000):
        session.log_action("x")
    # generous bound: this is a sanity check, the real numbers are in benchmarks/
    assert time.perf_counter() - started < 1.0


def test_queue_overflow_drops_with_warning(
    make_client: Callable[..., Client], fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(max_queue=5, flush_interval=10.0, batch_size=1000)
    session = client.session()
    with caplog.at_level(logging.WARNING, logger="tether_client"):
        for _ in range(10):
            session.log_action("x")
    assert "queue is full" in caplog.text
    assert client.stats().dropped_events >= 5


def test_close_is_idempotent_and_later_events_are_dropped(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    session.log_action("before")
    client.close()
    client.close()
    session.log_action("after")
    assert len(fake.events[session.id]) == 1
    assert not client.checkpoint(0.1)


def test_in_memory_spool(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client(spool=False)
    assert client.spool_path is None
    session = client.session()
    session.log_action("x")
    assert client.flush(5)
    assert len(fake.events[session.id]) == 1

"""Poison events and dead letters, against the in-process fake server.

The fake stands in for a *buggy* server: one that refuses a particular event (404,
409, 422), crashes on it (500 for that payload only), is sick (500 for everything,
the empty write probe included) or is away (503). The rule under test: refused items
become dead letters with the server's error and never hold back the events around
them; outages and a sick server never dead-letter anything; the breaker only counts
outages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tether.testing import wait_until
from tether_client import AsyncClient, Client, DeadLetter, ServerError

from .sdk_helpers import FakeServer


def keys(fake: FakeServer, session_id: str) -> list[str]:
    return [e["idempotency_key"] for e in fake.events.get(session_id, [])]


def batch_bodies(fake: FakeServer) -> list[dict[str, Any]]:
    with fake.lock:
        return [body for _, path, _, body in fake.requests if path == "/v1/events/batch"]


def probes(fake: FakeServer) -> int:
    """Write probes sent: empty batches (the SDK never sends one otherwise)."""
    return sum(1 for body in batch_bodies(fake) if body == {})


@pytest.mark.parametrize("status", [404, 409, 422])
def test_refused_event_is_dead_lettered_and_its_neighbours_delivered(
    make_client: Callable[..., Client], fake: FakeServer, status: int
) -> None:
    client = make_client()
    session = client.session()
    fake.reject_kind = "error"
    fake.reject_status = status
    good = [session.log_action("ok", input={"i": i}) for i in range(10)]
    bad = session.log_event("error", name="poison")
    good += [session.log_action("ok", input={"i": i}) for i in range(10, 20)]
    assert client.flush(5)
    assert keys(fake, session.id) == good  # each once, in order
    (letter,) = client.dead_letters()
    assert isinstance(letter, DeadLetter)
    assert (letter.session_id, letter.kind, letter.idempotency_key) == (session.id, "error", bad)
    assert (letter.status, letter.code, letter.message) == (status, "invalid_input", "bad kind")
    assert letter.correlation_id == "c-err"
    assert letter.details is None
    assert letter.event is not None
    assert letter.event["name"] == "poison"
    assert [e["idempotency_key"] for e in letter.body["events"]] == [bad]
    assert letter.body["sessions"] == [{"id": session.id}]  # self-contained: resendable
    assert letter.created_at.tzinfo is UTC
    assert abs((datetime.now(UTC) - letter.created_at).total_seconds()) < 60
    stats = client.stats()
    assert (stats.dead_letters, stats.dropped_events, stats.spooled_events) == (1, 0, 0)
    assert stats.breaker == "closed"


def test_unknown_parent_404_dead_letters_that_sessions_items_only(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    lead = client.session(id="lead")
    orphan = client.session(id="orphan", parent_id="no-such-parent")
    good = [lead.log_action("a") for _ in range(5)]
    bad = orphan.log_action("lost")
    good += [lead.log_action("b") for _ in range(5)]
    orphan.end()
    assert client.flush(5)
    assert keys(fake, "lead") == good
    assert "orphan" not in fake.sessions
    letters = client.dead_letters()
    # the event and the end, each with the server's 404 and the descriptor it needs
    assert [(d.session_id, d.kind, d.idempotency_key) for d in letters] == [
        ("orphan", "action", bad),
        ("orphan", None, None),
    ]
    assert {(d.status, d.code) for d in letters} == {(404, "not_found")}
    assert letters[1].body["ends"] == [{"session_id": "orphan", "status": "completed"}]
    assert all(d.body["sessions"][-1]["parent_id"] == "no-such-parent" for d in letters)


def test_500_for_one_payload_is_dead_lettered_after_a_passing_write_probe(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client(poison_after=3)
    session = client.session()
    fake.crash_kind = "error"
    good = [session.log_action("ok") for _ in range(10)]
    bad = session.log_event("error", name="crashes the server")
    good += [session.log_action("ok") for _ in range(10)]
    assert client.flush(5)
    assert keys(fake, session.id) == good
    (letter,) = client.dead_letters()
    assert (letter.idempotency_key, letter.status, letter.code) == (bad, 500, "internal")
    bodies = batch_bodies(fake)
    alone = [
        i
        for i, body in enumerate(bodies)
        if [e["idempotency_key"] for e in body.get("events", [])] == [bad]
    ]
    # the event alone answered 500 three times, then the empty write passed: only then
    # was it dead-lettered
    assert len(alone) >= 3
    assert {} in bodies[alone[-1] + 1 :]
    assert client.stats().breaker == "closed"


def test_500_for_every_request_dead_letters_nothing_and_keeps_the_events(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client(poison_after=2)
    session = client.session()
    fake.fail_always = 500  # a sick server: the write probe fails too
    logged = [session.log_action("x") for _ in range(5)]
    logged.append(session.log_event("error", name="would look like poison"))
    assert client.checkpoint(5)
    wait_until(lambda: probes(fake) >= 3, timeout=30)  # three rounds of "is it the event?"
    assert client.dead_letters() == []
    stats = client.stats()
    assert stats.spooled_events == 6
    assert stats.dead_letters == 0
    assert stats.breaker == "closed"  # a server answering 500 is up
    fake.fail_always = None
    assert client.flush(5)
    assert keys(fake, session.id) == logged
    assert client.dead_letters() == []


def test_404_for_every_request_is_a_wrong_url_not_poison(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    fake.fail_always = 404  # e.g. a proxy without the route: the empty batch gets 404 too
    logged = [session.log_action("x") for _ in range(3)]
    assert client.checkpoint(5)
    wait_until(lambda: probes(fake) >= 2, timeout=30)
    assert client.dead_letters() == []
    assert client.stats().spooled_events == 3
    assert max(len(b.get("events", [])) for b in batch_bodies(fake)) == 3  # never split
    assert min(len(b.get("events", [])) for b in batch_bodies(fake) if b != {}) == 3
    fake.fail_always = None
    assert client.flush(5)
    assert keys(fake, session.id) == logged


def test_503_never_dead_letters_and_opens_the_breaker(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client(poison_after=1, breaker_threshold=2)
    session = client.session()
    fake.fail_always = 503
    logged = [session.log_action("x") for _ in range(5)]
    assert client.checkpoint(5)
    wait_until(lambda: len(batch_bodies(fake)) >= 6, timeout=30)
    assert not client.flush(0.3)
    assert probes(fake) == 0  # an outage is never a reason to suspect the events
    assert client.dead_letters() == []
    stats = client.stats()
    assert stats.spooled_events == 5
    assert stats.breaker in {"open", "half_open"}
    fake.fail_always = None
    assert client.flush(5)
    assert keys(fake, session.id) == logged
    assert client.stats().dead_letters == 0


def test_poison_and_direct_500s_never_count_as_breaker_failures(
    make_client: Callable[..., Client], fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(breaker_threshold=1, max_retries=1)
    failures: list[None] = []
    breaker = client._breaker
    monkeypatch.setattr(breaker, "record_failure", lambda: failures.append(None))
    session = client.session()
    fake.reject_kind = "error"
    fake.crash_kind = "tool"
    session.log_action("ok")
    session.log_event("error", name="refused")
    session.log_event("tool", name="crashes")
    session.log_action("ok")
    assert client.flush(5)
    assert len(client.dead_letters()) == 2
    fake.fail_next = [(500, None)]
    with pytest.raises(ServerError):
        client.remember("user/a", "x")
    client.remember("user/a", "y")  # not CircuitOpenError: the circuit stayed closed
    assert failures == []
    assert client.stats().breaker == "closed"


def test_dead_letters_survive_a_restart(
    make_client: Callable[..., Client], fake: FakeServer, tmp_path: Path
) -> None:
    first = make_client()
    session = first.session(id="s-restart")
    fake.reject_kind = "error"
    bad = session.log_event("error", name="poison")
    assert first.flush(5)
    before = first.dead_letters()
    first.close()

    second = make_client()
    assert second.spool_path == first.spool_path
    assert second.dead_letters() == before
    assert [d.idempotency_key for d in before] == [bad]
    assert second.stats().dead_letters == 1


def test_drop_and_retry_dead_letters(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client()
    session = client.session()
    fake.reject_kind = "error"
    first = session.log_event("error", name="one")
    second = session.log_event("error", name="two")
    third = session.log_event("error", name="three")
    assert client.flush(5)
    letters = {d.idempotency_key: d.id for d in client.dead_letters()}
    assert set(letters) == {first, second, third}

    fake.reject_kind = None  # the server was fixed
    assert client.retry_dead_letters([letters[second]]) == 1
    assert client.flush(5)
    assert keys(fake, session.id) == [second]
    assert {d.idempotency_key for d in client.dead_letters()} == {first, third}

    assert client.drop_dead_letters([letters[first], 999_999]) == 1
    assert [d.idempotency_key for d in client.dead_letters()] == [third]
    assert client.drop_dead_letters([]) == 0
    assert client.retry_dead_letters() == 1
    assert client.flush(5)
    assert keys(fake, session.id) == [second, third]
    assert client.dead_letters() == []
    assert client.drop_dead_letters() == 0
    assert client.stats().dead_letters == 0


def test_a_retried_dead_letter_refused_again_is_dead_lettered_again(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    fake.reject_kind = "error"
    bad = session.log_event("error")
    assert client.flush(5)
    assert client.retry_dead_letters() == 1
    assert client.flush(5)
    assert [d.idempotency_key for d in client.dead_letters()] == [bad]


def test_the_dead_letter_warning_is_logged_once(
    make_client: Callable[..., Client], fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    session = client.session()
    fake.reject_kind = "error"
    with caplog.at_level(logging.DEBUG, logger="tether_client"):
        first = session.log_event("error", name="one")
        assert client.flush(5)
        second = session.log_event("error", name="two")
        assert client.flush(5)
    records = [r for r in caplog.records if "dead letters" in r.getMessage()]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    (warning,) = warnings
    message = warning.getMessage()
    assert "client.dead_letters()" in message
    assert str(client.spool_path) in message
    assert first in message
    assert "422 invalid_input: bad kind" in message
    assert any(r.levelno == logging.DEBUG and second in r.getMessage() for r in records)


def test_dead_letters_in_memory_without_a_spool_file(
    make_client: Callable[..., Client], fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(spool=False)
    session = client.session()
    fake.reject_kind = "error"
    good = session.log_action("ok")
    with caplog.at_level(logging.WARNING, logger="tether_client"):
        bad = session.log_event("error")
        assert client.flush(5)
    assert keys(fake, session.id) == [good]
    assert [d.idempotency_key for d in client.dead_letters()] == [bad]
    assert "memory (spool=False)" in caplog.text


def test_async_client_has_the_same_dead_letter_methods(tmp_path: Path, fake: FakeServer) -> None:
    async def main() -> tuple[list[DeadLetter], int, int]:
        async with AsyncClient(
            "http://tether.test", spool_dir=tmp_path / "spool", transport=fake.transport()
        ) as client:
            session = client.session()
            fake.reject_kind = "error"
            session.log_event("error")
            assert await client.flush(5)
            letters = client.dead_letters()
            fake.reject_kind = None
            moved = client.retry_dead_letters()
            assert await client.flush(5)
            return letters, moved, client.drop_dead_letters()

    letters, moved, dropped = asyncio.run(main())
    assert len(letters) == 1
    assert moved == 1
    assert dropped == 0

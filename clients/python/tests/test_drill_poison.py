"""The poison drill of issue 10, against a real ``tether serve``.

One event the server refuses (its ``name`` is 300 characters; the server's limit is
200 and it answers 422) is logged among 1,000. The other 999 must reach the server
exactly once, the refused one must be the only dead letter, with the server's 422,
``flush()`` must return ``True`` and the circuit breaker must stay closed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.testing import TetherServer
from tether_client import Client

pytestmark = pytest.mark.slow

TOTAL = 1_000
POISON_AT = 500


def test_one_poison_event_among_1000(tether_server: TetherServer, tmp_path: Path) -> None:
    client = Client(tether_server.url, spool_dir=tmp_path / "spool")
    session = client.session(id="poison-drill", agent="drill")
    for n in range(TOTAL):
        name = "x" * 300 if n == POISON_AT else f"step-{n}"
        session.log_action(name, attributes={"n": n}, idempotency_key=f"poison-drill:{n}")
    session.end()
    assert client.flush(60.0)
    stats = client.stats()
    letters = client.dead_letters()
    client.close()

    events = [
        e
        for e in tether_server.events("poison-drill")
        if (e.get("attributes") or {}).get("origin") != "server"
    ]
    keys = [e["idempotency_key"] for e in events]
    assert len(keys) == len(set(keys)) == TOTAL - 1  # each once
    assert set(keys) == {f"poison-drill:{n}" for n in range(TOTAL) if n != POISON_AT}
    assert [e["attributes"]["n"] for e in events] == [n for n in range(TOTAL) if n != POISON_AT]
    assert tether_server.get("/v1/sessions/poison-drill")["status"] == "completed"

    (letter,) = letters
    assert letter.idempotency_key == f"poison-drill:{POISON_AT}"
    assert (letter.session_id, letter.kind) == ("poison-drill", "action")
    assert letter.status == 422
    assert letter.code  # the server's error code, whatever it is named
    assert "name" in json.dumps(letter.details) + letter.message
    assert letter.correlation_id
    assert letter.event is not None
    assert letter.event["name"] == "x" * 300

    assert stats.breaker == "closed"
    assert stats.dead_letters == 1
    assert stats.dropped_events == 0
    assert stats.spooled_events == 0
    print(
        f"\n[poison drill] {len(keys)} delivered once, 1 dead letter "
        f"({letter.status} {letter.code}: {letter.message}); sent {stats.sent_events}, "
        f"duplicates {stats.duplicates}"
    )

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from tether_client._deadletter import Rejection
from tether_client._spool import Spool

REFUSED = Rejection(422, "invalid_input", "bad", {"field": "name"}, "c-1")


def leaf(key: str, pad: str = "") -> bytes:
    body = {
        "sessions": [{"id": "s"}],
        "events": [{"session_id": "s", "kind": "log", "idempotency_key": key, "name": pad}],
        "ends": [],
    }
    return json.dumps(body).encode()


def test_rows_come_back_oldest_first_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s" / "spool.sqlite3"
    spool = Spool(path, max_bytes=1 << 20)
    last = spool.append([(b'{"n":1}', 1), (b'{"n":2}', 2)])
    spool.append([(b'{"n":3}', 3)])
    spool.close()

    reopened = Spool(path, max_bytes=1 << 20)
    rows = reopened.oldest(max_events=100)
    assert [r.body for r in rows] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert rows[1].id == last
    assert reopened.counts() == (3, 6, 21)
    reopened.close()


def test_oldest_respects_event_budget_but_returns_at_least_one() -> None:
    spool = Spool(None, max_bytes=1 << 20)
    spool.append([(b"a", 300), (b"b", 300), (b"c", 300)])
    assert [r.body for r in spool.oldest(max_events=600)] == [b"a", b"b"]
    assert [r.body for r in spool.oldest(max_events=10)] == [b"a"]
    spool.close()


def test_delete_and_min_id() -> None:
    spool = Spool(None, max_bytes=1 << 20)
    spool.append([(b"a", 1), (b"b", 1)])
    first = spool.min_id()
    assert first is not None
    spool.delete([first, first])  # twice is fine
    assert spool.min_id() == first + 1
    spool.delete([first + 1])
    assert spool.min_id() is None
    # ids never go back, so a flush barrier's high-water mark stays meaningful
    assert spool.append([]) == first + 1
    spool.close()


def test_cap_drops_oldest_with_a_clear_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=250)
    with caplog.at_level(logging.WARNING, logger="tether_client"):
        spool.append([(b"x" * 100, 10), (b"y" * 100, 20)])
        assert not caplog.records
        spool.append([(b"z" * 100, 30)])
    assert [r.body[:1] for r in spool.oldest(1000)] == [b"y", b"z"]
    assert spool.dropped_events == 10
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "spool is full" in record.getMessage()
    assert "dropped the 10 oldest unsent events (1 batches)" in record.getMessage()
    assert "TETHER_SPOOL_MAX_BYTES" in record.getMessage()
    spool.close()


def test_bury_replaces_a_row_by_its_dead_letters_and_they_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, max_bytes=1_000_000)
    row_id = spool.append([(b"{}", 3)])
    spool.bury(row_id, [(leaf("k1"), REFUSED), (leaf("k2"), REFUSED)])
    assert spool.min_id() is None
    spool.close()

    reopened = Spool(path, max_bytes=1_000_000)
    letters = reopened.dead_letters()
    assert [(d.idempotency_key, d.session_id, d.kind) for d in letters] == [
        ("k1", "s", "log"),
        ("k2", "s", "log"),
    ]
    assert (letters[0].status, letters[0].code, letters[0].message) == (422, "invalid_input", "bad")
    assert (letters[0].details, letters[0].correlation_id) == ({"field": "name"}, "c-1")
    assert reopened.dead_letter_count() == 2
    assert [d.id for d in reopened.dead_letters([letters[1].id])] == [letters[1].id]
    reopened.close()


def test_bury_is_one_transaction(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=1_000_000)
    row_id = spool.append([(b"{}", 1)])
    with pytest.raises(json.JSONDecodeError):
        spool.bury(row_id, [(leaf("k1"), REFUSED), (b"not json", REFUSED)])
    assert spool.min_id() == row_id
    assert spool.dead_letter_count() == 0
    # a failure after the inserts (here: the row's DELETE) rolls the inserts back too
    spool._conn.execute(
        "CREATE TRIGGER fail BEFORE DELETE ON batches BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="no"):
        spool.bury(row_id, [(leaf("k1"), REFUSED)])
    assert spool.min_id() == row_id
    assert spool.dead_letter_count() == 0
    spool.close()


def test_requeue_moves_dead_letters_back_behind_waiting_rows() -> None:
    spool = Spool(None, max_bytes=1_000_000)
    first = spool.append([(b"{}", 1)])
    spool.bury(first, [(leaf("k1"), REFUSED), (leaf("k2"), REFUSED)])
    waiting = spool.append([(b'{"events": []}', 0)])
    k2 = spool.dead_letters()[1].id
    assert spool.requeue_dead_letters([k2]) == 1
    rows = spool.oldest(1000)
    assert next(r.id for r in rows) == waiting
    assert json.loads(rows[1].body)["events"][0]["idempotency_key"] == "k2"
    assert rows[1].events == 1
    assert [d.idempotency_key for d in spool.dead_letters()] == ["k1"]
    assert spool.drop_dead_letters() == 1
    assert spool.requeue_dead_letters() == 0
    spool.close()


def test_cap_drops_dead_letters_before_unsent_batches(caplog: pytest.LogCaptureFixture) -> None:
    one = leaf("k1", pad="p" * 100)
    spool = Spool(None, max_bytes=len(one) * 2 + 50)
    row_id = spool.append([(b"{}", 1)])
    spool.bury(row_id, [(one, REFUSED), (leaf("k2", pad="p" * 100), REFUSED)])
    with caplog.at_level(logging.WARNING, logger="tether_client"):
        spool.append([(b"x" * 100, 7)])
    assert [d.idempotency_key for d in spool.dead_letters()] == ["k2"]
    assert [r.events for r in spool.oldest(100)] == [7]  # the unsent batch is kept
    assert spool.dropped_events == 1
    assert "dropped the 1 oldest dead letters" in caplog.text
    spool.close()

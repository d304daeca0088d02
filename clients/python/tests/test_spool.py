from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tether_client._spool import Spool


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

"""Event appends at the SQL level: multi-row inserts, stored keys found by the unique index."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.domain.events import EventIn
from tether.domain.records import AppendResult
from tether.store.prepared import COLUMNS, prepare_events
from tether.store.shared.events import append_events
from tether.store.sqlite import events as sqlite_events
from tether.store.sqlite.migrate import upgrade


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    upgrade(tmp_path / "e.db")
    c = sqlite3.connect(tmp_path / "e.db", isolation_level=None)
    c.execute(
        "INSERT INTO sessions (pk, tenant_id, id, created_at, updated_at) "
        "VALUES (1, 't', 's', 0, 0)"
    )
    yield c
    c.close()


def _append(conn: sqlite3.Connection, keys: list[str | None]) -> AppendResult:
    events = [
        EventIn(
            kind="llm",
            status="error" if i % 10 == 0 else "ok",
            input={"i": i},
            input_tokens=1,
            output_tokens=2,
            cost_usd=0.5,
            idempotency_key=key,
        )
        for i, key in enumerate(keys)
    ]
    prepared = prepare_events(events, tenant_id="t", correlation_id=None, now=1)
    return append_events(
        sqlite_events, conn, session_pk=1, session_id="s", prepared=prepared, now=1
    )


def _stored(conn: sqlite3.Connection) -> list[tuple[int, str | None]]:
    return conn.execute("SELECT seq, idempotency_key FROM events ORDER BY seq").fetchall()


def test_distinct_keys_some_stored_keep_original_seqs_and_stay_gapless(
    conn: sqlite3.Connection,
) -> None:
    first = _append(conn, [f"k{i}" for i in range(0, 700, 7)])  # 100 keys, seqs 1..100
    assert first == AppendResult(seqs=list(range(1, 101)), duplicates=0)
    # 300 distinct keys (several insert statements), every 7th of them stored already.
    again = _append(conn, [f"k{i}" for i in range(300)])
    assert again.duplicates == 43
    new_seq = iter(range(101, 1000))
    assert again.seqs == [i // 7 + 1 if i % 7 == 0 else next(new_seq) for i in range(300)]
    stored = _stored(conn)
    assert [seq for seq, _ in stored] == list(range(1, 358))
    assert len({key for _, key in stored}) == 357
    counters = conn.execute(
        "SELECT event_count, error_count, input_tokens, output_tokens, cost_usd "
        "FROM sessions WHERE pk=1"
    ).fetchone()
    # Errors are every 10th event of each call; replays add nothing.
    new_errors = sum(1 for i in range(300) if i % 10 == 0 and i % 7 != 0)
    assert counters == (357, 10 + new_errors, 357, 714, 178.5)


def test_a_full_replay_stores_nothing_and_events_without_keys_always_append(
    conn: sqlite3.Connection,
) -> None:
    keys: list[str | None] = [f"k{i}" for i in range(130)]
    assert _append(conn, keys).seqs == list(range(1, 131))
    assert _append(conn, keys) == AppendResult(seqs=list(range(1, 131)), duplicates=130)
    assert _append(conn, [None, None, "k5"]) == AppendResult(seqs=[131, 132, 6], duplicates=1)
    assert [seq for seq, _ in _stored(conn)] == list(range(1, 133))


def test_a_taken_seq_is_an_error_not_a_skipped_row(conn: sqlite3.Connection) -> None:
    _append(conn, ["a", "b"])
    conn.execute("UPDATE sessions SET event_count=1 WHERE pk=1")  # a broken invariant
    with pytest.raises(sqlite3.IntegrityError):
        _append(conn, ["c"])


def test_columns_empty_in_every_row_are_left_null_and_the_rest_round_trip(
    conn: sqlite3.Connection,
) -> None:
    events = [
        EventIn(kind="llm", model="m1", input_tokens=0, input=[1, None], idempotency_key="a"),
        EventIn(kind="log", name="", attributes={}, output=False),
        EventIn(kind="tool", duration_ms=0.0, span_id="s", output="x"),
    ]
    prepared = prepare_events(events, tenant_id="t", correlation_id=None, now=5)
    bound = {COLUMNS[i] for i in prepared.columns}
    assert {"model", "name", "output", "duration_ms"} <= bound
    assert not {"role", "level", "correlation_id", "cost_usd"} & bound
    append_events(sqlite_events, conn, session_pk=1, session_id="s", prepared=prepared, now=5)
    got = conn.execute(
        "SELECT kind, name, role, model, input_tokens, input, output, attributes, duration_ms, "
        "span_id, idempotency_key, correlation_id FROM events ORDER BY seq"
    ).fetchall()
    assert got == [
        ("llm", None, None, "m1", 0, "[1,null]", None, None, None, None, "a", None),
        ("log", "", None, None, None, None, "false", "{}", None, None, None, None),
        ("tool", None, None, None, None, None, '"x"', None, 0.0, "s", None, None),
    ]

"""The SQLite store's group commit (isolation of failing jobs, durability) and its WAL size."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tether.errors import Unavailable
from tether.store.sqlite import SQLiteStore
from tether.store.sqlite import engine as sqlite_store
from tether.testing import wait_until


def _insert(value: str):  # type: ignore[no-untyped-def]
    def job(conn: sqlite3.Connection) -> int:
        cur = conn.execute(
            "INSERT INTO sessions (tenant_id, id, created_at, updated_at) VALUES ('t', ?, 0, 0)",
            (value,),
        )
        return int(cur.lastrowid or 0)

    return job


def _boom(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO sessions (tenant_id, id, created_at, updated_at) VALUES ('t', 'half', 0, 0)"
    )
    raise ValueError("job failed after writing")


def test_a_failing_job_rolls_back_alone_and_others_commit(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "s.db")
        await store.start()
        results = await asyncio.gather(
            *[store.write(_insert(f"s{i}")) for i in range(50)],
            store.write(_boom),
            *[store.write(_insert(f"t{i}")) for i in range(50)],
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1
        assert isinstance(errors[0], ValueError)
        ids = await store.read(
            lambda c: [r[0] for r in c.execute("SELECT id FROM sessions ORDER BY pk")]
        )
        assert "half" not in ids
        assert len(ids) == 100
        await store.close()

    asyncio.run(main())


def test_acknowledged_writes_are_visible_to_a_new_connection(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "d.db", synchronous="FULL")
        await store.start()
        await store.write(_insert("durable"))
        # Read through a brand-new connection while the store is still open (WAL visibility).
        conn = sqlite3.connect(tmp_path / "d.db")
        assert conn.execute("SELECT count(*) FROM sessions WHERE id='durable'").fetchone()[0] == 1
        conn.close()
        await store.close()

    asyncio.run(main())


def test_readers_are_read_only_and_closed_store_refuses(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "r.db")
        await store.start()
        with pytest.raises(sqlite3.OperationalError):
            await store.read(_insert("nope"))
        await store.close()
        with pytest.raises(Unavailable):
            await store.write(_insert("late"))

    asyncio.run(main())


def test_close_checkpoints_every_committed_write_into_the_database_file(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        await store.start()
        await asyncio.gather(*[store.write(_insert(f"s{i}")) for i in range(300)])
        await store.close()

    asyncio.run(main())
    wal = tmp_path / "c.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 300
    conn.close()


def _blobs(rows: int, size: int):  # type: ignore[no-untyped-def]
    def job(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS blobs (b BLOB)")
        conn.executemany("INSERT INTO blobs VALUES (randomblob(?))", [(size,)] * rows)

    return job


def _wal_size(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_wal_is_emptied_when_writes_pause(tmp_path: Path) -> None:
    db = tmp_path / "w.db"

    async def main() -> None:
        store = SQLiteStore(db)
        await store.start()
        limit = await store.write(lambda c: c.execute("PRAGMA journal_size_limit").fetchone()[0])
        assert limit == sqlite_store._JOURNAL_SIZE_LIMIT
        # ~24 MB in one burst: one group commit's frames stay in the WAL until a checkpoint.
        await asyncio.gather(*[store.write(_blobs(200, 4000)) for _ in range(30)])
        await asyncio.to_thread(wait_until, lambda: _wal_size(db) == 0)
        assert await store.read(lambda c: c.execute("SELECT count(*) FROM blobs").fetchone()[0])
        await store.close()

    asyncio.run(main())


def test_a_reader_on_an_old_snapshot_delays_the_truncate_but_does_not_stop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "p.db"
    outcomes: list[str] = []

    def recording_empty_wal(conn: sqlite3.Connection) -> str:
        outcome = empty_wal(conn)
        outcomes.append(outcome)
        return outcome

    empty_wal = sqlite_store._empty_wal
    monkeypatch.setattr(sqlite_store, "_empty_wal", recording_empty_wal)

    async def main() -> None:
        store = SQLiteStore(db)
        await store.start()
        await store.write(_blobs(500, 4000))
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM blobs").fetchone()  # holds this snapshot
        await store.write(_blobs(500, 4000))
        await asyncio.to_thread(wait_until, lambda: "busy" in outcomes)
        # The writer was not held up: it answers while the reader still pins the WAL.
        await store.write(_insert("during"))
        assert _wal_size(db) > 0
        reader.execute("COMMIT")  # the next idle attempt (a second later) empties the WAL
        await asyncio.to_thread(wait_until, lambda: outcomes[-1] == "done")
        assert _wal_size(db) == 0
        reader.close()
        await store.close()

    asyncio.run(main())

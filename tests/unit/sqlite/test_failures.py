"""Storage failures: 503 (``Unavailable``) instead of raw sqlite3 errors, the write health
that readiness reports, the bounded readiness check, and ``check_writable``.

Disk-full and read-only filesystems on real mounts are drilled against a server process in
``tests/integration/test_storage_drills.py``; here SQLite itself produces the errors
(``max_page_count`` gives a genuine SQLITE_FULL, a text file attached as a database a
genuine SQLITE_NOTADB).
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tether.errors import Unavailable
from tether.store.base import StoreHealth
from tether.store.sqlite import SQLiteStore, check_writable
from tether.store.sqlite import engine as sqlite_store


def _insert(value: str) -> Callable[[sqlite3.Connection], None]:
    def job(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO sessions (tenant_id, id, created_at, updated_at) VALUES ('t', ?, 0, 0)",
            (value,),
        )

    return job


def _cap_pages(conn: sqlite3.Connection) -> None:
    """The database may not grow: the next write needing a page fails with SQLITE_FULL."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")


def _uncap_pages(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count=1073741823")


def _big(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO sessions (tenant_id, id, created_at, updated_at, metadata) "
        "VALUES ('t', 'big', 0, 0, randomblob(200000))"
    )


def _probes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM store_probe").fetchone()[0])


def _ids(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM sessions ORDER BY pk")]


def test_a_full_database_answers_unavailable_to_every_job_it_rolls_back(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "full.db")
        await store.start()
        await store.write(_insert("before"))
        await store.write(_cap_pages)
        results = await asyncio.gather(
            store.write(_insert("a")),
            store.write(_big),
            store.write(_insert("b")),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed, "the oversized write should have failed"
        for r in failed:  # never a raw sqlite3 error
            assert isinstance(r, Unavailable), repr(r)
        big = results[1]
        assert isinstance(big, Unavailable)
        assert big.message == "store write failed: database or disk is full"
        assert big.details == {"cause": "database or disk is full (SQLITE_FULL)"}
        # Whatever was acknowledged is stored; whatever failed is not.
        stored = await store.read(_ids)
        for value, r in zip(["a", "big", "b"], results, strict=True):
            assert (value in stored) == (not isinstance(r, BaseException))
        failure = store.write_failure()
        assert failure is not None
        assert "database or disk is full (SQLITE_FULL)" in failure
        await store.close()

    asyncio.run(main())


def test_other_sqlite_errors_reach_the_caller_unchanged(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "bugs.db")
        await store.start()
        await store.write(_insert("dup"))
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(_insert("dup"))
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await store.write(lambda c: c.execute("SELECT * FROM nowhere"))
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await store.read(lambda c: c.execute("SELECT * FROM nowhere"))
        assert store.write_failure() is None
        await store.close()

    asyncio.run(main())


def _reader_of_junk(junk: Path) -> Callable[[sqlite3.Connection], Any]:
    """A job that reads a text file attached as a database: a genuine SQLITE_NOTADB."""

    def read_junk(conn: sqlite3.Connection) -> Any:
        conn.execute("ATTACH DATABASE ? AS junk", (str(junk),))
        try:
            return conn.execute("SELECT * FROM junk.sqlite_master").fetchall()
        finally:
            conn.execute("DETACH DATABASE junk")

    return read_junk


def test_a_storage_error_in_one_job_fails_that_job_only(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("not a database, " * 100)

    async def main() -> None:
        store = SQLiteStore(tmp_path / "one.db")
        await store.start()
        results = await asyncio.gather(
            store.write(_insert("x")),
            store.write(_reader_of_junk(junk)),
            store.write(_insert("y")),
            return_exceptions=True,
        )
        assert results[0] is None
        assert results[2] is None
        failed = results[1]
        assert isinstance(failed, Unavailable)
        assert failed.message == "store write failed: file is not a database"
        assert failed.details == {"cause": "file is not a database (SQLITE_NOTADB)"}
        assert await store.read(_ids) == ["x", "y"]
        await store.close()

    asyncio.run(main())


def test_a_storage_error_on_the_read_path_is_unavailable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("not a database, " * 100)
    read_junk = _reader_of_junk(junk)

    async def main() -> None:
        store = SQLiteStore(tmp_path / "r.db", readers=1)
        await store.start()
        with pytest.raises(Unavailable, match="store read failed: file is not a database"):
            await store.read(read_junk)
        assert await store.read(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1
        await store.close()

    asyncio.run(main())


def test_readiness_is_down_while_writes_fail_and_recovers_when_space_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_full = True
    fallocate = os.posix_fallocate

    def fake_fallocate(fd: int, offset: int, length: int) -> None:
        if disk_full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fallocate(fd, offset, length)

    monkeypatch.setattr(sqlite_store.os, "posix_fallocate", fake_fallocate)

    async def main() -> None:
        nonlocal disk_full
        store = SQLiteStore(tmp_path / "h.db")
        await store.start()
        await store.write(_cap_pages)
        with pytest.raises(Unavailable):
            await store.write(_big)
        health = await store.check()
        assert health.status == "down"
        assert health.detail is not None
        # The probe found no room; it is the latest failure now.
        assert "No space left on device (ENOSPC)" in health.detail, health.detail
        with pytest.raises(Unavailable, match="database or disk is full"):
            await store.write(_big)
        assert (await store.check()).status == "down"

        disk_full = False  # space is freed
        await store.write(_uncap_pages)
        health = await store.check()
        assert health.status == "ok", health.detail
        assert store.write_failure() is None
        await store.write(_big)
        assert await store.read(_probes) == 1
        await store.close()

    asyncio.run(main())


def test_readiness_probes_an_idle_store_and_answers_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store.SQLiteEngine, "check_timeout_s", 0.2)
    release = threading.Event()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "slow.db")
        await store.start()
        # Nothing written since start: writes are in doubt, so the check probes them.
        assert (await store.check()).status == "ok"
        assert await store.read(_probes) == 1
        # A writer stuck in a job: the probe cannot run, the check still answers.
        monkeypatch.setattr(sqlite_store.SQLiteEngine, "probe_after_s", 0.0)
        stuck = asyncio.ensure_future(store.write(lambda c: release.wait(30)))
        health = await asyncio.wait_for(store.check(), 10)
        assert health == StoreHealth("down", "store did not answer within 0.2 s")
        release.set()
        await stuck
        assert (await store.check()).status == "ok"
        await store.close()
        assert (await store.check()).status == "down"

    try:
        asyncio.run(main())
    finally:
        release.set()


def test_a_successful_write_clears_the_failure(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        await store.start()
        await store.write(_cap_pages)
        with pytest.raises(Unavailable):
            await store.write(_big)
        assert store.write_failure() is not None
        await store.write(_uncap_pages)
        assert store.write_failure() is not None  # a pragma writes no row
        await store.write(_insert("after"))
        assert store.write_failure() is None
        await store.close()

    asyncio.run(main())


def test_check_writable_creates_the_directory_and_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "tether.db"
    check_writable(db)
    assert db.parent.is_dir()
    assert list(db.parent.iterdir()) == []


def test_check_writable_names_the_path_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Unavailable) as info:
        check_writable(blocker / "sub" / "tether.db")
    assert info.value.message.startswith(f"cannot create the database directory {blocker}/sub (")
    folder_db = tmp_path / "db-is-a-folder"
    folder_db.mkdir()
    with pytest.raises(Unavailable) as info:
        check_writable(folder_db)
    assert info.value.message == f"cannot write the database file {folder_db} (Is a directory)"

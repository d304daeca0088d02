"""The SQLite store's files are its owner's only: a folder it creates is 0700, a database
it creates 0600, and so are the -wal and -shm SQLite makes beside it (SQLite copies the
database file's mode). Existing files keep their mode; a readable one is warned about."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import stat
from pathlib import Path

import pytest

from tether.store.sqlite import SQLiteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_once(path: Path) -> dict[str, int]:
    """Open a store on ``path``, commit one write, and return the modes of the database
    folder and files while it is open (the -wal and -shm exist then)."""

    async def main() -> dict[str, int]:
        store = SQLiteStore(path)
        await store.start()
        await store.write(
            lambda c: c.execute(
                "INSERT INTO sessions (tenant_id, id, created_at, updated_at) "
                "VALUES ('t', 's', 0, 0)"
            )
        )
        names = [path.parent, path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))]
        modes = {p.name: _mode(p) for p in names}
        await store.close()
        return modes

    return asyncio.run(main())


def test_a_new_folder_and_database_are_the_owners_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "home" / "tether.db"
    with caplog.at_level(logging.WARNING, logger="tether.store"):
        modes = _write_once(path)
    assert modes == {
        "home": 0o700,
        "tether.db": 0o600,
        "tether.db-wal": 0o600,
        "tether.db-shm": 0o600,
    }
    assert not [r for r in caplog.records if "readable by other users" in r.getMessage()]


def test_an_existing_readable_database_keeps_its_mode_and_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)
    path = folder / "tether.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="tether.store"):
        modes = _write_once(path)
    assert modes["shared"] == 0o755  # not ours to change
    assert modes["tether.db"] == 0o644
    (warning,) = [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert str(path) in warning.getMessage()
    assert "chmod 600" in warning.getMessage()

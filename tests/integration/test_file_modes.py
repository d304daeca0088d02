"""A real ``tether serve`` on a fresh data directory keeps its files to its owner: the
directory it creates is 0700; tether.db, tether.db-wal and tether.db-shm are 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tether.testing import TetherServer


def test_a_fresh_data_directory_and_its_database_files_are_the_owners_only(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"  # TETHER_HOME; the server creates it (the log goes elsewhere)
    srv = TetherServer(home / "tether.db", home=tmp_path / "logs", env={"TETHER_HOME": str(home)})
    srv.start()
    try:
        r = httpx.post(f"{srv.url}/v1/sessions", json={"id": "private"}, timeout=30)
        assert r.status_code == 201  # a write: the WAL and its index exist now
        names = ["tether.db", "tether.db-wal", "tether.db-shm"]
        modes = {name: stat.S_IMODE((home / name).stat().st_mode) for name in names}
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert modes == dict.fromkeys(names, 0o600)
    finally:
        srv.stop()
    assert "readable by other users" not in srv.log_path.read_text()

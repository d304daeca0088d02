"""The SDK's spool keeps what the agent logged to the agent's user: a spool folder it
creates is 0700; the spool file (unsent batches and dead letters) and SQLite's -wal and
-shm beside it are 0600. An existing spool file keeps its mode."""

from __future__ import annotations

import stat
from pathlib import Path

from tether.testing import TetherServer
from tether_client import Client
from tether_client._spool import Spool


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_spool_and_dead_letters_are_the_owners_only(
    tether_server: TetherServer, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "cache" / "spool"  # neither exists yet
    client = Client(tether_server.url, spool_dir=spool_dir)
    try:
        session = client.session(agent="modes")
        session.log_action("step", attributes={"n": 1})
        session.log_action("x" * 300)  # the server refuses it (name over 200): a dead letter
        assert client.flush(30.0)
        assert len(client.dead_letters()) == 1
        spool = client.config.spool_path
        files = [spool, spool.with_name(spool.name + "-wal"), spool.with_name(spool.name + "-shm")]
        assert spool.parent == spool_dir
        assert _mode(spool_dir) == 0o700
        assert {f.name[-4:]: _mode(f) for f in files} == {
            "ite3": 0o600,
            "-wal": 0o600,
            "-shm": 0o600,
        }
    finally:
        client.close()


def test_an_existing_spool_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    path.touch()
    path.chmod(0o640)
    Spool(path, max_bytes=1 << 20).close()
    assert _mode(path) == 0o640

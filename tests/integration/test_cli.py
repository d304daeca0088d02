"""The ``tether`` command: help texts and the local-mode safety rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tether.testing import TetherServer

TETHER = [sys.executable, "-m", "tether"]


def test_serve_refuses_a_non_loopback_address_without_auth() -> None:
    done = subprocess.run(
        [*TETHER, "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to bind a non-loopback address" in done.stderr


def test_help_lists_the_commands() -> None:
    done = subprocess.run([*TETHER, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("serve", "import", "migrate", "version"):
        assert command in done.stdout
    serve = subprocess.run([*TETHER, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert "(default: 127.0.0.1)" in serve.stdout
    assert "(default: 7117)" in serve.stdout


def test_serve_on_a_postgres_that_does_not_answer_exits_with_one_line() -> None:
    url = "postgresql://tether:s3cret-pw@127.0.0.1:1/nowhere"  # nothing listens on port 1
    done = subprocess.run(
        [*TETHER, "serve", "--port", "0", "--db", url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tether: cannot open PostgreSQL at 127.0.0.1:1/nowhere: ")
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_a_trusted_network_allows_a_non_loopback_bind_with_a_warning(tmp_path: Path) -> None:
    srv = TetherServer(
        tmp_path / "t.db", env={"TETHER_HOST": "0.0.0.0", "TETHER_TRUST_NETWORK": "true"}
    ).start()  # it answers on 127.0.0.1 too: 0.0.0.0 is every address
    try:
        assert "without authentication (TETHER_TRUST_NETWORK)" in srv.log_path.read_text()
    finally:
        srv.stop()

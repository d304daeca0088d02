"""The ``tether`` command: help texts and the local-mode safety rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TETHER = [sys.executable, "-m", "tether"]


def test_serve_refuses_a_non_loopback_address_without_auth(tmp_path: Path) -> None:
    done = subprocess.run(
        [*TETHER, "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "refusing to serve 0.0.0.0 without auth" in done.stderr
    assert "TETHER_REQUIRE_AUTH=true" in done.stderr
    assert "tether keys create" in done.stderr


def test_help_lists_the_commands() -> None:
    done = subprocess.run([*TETHER, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("serve", "import", "migrate", "keys", "audit", "version"):
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

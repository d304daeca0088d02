"""The ``tether`` command: help texts and the local-mode safety rule."""

from __future__ import annotations

import subprocess
import sys

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
    for command in ("serve", "import", "version"):
        assert command in done.stdout
    serve = subprocess.run([*TETHER, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert "(default: 127.0.0.1)" in serve.stdout
    assert "(default: 7117)" in serve.stdout

"""Fixtures of the dashboard's browser tests: Debian's Chromium driven by Playwright, and a
``tether serve`` loaded with the ``make run`` data.

The browser is ``/usr/bin/chromium`` (``make services`` installs Debian's ``chromium``
and ``chromium-driver``); Playwright (``dev`` extra) launches it with ``executable_path``:
``playwright install`` (a browser download) is never used. Without it the tests skip, or
fail under ``TETHER_REQUIRE_SERVICES=1`` (CI), like the Redis tests.

Screenshots go to ``test-output/screenshots/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import ServiceUnavailable, skip_or_fail
from tether.testing import TetherServer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LOCOMO = ROOT / "examples" / "data" / "locomo-dev.json"


def chromium_path() -> str:
    """Debian's Chromium binary.

    Raises:
        ServiceUnavailable: not installed, or Playwright is missing.
    """
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise ServiceUnavailable(
            f"playwright is not installed ({exc}): pip install -e '.[dev]'"
        ) from exc
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    raise ServiceUnavailable(
        "Debian's chromium is not installed: `make services` (apt-get install chromium "
        "chromium-driver)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module (Playwright's sync API)."""
    try:
        path = chromium_path()
    except ServiceUnavailable as exc:
        skip_or_fail(exc)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


def seed(srv: TetherServer) -> None:
    """Load what ``make run`` loads (scripts/run.sh): the LoCoMo dev conversations, through
    ``tether import conversations`` (70 sessions, 1,451 events and memories)."""
    cmd = [sys.executable, "-m", "tether", "import", "conversations", str(LOCOMO)]
    cmd += ["--format", "locomo", "--url", srv.url]
    done = subprocess.run(cmd, env=srv.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherServer]:
    """One server per module on SQLite with the ``make run`` data. (The dashboard reads the
    API, whose behaviour on PostgreSQL the API suites check; one backend keeps this fast.)"""
    home = tmp_path_factory.mktemp("dashboard")
    srv = TetherServer(home / "tether.db", home=home).start()
    seed(srv)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

"""Fixtures shared by every test tree: a real ``tether serve`` process on a free port.

Integration tests (ours and the SDK's) talk to the server over real HTTP; the server runs
as a subprocess (:class:`tether.testing.TetherServer`) so SIGKILL drills kill exactly
what a crash would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tether.testing import TetherServer

ServerFactory = Callable[..., TetherServer]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers on demand: ``server_factory(db=None, env=None)``; all stop at teardown."""
    made: list[TetherServer] = []

    def make(db: Path | None = None, env: dict[str, str] | None = None) -> TetherServer:
        srv = TetherServer(db or tmp_path / "tether.db", env=env)
        made.append(srv)
        return srv.start()

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherServer]:
    """One running server per test module, on a fresh database."""
    srv = TetherServer(tmp_path_factory.mktemp("tether") / "tether.db").start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server: TetherServer) -> Iterator[httpx.Client]:
    """An httpx client pointed at the module's server."""
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client

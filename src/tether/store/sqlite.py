"""The SQLite store engine: one writer thread that group-commits, a bounded reader pool.

Write path (ARCHITECTURE §3): callers ``await store.write(fn)``; ``fn(conn)`` is queued to a
single writer thread. The writer takes every job waiting (up to ``_MAX_GROUP``), opens one
``BEGIN IMMEDIATE`` transaction, runs each job inside its own ``SAVEPOINT`` (a job that
raises is rolled back alone and its exception goes back to its caller), then ``COMMIT``\\s
once. Only after the commit returns are the callers' futures resolved, so an acknowledged
write is on disk (WAL, ``synchronous=NORMAL`` survives a process crash; ``FULL`` power loss).
Between group commits the writer also checkpoints the WAL into the database file, at most
once a second under load and once when writes pause (see ``_CHECKPOINT_EVERY_S``).

Reads run on a small pool of ``query_only`` connections in their own threads; WAL lets them
proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from tether.errors import Unavailable
from tether.store.migrate import upgrade

T = TypeVar("T")
log = logging.getLogger("tether.store")

# WAL lets readers run beside the one writer and makes commits cheap appends.
_JOURNAL_MODE = "WAL"
# A reader that hits a checkpoint lock waits rather than failing; 5 s covers any commit.
_BUSY_TIMEOUT_MS = 5000
# Bound one group commit so a flood of writers cannot hold one transaction open forever;
# 512 jobs of ~100 events each stays well under a second of work.
_MAX_GROUP = 512
# 64 MiB page cache per connection (negative = KiB): the hot indexes stay in memory.
_CACHE_KIB = -65536
# Memory-map up to 256 MiB of the file for readers; avoids read() copies on hot pages.
_MMAP_BYTES = 256 * 1024 * 1024
# SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL pages, so one
# writer's commit in every few hundred stalls for 10-25 ms (one-off: p99 commit 15.8 ms vs
# 3.3 ms without). The writer thread checkpoints instead, between group commits (after
# their callers are answered), at most this often under load and once when writes pause.
# Not from a separate thread: while the writer keeps appending, a concurrent checkpoint
# never catches up with the WAL's end, so SQLite never restarts the WAL and it grows
# without bound under sustained load (105 MB after 10 s of batched ingest, as with no
# checkpoints at all; 14 MB this way, at the same throughput).
_CHECKPOINT_EVERY_S = 1.0


def _null(value: None) -> None:
    return value


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = field(default=None)


def _connect(path: Path, synchronous: str, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA journal_mode={_JOURNAL_MODE}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size={_CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
    conn.execute("PRAGMA temp_store=MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


def _checkpoint(conn: sqlite3.Connection, mode: Literal["PASSIVE", "TRUNCATE"]) -> None:
    """Copy the WAL into the database file (the writer's connection, no transaction open).

    Run by the only writer, PASSIVE copies every frame no reader still needs, so the next
    write restarts the WAL from its beginning. Failure is logged, never raised: the WAL
    stays valid and the next checkpoint catches up.
    """
    try:
        conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    except sqlite3.Error:
        log.warning("%s checkpoint failed; the next one catches up", mode, exc_info=True)


def _resolve(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():  # the caller was cancelled; its write still committed
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


class SQLiteStore:
    """A SQLite database opened for Tether: migrations, the writer thread, the reader pool.

    Args:
        path: database file; created (with parents) if missing. ``":memory:"`` is not
            supported because readers and the writer must share one file.
        synchronous: ``"NORMAL"`` (default; durable across a process crash) or ``"FULL"``.
        readers: size of the read-only connection pool (threads).
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        readers: int = 4,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._readers = readers
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._rconns: list[sqlite3.Connection] = []
        self._rconns_lock = threading.Lock()
        self._closed = True

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Apply migrations, open the writer and reader connections. Idempotent."""
        if not self._closed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # CPython 3.11's sqlite3 binds int, float and str directly but sends None through
        # its adapter lookup, which fails slowly (an AttributeError built and dropped per
        # value): ~0.8 us per NULL against ~0.2 us for a str, all of it holding the GIL
        # (an event row with 11 NULLs: 12 us to bind and insert, 5 us with this adapter).
        # A registered adapter is found at once. Process-wide, and None still binds as
        # NULL, so other sqlite3 users see no change but the speed.
        sqlite3.register_adapter(types.NoneType, _null)
        await asyncio.to_thread(upgrade, self.path)
        self._wconn = _connect(self.path, self.synchronous, readonly=False)
        self._wconn.execute("PRAGMA wal_autocheckpoint=0")
        self._read_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="tether-read")
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="tether-writer", daemon=True)
        self._writer.start()
        log.info("store open: %s (synchronous=%s)", self.path, self.synchronous)

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True)
        with self._rconns_lock:
            for conn in self._rconns:
                conn.close()
            self._rconns.clear()
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None

    # -- the write path ------------------------------------------------------------
    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the next group commit; return its result after COMMIT.

        Raises:
            Unavailable: the store is closed.
            Exception: whatever ``fn`` raised (its savepoint was rolled back).
        """
        if self._closed:
            raise Unavailable("store is closed")
        loop = asyncio.get_running_loop()
        job = _Job(fn=fn, loop=loop, future=loop.create_future())
        self._queue.put(job)
        result: T = await job.future
        return result

    def _write_loop(self) -> None:
        conn = self._wconn
        assert conn is not None
        stop = False
        unchecked = False  # commits since the last checkpoint
        last_checkpoint = time.monotonic()
        while not stop:
            try:
                first = self._queue.get(timeout=_CHECKPOINT_EVERY_S if unchecked else None)
            except queue.Empty:  # writes paused: checkpoint what they left in the WAL
                _checkpoint(conn, "PASSIVE")
                unchecked, last_checkpoint = False, time.monotonic()
                continue
            if first is None:
                break
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._commit_group(conn, group)
            unchecked = True
            if time.monotonic() - last_checkpoint >= _CHECKPOINT_EVERY_S:
                _checkpoint(conn, "PASSIVE")
                unchecked, last_checkpoint = False, time.monotonic()
        _checkpoint(conn, "TRUNCATE")  # clean shutdown: leave an empty WAL

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        t0 = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn)
                except BaseException as exc:  # goes back to this job's caller only
                    conn.execute("ROLLBACK TO job")
                    job.error = exc
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the commit itself failed: nobody is acknowledged
            log.exception("group commit of %d jobs failed", len(group))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in group:
                job.error = Unavailable("store write failed", details=str(exc))
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed; nobody waits
                loop.call_soon_threadsafe(_resolve, jobs)
        log.debug("group commit: %d jobs in %.2f ms", len(group), (time.perf_counter() - t0) * 1e3)

    # -- the read path -------------------------------------------------------------
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a pooled read-only connection in a worker thread.

        Raises:
            Unavailable: the store is closed.
        """
        if self._closed or self._read_pool is None:
            raise Unavailable("store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self.synchronous, readonly=True)
            self._local.conn = conn
            with self._rconns_lock:
                self._rconns.append(conn)
        return fn(conn)

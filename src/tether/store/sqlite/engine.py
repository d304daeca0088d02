"""The SQLite store engine: one writer thread that group-commits, a bounded reader pool.

Write path (ARCHITECTURE §3): callers ``await store.write(fn)``; ``fn(conn)`` is queued to a
single writer thread. The writer takes every job waiting (up to ``_MAX_GROUP``), opens one
``BEGIN IMMEDIATE`` transaction, runs each job inside its own ``SAVEPOINT`` (a job that
raises is rolled back alone and its exception goes back to its caller), then ``COMMIT``\\s
once. Only after the commit returns are the callers' futures resolved, so an acknowledged
write is on disk (WAL, ``synchronous=NORMAL`` survives a process crash; ``FULL`` power loss).

When the storage fails (disk full, read-only or failing filesystem, a lock held by another
process, a corrupt file: the primary result codes in ``_STORAGE_ERRORS``), the callers get
:class:`~tether.errors.Unavailable` (HTTP 503) naming the cause, never the raw ``sqlite3``
exception; if SQLite rolled the whole transaction back, or ``COMMIT`` failed, every job of
the group gets it and none is acknowledged. Any other ``sqlite3`` error (a constraint, a
bad statement) is a bug or bad input and reaches its caller unchanged. The store remembers
the last storage failure until a later group commit writes something, and
:meth:`SQLiteEngine.check` (readiness) reports it and, while writes are in doubt, probes
them (see ``_PROBE_AFTER_S``).

Between group commits the writer also checkpoints the WAL into the database file: PASSIVE
at most once a second under load (``_CHECKPOINT_EVERY_S``), and TRUNCATE when writes pause,
which empties the ``-wal`` file (``_TRUNCATE_BUSY_MS`` bounds its wait for readers).
``_JOURNAL_SIZE_LIMIT`` caps what the file keeps after the WAL restarts under load.

Reads run on a small pool of ``query_only`` connections in their own threads; WAL lets them
proceed while the writer commits. A read that fails for a storage reason also raises
:class:`~tether.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import sqlite3
import tempfile
import threading
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from tether.domain.changes import Change
from tether.errors import Unavailable
from tether.store.common import collecting
from tether.store.groupcommit import Failure, GroupCommitEngine, WriteJob
from tether.store.sqlite.migrate import upgrade

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
# SQLite reuses the -wal file after a checkpoint instead of shrinking it, so the file kept
# its high-water size for good (issue 10: 92.9 MB idle; benchmarks/wal_size.py, 60 s of
# batched ingest beside four connections paging events: 211.8 MB, still 211.8 MB idle).
# With this limit the first commit after the WAL restarts truncates the file to it: same
# run, up to 119.6 MB while readers kept the WAL from restarting, 16.8 MB after each
# restart, 0 once writes paused (TRUNCATE below). Without readers the WAL reaches 51-55 MB
# a second either way and is now cut back every second, at the same throughput within
# noise (requests in 20 s: 12,259 / 11,927 with it, 13,030 / 12,206 without, 12,201 /
# 13,128 before this change; one-off, shared box). The value matters little since a pause
# empties the file; 16 MiB is what lighter load appends between checkpoints.
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
# When writes pause the writer empties the WAL with a TRUNCATE checkpoint, which waits for
# every reader to leave the WAL. A reader holding an old snapshot could keep the writer
# waiting as long as the 5 s busy timeout, so that checkpoint waits at most this long; past
# it, it has still copied what a PASSIVE one would, and the writer retries a second later
# (while writes stay paused) or leaves it to the checkpoints that follow the next writes.
# The copy itself is the longer part: 17 / 57 / 128 ms for a 5 / 21 / 52 MB WAL (one-off,
# ext4), which a write arriving then waits for anyway; the reader wait adds at most this.
_TRUNCATE_BUSY_MS = 10
# Primary result codes (https://www.sqlite.org/rescode.html) that mean the storage failed,
# not the statement: the caller gets Unavailable (503) and readiness reports it. NOMEM
# reaches Python as MemoryError, which is treated the same.
_STORAGE_ERRORS = frozenset(
    {
        sqlite3.SQLITE_BUSY,  # another connection (process) held the lock past the timeout
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,  # file or filesystem read-only
        sqlite3.SQLITE_IOERR,  # a read, write or fsync failed (EIO, EROFS after remount-ro)
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,  # disk (or quota) full
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)
# Readiness probes writes (a one-row upsert through the writer, after claiming
# _PROBE_SPACE_BYTES beside the database) when a storage error happened in this window or
# no write has succeeded for this long, so an idle server that lost its disk is noticed
# and a failed one recovers by itself once space is freed. Under write load no probe runs.
_PROBE_AFTER_S = 30.0
# The probe's room check. A one-row upsert alone can succeed on a full disk: the WAL file
# keeps space from earlier (failed or checkpointed) frames and SQLite writes into it (two
# upserts succeeded on a tmpfs with 0 bytes free, then the third failed), so readiness
# would flap back to ready while every batch still failed. A 1,000-event request (the
# API's largest batch) appends ~0.85 MB of WAL (51-55 MB a second at 60-65k events/s),
# which the next checkpoint writes again into the database file: 4 MiB is room for two
# such requests end to end. posix_fallocate reserves blocks without writing them.
_PROBE_SPACE_BYTES = 4 * 1024 * 1024
# The whole readiness check (read, then the write probe) answers within this, whatever the
# writer is doing; a slower store reports "down". Kubernetes' default probe timeout is 1 s.
# Measured on an idle store (one-off, 300 checks): 0.11 ms median (p95 0.16) without a
# probe; with it 0.38 ms (p95 0.74) on ext4, 1.97 ms (p95 2.67) on tmpfs, which zeroes the
# 4 MiB it allocates. A probe queued behind the idle TRUNCATE of a 52 MB WAL waits ~130 ms.
_CHECK_TIMEOUT_S = 1.0
# Sessions and memories are private: a folder Tether creates for the database is the
# owner's only, and so is a database file it creates (and, through SQLite copying the
# database file's mode, its -wal and -shm). The umask can only narrow these.
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def _null(value: None) -> None:
    return value


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
    except sqlite3.Error as exc:
        log.warning("%s checkpoint failed (%s); the next one catches up", mode, _cause(exc))


def _empty_wal(conn: sqlite3.Connection) -> Literal["done", "busy", "failed"]:
    """TRUNCATE checkpoint, waiting at most ``_TRUNCATE_BUSY_MS`` for readers.

    Returns:
        ``"done"``: every frame is in the database file and the ``-wal`` file is 0 bytes.
        ``"busy"``: a reader still used the WAL; the frames no reader needs were copied
        (what PASSIVE does: SQLite copies up to the oldest reader's snapshot before it
        gives up), the file keeps its size until a later checkpoint or restart.
        ``"failed"``: an error (e.g. the disk is full and the database file cannot grow),
        logged; the WAL stays valid.
    """
    conn.execute(f"PRAGMA busy_timeout={_TRUNCATE_BUSY_MS}")
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error as exc:
        log.warning("TRUNCATE checkpoint failed (%s); the next one catches up", _cause(exc))
        return "failed"
    finally:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    return "busy" if busy else "done"


def _cause(exc: BaseException) -> str:
    """``"database or disk is full (SQLITE_FULL)"``, ``"No space left on device (ENOSPC)"``."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None)
        return f"{exc} ({name})" if name else str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror} ({errno.errorcode.get(exc.errno, exc.errno)})"
    if isinstance(exc, MemoryError):
        return "out of memory (SQLITE_NOMEM)"
    return str(exc)


def _is_storage_error(exc: BaseException, op: Literal["read", "write"] = "write") -> bool:
    """True for a failure of the storage rather than of the statement or its input.

    ``sqlite3`` errors whose primary result code is in ``_STORAGE_ERRORS``, ``MemoryError``
    (SQLITE_NOMEM) and ``OSError`` (only the write probe does file I/O in a job). Readers
    are ``query_only``, so a plain SQLITE_READONLY on one is a write sent down the read
    path, a bug; its extended codes (e.g. READONLY_RECOVERY) are the storage's.
    """
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or (op == "read" and code == sqlite3.SQLITE_READONLY):
            return False
        return code & 0xFF in _STORAGE_ERRORS
    return isinstance(exc, OSError | MemoryError)


def _unavailable(exc: BaseException, op: Literal["read", "write"]) -> Unavailable:
    """The 503 a storage failure becomes: ``store write failed: database or disk is full``."""
    details = {"cause": _cause(exc)}
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, MemoryError):
        message = "out of memory"
    return Unavailable(f"store {op} failed: {message}", details=details)


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (``_FILE_MODE``) if missing,
    before SQLite first opens it: SQLite gives the ``-wal`` and ``-shm`` files it creates
    the database file's permissions. An existing file keeps its permissions (they are the
    user's); if it is readable by group or others, log a warning saying so.

    Raises:
        Unavailable: the file cannot be created or read (its message names the path).
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, _FILE_MODE))
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise Unavailable(f"cannot write the database file {path} ({exc.strerror or exc})") from exc
    if mode & 0o044:
        log.warning(
            "the database %s is readable by other users (mode %03o); to keep it private: "
            "chmod 600 %s %s-wal %s-shm",
            path,
            mode,
            path,
            path,
            path,
        )


def check_writable(path: Path) -> None:
    """Check that a database at ``path`` can be created and written, before opening it.

    Creates the directory if missing (0700: the owner's only; missing parents as the umask
    says), creates and removes an unnamed file in it (SQLite creates ``-wal`` and ``-shm``
    files beside the database, so the directory must be writable even when the database
    exists), and opens the database file for writing if it exists. Nothing else is left
    behind. :meth:`SQLiteStore.start` calls it; so does ``tether serve``, to exit with one
    line instead of a traceback.

    Raises:
        Unavailable: the message names the path and the OS error, e.g.
            ``cannot write the database directory /data (Read-only file system)``.
    """
    directory = path.parent
    try:
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise Unavailable(
            f"cannot create the database directory {directory} ({exc.strerror or exc})"
        ) from exc
    try:
        with tempfile.TemporaryFile(dir=directory):  # O_TMPFILE where supported: no name
            pass
    except OSError as exc:
        raise Unavailable(
            f"cannot write the database directory {directory} ({exc.strerror or exc})"
        ) from exc
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except OSError as exc:
            raise Unavailable(
                f"cannot write the database file {path} ({exc.strerror or exc})"
            ) from exc


class SQLiteEngine(GroupCommitEngine):
    """A SQLite database opened for Tether: migrations, the writer thread, the reader pool.

    Args:
        path: database file; created (with parents) if missing. ``":memory:"`` is not
            supported because readers and the writer must share one file.
        synchronous: ``"NORMAL"`` (default; durable across a process crash) or ``"FULL"``.
        readers: size of the read-only connection pool (threads).

    ``check()`` is its readiness; the writer thread records the write health it reports
    (the last storage failure, the last group commit that wrote something).
    """

    probe_after_s = _PROBE_AFTER_S
    check_timeout_s = _CHECK_TIMEOUT_S

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        readers: int = 4,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.synchronous = synchronous
        self._readers = readers
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._rconns: list[sqlite3.Connection] = []
        self._rconns_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Apply migrations, open the writer and reader connections. Idempotent.

        A database file it creates (and so its ``-wal`` and ``-shm``) is 0600, its folder
        0700; an existing file readable by other users is logged as a warning.

        Raises:
            Unavailable: the database's directory or file cannot be written
                (see :func:`check_writable`).
        """
        if not self._closed:
            return
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(check_writable, self.path)
        # CPython 3.11's sqlite3 binds int, float and str directly but sends None through
        # its adapter lookup, which fails slowly (an AttributeError built and dropped per
        # value): ~0.8 us per NULL against ~0.2 us for a str, all of it holding the GIL
        # (an event row with 11 NULLs: 12 us to bind and insert, 5 us with this adapter).
        # A registered adapter is found at once. Process-wide, and None still binds as
        # NULL, so other sqlite3 users see no change but the speed.
        sqlite3.register_adapter(types.NoneType, _null)
        await asyncio.to_thread(_create_private, self.path)
        await asyncio.to_thread(upgrade, self.path)
        self._wconn = _connect(self.path, self.synchronous, readonly=False)
        self._wconn.execute("PRAGMA wal_autocheckpoint=0")
        self._wconn.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
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
    def _write_loop(self) -> None:
        conn = self._wconn
        assert conn is not None
        stop = False
        wal_dirty = False  # committed since the WAL was last emptied
        last_checkpoint = time.monotonic()
        while not stop:
            try:
                first = self._queue.get(timeout=_CHECKPOINT_EVERY_S if wal_dirty else None)
            except queue.Empty:  # writes paused: empty the WAL
                # Busy (a reader on an old snapshot): retry in a second while writes stay
                # paused. Failed (logged): the checkpoints after the next commit retry.
                wal_dirty = _empty_wal(conn) == "busy"
                last_checkpoint = time.monotonic()
                continue
            if first is None:
                break
            group = [first]
            stop = not self._more_jobs(group, _MAX_GROUP)
            self._commit_group(conn, group)
            wal_dirty = True
            if time.monotonic() - last_checkpoint >= _CHECKPOINT_EVERY_S:
                _checkpoint(conn, "PASSIVE")
                last_checkpoint = time.monotonic()
        _checkpoint(conn, "TRUNCATE")  # clean shutdown: leave an empty WAL

    def _commit_group(self, conn: sqlite3.Connection, group: list[WriteJob]) -> None:
        t0 = time.perf_counter()
        changes = conn.total_changes
        emitted: list[Change] = []
        lost: BaseException | None = None  # why the whole transaction is gone, if it is
        with collecting(emitted):
            try:
                conn.execute("BEGIN IMMEDIATE")
                for job in group:
                    conn.execute("SAVEPOINT job")
                    mark = len(emitted)
                    try:
                        job.result = job.fn(conn)
                    except BaseException as exc:  # goes back to this job's caller only
                        del emitted[mark:]
                        job.error = _unavailable(exc, "write") if _is_storage_error(exc) else exc
                        if not conn.in_transaction:  # SQLite rolled back everything (IOERR)
                            lost = exc
                            break
                        if _is_storage_error(exc):
                            self._last_failure = Failure(_cause(exc), time.monotonic())
                        conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                else:
                    conn.execute("COMMIT")
            except Exception as exc:  # BEGIN, SAVEPOINT or COMMIT failed: nobody is acked
                lost = exc
        if lost is not None:
            emitted.clear()
            self._fail_group(conn, group, lost)
        elif conn.total_changes != changes and any(job.error is None for job in group):
            self._last_write_ok = time.monotonic()  # committed, and rows reached the disk
        self._hand_back(group, emitted)
        log.debug("group commit: %d jobs in %.2f ms", len(group), (time.perf_counter() - t0) * 1e3)

    def _fail_group(
        self, conn: sqlite3.Connection, group: list[WriteJob], exc: BaseException
    ) -> None:
        """The group's transaction is lost: roll back, fail every job not failed already.

        A storage failure becomes :class:`Unavailable` and is recorded for readiness; any
        other error (a bug) goes to every caller as it is.
        """
        storage = _is_storage_error(exc)
        if storage:
            self._last_failure = Failure(_cause(exc), time.monotonic())
            log.error("group commit of %d jobs failed: %s", len(group), _cause(exc))
        else:
            log.error("group commit of %d jobs failed", len(group), exc_info=exc)
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # the next BEGIN fails too and reports it
                log.exception("rollback after a failed group commit failed")
        error = _unavailable(exc, "write") if storage else exc
        for job in group:
            job.result = None
            if job.error is None:
                job.error = error

    # -- the read path -------------------------------------------------------------
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a pooled read-only connection in a worker thread.

        Raises:
            Unavailable: the store is closed, or the storage failed (``_STORAGE_ERRORS``).
            Exception: whatever else ``fn`` raised.
        """
        if self._closed or self._read_pool is None:
            raise Unavailable("store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_pool, self._run_read, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = _connect(self.path, self.synchronous, readonly=True)
                self._local.conn = conn
                with self._rconns_lock:
                    self._rconns.append(conn)
            return fn(conn)
        except (sqlite3.Error, MemoryError) as exc:
            if _is_storage_error(exc, "read"):
                raise _unavailable(exc, "read") from exc
            raise

    # -- readiness -----------------------------------------------------------------
    def _probe(self, conn: sqlite3.Connection) -> None:
        """The write probe, run by the writer as a job: room on the disk, then a real write.

        Claims ``_PROBE_SPACE_BYTES`` in an unnamed file beside the database and releases
        it (``posix_fallocate``: blocks reserved, nothing written), then upserts the one
        row of ``store_probe``.

        Raises:
            OSError: no room (ENOSPC, EDQUOT), read-only filesystem (EROFS), I/O error.
            sqlite3.Error: the upsert failed.
        """
        with tempfile.TemporaryFile(dir=self.path.parent) as scratch:
            try:
                os.posix_fallocate(scratch.fileno(), 0, _PROBE_SPACE_BYTES)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise  # the filesystem cannot preallocate: the upsert alone decides
        conn.execute(
            "INSERT INTO store_probe (id, probed_at) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
            (int(time.time() * 1000),),
        )

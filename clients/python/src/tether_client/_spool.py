"""The durable spool: batches written before they are sent, deleted once acknowledged.

Each row of ``batches`` is one self-contained ``/v1/events/batch`` body (JSON bytes)
with its event count. Rows are sent oldest first (``rowid`` order) and replayed with
the same idempotency keys after a restart, so the server stores each event once.

The same file holds ``dead_letters``: items the server refused, each a leaf body with
the server's error (see :mod:`~._deadletter`). Moving a refused row's items there and
deleting the row is one transaction (:meth:`Spool.bury`), so a crash leaves either the
row (isolated again on replay) or its dead letters, never both and never neither.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ._deadletter import DeadLetter, Rejection, details_json, subject_of

logger = logging.getLogger("tether_client")

# WAL: the sender reads while the spooler writes, and a commit is one append.
_JOURNAL_MODE = "WAL"
# NORMAL in WAL survives a killed process (the drill's kill -9), not a power cut;
# FULL would fsync every batch, which costs more than the 200 ms budget on slow disks.
_SYNCHRONOUS = "NORMAL"
# Another process on the same file (an agent restarting) may hold the lock briefly.
_BUSY_TIMEOUT_MS = 5_000
# Spooled events and dead letters are what the agent logged (messages, tool inputs): a
# folder the spool creates and a spool file it creates are readable by their owner only
# (SQLite gives -wal and -shm the file's mode). Existing ones keep their permissions.
_DIR_MODE = 0o700
_FILE_MODE = 0o600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    events INTEGER NOT NULL,
    created_at REAL NOT NULL DEFAULT (julianday('now'))
)
"""
# created_at: Unix seconds. body: the refused leaf body as JSON bytes (resent as is by
# requeue). details: the server's error.details as JSON text.
_DEAD_LETTER_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    session_id TEXT,
    kind TEXT,
    idempotency_key TEXT,
    status INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT,
    correlation_id TEXT,
    body BLOB NOT NULL,
    events INTEGER NOT NULL
)
"""
_DEAD_LETTER_COLUMNS = (
    "id, created_at, session_id, kind, idempotency_key, status, code, message, details, "
    "correlation_id, body"
)


@dataclass(frozen=True, slots=True)
class SpoolRow:
    """One stored batch.

    Attributes:
        id: Monotonic row id (send order).
        body: The batch body as JSON bytes.
        events: Number of events in the body.
    """

    id: int
    body: bytes
    events: int


class Spool:
    """Unsent batches, in a SQLite file or (``path=None``) in memory.

    Thread-safe: one connection behind a lock; every method is short (no network).

    Args:
        path: SQLite file to use (created 0600 if missing, its directory 0700), or
            ``None`` for an in-memory spool that does not survive the process.
        max_bytes: Cap on the sum of stored body sizes in bytes, dead letters
            included. Adding past it drops the oldest dead letters first (the server
            already refused them), then the oldest rows, and logs a warning with the
            number of events dropped.

    Raises:
        sqlite3.Error: The file cannot be opened or is not a spool.
        OSError: The folder or the file cannot be created.
    """

    def __init__(self, path: Path | None, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            # Created before SQLite opens it: its -wal and -shm get the file's mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, _FILE_MODE))
            target = str(path)
        else:
            target = ":memory:"
        self._conn = sqlite3.connect(
            target, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
        )
        self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if path is not None:
            self._conn.execute(f"PRAGMA journal_mode={_JOURNAL_MODE}")
            self._conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS}")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_DEAD_LETTER_SCHEMA)
        self.dropped_events = 0

    # -- writing ---------------------------------------------------------------------

    def append(self, bodies: list[tuple[bytes, int]]) -> int:
        """Store batches in one transaction, then enforce the size cap.

        Args:
            bodies: ``(json_bytes, event_count)`` pairs, oldest first.

        Returns:
            The id of the last stored row (0 if ``bodies`` is empty and the spool is).
        """
        with self._lock:
            if bodies:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(
                        "INSERT INTO batches (body, events) VALUES (?, ?)", bodies
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._enforce_cap()
            row = self._conn.execute("SELECT max(id) FROM batches").fetchone()
            if row[0] is not None:
                return int(row[0])
            seq = self._conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'batches'"
            ).fetchone()
            return int(seq[0]) if seq else 0

    def _enforce_cap(self) -> None:
        total = self._conn.execute(
            "SELECT (SELECT coalesce(sum(length(body)), 0) FROM batches)"
            " + (SELECT coalesce(sum(length(body)), 0) FROM dead_letters)"
        ).fetchone()[0]
        if total <= self.max_bytes:
            return
        total = self._evict("dead_letters", total)
        self._evict("batches", total)

    def _evict(self, table: str, total: int) -> int:
        """Delete ``table``'s oldest rows until ``total`` fits the cap; return the new total."""
        dropped_rows = dropped_events = 0
        cursor = self._conn.execute(f"SELECT id, length(body), events FROM {table} ORDER BY id")
        last_id = 0
        for row_id, size, events in cursor.fetchall():
            if total <= self.max_bytes:
                break
            total -= size
            last_id = row_id
            dropped_rows += 1
            dropped_events += events
        if not dropped_rows:
            return total
        self._conn.execute(f"DELETE FROM {table} WHERE id <= ?", (last_id,))
        self.dropped_events += dropped_events
        if table == "batches":
            logger.warning(
                "tether_client spool is full (cap %d bytes at %s): dropped the %d oldest "
                "unsent events (%d batches); raise TETHER_SPOOL_MAX_BYTES or bring the "
                "server back",
                self.max_bytes,
                self.path or ":memory:",
                dropped_events,
                dropped_rows,
            )
        else:
            logger.warning(
                "tether_client spool is full (cap %d bytes at %s): dropped the %d oldest "
                "dead letters (events the server refused); see client.dead_letters()",
                self.max_bytes,
                self.path or ":memory:",
                dropped_rows,
            )
        return total

    def delete(self, ids: list[int]) -> None:
        """Remove delivered rows (ids already gone are ignored)."""
        with self._lock:
            self._conn.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in ids])

    # -- reading ---------------------------------------------------------------------

    def oldest(self, max_events: int, max_rows: int = 50) -> list[SpoolRow]:
        """Return the oldest rows whose events add up to at most ``max_events``.

        The first row is always returned, even when it alone is larger.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, body, events FROM batches ORDER BY id LIMIT ?", (max_rows,)
            ).fetchall()
        picked: list[SpoolRow] = []
        count = 0
        for row_id, body, events in rows:
            if picked and count + events > max_events:
                break
            picked.append(SpoolRow(int(row_id), bytes(body), int(events)))
            count += events
        return picked

    def min_id(self) -> int | None:
        """Id of the oldest row, or ``None`` when empty."""
        with self._lock:
            row = self._conn.execute("SELECT min(id) FROM batches").fetchone()
        return None if row[0] is None else int(row[0])

    def counts(self) -> tuple[int, int, int]:
        """Return ``(rows, events, bytes)`` currently stored."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*), coalesce(sum(events), 0), coalesce(sum(length(body)), 0) "
                "FROM batches"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    # -- dead letters ------------------------------------------------------------------

    def bury(self, row_id: int, letters: Sequence[tuple[bytes, Rejection]]) -> None:
        """Replace a spool row by the dead letters cut from it, in one transaction.

        Args:
            row_id: The spool row whose items were delivered or refused.
            letters: ``(leaf_body_json, rejection)`` for each refused item; may be
                empty (everything was delivered after all).
        """
        now = time.time()
        records = []
        for raw, rejection in letters:
            body = json.loads(raw)
            session_id, kind, key = subject_of(body)
            records.append(
                (
                    now,
                    session_id,
                    kind,
                    key,
                    rejection.status,
                    rejection.code,
                    rejection.message,
                    details_json(rejection.details),
                    rejection.correlation_id,
                    raw,
                    len(body.get("events") or []),
                )
            )
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO dead_letters (created_at, session_id, kind, idempotency_key, "
                    "status, code, message, details, correlation_id, body, events) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    records,
                )
                self._conn.execute("DELETE FROM batches WHERE id = ?", (row_id,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def dead_letters(self, ids: Sequence[int] | None = None) -> list[DeadLetter]:
        """Return stored dead letters, oldest first (only ``ids`` when given)."""
        where, params = _id_filter(ids)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters{where} ORDER BY id", params
            ).fetchall()
        return [
            DeadLetter(
                id=int(row[0]),
                created_at=datetime.fromtimestamp(row[1], UTC),
                session_id=row[2],
                kind=row[3],
                idempotency_key=row[4],
                status=int(row[5]),
                code=row[6],
                message=row[7],
                details=None if row[8] is None else json.loads(row[8]),
                correlation_id=row[9],
                body=json.loads(row[10]),
            )
            for row in rows
        ]

    def dead_letter_count(self) -> int:
        """Number of dead letters stored."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def drop_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Delete dead letters (``ids``, or all when ``None``); return how many went."""
        where, params = _id_filter(ids)
        with self._lock:
            return self._conn.execute(f"DELETE FROM dead_letters{where}", params).rowcount

    def requeue_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Move dead letters back into the spool as new rows, in one transaction.

        They go after every row already waiting (their events get later ``seq``s than
        events logged since). Returns how many were moved.
        """
        where, params = _id_filter(ids)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                moved = self._conn.execute(
                    f"INSERT INTO batches (body, events) "
                    f"SELECT body, events FROM dead_letters{where} ORDER BY id",
                    params,
                ).rowcount
                self._conn.execute(f"DELETE FROM dead_letters{where}", params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if moved:
                self._enforce_cap()
        return moved

    def close(self) -> None:
        """Close the connection; stored rows stay in the file."""
        with self._lock:
            self._conn.close()


def _id_filter(ids: Sequence[int] | None) -> tuple[str, tuple[str, ...]]:
    """A ``WHERE`` clause selecting ``ids`` (all rows when ``None``) and its parameters.

    The ids travel as one JSON array (``json_each``), so any number of them fits in
    one statement (SQLite caps bound parameters at 999 in older builds).
    """
    if ids is None:
        return "", ()
    return " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps([int(i) for i in ids]),)

"""The durable spool: batches written before they are sent, deleted once acknowledged.

Each row is one self-contained ``/v1/events/batch`` body (JSON bytes) with its event
count. Rows are sent oldest first (``rowid`` order) and replayed with the same
idempotency keys after a restart, so the server stores each event once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("tether_client")

# WAL: the sender reads while the spooler writes, and a commit is one append.
_JOURNAL_MODE = "WAL"
# NORMAL in WAL survives a killed process (the drill's kill -9), not a power cut;
# FULL would fsync every batch, which costs more than the 200 ms budget on slow disks.
_SYNCHRONOUS = "NORMAL"
# Another process on the same file (an agent restarting) may hold the lock briefly.
_BUSY_TIMEOUT_MS = 5_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    events INTEGER NOT NULL,
    created_at REAL NOT NULL DEFAULT (julianday('now'))
)
"""


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
        path: SQLite file to use (its directory is created), or ``None`` for an
            in-memory spool that does not survive the process.
        max_bytes: Cap on the sum of stored body sizes in bytes. Adding past it drops
            the oldest rows and logs a warning with the number of events dropped.

    Raises:
        sqlite3.Error: The file cannot be opened or is not a spool.
    """

    def __init__(self, path: Path | None, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
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
        total = self._conn.execute("SELECT coalesce(sum(length(body)), 0) FROM batches").fetchone()[
            0
        ]
        if total <= self.max_bytes:
            return
        dropped_rows = dropped_events = 0
        cursor = self._conn.execute("SELECT id, length(body), events FROM batches ORDER BY id")
        last_id = 0
        for row_id, size, events in cursor.fetchall():
            if total <= self.max_bytes:
                break
            total -= size
            last_id = row_id
            dropped_rows += 1
            dropped_events += events
        self._conn.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
        self.dropped_events += dropped_events
        logger.warning(
            "tether_client spool is full (cap %d bytes at %s): dropped the %d oldest "
            "unsent events (%d batches); raise TETHER_SPOOL_MAX_BYTES or bring the "
            "server back",
            self.max_bytes,
            self.path or ":memory:",
            dropped_events,
            dropped_rows,
        )

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

    def close(self) -> None:
        """Close the connection; stored rows stay in the file."""
        with self._lock:
            self._conn.close()

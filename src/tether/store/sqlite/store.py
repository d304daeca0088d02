"""The SQLite backend of the Store contract (the embedded default).

:class:`SQLiteStore` is the engine (:class:`~tether.store.sqlite.engine.SQLiteEngine`:
one writer thread committing in groups, a pool of read-only connections) under the
contract's methods (:class:`~tether.store.backend.BackendStore`), with this package's
SQL modules, one per resource.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from tether.domain.text import analyze
from tether.store.backend import BackendStore, SqlModules
from tether.store.shared.analytics import AnalyticsStore
from tether.store.sqlite import (
    analytics,
    copy,
    events,
    feed,
    keys,
    memories,
    outbox,
    prices,
    recall,
    sessions,
)
from tether.store.sqlite.engine import SQLiteEngine

__all__ = ["SQLiteStore"]

_SQL = SqlModules(
    sessions=sessions,
    events=events,
    memories=memories,
    outbox=outbox,
    recall=recall,
    feed=feed,
    copy=copy,
    keys=keys,
    prices=prices,
)


def _fill_terms(conn: sqlite3.Connection) -> int:
    """Give live memories stored before ``terms`` existed (migration 0003) their terms."""
    rows = conn.execute(
        "SELECT pk, text FROM memories WHERE terms IS NULL AND deleted_at IS NULL"
    ).fetchall()
    conn.executemany(
        "UPDATE memories SET terms=? WHERE pk=?", [(" ".join(analyze(t)), pk) for pk, t in rows]
    )
    return len(rows)


class SQLiteStore(SQLiteEngine, AnalyticsStore, BackendStore):
    """A SQLite database file as a Tether store.

    Args:
        path: database file; created (with parents) if missing.
        synchronous: ``"NORMAL"`` (default; durable across a process crash) or ``"FULL"``.
        readers: size of the read-only connection pool (threads).
    """

    backend = "sqlite"
    sql = _SQL
    analytics = analytics

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        readers: int = 4,
    ) -> None:
        SQLiteEngine.__init__(self, path, synchronous=synchronous, readers=readers)

    async def start(self) -> None:
        await SQLiteEngine.start(self)
        await self.write(_fill_terms)

"""Table pages in and out for ``tether migrate`` (SQLite side). Rows are tuples in the
:class:`~tether.store.tables.TableSpec` column order; values as stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tether.store.tables import TableSpec


def read_page(
    conn: sqlite3.Connection, spec: TableSpec, *, after: Sequence[Any] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows with key greater than ``after`` (``None``: from the start),
    in key order."""
    key = ", ".join(spec.key)
    sql = f"SELECT {', '.join(spec.columns)} FROM {spec.name}"
    params: list[Any] = []
    if after is not None:
        sql += f" WHERE ({key}) > ({', '.join('?' * len(spec.key))})"
        params.extend(after)
    sql += f" ORDER BY {key} LIMIT ?"
    params.append(limit)
    return [tuple(row) for row in conn.execute(sql, params)]


def write_page(conn: sqlite3.Connection, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows as they are (keys included). Raises ``sqlite3.IntegrityError`` on a key
    that is taken."""
    marks = ", ".join("?" * len(spec.columns))
    conn.executemany(f"INSERT INTO {spec.name} ({', '.join(spec.columns)}) VALUES ({marks})", rows)
    return len(rows)


def has_rows(conn: sqlite3.Connection, spec: TableSpec) -> bool:
    return conn.execute(f"SELECT 1 FROM {spec.name} LIMIT 1").fetchone() is not None


def after_load(conn: sqlite3.Connection) -> None:
    """Nothing to do: explicit row keys move SQLite's own counters (``AUTOINCREMENT``
    keeps the largest in ``sqlite_sequence``)."""

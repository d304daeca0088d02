"""Table pages in and out for ``tether migrate`` (PostgreSQL side). Rows are tuples in
the :class:`~tether.store.tables.TableSpec` column order; values as stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.store.postgres.engine import Conn
from tether.store.tables import TableSpec

# Tables whose key is an identity column (its sequence must continue after the copy).
_IDENTITY = {
    "sessions": "pk",
    "events": "pk",
    "goals": "pk",
    "memories": "pk",
    "memory_outbox": "id",
    "audit_log": "seq",
}


def read_page(
    conn: Conn, spec: TableSpec, *, after: Sequence[Any] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows with key greater than ``after`` (``None``: from the start),
    in key order (``bytea`` as ``bytes``)."""
    key = ", ".join(spec.key)
    sql = f"SELECT {', '.join(spec.columns)} FROM {spec.name}"
    params: list[Any] = []
    if after is not None:
        sql += f" WHERE ({key}) > ({', '.join(['%s'] * len(spec.key))})"
        params.extend(after)
    sql += f" ORDER BY {key} LIMIT %s"
    params.append(limit)
    return [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        for row in conn.execute(sql, params)
    ]


def write_page(conn: Conn, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows as they are (keys included) with ``COPY``. Raises
    ``psycopg.errors.UniqueViolation`` on a key that is taken."""
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {spec.name} ({', '.join(spec.columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    return len(rows)


def has_rows(conn: Conn, spec: TableSpec) -> bool:
    return conn.execute(f"SELECT 1 FROM {spec.name} LIMIT 1").fetchone() is not None


def after_load(conn: Conn) -> None:
    """Move each identity sequence past the largest copied key, and the feed counter to
    the last copied lsn, so new rows and changes continue after the copied ones."""
    for table, column in _IDENTITY.items():
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
        )
    conn.execute(
        "UPDATE feed_counter SET lsn = (SELECT coalesce(max(lsn), 0) FROM memory_changes) "
        "WHERE id = 1"
    )

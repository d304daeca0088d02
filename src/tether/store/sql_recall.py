"""Recall SQL: FTS5 keyword candidates, filtered candidate rows, access statistics.

Runs inside :meth:`SQLiteStore.read`/``write`` callbacks; every statement is scoped by
``tenant_id`` through :func:`tether.store.sql_memory.filter_sql`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tether.store.sql_memory import MemoryFilter, filter_sql

# Keys per IN (...) list (SQLite's bound-parameter limit is 32766; small lists plan well).
_IN_CHUNK = 500


def keyword_candidates(
    conn: sqlite3.Connection,
    tenant_id: str,
    f: MemoryFilter,
    *,
    match: str,
    depth: int,
    now: int,
) -> list[tuple[int, float]]:
    """Top ``depth`` memories for an FTS5 MATCH expression that pass the filter.

    Args:
        match: A safe expression from :func:`tether.memory.fts.build_match_query`.

    Returns:
        ``(pk, bm25)`` best first; ``bm25`` is FTS5's negated Okapi BM25 (k1 1.2, b 0.75):
        lower is better, as :func:`tether.memory.ranking.rank` expects.
    """
    where, params = filter_sql(f, tenant_id, now)
    rows = conn.execute(
        "SELECT m.pk, bm25(memories_fts) AS s FROM memories_fts "
        "JOIN memories m ON m.pk = memories_fts.rowid "
        f"WHERE memories_fts MATCH ? AND {where} ORDER BY s LIMIT ?",
        (match, *params, depth),
    ).fetchall()
    return [(int(pk), float(s)) for pk, s in rows]


def rows_passing(
    conn: sqlite3.Connection, tenant_id: str, f: MemoryFilter, pks: Sequence[int], *, now: int
) -> dict[int, sqlite3.Row]:
    """The rows among ``pks`` that pass the filter, by pk (others are simply absent)."""
    where, params = filter_sql(f, tenant_id, now)
    out: dict[int, sqlite3.Row] = {}
    unique = list(dict.fromkeys(pks))
    for i in range(0, len(unique), _IN_CHUNK):
        chunk = unique[i : i + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT * FROM memories m WHERE m.pk IN ({marks}) AND {where}", (*chunk, *params)
        ):
            out[int(row["pk"])] = row
    return out


def touch(conn: sqlite3.Connection, tenant_id: str, pks: Sequence[int], *, now: int) -> None:
    """Record that a recall returned these memories (``last_accessed_at``, ``access_count``).

    Not a new version and not a change-log entry: access is statistics, not content.
    """
    for i in range(0, len(pks), _IN_CHUNK):
        chunk = list(pks[i : i + _IN_CHUNK])
        conn.execute(
            "UPDATE memories SET last_accessed_at=?, access_count=access_count+1 "
            f"WHERE tenant_id=? AND pk IN ({','.join('?' * len(chunk))})",
            (now, tenant_id, *chunk),
        )

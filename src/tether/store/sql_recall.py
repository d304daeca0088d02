"""Recall SQL: FTS5 keyword candidates, filtered candidate rows, access statistics.

Runs inside :meth:`SQLiteStore.read`/``write`` callbacks; every statement is scoped by
``tenant_id`` through :func:`tether.store.sql_memory.filter_sql`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from tether.memory.fts import match_expression
from tether.store import sql_keyword as keyword
from tether.store.sql_memory import MemoryFilter, filter_sql

# FTS5 preselects this many times the candidate depth by its whole-table bm25() before the
# per-namespace rescoring: the two orders differ only in term weights, so the per-namespace
# top ``depth`` sits well inside 3x (measured: same R@5 as 10x on the LoCoMo dev set).
_PRESELECT = 3
# Keys per IN (...) list (SQLite's bound-parameter limit is 32766; small lists plan well).
_IN_CHUNK = 500


def keyword_candidates(
    conn: sqlite3.Connection,
    tenant_id: str,
    f: MemoryFilter,
    *,
    query: str,
    depth: int,
    now: int,
) -> list[tuple[int, float]]:
    """Top ``depth`` memories for the query's keywords that pass the filter.

    The query's terms are pruned to a postings budget
    (:func:`tether.store.sql_keyword.match_terms`), FTS5 finds the matches and preselects
    ``_PRESELECT`` x ``depth`` of them by its own ``bm25()`` (whole-table statistics), and
    :func:`tether.store.sql_keyword.rescore` ranks those by Okapi BM25 over the searched
    namespaces' statistics, with every query term.

    Args:
        query: The user's query text (any string).

    Returns:
        ``(pk, bm25)`` best first; ``bm25`` is the negated Okapi BM25 score: lower is
        better, as :func:`tether.memory.ranking.rank` expects. Empty when the query has no
        searchable word.
    """
    match = match_expression(keyword.match_terms(conn, tenant_id, query))
    if match is None:
        return []
    where, params = filter_sql(f, tenant_id, now)
    rows = conn.execute(
        "SELECT m.pk, m.terms FROM memories_fts "
        "JOIN memories m ON m.pk = memories_fts.rowid "
        f"WHERE memories_fts MATCH ? AND {where} ORDER BY bm25(memories_fts) LIMIT ?",
        (match, *params, depth * _PRESELECT),
    ).fetchall()
    candidates = [(int(pk), terms or "") for pk, terms in rows]
    return keyword.rescore(conn, tenant_id, f.namespaces, query, candidates)[:depth]


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

"""Memory SQL for SQLite: the primitives :mod:`tether.store.shared.memories` runs the
memory logic over (:class:`~tether.store.shared.memories.MemorySql`).

Functions take the connection first, run inside the engine's jobs, never commit, and
scope every statement by ``tenant_id``. The one writer assigns ``lsn`` with
``AUTOINCREMENT`` inside its transaction, so lsn order is commit order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from tether.domain.changes import MEMORY_TOPIC, Change
from tether.domain.filters import MemoryFilter
from tether.store.common import emit, like_pattern
from tether.store.rows import MEMORY_COLUMNS, Row
from tether.store.shared.memories import PUBLIC_OPS

Conn = sqlite3.Connection


def placeholder() -> str:
    return "?"


def filter_sql(f: MemoryFilter, tenant_id: str, now: int) -> tuple[str, list[Any]]:
    """``(where_sql, params)`` over table alias ``m`` for ``f``, scoped to ``tenant_id``."""
    clauses = ["m.tenant_id=?"]
    params: list[Any] = [tenant_id]
    if f.namespaces:
        clauses.append(f"m.namespace IN ({','.join('?' * len(f.namespaces))})")
        params.extend(f.namespaces)
    if f.namespace_prefixes:  # case-sensitive (LIKE would fold ASCII case)
        clauses.append(
            "("
            + " OR ".join(["substr(m.namespace, 1, length(?))=?"] * len(f.namespace_prefixes))
            + ")"
        )
        for prefix in f.namespace_prefixes:
            params.extend([prefix, prefix])
    if f.kinds:
        clauses.append(f"m.kind IN ({','.join('?' * len(f.kinds))})")
        params.extend(f.kinds)
    for tag in f.tags:
        clauses.append("EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value=?)")
        params.append(tag)
    for key, value in f.metadata.items():
        # Equal as JSON values, as on PostgreSQL (jsonb): true is not 1, "1" is not 1,
        # 1 is 1.0. json_extract alone would give true as 1.
        path = f'$."{key}"'
        if value is None or isinstance(value, bool):
            clauses.append("json_type(m.metadata, ?)=?")
            params.extend([path, "null" if value is None else "true" if value else "false"])
        elif isinstance(value, str):
            clauses.append("json_type(m.metadata, ?)='text' AND json_extract(m.metadata, ?)=?")
            params.extend([path, path, value])
        else:
            clauses.append(
                "json_type(m.metadata, ?) IN ('integer', 'real') AND json_extract(m.metadata, ?)=?"
            )
            params.extend([path, path, value])
    if f.since_ms is not None:
        clauses.append("coalesce(m.occurred_at, m.created_at)>=?")
        params.append(f.since_ms)
    if f.until_ms is not None:
        clauses.append("coalesce(m.occurred_at, m.created_at)<=?")
        params.append(f.until_ms)
    if f.session is not None:
        clauses.append("m.source_session_id=?")
        params.append(f.session)
    if f.q:
        clauses.append("lower(m.text) LIKE ? ESCAPE '\\'")
        params.append(like_pattern(f.q))
    if not f.include_deleted:
        clauses.append("m.deleted_at IS NULL")
    if not f.include_expired:
        clauses.append("(m.expires_at IS NULL OR m.expires_at>?)")
        params.append(now)
    return " AND ".join(clauses), params


def log_change(
    conn: Conn,
    tenant_id: str,
    memory_id: str,
    memory_pk: int,
    namespace: str,
    op: str,
    version: int,
    now: int,
    snapshot: str | None,
) -> int:
    """Append to the change log and emit the change (after commit); returns its lsn."""
    cur = conn.execute(
        "INSERT INTO memory_changes (tenant_id, memory_id, memory_pk, namespace, op, version, "
        "at, snapshot) VALUES (?,?,?,?,?,?,?,?)",
        (tenant_id, memory_id, memory_pk, namespace, op, version, now, snapshot),
    )
    lsn = int(cur.lastrowid or 0)
    data = {"memory_id": memory_id, "namespace": namespace, "version": version}
    emit(Change(MEMORY_TOPIC, tenant_id, f"memory.{op}", lsn, data))
    return lsn


def enqueue(conn: Conn, tenant_id: str, memory_pk: int, now: int) -> None:
    """Queue an embedding job for the memory (the indexer embeds its text as of then)."""
    conn.execute(
        "INSERT INTO memory_outbox (tenant_id, memory_pk, next_attempt_at, created_at, "
        "updated_at) VALUES (?,?,?,?,?)",
        (tenant_id, memory_pk, now, now, now),
    )


def find(conn: Conn, tenant_id: str, memory_id: str, *, lock: bool) -> Row | None:
    """The row by id in any state (``lock`` needs nothing: there is one writer)."""
    row: Row | None = conn.execute(
        "SELECT * FROM memories WHERE tenant_id=? AND id=?", (tenant_id, memory_id)
    ).fetchone()
    return row


def live_twin(
    conn: Conn, tenant_id: str, namespace: str, digest: str, *, besides: int = 0
) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM memories WHERE tenant_id=? AND namespace=? AND content_hash=? "
        "AND deleted_at IS NULL AND pk<>?",
        (tenant_id, namespace, digest, besides),
    ).fetchone()
    return row


def insert(conn: Conn, values: Mapping[str, Any]) -> Row | None:
    """Insert a memory; ``None`` if a live twin exists (the live-text index skips it)."""
    names = ", ".join(values)
    row: Row | None = conn.execute(
        f"INSERT INTO memories ({names}) VALUES ({', '.join('?' * len(values))}) "
        "ON CONFLICT (tenant_id, namespace, content_hash) WHERE deleted_at IS NULL DO NOTHING "
        "RETURNING *",
        list(values.values()),
    ).fetchone()
    return row


def update(conn: Conn, pk: int, sets: Mapping[str, Any]) -> Row:
    assignments = ", ".join(f"{name}=?" for name in sets)
    row: Row = conn.execute(
        f"UPDATE memories SET {assignments} WHERE pk=? RETURNING *", (*sets.values(), pk)
    ).fetchone()
    return row


def delete_vectors(conn: Conn, pk: int) -> None:
    conn.execute("DELETE FROM memory_vectors WHERE memory_pk=?", (pk,))


def drop_index_rows(conn: Conn, pk: int) -> None:
    delete_vectors(conn, pk)
    conn.execute("DELETE FROM memory_outbox WHERE memory_pk=?", (pk,))


def purge(conn: Conn, tenant_id: str, memory_id: str, pk: int) -> None:
    conn.execute("DELETE FROM memories WHERE pk=?", (pk,))
    conn.execute(
        "UPDATE memory_changes SET snapshot=NULL WHERE tenant_id=? AND memory_id=?",
        (tenant_id, memory_id),
    )
    conn.execute(
        "DELETE FROM memory_idempotency WHERE tenant_id=? AND json_extract(result, '$.id')=?",
        (tenant_id, memory_id),
    )


def idempotent(conn: Conn, tenant_id: str, key: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT body_hash, result FROM memory_idempotency WHERE tenant_id=? AND key=?",
        (tenant_id, key),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def save_idempotent(
    conn: Conn, tenant_id: str, key: str, digest: str, result: str, now: int
) -> None:
    conn.execute(
        "INSERT INTO memory_idempotency (tenant_id, key, body_hash, result, created_at) "
        "VALUES (?,?,?,?,?)",
        (tenant_id, key, digest, result, now),
    )


def id_taken(conn: Conn, tenant_id: str, memory_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM memories WHERE tenant_id=? AND id=?", (tenant_id, memory_id)
        ).fetchone()
        is not None
    )


def history_rows(
    conn: Conn, tenant_id: str, memory_id: str, *, after: int, limit: int
) -> Iterable[Row]:
    return conn.execute(
        "SELECT * FROM memory_changes WHERE tenant_id=? AND memory_id=? AND lsn>? "
        f"AND op IN {PUBLIC_OPS} ORDER BY lsn LIMIT ?",
        (tenant_id, memory_id, after, limit),
    )


def head(conn: Conn) -> int:
    row = conn.execute("SELECT coalesce(max(lsn), 0) AS head FROM memory_changes").fetchone()
    return int(row["head"])


def change_rows(conn: Conn, tenant_id: str, *, after: int, limit: int) -> Iterable[Row]:
    return conn.execute(
        f"SELECT * FROM memory_changes WHERE tenant_id=? AND lsn>? AND op IN {PUBLIC_OPS} "
        "ORDER BY lsn LIMIT ?",
        (tenant_id, after, limit),
    )


def page_rows(
    conn: Conn, where: str, params: list[Any], *, order: str, limit: int
) -> Iterable[Row]:
    direction = "DESC" if order == "DESC" else "ASC"
    return conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE {where} ORDER BY m.pk {direction} LIMIT ?",
        (*params, limit),
    )


def namespace_rows(
    conn: Conn, where: str, params: list[Any], *, after: str | None, limit: int
) -> Iterable[tuple[str, int]]:
    cursor = "" if after is None else " AND m.namespace > ?"
    rows = conn.execute(
        f"SELECT m.namespace, count(*) FROM memories m WHERE {where}{cursor} "
        "GROUP BY m.namespace ORDER BY m.namespace LIMIT ?",
        (*params, *([] if after is None else [after]), limit),
    )
    return [(r[0], int(r[1])) for r in rows]


def current_vectors(
    conn: Conn, model: str, first_pk: int, last_pk: int
) -> Iterable[tuple[int, int, bytes]]:
    return conn.execute(
        "SELECT v.memory_pk, v.dim, v.vector FROM memory_vectors v "
        "JOIN memories m ON m.pk = v.memory_pk AND m.content_hash = v.content_hash "
        "WHERE v.model=? AND v.memory_pk BETWEEN ? AND ?",
        (model, first_pk, last_pk),
    )


def upsert_vector(conn: Conn, row: Row, *, model: str, dim: int, vector: bytes, now: int) -> None:
    pk = int(row["pk"])
    conn.execute(
        "INSERT OR REPLACE INTO memory_vectors (memory_pk, model, tenant_id, content_hash, dim, "
        "vector, created_at) VALUES (?,?,?,?,?,?,?)",
        (pk, model, row["tenant_id"], row["content_hash"], dim, vector, now),
    )
    conn.execute("UPDATE memories SET embedding_model=? WHERE pk=?", (model, pk))


def counts(conn: Conn, tenant_id: str) -> tuple[int, int, dict[str, int]]:
    live, deleted = conn.execute(
        "SELECT coalesce(sum(deleted_at IS NULL),0), coalesce(sum(deleted_at IS NOT NULL),0) "
        "FROM memories WHERE tenant_id=?",
        (tenant_id,),
    ).fetchone()
    by_state = {
        state: int(n)
        for state, n in conn.execute(
            "SELECT state, count(*) FROM memory_outbox WHERE tenant_id=? GROUP BY state",
            (tenant_id,),
        )
    }
    return int(live), int(deleted), by_state

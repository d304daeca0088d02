"""Memory SQL for PostgreSQL: the primitives :mod:`tether.store.shared.memories` runs
the memory logic over (:class:`~tether.store.shared.memories.MemorySql`).

Functions take the connection first, never commit, and scope every statement by
``tenant_id``. ``lsn`` comes from the locked ``feed_counter`` row (commit order across
replicas; see the migration); writes lock the memory row (``FOR UPDATE``) before reading
what they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tether.domain.changes import MEMORY_TOPIC, Change
from tether.domain.filters import MemoryFilter
from tether.store.common import dumps, emit
from tether.store.postgres.engine import Conn, one
from tether.store.rows import MEMORY_COLUMNS, Row
from tether.store.shared.memories import PUBLIC_OPS


def placeholder() -> str:
    return "%s"


def filter_sql(f: MemoryFilter, tenant_id: str, now: int) -> tuple[str, list[Any]]:
    """``(where_sql, params)`` over table alias ``m`` for ``f``, scoped to ``tenant_id``."""
    clauses = ["m.tenant_id = %s"]
    params: list[Any] = [tenant_id]
    if f.namespaces:
        clauses.append("m.namespace = ANY(%s::text[])")
        params.append(list(f.namespaces))
    if f.namespace_prefixes:
        clauses.append(
            "(" + " OR ".join(["starts_with(m.namespace, %s)"] * len(f.namespace_prefixes)) + ")"
        )
        params.extend(f.namespace_prefixes)
    if f.kinds:
        clauses.append("m.kind = ANY(%s::text[])")
        params.append(list(f.kinds))
    if f.tags:
        clauses.append("m.tags::jsonb @> %s::jsonb")
        params.append(dumps(list(f.tags)))
    for key, value in f.metadata.items():
        if value is None:
            clauses.append("jsonb_typeof(m.metadata::jsonb -> %s) = 'null'")
            params.append(key)
        else:  # a JSON scalar: equal as JSON (1 = 1.0; "1" is not 1)
            clauses.append("m.metadata::jsonb -> %s = %s::jsonb")
            params.extend([key, dumps(value)])
    if f.since_ms is not None:
        clauses.append("coalesce(m.occurred_at, m.created_at) >= %s")
        params.append(f.since_ms)
    if f.until_ms is not None:
        clauses.append("coalesce(m.occurred_at, m.created_at) <= %s")
        params.append(f.until_ms)
    if f.session is not None:
        clauses.append("m.source_session_id = %s")
        params.append(f.session)
    if f.q:
        clauses.append("strpos(lower(m.text), %s) > 0")
        params.append(f.q.lower())
    if not f.include_deleted:
        clauses.append("m.deleted_at IS NULL")
    if not f.include_expired:
        clauses.append("(m.expires_at IS NULL OR m.expires_at > %s)")
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
    """Append to the change log and emit the change (after commit); returns its lsn.

    The lsn is the next value of ``feed_counter``; updating that row locks it until the
    transaction ends, so no other transaction can take an lsn and commit in between.
    """
    (lsn,) = one(conn.execute("UPDATE feed_counter SET lsn = lsn + 1 WHERE id = 1 RETURNING lsn"))
    conn.execute(
        "INSERT INTO memory_changes (lsn, tenant_id, memory_id, memory_pk, namespace, op, "
        "version, at, snapshot) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (lsn, tenant_id, memory_id, memory_pk, namespace, op, version, now, snapshot),
    )
    data = {"memory_id": memory_id, "namespace": namespace, "version": version}
    emit(Change(MEMORY_TOPIC, tenant_id, f"memory.{op}", int(lsn), data))
    return int(lsn)


def enqueue(conn: Conn, tenant_id: str, memory_pk: int, now: int) -> None:
    """Queue an embedding job for the memory (the indexer embeds its text as of then)."""
    conn.execute(
        "INSERT INTO memory_outbox (tenant_id, memory_pk, next_attempt_at, created_at, "
        "updated_at) VALUES (%s, %s, %s, %s, %s)",
        (tenant_id, memory_pk, now, now, now),
    )


def find(conn: Conn, tenant_id: str, memory_id: str, *, lock: bool) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM memories WHERE tenant_id = %s AND id = %s" + (" FOR UPDATE" if lock else ""),
        (tenant_id, memory_id),
    ).fetchone()
    return row


def live_twin(
    conn: Conn, tenant_id: str, namespace: str, digest: str, *, besides: int = 0
) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM memories WHERE tenant_id = %s AND namespace = %s AND content_hash = %s "
        "AND deleted_at IS NULL AND pk <> %s",
        (tenant_id, namespace, digest, besides),
    ).fetchone()
    return row


def insert(conn: Conn, values: Mapping[str, Any]) -> Row | None:
    """Insert a memory; ``None`` if a live twin exists or was committed meanwhile by
    another replica (the insert waits for it, then skips)."""
    names = ", ".join(values)
    row: Row | None = conn.execute(
        f"INSERT INTO memories ({names}) VALUES ({', '.join(['%s'] * len(values))}) "
        "ON CONFLICT (tenant_id, namespace, content_hash) WHERE deleted_at IS NULL DO NOTHING "
        "RETURNING *",
        list(values.values()),
    ).fetchone()
    return row


def update(conn: Conn, pk: int, sets: Mapping[str, Any]) -> Row:
    assignments = ", ".join(f"{name} = %s" for name in sets)
    row: Row = one(
        conn.execute(
            f"UPDATE memories SET {assignments} WHERE pk = %s RETURNING *", (*sets.values(), pk)
        )
    )
    return row


def delete_vectors(conn: Conn, pk: int) -> None:
    conn.execute("DELETE FROM memory_vectors WHERE memory_pk = %s", (pk,))


def drop_index_rows(conn: Conn, pk: int) -> None:
    delete_vectors(conn, pk)
    conn.execute("DELETE FROM memory_outbox WHERE memory_pk = %s", (pk,))


def purge(conn: Conn, tenant_id: str, memory_id: str, pk: int) -> None:
    conn.execute("DELETE FROM memories WHERE pk = %s", (pk,))
    conn.execute(
        "UPDATE memory_changes SET snapshot = NULL WHERE tenant_id = %s AND memory_id = %s",
        (tenant_id, memory_id),
    )
    conn.execute(
        "DELETE FROM memory_idempotency WHERE tenant_id = %s AND result::jsonb ->> 'id' = %s",
        (tenant_id, memory_id),
    )


def idempotent(conn: Conn, tenant_id: str, key: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT body_hash, result FROM memory_idempotency WHERE tenant_id = %s AND key = %s",
        (tenant_id, key),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def save_idempotent(
    conn: Conn, tenant_id: str, key: str, digest: str, result: str, now: int
) -> None:
    """Store a key's outcome. A concurrent use of the key (another replica) ends in a
    unique violation here; the engine re-runs the job, which then finds it."""
    conn.execute(
        "INSERT INTO memory_idempotency (tenant_id, key, body_hash, result, created_at) "
        "VALUES (%s, %s, %s, %s, %s)",
        (tenant_id, key, digest, result, now),
    )


def id_taken(conn: Conn, tenant_id: str, memory_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM memories WHERE tenant_id = %s AND id = %s", (tenant_id, memory_id)
        ).fetchone()
        is not None
    )


def history_rows(
    conn: Conn, tenant_id: str, memory_id: str, *, after: int, limit: int
) -> Iterable[Row]:
    return conn.execute(
        "SELECT * FROM memory_changes WHERE tenant_id = %s AND memory_id = %s AND lsn > %s "
        f"AND op IN {PUBLIC_OPS} ORDER BY lsn LIMIT %s",
        (tenant_id, memory_id, after, limit),
    )


def head(conn: Conn) -> int:
    row = one(conn.execute("SELECT coalesce(max(lsn), 0) AS head FROM memory_changes"))
    return int(row["head"])


def change_rows(conn: Conn, tenant_id: str, *, after: int, limit: int) -> Iterable[Row]:
    return conn.execute(
        f"SELECT * FROM memory_changes WHERE tenant_id = %s AND lsn > %s AND op IN {PUBLIC_OPS} "
        "ORDER BY lsn LIMIT %s",
        (tenant_id, after, limit),
    )


def page_rows(
    conn: Conn, where: str, params: list[Any], *, order: str, limit: int
) -> Iterable[Row]:
    direction = "DESC" if order == "DESC" else "ASC"
    return conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE {where} ORDER BY m.pk {direction} LIMIT %s",
        (*params, limit),
    )


def namespace_rows(
    conn: Conn, where: str, params: list[Any], *, after: str | None, limit: int
) -> Iterable[tuple[str, int]]:
    cursor = "" if after is None else ' AND m.namespace COLLATE "C" > %s'
    rows = conn.execute(
        f"SELECT m.namespace, count(*) FROM memories m WHERE {where}{cursor} "
        'GROUP BY m.namespace ORDER BY m.namespace COLLATE "C" LIMIT %s',
        (*params, *([] if after is None else [after]), limit),
    )
    return [(r[0], int(r[1])) for r in rows]


def current_vectors(
    conn: Conn, model: str, first_pk: int, last_pk: int
) -> Iterable[tuple[int, int, bytes]]:
    return conn.execute(
        "SELECT v.memory_pk, v.dim, v.vector FROM memory_vectors v "
        "JOIN memories m ON m.pk = v.memory_pk AND m.content_hash = v.content_hash "
        "WHERE v.model = %s AND v.memory_pk BETWEEN %s AND %s",
        (model, first_pk, last_pk),
    )


def upsert_vector(conn: Conn, row: Row, *, model: str, dim: int, vector: bytes, now: int) -> None:
    pk = int(row["pk"])
    conn.execute(
        "INSERT INTO memory_vectors (memory_pk, model, tenant_id, content_hash, dim, vector, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (memory_pk, model) DO UPDATE "
        "SET tenant_id = excluded.tenant_id, content_hash = excluded.content_hash, "
        "dim = excluded.dim, vector = excluded.vector, created_at = excluded.created_at",
        (pk, model, row["tenant_id"], row["content_hash"], dim, vector, now),
    )
    conn.execute("UPDATE memories SET embedding_model = %s WHERE pk = %s", (model, pk))


def counts(conn: Conn, tenant_id: str) -> tuple[int, int, dict[str, int]]:
    live, deleted = one(
        conn.execute(
            "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
            "count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM memories WHERE tenant_id = %s",
            (tenant_id,),
        )
    )
    by_state = {
        state: int(n)
        for state, n in conn.execute(
            "SELECT state, count(*) FROM memory_outbox WHERE tenant_id = %s GROUP BY state",
            (tenant_id,),
        )
    }
    return int(live), int(deleted), by_state

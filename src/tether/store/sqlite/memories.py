"""Memory SQL: remember (dedupe, idempotency), get, patch, forget, history, browse, import.

Functions here run inside :meth:`SQLiteStore.write`/``read`` callbacks; they take the
connection first, never commit, and scope every statement by ``tenant_id``. Each write
appends to ``memory_changes`` (the change log, global ``lsn``) and, when the text is new,
queues an embedding job in ``memory_outbox``, in the caller's transaction.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np

from tether.domain.changes import MEMORY_TOPIC, Change
from tether.domain.filters import MemoryFilter
from tether.domain.memories import MemoryImport, MemoryIn, content_hash
from tether.domain.records import (
    ImportResult,
    Memory,
    MemoryChange,
    MemoryStats,
    Purged,
    Remembered,
)
from tether.domain.time import new_id, to_ms
from tether.errors import Conflict, NotFound
from tether.store.common import body_hash, dumps, emit, loads, merge_json, take_page
from tether.store.rows import MEMORY_COLUMNS, change_record, memory_record
from tether.store.sqlite import terms

_INSERT = (
    "INSERT INTO memories (tenant_id, id, namespace, text, kind, tags, metadata, importance, "
    "source_session_id, source_event_id, occurred_at, created_at, updated_at, expires_at, "
    "content_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def filter_sql(f: MemoryFilter, tenant_id: str, now: int) -> tuple[str, list[Any]]:
    """``(where_sql, params)`` over table alias ``m`` for ``f``, scoped to ``tenant_id``."""
    clauses = ["m.tenant_id=?"]
    params: list[Any] = [tenant_id]
    if f.namespaces:
        clauses.append(f"m.namespace IN ({','.join('?' * len(f.namespaces))})")
        params.extend(f.namespaces)
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
        escaped = f.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("lower(m.text) LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if not f.include_deleted:
        clauses.append("m.deleted_at IS NULL")
    if not f.include_expired:
        clauses.append("(m.expires_at IS NULL OR m.expires_at>?)")
        params.append(now)
    return " AND ".join(clauses), params


# -- change log and outbox ------------------------------------------------------------------
#: Change-log ops that are content changes, the public feed and history (``embedded``
#: only tells the indexes a vector was stored).
PUBLIC_OPS: Final = ("add", "update", "delete", "purge")


def log_change(
    conn: sqlite3.Connection,
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


def _log_row(conn: sqlite3.Connection, row: sqlite3.Row, op: str, now: int) -> int:
    """Log a change of ``row`` (the memory after it) with the memory as its snapshot."""
    snapshot = dumps(memory_record(row))
    return log_change(
        conn,
        row["tenant_id"],
        row["id"],
        row["pk"],
        row["namespace"],
        op,
        row["version"],
        now,
        snapshot,
    )


def enqueue(conn: sqlite3.Connection, tenant_id: str, memory_pk: int, now: int) -> None:
    """Queue an embedding job for the memory (the indexer embeds its text as of then)."""
    conn.execute(
        "INSERT INTO memory_outbox (tenant_id, memory_pk, next_attempt_at, created_at, "
        "updated_at) VALUES (?,?,?,?,?)",
        (tenant_id, memory_pk, now, now, now),
    )


def _by_pk(conn: sqlite3.Connection, pk: int) -> sqlite3.Row:
    row: sqlite3.Row = conn.execute("SELECT * FROM memories WHERE pk=?", (pk,)).fetchone()
    return row


def _row(
    conn: sqlite3.Connection, tenant_id: str, memory_id: str, *, include_deleted: bool = False
) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM memories WHERE tenant_id=? AND id=?", (tenant_id, memory_id)
    ).fetchone()
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise NotFound(f"memory {memory_id!r} not found", details={"memory_id": memory_id})
    return row


# -- remember -------------------------------------------------------------------------------
@dataclass(slots=True)
class Added:
    """One remembered item: the row, and whether it was new (else a dedupe hit)."""

    row: sqlite3.Row
    created: bool


def add_memory(
    conn: sqlite3.Connection,
    tenant_id: str,
    fields: Mapping[str, Any],
    *,
    now: int,
    memory_id: str | None = None,
    created_at: int | None = None,
    enqueue_job: bool = True,
) -> Added:
    """Insert a memory with its FTS row, ``add`` change and outbox job, or find its twin.

    Args:
        fields: ``namespace``, ``text`` and optional ``kind``, ``tags``, ``metadata``,
            ``importance``, ``occurred_at``/``expires_at`` (datetimes), source ids.
        memory_id: Keep this id (import); a new ULID otherwise.
        created_at: Keep this ingest time in ms (import); ``now`` otherwise.
        enqueue_job: False when the caller stores the vector itself (an import carrying
            one): no outbox job.

    Returns:
        The new row (``created``), or the live memory with the same normalised text in the
        same namespace (``created=False``: dedupe; nothing is written).
    """
    text: str = fields["text"]
    digest = content_hash(text)
    twin = conn.execute(
        "SELECT * FROM memories WHERE tenant_id=? AND namespace=? AND content_hash=? "
        "AND deleted_at IS NULL",
        (tenant_id, fields["namespace"], digest),
    ).fetchone()
    if twin is not None:
        return Added(twin, created=False)
    cur = conn.execute(
        _INSERT,
        (
            tenant_id,
            memory_id or new_id(),
            fields["namespace"],
            text,
            fields.get("kind") or "fact",
            dumps(fields.get("tags") or []),
            dumps(fields.get("metadata") or {}),
            fields.get("importance", 0.5),
            fields.get("source_session_id"),
            fields.get("source_event_id"),
            to_ms(fields.get("occurred_at")),
            created_at if created_at is not None else now,
            now,
            to_ms(fields.get("expires_at")),
            digest,
        ),
    )
    pk = int(cur.lastrowid or 0)
    terms.index(conn, pk, text)
    row = _by_pk(conn, pk)
    _log_row(conn, row, "add", now)
    if enqueue_job:
        enqueue(conn, tenant_id, pk, now)
    return Added(row, created=True)


def remember(
    conn: sqlite3.Connection, tenant_id: str, items: Sequence[MemoryIn], *, now: int
) -> list[Remembered]:
    """Remember items in order (the caller's transaction makes a batch all-or-nothing).

    An item whose ``idempotency_key`` is known returns the original outcome
    (``replayed: true``); the same key with a different body raises :class:`Conflict`.

    Returns:
        Per item, its outcome.

    Raises:
        Conflict: An idempotency key reused with another body (409; nothing is written).
    """
    out: list[Remembered] = []
    for item in items:
        fields = item.model_dump(exclude={"idempotency_key"})
        key = item.idempotency_key
        digest = ""
        if key is not None:
            digest = body_hash(item.model_dump(mode="json", exclude={"idempotency_key"}))
            prior = conn.execute(
                "SELECT body_hash, result FROM memory_idempotency WHERE tenant_id=? AND key=?",
                (tenant_id, key),
            ).fetchone()
            if prior is not None:
                if prior["body_hash"] != digest:
                    raise Conflict(
                        "idempotency key was used with a different body",
                        details={"idempotency_key": key},
                    )
                out.append(Remembered(**loads(prior["result"]), replayed=True))
                continue
        added = add_memory(conn, tenant_id, fields, now=now)
        result = {
            "id": added.row["id"],
            "created": added.created,
            "deduplicated": not added.created,
        }
        if key is not None:
            conn.execute(
                "INSERT INTO memory_idempotency (tenant_id, key, body_hash, result, created_at) "
                "VALUES (?,?,?,?,?)",
                (tenant_id, key, digest, dumps(result), now),
            )
        out.append(Remembered(**result, replayed=False))
    return out


def get_memory(
    conn: sqlite3.Connection, tenant_id: str, memory_id: str, *, include_deleted: bool = False
) -> Memory:
    """The memory, or :class:`NotFound` (also for a tombstone unless ``include_deleted``,
    and for another tenant's id)."""
    return memory_record(_row(conn, tenant_id, memory_id, include_deleted=include_deleted))


# -- patch and forget -----------------------------------------------------------------------
def _ms_or_none(value: datetime | None) -> int | None:
    return to_ms(value)


def patch_memory(
    conn: sqlite3.Connection, tenant_id: str, memory_id: str, fields: Mapping[str, Any], *, now: int
) -> Memory:
    """Apply a patch as a new version (``update`` change); a new text is re-indexed.

    Raises:
        NotFound: Unknown, deleted, or another tenant's memory.
        Conflict: The new text duplicates another live memory in the namespace.
    """
    row = _row(conn, tenant_id, memory_id)
    pk = int(row["pk"])
    sets: dict[str, Any] = {}
    text_changed = False
    new_hash: str = row["content_hash"]
    if "text" in fields and fields["text"] is not None and fields["text"] != row["text"]:
        new_hash = content_hash(fields["text"])
        if new_hash != row["content_hash"]:
            twin = conn.execute(
                "SELECT id FROM memories WHERE tenant_id=? AND namespace=? AND content_hash=? "
                "AND deleted_at IS NULL AND pk<>?",
                (tenant_id, row["namespace"], new_hash, pk),
            ).fetchone()
            if twin is not None:
                raise Conflict(
                    "another memory in this namespace has the same text",
                    details={"memory_id": twin["id"]},
                )
            text_changed = True
            sets["content_hash"] = new_hash
            sets["embedding_model"] = None
        sets["text"] = fields["text"]
    for name in ("kind", "importance"):
        if fields.get(name) is not None and fields[name] != row[name]:
            sets[name] = fields[name]
    if fields.get("tags") is not None and fields["tags"] != loads(row["tags"]):
        sets["tags"] = dumps(fields["tags"])
    if fields.get("metadata") is not None:
        merged, text = merge_json(row["metadata"], fields["metadata"], loc=["body", "metadata"])
        if merged != loads(row["metadata"]):
            sets["metadata"] = text
    for name in ("occurred_at", "expires_at"):
        if name in fields and _ms_or_none(fields[name]) != row[name]:
            sets[name] = _ms_or_none(fields[name])
    if not sets:
        return memory_record(row)
    sets["version"] = row["version"] + 1
    sets["updated_at"] = now
    assignments = ", ".join(f"{name}=?" for name in sets)
    conn.execute(f"UPDATE memories SET {assignments} WHERE pk=?", (*sets.values(), pk))
    if "text" in sets:
        terms.index(conn, pk, sets["text"])
    if text_changed:
        conn.execute("DELETE FROM memory_vectors WHERE memory_pk=?", (pk,))
        enqueue(conn, tenant_id, pk, now)
    updated = _by_pk(conn, pk)
    _log_row(conn, updated, "update", now)
    return memory_record(updated)


def _drop_index_rows(conn: sqlite3.Connection, row: sqlite3.Row) -> None:
    conn.execute("DELETE FROM memory_vectors WHERE memory_pk=?", (row["pk"],))
    conn.execute("DELETE FROM memory_outbox WHERE memory_pk=?", (row["pk"],))


def forget(
    conn: sqlite3.Connection, tenant_id: str, memory_id: str, *, purge: bool, now: int
) -> Memory | Purged:
    """Tombstone a memory (``delete`` change), or hard-delete it with ``purge``.

    A tombstone keeps the row and its history, hides it from search and get, and drops its
    keyword, vector and outbox rows. Forgetting a tombstone again is a no-op. A purge
    removes the row, nulls the text snapshots in its change log, forgets the idempotency
    keys that created it (a retry after a purge stores the memory anew) and appends a
    ``purge`` change, so feed consumers learn about it and the text is gone everywhere.

    Raises:
        NotFound: Unknown or another tenant's memory (a tombstone can still be purged).
    """
    row = _row(conn, tenant_id, memory_id, include_deleted=True)
    pk = int(row["pk"])
    if purge:
        _drop_index_rows(conn, row)
        conn.execute(
            "DELETE FROM memory_idempotency WHERE tenant_id=? AND json_extract(result, '$.id')=?",
            (tenant_id, memory_id),
        )
        conn.execute("DELETE FROM memories WHERE pk=?", (pk,))
        conn.execute(
            "UPDATE memory_changes SET snapshot=NULL WHERE tenant_id=? AND memory_id=?",
            (tenant_id, memory_id),
        )
        log_change(
            conn, tenant_id, memory_id, pk, row["namespace"], "purge", row["version"] + 1, now, None
        )
        return Purged(id=memory_id)
    if row["deleted_at"] is not None:
        return memory_record(row)
    _drop_index_rows(conn, row)
    conn.execute(
        "UPDATE memories SET deleted_at=?, updated_at=?, version=version+1, embedding_model=NULL "
        "WHERE pk=?",
        (now, now, pk),
    )
    tomb = _by_pk(conn, pk)
    _log_row(conn, tomb, "delete", now)
    return memory_record(tomb)


# -- history, changes, browse ---------------------------------------------------------------
def history(
    conn: sqlite3.Connection,
    tenant_id: str,
    memory_id: str,
    *,
    after: int,
    limit: int,
    max_bytes: int,
) -> tuple[list[MemoryChange], int | None]:
    """The changes of one memory with ``lsn > after`` in lsn order (each with the memory
    as of then), at most ``limit`` and about ``max_bytes`` of snapshots.

    Returns:
        ``(items, next_after)``: ``next_after`` is the last lsn returned when more follow,
        else ``None``.

    Raises:
        NotFound: Unknown, purged, or another tenant's memory.
    """
    _row(conn, tenant_id, memory_id, include_deleted=True)
    cursor = conn.execute(
        "SELECT * FROM memory_changes WHERE tenant_id=? AND memory_id=? AND lsn>? "
        f"AND op IN {PUBLIC_OPS} ORDER BY lsn LIMIT ?",
        (tenant_id, memory_id, after, limit + 1),
    )
    rows, more = take_page(cursor, limit=limit, max_bytes=max_bytes)
    items = [change_record(r) for r in rows]
    return items, (items[-1].lsn if more and items else None)


def changes(
    conn: sqlite3.Connection, tenant_id: str, *, after: int, limit: int, max_bytes: int
) -> tuple[list[MemoryChange], int]:
    """The change feed: ``(changes with lsn > after in lsn order, next_after)``, at most
    ``limit`` and about ``max_bytes`` of snapshots (at least one change).

    ``next_after`` is the last lsn returned (``after`` when there is none): pass it back.
    """
    cursor = conn.execute(
        f"SELECT * FROM memory_changes WHERE tenant_id=? AND lsn>? AND op IN {PUBLIC_OPS} "
        "ORDER BY lsn LIMIT ?",
        (tenant_id, after, limit),
    )
    rows, _ = take_page(cursor, limit=limit, max_bytes=max_bytes)
    items = [change_record(r) for r in rows]
    return items, (items[-1].lsn if items else after)


def browse(
    conn: sqlite3.Connection,
    tenant_id: str,
    f: MemoryFilter,
    *,
    before: int | None,
    limit: int,
    now: int,
    max_bytes: int,
) -> tuple[list[Memory], str | None]:
    """Memories newest first (by row key), at most ``limit`` and about ``max_bytes`` of
    stored text and metadata; ``(items, next_cursor)`` with an opaque cursor."""
    where, params = filter_sql(f, tenant_id, now)
    if before is not None:
        where += " AND m.pk<?"
        params.append(before)
    cursor = conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE {where} ORDER BY m.pk DESC LIMIT ?",
        (*params, limit + 1),
    )
    rows, more = take_page(cursor, limit=limit, max_bytes=max_bytes)
    return [memory_record(r) for r in rows], (str(rows[-1]["pk"]) if more and rows else None)


def export_page(
    conn: sqlite3.Connection,
    tenant_id: str,
    f: MemoryFilter,
    *,
    after: int,
    limit: int,
    now: int,
    max_bytes: int,
    vectors_of: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of an export in ingest order, at most ``limit`` memories and about
    ``max_bytes`` of stored text and metadata: ``(items, next_after or None at the end)``.

    Args:
        vectors_of: A model name: each memory with a current vector of that model gets
            ``embedding: {model, dim, vector}`` (``vector``: base64 of little-endian
            float32, as :class:`tether.domain.memories.ImportedEmbedding` reads it).
    """
    where, params = filter_sql(f, tenant_id, now)
    cursor = conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE {where} AND m.pk>? ORDER BY m.pk LIMIT ?",
        (*params, after, limit + 1),
    )
    rows, more = take_page(cursor, limit=limit, max_bytes=max_bytes)
    items = [_as_dict(memory_record(r)) for r in rows]
    if vectors_of is not None and rows:
        stored = {
            int(pk): (int(dim), bytes(blob))
            for pk, dim, blob in conn.execute(
                "SELECT v.memory_pk, v.dim, v.vector FROM memory_vectors v "
                "JOIN memories m ON m.pk = v.memory_pk AND m.content_hash = v.content_hash "
                "WHERE v.model=? AND v.memory_pk BETWEEN ? AND ?",
                (vectors_of, rows[0]["pk"], rows[-1]["pk"]),
            )
        }
        for row, item in zip(rows, items, strict=True):
            if (found := stored.get(int(row["pk"]))) is not None:
                dim, blob = found
                vector = base64.b64encode(blob).decode()
                item["embedding"] = {"model": vectors_of, "dim": dim, "vector": vector}
    return items, (int(rows[-1]["pk"]) if more and rows else None)


def _as_dict(memory: Memory) -> dict[str, Any]:
    return {name: getattr(memory, name) for name in Memory.__dataclass_fields__}


def store_vector(
    conn: sqlite3.Connection,
    row: sqlite3.Row,
    *,
    model: str,
    dim: int,
    vector: bytes,
    now: int,
) -> None:
    """Store the vector (little-endian float32 bytes) of memory ``row``'s current text and
    log a ``memory.embedded`` change, which the vector index of every replica follows."""
    pk = int(row["pk"])
    conn.execute(
        "INSERT OR REPLACE INTO memory_vectors (memory_pk, model, tenant_id, content_hash, dim, "
        "vector, created_at) VALUES (?,?,?,?,?,?,?)",
        (pk, model, row["tenant_id"], row["content_hash"], dim, vector, now),
    )
    conn.execute("UPDATE memories SET embedding_model=? WHERE pk=?", (model, pk))
    log_change(
        conn,
        row["tenant_id"],
        row["id"],
        pk,
        row["namespace"],
        "embedded",
        row["version"],
        now,
        None,
    )


def import_memories(
    conn: sqlite3.Connection,
    tenant_id: str,
    items: Sequence[MemoryImport],
    *,
    now: int,
    model: str,
    dim: int,
) -> ImportResult:
    """Import export lines; an id that exists (in any state) or a live twin text is skipped.

    Args:
        model: The server's embedder name: a line's ``embedding`` of this model (checked
            beforehand with ``ImportedEmbedding.values(dim)``) is stored as the new
            memory's vector, L2-normalised, with no outbox job; other lines are embedded
            by the indexer as usual.

    Returns:
        The counts, with ``ids`` aligned to the input (the existing memory's id for a
        skipped line).
    """
    imported = skipped = vectors = 0
    ids: list[str] = []
    for item in items:
        if item.id is not None:
            known = conn.execute(
                "SELECT id FROM memories WHERE tenant_id=? AND id=?", (tenant_id, item.id)
            ).fetchone()
            if known is not None:
                skipped += 1
                ids.append(item.id)
                continue
        emb = item.embedding
        usable = emb is not None and emb.model == model
        added = add_memory(
            conn,
            tenant_id,
            item.model_dump(exclude={"id", "created_at", "embedding"}),
            now=now,
            memory_id=item.id,
            created_at=to_ms(item.created_at),
            enqueue_job=not usable,
        )
        imported += added.created
        skipped += not added.created
        ids.append(added.row["id"])
        if added.created and usable and emb is not None:
            values = emb.values(dim)  # checked by the caller: raises only on a bug
            blob = (values / np.linalg.norm(values)).astype("<f4").tobytes()
            store_vector(conn, added.row, model=model, dim=emb.dim, vector=blob, now=now)
            vectors += 1
    return ImportResult(imported=imported, skipped=skipped, vectors=vectors, ids=ids)


def stats(conn: sqlite3.Connection, tenant_id: str) -> MemoryStats:
    """The tenant's live and tombstoned memories, pending and dead embedding jobs."""
    count, deleted = conn.execute(
        "SELECT coalesce(sum(deleted_at IS NULL),0), coalesce(sum(deleted_at IS NOT NULL),0) "
        "FROM memories WHERE tenant_id=?",
        (tenant_id,),
    ).fetchone()
    by_state = dict(
        conn.execute(
            "SELECT state, count(*) FROM memory_outbox WHERE tenant_id=? GROUP BY state",
            (tenant_id,),
        ).fetchall()
    )
    return MemoryStats(
        count=int(count),
        deleted=int(deleted),
        index_backlog=int(by_state.get("pending", 0)),
        dead_letters=int(by_state.get("dead", 0)),
    )

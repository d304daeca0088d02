"""Memory logic, once for every backend: remember (dedupe, idempotency), get, patch,
forget, history, browse, export, import, stats.

Each function takes the backend's memory SQL (:class:`MemorySql`, the module
``store/<backend>/memories.py``) and a connection inside one of the engine's jobs; it
never commits. Every statement is scoped by ``tenant_id``. Each write appends to the
change log (``memory_changes``, global ``lsn`` in commit order) and, when the text is
new, queues an embedding job in ``memory_outbox``, in the caller's transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from tether.domain.filters import MemoryFilter
from tether.domain.memories import MemoryImport, MemoryIn, content_hash
from tether.domain.records import (
    ImportResult,
    Memory,
    MemoryChange,
    MemoryStats,
    NamespaceCount,
    Purged,
    Remembered,
)
from tether.domain.text import analyze
from tether.domain.time import new_id, to_ms
from tether.errors import Conflict, NotFound
from tether.store.common import body_hash, dumps, loads, merge_json, take_page
from tether.store.rows import Row, change_record, memory_record

#: Change-log ops that are content changes, the public feed and history (``embedded``
#: only tells the indexes a vector was stored).
PUBLIC_OPS: Final = ("add", "update", "delete", "purge")


class MemorySql(Protocol):
    """The SQL a backend supplies (``store/<backend>/memories.py``); rows answer
    ``row["column"]``. Writes run inside the caller's transaction."""

    def filter_sql(self, f: MemoryFilter, tenant_id: str, now: int) -> tuple[str, list[Any]]:
        """``(where, params)`` over alias ``m`` for ``f``, scoped to the tenant."""

    def log_change(
        self,
        conn: Any,
        tenant_id: str,
        memory_id: str,
        memory_pk: int,
        namespace: str,
        op: str,
        version: int,
        now: int,
        snapshot: str | None,
    ) -> int:
        """Append to the change log (the next lsn, in commit order) and emit it."""

    def enqueue(self, conn: Any, tenant_id: str, memory_pk: int, now: int) -> None: ...

    def find(self, conn: Any, tenant_id: str, memory_id: str, *, lock: bool) -> Row | None:
        """The row by id (any state); ``lock``: held for update to the commit."""

    def live_twin(
        self, conn: Any, tenant_id: str, namespace: str, digest: str, *, besides: int = 0
    ) -> Row | None:
        """The live memory with this content hash in the namespace (not row ``besides``)."""

    def insert(self, conn: Any, values: Mapping[str, Any]) -> Row | None:
        """Insert a memory row (``values`` by column); the row, or ``None`` when a live
        twin was committed meanwhile (another replica) and nothing was inserted."""

    def update(self, conn: Any, pk: int, sets: Mapping[str, Any]) -> Row:
        """Set columns of row ``pk``; the row after."""

    def drop_index_rows(self, conn: Any, pk: int) -> None:
        """Delete the memory's vectors and outbox jobs."""

    def delete_vectors(self, conn: Any, pk: int) -> None: ...

    def purge(self, conn: Any, tenant_id: str, memory_id: str, pk: int) -> None:
        """Delete the row, null the snapshots of its change log, forget the idempotency
        keys whose result names it."""

    def idempotent(self, conn: Any, tenant_id: str, key: str) -> tuple[str, str] | None:
        """``(body_hash, result JSON)`` stored for the key, or ``None``."""

    def save_idempotent(
        self, conn: Any, tenant_id: str, key: str, digest: str, result: str, now: int
    ) -> None: ...

    def id_taken(self, conn: Any, tenant_id: str, memory_id: str) -> bool: ...

    def history_rows(
        self, conn: Any, tenant_id: str, memory_id: str, *, after: int, limit: int
    ) -> Iterable[Row]:
        """The memory's changes with a public op and ``lsn > after``, in lsn order."""

    def change_rows(self, conn: Any, tenant_id: str, *, after: int, limit: int) -> Iterable[Row]:
        """The tenant's changes with a public op and ``lsn > after``, in lsn order."""

    def head(self, conn: Any) -> int:
        """The latest lsn of the change log (0 when empty)."""

    def page_rows(
        self, conn: Any, where: str, params: list[Any], *, order: str, limit: int
    ) -> Iterable[Row]:
        """``MEMORY_COLUMNS`` of ``memories m WHERE <where>`` by pk (``order``: ``ASC``
        or ``DESC``), at most ``limit``."""

    def namespace_rows(
        self, conn: Any, where: str, params: list[Any], *, after: str | None, limit: int
    ) -> Iterable[tuple[str, int]]:
        """``(namespace, live memories)`` of ``memories m WHERE <where>``, namespaces in
        byte order after ``after``, at most ``limit``."""

    def placeholder(self) -> str:
        """The parameter marker of the backend's driver (``?`` or ``%s``)."""

    def current_vectors(
        self, conn: Any, model: str, first_pk: int, last_pk: int
    ) -> Iterable[tuple[int, int, bytes]]:
        """``(memory_pk, dim, vector)`` of ``model`` vectors that match their memory's
        current text, for pks in the range."""

    def upsert_vector(
        self,
        conn: Any,
        row: Row,
        *,
        model: str,
        dim: int,
        vector: bytes,
        now: int,
    ) -> None:
        """Store (or replace) the vector of ``row``'s current text and mark the row."""

    def counts(self, conn: Any, tenant_id: str) -> tuple[int, int, dict[str, int]]:
        """``(live, tombstoned, outbox jobs by state)`` of the tenant."""


def _missing(memory_id: str) -> NotFound:
    return NotFound(f"memory {memory_id!r} not found", details={"memory_id": memory_id})


def _row(
    q: MemorySql,
    conn: Any,
    tenant_id: str,
    memory_id: str,
    *,
    include_deleted: bool = False,
    lock: bool = False,
) -> Row:
    row = q.find(conn, tenant_id, memory_id, lock=lock)
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise _missing(memory_id)
    return row


def _log_row(q: MemorySql, conn: Any, row: Row, op: str, now: int) -> int:
    """Log a change of ``row`` (the memory after it) with the memory as its snapshot."""
    return q.log_change(
        conn,
        row["tenant_id"],
        row["id"],
        row["pk"],
        row["namespace"],
        op,
        row["version"],
        now,
        dumps(memory_record(row)),
    )


# -- remember -------------------------------------------------------------------------------
@dataclass(slots=True)
class Added:
    """One remembered item: the row, and whether it was new (else a dedupe hit)."""

    row: Row
    created: bool


def add_memory(
    q: MemorySql,
    conn: Any,
    tenant_id: str,
    fields: Mapping[str, Any],
    *,
    now: int,
    memory_id: str | None = None,
    created_at: int | None = None,
    enqueue_job: bool = True,
) -> Added:
    """Insert a memory with its terms, ``add`` change and outbox job, or find its twin.

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
    twin = q.live_twin(conn, tenant_id, fields["namespace"], digest)
    if twin is not None:
        return Added(twin, created=False)
    row = q.insert(
        conn,
        {
            "tenant_id": tenant_id,
            "id": memory_id or new_id(),
            "namespace": fields["namespace"],
            "text": text,
            "kind": fields.get("kind") or "fact",
            "tags": dumps(fields.get("tags") or []),
            "metadata": dumps(fields.get("metadata") or {}),
            "importance": fields.get("importance", 0.5),
            "source_session_id": fields.get("source_session_id"),
            "source_event_id": fields.get("source_event_id"),
            "occurred_at": to_ms(fields.get("occurred_at")),
            "created_at": created_at if created_at is not None else now,
            "updated_at": now,
            "expires_at": to_ms(fields.get("expires_at")),
            "content_hash": digest,
            "terms": " ".join(analyze(text)),
        },
    )
    if row is None:  # a twin committed meanwhile (another replica)
        twin = q.live_twin(conn, tenant_id, fields["namespace"], digest)
        assert twin is not None
        return Added(twin, created=False)
    _log_row(q, conn, row, "add", now)
    if enqueue_job:
        q.enqueue(conn, tenant_id, int(row["pk"]), now)
    return Added(row, created=True)


def remember(
    q: MemorySql, conn: Any, tenant_id: str, items: Sequence[MemoryIn], *, now: int
) -> list[Remembered]:
    """Remember items in order (the caller's transaction makes a batch all-or-nothing).

    An item whose ``idempotency_key`` is known returns the original outcome
    (``replayed: true``); the same key with a different body raises :class:`Conflict`.

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
            prior = q.idempotent(conn, tenant_id, key)
            if prior is not None:
                if prior[0] != digest:
                    raise Conflict(
                        "idempotency key was used with a different body",
                        details={"idempotency_key": key},
                    )
                out.append(Remembered(**loads(prior[1]), replayed=True))
                continue
        added = add_memory(q, conn, tenant_id, fields, now=now)
        result = {
            "id": added.row["id"],
            "created": added.created,
            "deduplicated": not added.created,
        }
        if key is not None:
            q.save_idempotent(conn, tenant_id, key, digest, dumps(result), now)
        out.append(Remembered(**result, replayed=False))
    return out


def get_memory(
    q: MemorySql, conn: Any, tenant_id: str, memory_id: str, *, include_deleted: bool = False
) -> Memory:
    """The memory, or :class:`NotFound` (also for a tombstone unless ``include_deleted``,
    and for another tenant's id)."""
    return memory_record(_row(q, conn, tenant_id, memory_id, include_deleted=include_deleted))


# -- patch and forget -----------------------------------------------------------------------
def patch_memory(
    q: MemorySql,
    conn: Any,
    tenant_id: str,
    memory_id: str,
    fields: Mapping[str, Any],
    *,
    now: int,
) -> Memory:
    """Apply a patch as a new version (``update`` change); a new text is re-indexed.

    Raises:
        NotFound: Unknown, deleted, or another tenant's memory.
        Conflict: The new text duplicates another live memory in the namespace.
    """
    row = _row(q, conn, tenant_id, memory_id, lock=True)
    pk = int(row["pk"])
    sets: dict[str, Any] = {}
    text_changed = False
    if "text" in fields and fields["text"] is not None and fields["text"] != row["text"]:
        new_hash = content_hash(fields["text"])
        if new_hash != row["content_hash"]:
            twin = q.live_twin(conn, tenant_id, row["namespace"], new_hash, besides=pk)
            if twin is not None:
                raise Conflict(
                    "another memory in this namespace has the same text",
                    details={"memory_id": twin["id"]},
                )
            text_changed = True
            sets["content_hash"] = new_hash
            sets["embedding_model"] = None
        sets["text"] = fields["text"]
        sets["terms"] = " ".join(analyze(fields["text"]))
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
        if name in fields and to_ms(fields[name]) != row[name]:
            sets[name] = to_ms(fields[name])
    if not sets:
        return memory_record(row)
    sets["version"] = row["version"] + 1
    sets["updated_at"] = now
    updated = q.update(conn, pk, sets)
    if text_changed:
        q.delete_vectors(conn, pk)
        q.enqueue(conn, tenant_id, pk, now)
    _log_row(q, conn, updated, "update", now)
    return memory_record(updated)


def forget(
    q: MemorySql, conn: Any, tenant_id: str, memory_id: str, *, purge: bool, now: int
) -> Memory | Purged:
    """Tombstone a memory (``delete`` change), or hard-delete it with ``purge``.

    A tombstone keeps the row and its history, hides it from search and get, and drops its
    vector and outbox rows. Forgetting a tombstone again is a no-op. A purge removes the
    row, nulls the text snapshots in its change log, forgets the idempotency keys that
    created it (a retry after a purge stores the memory anew) and appends a ``purge``
    change, so feed consumers learn about it and the text is gone everywhere.

    Raises:
        NotFound: Unknown or another tenant's memory (a tombstone can still be purged).
    """
    row = _row(q, conn, tenant_id, memory_id, include_deleted=True, lock=True)
    pk = int(row["pk"])
    if purge:
        q.drop_index_rows(conn, pk)
        q.purge(conn, tenant_id, memory_id, pk)
        q.log_change(
            conn, tenant_id, memory_id, pk, row["namespace"], "purge", row["version"] + 1, now, None
        )
        return Purged(id=memory_id)
    if row["deleted_at"] is not None:
        return memory_record(row)
    q.drop_index_rows(conn, pk)
    tomb = q.update(
        conn,
        pk,
        {
            "deleted_at": now,
            "updated_at": now,
            "version": row["version"] + 1,
            "embedding_model": None,
        },
    )
    _log_row(q, conn, tomb, "delete", now)
    return memory_record(tomb)


# -- history, changes, browse, export ----------------------------------------------------------
def history(
    q: MemorySql,
    conn: Any,
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
        ``(items, next_after)``: the last lsn returned when more follow, else ``None``.

    Raises:
        NotFound: Unknown, purged, or another tenant's memory.
    """
    _row(q, conn, tenant_id, memory_id, include_deleted=True)
    rows, more = take_page(
        q.history_rows(conn, tenant_id, memory_id, after=after, limit=limit + 1),
        limit=limit,
        max_bytes=max_bytes,
    )
    items = [change_record(r) for r in rows]
    return items, (items[-1].lsn if more and items else None)


def changes(
    q: MemorySql, conn: Any, tenant_id: str, *, after: int, limit: int, max_bytes: int
) -> tuple[list[MemoryChange], int]:
    """The change feed: ``(changes with lsn > after in lsn order, next_after)``, at most
    ``limit`` and about ``max_bytes`` of snapshots (at least one change).

    ``next_after`` is the last lsn returned (``after`` when there is none): pass it back.
    """
    rows, _ = take_page(
        q.change_rows(conn, tenant_id, after=after, limit=limit), limit=limit, max_bytes=max_bytes
    )
    items = [change_record(r) for r in rows]
    return items, (items[-1].lsn if items else after)


def browse(
    q: MemorySql,
    conn: Any,
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
    where, params = q.filter_sql(f, tenant_id, now)
    if before is not None:
        where += f" AND m.pk < {q.placeholder()}"
        params.append(before)
    rows, more = take_page(
        q.page_rows(conn, where, params, order="DESC", limit=limit + 1),
        limit=limit,
        max_bytes=max_bytes,
    )
    return [memory_record(r) for r in rows], (str(rows[-1]["pk"]) if more and rows else None)


def namespaces(
    q: MemorySql,
    conn: Any,
    tenant_id: str,
    f: MemoryFilter,
    *,
    after: str | None,
    limit: int,
    now: int,
) -> tuple[list[NamespaceCount], str | None]:
    """The tenant's namespaces holding memories ``f`` matches, with their counts, in byte
    (code point) order; ``(items, next after or None)``."""
    where, params = q.filter_sql(f, tenant_id, now)
    rows = list(q.namespace_rows(conn, where, params, after=after, limit=limit + 1))
    items = [NamespaceCount(namespace=ns, count=int(n)) for ns, n in rows[:limit]]
    return items, (items[-1].namespace if len(rows) > limit else None)


def export_page(
    q: MemorySql,
    conn: Any,
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
    where, params = q.filter_sql(f, tenant_id, now)
    where += f" AND m.pk > {q.placeholder()}"
    params.append(after)
    rows, more = take_page(
        q.page_rows(conn, where, params, order="ASC", limit=limit + 1),
        limit=limit,
        max_bytes=max_bytes,
    )
    items = [_as_dict(memory_record(r)) for r in rows]
    if vectors_of is not None and rows:
        stored = {
            int(pk): (int(dim), bytes(blob))
            for pk, dim, blob in q.current_vectors(conn, vectors_of, rows[0]["pk"], rows[-1]["pk"])
        }
        for row, item in zip(rows, items, strict=True):
            if (found := stored.get(int(row["pk"]))) is not None:
                dim, blob = found
                vector = base64.b64encode(blob).decode()
                item["embedding"] = {"model": vectors_of, "dim": dim, "vector": vector}
    return items, (int(rows[-1]["pk"]) if more and rows else None)


def _as_dict(memory: Memory) -> dict[str, Any]:
    return {name: getattr(memory, name) for name in Memory.__dataclass_fields__}


# -- vectors and import ---------------------------------------------------------------------
def store_vector(
    q: MemorySql, conn: Any, row: Row, *, model: str, dim: int, vector: bytes, now: int
) -> None:
    """Store the vector (little-endian float32 bytes) of memory ``row``'s current text and
    log a ``memory.embedded`` change, which the vector index of every replica follows."""
    q.upsert_vector(conn, row, model=model, dim=dim, vector=vector, now=now)
    q.log_change(
        conn,
        row["tenant_id"],
        row["id"],
        int(row["pk"]),
        row["namespace"],
        "embedded",
        row["version"],
        now,
        None,
    )


def import_memories(
    q: MemorySql,
    conn: Any,
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
        if item.id is not None and q.id_taken(conn, tenant_id, item.id):
            skipped += 1
            ids.append(item.id)
            continue
        emb = item.embedding
        usable = emb is not None and emb.model == model
        added = add_memory(
            q,
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
            store_vector(q, conn, added.row, model=model, dim=emb.dim, vector=blob, now=now)
            vectors += 1
    return ImportResult(imported=imported, skipped=skipped, vectors=vectors, ids=ids)


def stats(q: MemorySql, conn: Any, tenant_id: str) -> MemoryStats:
    """The tenant's live and tombstoned memories, pending and dead embedding jobs."""
    live, deleted, by_state = q.counts(conn, tenant_id)
    return MemoryStats(
        count=live,
        deleted=deleted,
        index_backlog=by_state.get("pending", 0),
        dead_letters=by_state.get("dead", 0),
    )

"""The memory feed as the indexes read it: snapshots by row key, changes by ``lsn``.

In SQLite the one writer assigns ``lsn`` (``AUTOINCREMENT``) inside its transaction, so
lsn order is commit order and a reader that has applied ``lsn = n`` has seen every change
at or below it. Each change is read back as the memory as it is *now* (terms, current
vector), so applying one twice is harmless.
"""

from __future__ import annotations

import sqlite3

from tether.store.base import IndexRow

_CURRENT_VECTOR = (
    "LEFT JOIN memory_vectors v ON v.memory_pk = m.pk AND v.model = ? "
    "AND v.content_hash = m.content_hash"
)


def feed_lsn(conn: sqlite3.Connection) -> int:
    """The last lsn of the change log (0 when empty)."""
    (lsn,) = conn.execute("SELECT coalesce(max(lsn), 0) FROM memory_changes").fetchone()
    return int(lsn)


def snapshot(conn: sqlite3.Connection, *, model: str, after_pk: int, limit: int) -> list[IndexRow]:
    """Live memories with ``pk > after_pk`` in pk order, with terms and current vector."""
    return [
        IndexRow(0, tenant, mid, pk, ns, version, terms or "", digest, blob)
        for tenant, mid, pk, ns, version, terms, digest, blob in conn.execute(
            "SELECT m.tenant_id, m.id, m.pk, m.namespace, m.version, m.terms, m.content_hash, "
            f"v.vector FROM memories m {_CURRENT_VECTOR} "
            "WHERE m.deleted_at IS NULL AND m.pk > ? ORDER BY m.pk LIMIT ?",
            (model, after_pk, limit),
        )
    ]


def feed(conn: sqlite3.Connection, *, model: str, after: int, limit: int) -> list[IndexRow]:
    """Each change with ``lsn > after``, as the memory is now (``terms`` None: gone)."""
    rows = conn.execute(
        "SELECT c.lsn, c.tenant_id, c.memory_id, c.memory_pk, c.namespace, m.version, "
        "m.terms, m.content_hash, m.deleted_at, v.vector FROM memory_changes c "
        f"LEFT JOIN memories m ON m.pk = c.memory_pk {_CURRENT_VECTOR} "
        "WHERE c.lsn > ? ORDER BY c.lsn LIMIT ?",
        (model, after, limit),
    ).fetchall()
    out = []
    for lsn, tenant, mid, pk, ns, version, terms, digest, deleted_at, blob in rows:
        if version is None or deleted_at is not None:  # purged, or tombstoned
            # (pk -1: a change logged before the log named row keys, migration 0006)
            out.append(
                IndexRow(lsn, tenant, mid, -1 if pk is None else pk, ns, 0, None, None, None)
            )
        else:
            out.append(IndexRow(lsn, tenant, mid, pk, ns, version, terms or "", digest, blob))
    return out

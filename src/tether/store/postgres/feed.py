"""The memory feed as the indexes read it, on PostgreSQL: snapshots by row key, changes
by ``lsn``.

``lsn`` values come from the ``feed_counter`` row, locked by each writing transaction to
its commit (see the migration), so lsn order is commit order across replicas: a reader
that has applied ``lsn = n`` has seen every change at or below it. Each change is read
back as the memory is *now*, so applying one twice is harmless.
"""

from __future__ import annotations

from typing import Any

from tether.store.base import IndexRow
from tether.store.postgres.engine import Conn, one

_CURRENT_VECTOR = (
    "LEFT JOIN memory_vectors v ON v.memory_pk = m.pk AND v.model = %s "
    "AND v.content_hash = m.content_hash"
)


def feed_lsn(conn: Conn) -> int:
    """The last lsn committed (0 when none)."""
    (lsn,) = one(conn.execute("SELECT lsn FROM feed_counter WHERE id = 1"))
    return int(lsn)


def snapshot(conn: Conn, *, model: str, after_pk: int, limit: int) -> list[IndexRow]:
    """Live memories with ``pk > after_pk`` in pk order, with terms and current vector."""
    return [
        IndexRow(0, tenant, mid, pk, ns, version, terms or "", digest, _bytes(blob))
        for tenant, mid, pk, ns, version, terms, digest, blob in conn.execute(
            "SELECT m.tenant_id, m.id, m.pk, m.namespace, m.version, m.terms, m.content_hash, "
            f"v.vector FROM memories m {_CURRENT_VECTOR} "
            "WHERE m.deleted_at IS NULL AND m.pk > %s ORDER BY m.pk LIMIT %s",
            (model, after_pk, limit),
        )
    ]


def feed(conn: Conn, *, model: str, after: int, limit: int) -> list[IndexRow]:
    """Each change with ``lsn > after``, as the memory is now (``terms`` None: gone)."""
    rows = conn.execute(
        "SELECT c.lsn, c.tenant_id, c.memory_id, c.memory_pk, c.namespace, m.version, "
        "m.terms, m.content_hash, m.deleted_at, v.vector FROM memory_changes c "
        f"LEFT JOIN memories m ON m.pk = c.memory_pk {_CURRENT_VECTOR} "
        "WHERE c.lsn > %s ORDER BY c.lsn LIMIT %s",
        (model, after, limit),
    ).fetchall()
    out = []
    for lsn, tenant, mid, pk, ns, version, terms, digest, deleted_at, blob in rows:
        if version is None or deleted_at is not None:  # purged, or tombstoned
            out.append(IndexRow(lsn, tenant, mid, pk, ns, 0, None, None, None))
        else:
            out.append(
                IndexRow(lsn, tenant, mid, pk, ns, version, terms or "", digest, _bytes(blob))
            )
    return out


def _bytes(blob: Any) -> bytes | None:
    """``bytea`` arrives as ``bytes`` (binary results) or ``memoryview``."""
    return None if blob is None else bytes(blob)

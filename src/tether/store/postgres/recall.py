"""Recall SQL for PostgreSQL: filtered candidate rows and access statistics.

Every statement is scoped by ``tenant_id`` through
:func:`tether.store.postgres.memories.filter_sql`; key lists go as one array parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tether.domain.filters import MemoryFilter
from tether.domain.records import Memory
from tether.store.base import RankingRow
from tether.store.postgres.engine import Conn
from tether.store.postgres.memories import filter_sql
from tether.store.rows import MEMORY_COLUMNS, memory_record

#: What ranking reads of a candidate (``tether.memory.ranking.MemoryFeatures``).
RANKING_COLUMNS: Final = "m.pk, m.created_at, m.occurred_at, m.last_accessed_at, m.importance"


def rows_passing(
    conn: Conn, tenant_id: str, f: MemoryFilter, pks: Sequence[int], *, now: int
) -> dict[int, RankingRow]:
    """The :data:`RANKING_COLUMNS` of the rows among ``pks`` that pass the filter, by pk
    (others are simply absent)."""
    where, params = filter_sql(f, tenant_id, now)
    return {
        row[0]: RankingRow(row[0], row[1], row[2], row[3], float(row[4]))
        for row in conn.execute(
            f"SELECT {RANKING_COLUMNS} FROM memories m WHERE m.pk = ANY(%s::int8[]) AND {where}",
            (list(dict.fromkeys(pks)), *params),
        )
    }


def rows_by_pk(conn: Conn, tenant_id: str, pks: Sequence[int]) -> dict[int, Memory]:
    """Full rows (``MEMORY_COLUMNS``) of the tenant's live (not forgotten) memories among
    ``pks``, by pk (a memory forgotten since the candidates were read is left out)."""
    if not pks:
        return {}
    return {
        int(row["pk"]): memory_record(row)
        for row in conn.execute(
            f"SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.pk = ANY(%s::int8[]) "
            "AND m.tenant_id = %s AND m.deleted_at IS NULL",
            (list(pks), tenant_id),
        )
    }


def touch(conn: Conn, accesses: Sequence[tuple[str, int, int, int]]) -> None:
    """Record that recalls returned these memories.

    Args:
        accesses: ``(tenant_id, pk, last_accessed_ms, times)``: ``last_accessed_at``
            becomes the later of its value and ``last_accessed_ms``; ``access_count``
            grows by ``times``.

    Not a new version and not a change-log entry: access is statistics, not content.
    Rows are updated in pk order, so two replicas touching the same memories cannot
    deadlock.
    """
    ordered = sorted(accesses, key=lambda a: a[1])
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE memories SET last_accessed_at = greatest(coalesce(last_accessed_at, 0), %s), "
            "access_count = access_count + %s WHERE tenant_id = %s AND pk = %s",
            [(last, times, tenant_id, pk) for tenant_id, pk, last, times in ordered],
        )

"""Moving a deployment from one store to another (``tether migrate``).

Every table of :data:`tether.store.tables.TABLES` is copied page by page, keys included
(session and memory ids, event seqs, the change feed's lsns, vectors), into an empty
target; then both sides are read again and each table's row count and SHA-256 compared.
The checksum is over the rows in key order, each as canonical JSON (``bytes`` as
base64), so it is the same on any backend when the rows are.

The source must not be written meanwhile (stop the servers first): rows written during
the copy may be missed, and the checksums would then say so.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tether.errors import Conflict
from tether.store.base import Store
from tether.store.tables import TABLES, TableSpec

__all__ = ["TableCopy", "checksum", "migrate"]

#: Rows per page read and written (one transaction per page on the target).
PAGE_ROWS = 2_000

Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table after the copy: rows and SHA-256 (hex) on each side."""

    table: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def matches(self) -> bool:
        return (self.source_rows, self.source_sha256) == (self.target_rows, self.target_sha256)


def _plain(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, bytes | memoryview) else value


async def _pages(store: Store, spec: TableSpec, page_rows: int) -> Any:
    after: Sequence[Any] | None = None
    key = [spec.columns.index(name) for name in spec.key]
    while rows := await store.read_table(spec.name, after=after, limit=page_rows):
        yield rows
        after = [rows[-1][i] for i in key]


async def checksum(store: Store, table: str, *, page_rows: int = PAGE_ROWS) -> tuple[int, str]:
    """``(rows, sha256 hex)`` of a table: its rows in key order as canonical JSON lines."""
    spec = next(s for s in TABLES if s.name == table)
    digest = hashlib.sha256()
    count = 0
    async for rows in _pages(store, spec, page_rows):
        for row in rows:
            digest.update(orjson.dumps([_plain(v) for v in row]))
            digest.update(b"\n")
        count += len(rows)
    return count, digest.hexdigest()


async def migrate(
    source: Store,
    target: Store,
    *,
    page_rows: int = PAGE_ROWS,
    progress: Progress | None = None,
) -> list[TableCopy]:
    """Copy every table from ``source`` to ``target``, then compare them.

    Args:
        source, target: started stores (any backends).
        progress: called with ``(table, rows copied so far)`` after each page.

    Returns:
        Per table, rows and checksums on both sides (:attr:`TableCopy.matches`).

    Raises:
        Conflict: the target already holds data (nothing is written).
        Unavailable: either store failed.
    """
    if not await target.is_empty():
        raise Conflict("the target store is not empty: migrate copies into an empty one")
    for spec in TABLES:
        copied = 0
        async for rows in _pages(source, spec, page_rows):
            copied += await target.write_table(spec.name, rows)
            if progress is not None:
                progress(spec.name, copied)
    await target.finish_load()
    report = []
    for spec in TABLES:
        n_source, sha_source = await checksum(source, spec.name, page_rows=page_rows)
        n_target, sha_target = await checksum(target, spec.name, page_rows=page_rows)
        report.append(TableCopy(spec.name, n_source, n_target, sha_source, sha_target))
    return report

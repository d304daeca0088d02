"""Helpers every backend shares: JSON columns, merge patches, byte-capped pages, and
the change records a write job emits.

Pure Python, no SQL: the backends' own modules hold their SQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import orjson

from tether.domain.changes import Change
from tether.domain.common import MAX_METADATA_BYTES
from tether.domain.merge_patch import merge_patch
from tether.errors import InvalidInput

R = TypeVar("R", bound=Iterable[Any])

# The change records of the group a writer thread is committing (see emit()).
_group = threading.local()


def emit(change: Change) -> None:
    """Record a change of the write job running now; the engine hands it to its
    ``on_commit`` once the group commits (a job rolled back takes its changes with it).
    Outside a writer (a test or tool calling the SQL functions on its own connection)
    it is dropped."""
    changes: list[Change] | None = getattr(_group, "changes", None)
    if changes is not None:
        changes.append(change)


@contextlib.contextmanager
def collecting(into: list[Change]) -> Iterator[list[Change]]:
    """Collect what :func:`emit` records on this thread into ``into`` (a writer's group)."""
    _group.changes = into
    try:
        yield into
    finally:
        _group.changes = None


def dumps(value: Any) -> str:
    """Compact JSON text for a TEXT column (orjson; keys in insertion order)."""
    return orjson.dumps(value).decode()


def dumps_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def body_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys): tells "same body" from "different body"."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def merge_json(
    stored: str | None,
    patch: Any,
    *,
    loc: list[str],
    max_bytes: int = MAX_METADATA_BYTES,
) -> tuple[Any, str]:
    """Apply a JSON Merge Patch (RFC 7386) to a stored JSON column.

    Returns:
        ``(merged value, its JSON text)``.

    Raises:
        InvalidInput: the merged document would exceed ``max_bytes`` as compact JSON (422
            naming ``loc``): repeated patches must not grow a document without bound.
    """
    merged = merge_patch(loads(stored), patch)
    raw = orjson.dumps(merged)
    if len(raw) > max_bytes:
        raise InvalidInput(
            f"the merged document would be {len(raw)} bytes; the limit is {max_bytes}",
            details=[{"loc": loc, "type": "too_large", "max_bytes": max_bytes}],
        )
    return merged, raw.decode()


def row_bytes(row: Iterable[Any]) -> int:
    """Stored size of a row in bytes, roughly: the length of its text and blob values
    (numbers and NULLs are noise beside the JSON columns that make rows large)."""
    return sum(len(v) for v in row if isinstance(v, str | bytes))


def take_page(rows: Iterable[R], *, limit: int, max_bytes: int) -> tuple[list[R], bool]:
    """Up to ``limit`` rows from a lazily iterated cursor, stopping before their stored
    bytes (:func:`row_bytes`) would exceed ``max_bytes``; the first row is always taken.

    Iterate a cursor (not ``fetchall()``) so that no more than one row past the page is
    ever read: a page of 1,000 events of 200 kB each would otherwise hold 200 MB.

    Returns:
        ``(rows, more)``: ``more`` is true when a further row exists (the query should
        ask for ``limit + 1`` rows so that a full page can tell).
    """
    page: list[R] = []
    total = 0
    for row in rows:
        if len(page) == limit:
            return page, True
        size = row_bytes(row)
        if page and total + size > max_bytes:
            return page, True
        page.append(row)
        total += size
    return page, False


def like_pattern(word: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern (SQLite and PostgreSQL) matching ``word``,
    lower-cased, anywhere in a lower-cased text."""
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"

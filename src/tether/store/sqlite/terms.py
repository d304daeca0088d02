"""Each memory's analyzer terms, written in the memory's own transaction.

``memories.terms`` (space-separated, :func:`tether.domain.text.analyze`) is what recall's
in-process BM25 postings (:mod:`tether.memory.postings`) are built from, on every replica,
so they never re-analyze text.
"""

from __future__ import annotations

import sqlite3

from tether.domain.text import analyze


def index(conn: sqlite3.Connection, pk: int, text: str) -> None:
    """Store memory ``pk``'s analyzer terms."""
    conn.execute("UPDATE memories SET terms=? WHERE pk=?", (" ".join(analyze(text)), pk))

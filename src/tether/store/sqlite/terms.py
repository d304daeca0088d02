"""The durable keyword index: FTS5 rows and each memory's analyzer terms.

Both are written in the memory's own transaction. FTS5 (``memories_fts``) serves the
browse API's ``q`` and stays the durable full-text index; ``memories.terms`` (the
memory's analyzer terms, space-separated, :func:`tether.memory.analyzer.analyze`) is what
recall's in-process BM25 postings (:mod:`tether.memory.postings`) are built from, so they
never re-analyze text.
"""

from __future__ import annotations

import sqlite3

from tether.memory.analyzer import analyze


def index(conn: sqlite3.Connection, pk: int, text: str) -> None:
    """Add memory ``pk``'s text to the FTS5 index and store its analyzer terms."""
    conn.execute("INSERT INTO memories_fts (rowid, text) VALUES (?,?)", (pk, text))
    conn.execute("UPDATE memories SET terms=? WHERE pk=?", (" ".join(analyze(text)), pk))


def unindex(conn: sqlite3.Connection, pk: int, text: str) -> None:
    """Remove memory ``pk`` (whose indexed text is ``text``) from the FTS5 index."""
    conn.execute(
        "INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', ?, ?)", (pk, text)
    )

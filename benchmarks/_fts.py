"""SQLite FTS5 pieces for ``ranking_offline.py``: the keyword index Tether used before
its in-process BM25 postings, kept here as that benchmark's baseline retriever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tether.domain.text import MAX_QUERY_TERMS, query_terms

#: FTS5 ``tokenize`` option: Porter stemming over Unicode 6.1 word splitting, with
#: diacritics removed (``remove_diacritics 2`` also folds combining marks; SQLite >= 3.27).
FTS_TOKENIZE: Final = "porter unicode61 remove_diacritics 2"

#: DDL for the memory keyword index (SQLite >= 3.27 with FTS5). External content: rows
#: mirror ``memories(rowid, text)``; the writer inserts/deletes index rows in the same
#: transaction as the memory (``INSERT INTO memories_fts(memories_fts, rowid, text)
#: VALUES('delete', ...)`` before an update or delete). Rank with ``bm25(memories_fts)``:
#: FTS5's Okapi BM25 (k1 = 1.2, b = 0.75), returned *negated* (lower is better).
FTS_TABLE_DDL: Final = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(\n"
    "    text,\n"
    "    content='memories',\n"
    "    content_rowid='rowid',\n"
    f"    tokenize='{FTS_TOKENIZE}'\n"
    ")"
)


def build_match_query(text: str, *, max_terms: int = MAX_QUERY_TERMS) -> str | None:
    """Build a safe FTS5 ``MATCH`` expression from free user text.

    Each term from :func:`query_terms` becomes an FTS5 string literal (``"term"``, inner
    quotes doubled) and the literals are joined with ``OR``. The result is a valid FTS5
    query for every input string; bind it as a parameter (``... MATCH ?``), never format
    it into SQL.

    Args:
        text: Any user string.
        max_terms: Cap on the number of OR'ed terms.

    Returns:
        The MATCH expression, e.g. ``'"adoption" OR "agencies"'``, or ``None`` when the
        text has no searchable word (the caller then skips the keyword retriever: an empty
        MATCH is an FTS5 error).
    """
    return match_expression(query_terms(text, max_terms=max_terms))


def match_expression(terms: Sequence[str]) -> str | None:
    """``terms`` as FTS5 string literals joined with ``OR``; ``None`` for no terms."""
    if not terms:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)

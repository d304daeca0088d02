"""Keyword-search helpers for SQLite FTS5: the index DDL and safe MATCH expressions.

User text never reaches FTS5's query parser as syntax. :func:`build_match_query` splits
the text into word tokens, drops English stopwords, and emits each remaining token as a
double-quoted FTS5 *string* (``"token"``) joined with ``OR``. Inside a quoted string FTS5
treats every character literally (a ``"`` is doubled to escape it), so operators such as
``AND``/``NEAR``/``*``/``^``/``:`` or unbalanced parentheses in the input cannot raise
``fts5: syntax error``. Tokens are OR'ed because recall queries are natural-language
questions: requiring every word (FTS5's implicit ``AND``) drops most relevant memories,
while BM25 already rewards memories that match more (and rarer) terms.

The recommended table (:data:`FTS_TABLE_DDL`) uses the ``porter`` stemmer over
``unicode61`` with diacritics folded, so "visited"/"visiting"/"visit" and "café"/"cafe"
match; it is an external-content table over ``memories`` so the text is stored once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

__all__ = [
    "FTS_TABLE_DDL",
    "FTS_TOKENIZE",
    "MAX_QUERY_TERMS",
    "STOPWORDS",
    "build_match_query",
    "query_terms",
]

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

#: Upper bound on OR'ed terms in one MATCH expression; keeps pathological inputs (a pasted
#: document as a query) from producing a huge, slow FTS5 query.
MAX_QUERY_TERMS: Final = 32

# A word is a run of Unicode letters/digits (underscore excluded, as in unicode61);
# apostrophes inside words ("don't", "Caroline's") are kept and split below.
_APOSTROPHE_CHARS: Final = "'\u2019"  # ASCII and typographic (right single quote)
_WORD_RE: Final = re.compile(rf"[^\W_]+(?:[{_APOSTROPHE_CHARS}][^\W_]+)*")
_APOSTROPHES: Final = re.compile(f"[{_APOSTROPHE_CHARS}]")

#: English function words removed from queries. The classic SMART/Lucene-style list,
#: extended with question words ("what", "when", "how", ...) and the auxiliaries a question
#: starts with, since recall queries are usually questions and those words carry no topic.
STOPWORDS: Final[frozenset[str]] = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves s t d ll m re ve just also would ever whose might may must shall
    """.split()  # noqa: SIM905 - a word block reads (and diffs) better than a list
)


def _fold(text: str) -> str:
    """Lower-case and strip diacritics, like ``unicode61 remove_diacritics 2``."""
    if text.isascii():  # nothing to decompose: 60x cheaper, and most text is ASCII
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def query_terms(text: str, *, max_terms: int = MAX_QUERY_TERMS) -> list[str]:
    """Extract the keyword terms of a free-text query.

    Words are lower-cased and diacritic-folded; English stopwords (:data:`STOPWORDS`) are
    dropped; possessives/contractions are split at the apostrophe ("Caroline's" ->
    "caroline"); duplicates are removed keeping first occurrence. If every word is a
    stopword (e.g. "who is it?"), the non-empty words are kept instead, so a query never
    silently matches nothing when the user typed words.

    Args:
        text: Any user string (may be empty or contain arbitrary Unicode/control chars).
        max_terms: Cap on the number of returned terms (first ones win).

    Returns:
        Up to ``max_terms`` distinct terms, in query order; empty when ``text`` contains
        no letters or digits.
    """
    words: list[str] = []
    for match in _WORD_RE.finditer(_fold(text)):
        word = match.group(0)
        if word in STOPWORDS:
            continue
        for part in _APOSTROPHES.split(word):
            if part and part not in STOPWORDS:
                words.append(part)
    if not words:
        words = [p for m in _WORD_RE.finditer(_fold(text)) for p in _APOSTROPHES.split(m[0])]
    seen: dict[str, None] = dict.fromkeys(w for w in words if w)
    return list(seen)[:max_terms]


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

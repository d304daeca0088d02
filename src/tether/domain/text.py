"""How text becomes keyword terms: the analyzer behind BM25 recall (ARCHITECTURE §4).

Documents: case-folded, diacritics stripped, split on anything that is not a letter or
digit, then stemmed with the Porter (1980) algorithm (PyStemmer's ``porter``), mirroring
SQLite FTS5's ``porter unicode61 remove_diacritics 2`` tokenizer. Queries: the same, with
English stopwords dropped (:func:`query_terms`, :func:`query_stems`). Every store backend
indexes :func:`analyze`'s terms and recall matches :func:`query_stems` against them, so
keyword ranking is the same on every backend.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Final

import Stemmer

__all__ = [
    "MAX_QUERY_TERMS",
    "STOPWORDS",
    "analyze",
    "fold",
    "query_stems",
    "query_terms",
    "term_stems",
]

#: Upper bound on the terms of one keyword query; keeps pathological inputs (a pasted
#: document as a query) from scoring thousands of postings lists.
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


def fold(text: str) -> str:
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
    for match in _WORD_RE.finditer(fold(text)):
        word = match.group(0)
        if word in STOPWORDS:
            continue
        for part in _APOSTROPHES.split(word):
            if part and part not in STOPWORDS:
                words.append(part)
    if not words:
        words = [p for m in _WORD_RE.finditer(fold(text)) for p in _APOSTROPHES.split(m[0])]
    seen: dict[str, None] = dict.fromkeys(w for w in words if w)
    return list(seen)[:max_terms]


_TOKEN = re.compile(r"[^\W_]+")
_local = threading.local()  # PyStemmer objects are not safe to share between threads


def _stemmer() -> Stemmer.Stemmer:
    stemmer: Stemmer.Stemmer | None = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("porter")
    return stemmer


# FTS5's porter tokenizer passes tokens shorter than 3 or longer than 64 characters through
# unstemmed (fts5PorterCb in ext/fts5/fts5_tokenize.c); so does this analyzer.
_STEM_MIN, _STEM_MAX = 3, 64


def _stem(tokens: list[str]) -> list[str]:
    stems: list[str] = _stemmer().stemWords(tokens)
    return [
        s if _STEM_MIN <= len(t) <= _STEM_MAX else t for t, s in zip(tokens, stems, strict=True)
    ]


def analyze(text: str) -> list[str]:
    """All index terms of ``text`` in order (with repeats): its document length is ``len``."""
    return _stem(_TOKEN.findall(fold(text)))


def query_stems(query: str) -> list[str]:
    """The distinct stemmed keyword terms of a query (stopwords dropped, as in
    :func:`query_terms`), in query order."""
    terms = [t for term in query_terms(query) for t in _TOKEN.findall(term)]
    return list(dict.fromkeys(_stem(terms)))


def term_stems(term: str) -> list[str]:
    """The index terms of one query term (usually one; ``"e-mail"`` gives two)."""
    return _stem(_TOKEN.findall(term))

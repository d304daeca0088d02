"""The text analyzer behind Tether's BM25 keyword retriever (:mod:`tether.memory.postings`).

It mirrors the FTS5 tokenizer of the keyword index (``porter unicode61 remove_diacritics
2``, see :mod:`tether.memory.fts`): case-folded, diacritics stripped, split on anything
that is not a letter or digit, then stemmed with the Porter (1980) algorithm (PyStemmer's
``porter``, the same algorithm as SQLite's ``porter`` tokenizer). Recall matches and
scores on these terms; FTS5 (the browse API's ``q``) on its own tokens, which agree with
them closely, not byte for byte.
"""

from __future__ import annotations

import re
import threading

import Stemmer

from tether.memory.fts import _fold, query_terms

__all__ = ["analyze", "query_stems", "term_stems"]

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
    return _stem(_TOKEN.findall(_fold(text)))


def query_stems(query: str) -> list[str]:
    """The distinct stemmed keyword terms of a query (stopwords dropped, as in
    :func:`tether.memory.fts.query_terms`), in query order."""
    terms = [t for term in query_terms(query) for t in _TOKEN.findall(term)]
    return list(dict.fromkeys(_stem(terms)))


def term_stems(term: str) -> list[str]:
    """The index terms of one query term (usually one; ``"e-mail"`` gives two)."""
    return _stem(_TOKEN.findall(term))

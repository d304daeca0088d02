"""The analyzer (``tether.domain.text``): query terms, stopwords, stems, hostile text."""

from __future__ import annotations

import random

import pytest

from tether.domain.text import MAX_QUERY_TERMS, STOPWORDS, analyze, query_stems, query_terms


def test_terms_drop_stopwords_split_possessives_and_dedupe() -> None:
    assert query_terms("What did Caroline's friends say about Caroline?") == [
        "caroline",
        "friends",
        "say",
    ]
    assert query_terms("When is the café open?") == ["cafe", "open"]


def test_all_stopword_query_falls_back_to_its_words() -> None:
    assert query_terms("Who is it?") == ["who", "is", "it"]


@pytest.mark.parametrize("text", ["", "   ", "?!.,", "\x00\x01", "___", "🎉"])
def test_no_searchable_word_gives_no_terms(text: str) -> None:
    assert query_terms(text) == []
    assert query_stems(text) == []
    assert analyze(text) == []


def test_term_cap() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    assert len(query_terms(text)) == MAX_QUERY_TERMS


def test_stopwords_are_lowercase_words() -> None:
    assert all(w == w.lower() and " " not in w for w in STOPWORDS)
    assert {"what", "when", "did", "the"} <= STOPWORDS


def test_stems_and_diacritics_match_between_documents_and_queries() -> None:
    doc = analyze("Melanie visited the café in Zürich; the crème brûlée was great!")
    assert set(query_stems("visiting Zurich creme")) <= set(doc)
    assert analyze("dancing studios") == query_stems("dancing studios")


def test_random_unicode_never_raises() -> None:
    rng = random.Random(7)
    for _ in range(500):
        text = "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(40)))
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
        assert isinstance(analyze(text), list)
        assert isinstance(query_stems(text), list)

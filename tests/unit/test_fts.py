"""FTS5 query building: hostile input never reaches FTS5 as syntax."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator

import pytest

from tether.memory.fts import (
    FTS_TABLE_DDL,
    MAX_QUERY_TERMS,
    STOPWORDS,
    build_match_query,
    query_terms,
)

MEMORIES = [
    "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "Melanie: We visited the café in Zürich; the crème brûlée was great!",
    "Jon: Still working on opening a dance studio.",
    'Gina: She said "AND OR NOT" are just words to me.',
    "Maria: 東京 was amazing, and so was the sushi.",
]

HOSTILE = [
    "",
    " ",
    '"',
    '""',
    '"""',
    "'",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(a b, 3)",
    "a AND",
    "OR b",
    "(",
    ")",
    "((a)",
    "*",
    "a*",
    "^a",
    "-a",
    "+a",
    "a:b",
    "text:caroline",
    "{text}: caroline",
    "caroline NOT melanie",
    '"unbalanced',
    "a\x00b",
    "\x00",
    "'; DROP TABLE memories; --",
    "🎉🔥 dance 💃",
    "e\u0301\u0301\u0301",
    "²³",
    "½ ⅓",
    "\u200b\u200d\ufeff",
    "שלום עולם",
    "مرحبا",
    "Zürich café crème",
    "东京 寿司",
    "a" * 5000,
    " ".join(["dance"] * 500),
    "what is it?",
    "don't won't can't",
    "_underscore_ __",
    "C++ / C# & .NET",
    "1:56 pm on 8 May, 2023",
]


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE memories (rowid INTEGER PRIMARY KEY, text TEXT)")
    conn.execute(FTS_TABLE_DDL)
    for i, text in enumerate(MEMORIES, start=1):
        conn.execute("INSERT INTO memories VALUES (?, ?)", (i, text))
        conn.execute("INSERT INTO memories_fts(rowid, text) VALUES (?, ?)", (i, text))
    yield conn
    conn.close()


def search(conn: sqlite3.Connection, text: str) -> list[int]:
    match = build_match_query(text)
    if match is None:
        return []
    rows = conn.execute(
        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY bm25(memories_fts)",
        (match,),
    ).fetchall()
    return [int(r[0]) for r in rows]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_never_raise(db: sqlite3.Connection, text: str) -> None:
    search(db, text)


def test_random_strings_never_raise(db: sqlite3.Connection) -> None:
    rng = random.Random(20261121)
    alphabet = list("\"'()*^:-+{}[],.;!?<>=~@#$%&|\\/ \t\n\x00") + list("abcXYZ019éß東😀\u0301")
    words = ["AND", "OR", "NOT", "NEAR", "text", "caroline", "dance", "NEAR("]
    for _ in range(500):
        parts = [
            rng.choice(words) if rng.random() < 0.3 else "".join(rng.choices(alphabet, k=3))
            for _ in range(rng.randint(0, 12))
        ]
        search(db, rng.choice([" ", "", '"']).join(parts))


def test_random_unicode_code_points_never_raise(db: sqlite3.Connection) -> None:
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(1, 20)))
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
        search(db, text)


def test_operator_words_are_searched_as_words(db: sqlite3.Connection) -> None:
    # "AND"/"OR"/"NOT" are stopwords, "NEAR" is not: it is matched as a plain word.
    assert build_match_query("NEAR studio") == '"near" OR "studio"'
    assert search(db, "studio") == [3]


def test_porter_stemming_and_diacritics(db: sqlite3.Connection) -> None:
    assert search(db, "visiting") == [2]  # "visited" -> "visit"
    assert search(db, "Zurich creme") == [2]  # diacritics folded on both sides
    assert search(db, "dancing studios") == [3]


def test_terms_drop_stopwords_split_possessives_and_dedupe() -> None:
    assert query_terms("What did Caroline's friends say about Caroline?") == [
        "caroline",
        "friends",
        "say",
    ]
    assert query_terms("When is the café open?") == ["cafe", "open"]


def test_all_stopword_query_falls_back_to_its_words() -> None:
    assert query_terms("Who is it?") == ["who", "is", "it"]
    assert build_match_query("Who is it?") == '"who" OR "is" OR "it"'


@pytest.mark.parametrize("text", ["", "   ", "?!.,", "\x00\x01", "___", "🎉"])
def test_no_searchable_word_gives_none(text: str) -> None:
    assert build_match_query(text) is None


def test_term_cap() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    assert len(query_terms(text)) == MAX_QUERY_TERMS
    assert build_match_query(text, max_terms=3) == '"word0" OR "word1" OR "word2"'


def test_stopwords_are_lowercase_words() -> None:
    assert all(w == w.lower() and " " not in w for w in STOPWORDS)
    assert {"what", "when", "did", "the"} <= STOPWORDS

"""Per-namespace BM25 statistics: maintained with the FTS5 index, and exact.

With a single namespace in the table the namespace statistics are the table's, so the
rescoring must reproduce FTS5's own ``bm25()`` values; with several namespaces it must
weight terms by the searched namespace alone.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tether.memory.analyzer import analyze, query_stems
from tether.memory.schemas import MemoryIn
from tether.store import sql_keyword as kw
from tether.store import sql_memory as qm
from tether.store import sql_recall as qr
from tether.store.sqlite import SQLiteStore

TEXTS = [
    "Caroline: I researched adoption agencies last week.",
    "Melanie: Researching is hard; adoption takes years of research.",
    "Caroline: The support group really helped me.",
    "Melanie: I painted a sunrise over the lake.",
    "Caroline: Adoption agencies want references.",
]


def _stats(conn: sqlite3.Connection, ns: str) -> tuple[int, int, dict[str, int]]:
    docs, tokens = conn.execute(
        "SELECT docs, tokens FROM memory_ns_stats WHERE namespace=?", (ns,)
    ).fetchone()
    df = dict(conn.execute("SELECT term, df FROM memory_term_df WHERE namespace=? AND df>0", (ns,)))
    return docs, tokens, df


def _expected(texts: list[str]) -> tuple[int, int, dict[str, int]]:
    df: dict[str, int] = {}
    for t in texts:
        for term in set(analyze(t)):
            df[term] = df.get(term, 0) + 1
    return len(texts), sum(len(analyze(t)) for t in texts), df


def test_analyzer_stems_like_porter_and_drops_stopwords_in_queries() -> None:
    assert analyze("Caroline's RESEARCHED Adoptions, café!") == [
        "carolin",
        "s",
        "research",
        "adopt",
        "cafe",
    ]
    assert query_stems("What did Caroline research about adoptions?") == [
        "carolin",
        "research",
        "adopt",
    ]


def test_statistics_follow_add_patch_tombstone_and_purge(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "k.db")
        await store.start()
        items = [MemoryIn(namespace="a", text=t) for t in TEXTS]
        added = await store.write(lambda c: qm.remember(c, "t", items, now=1))
        await store.write(
            lambda c: qm.remember(c, "t", [MemoryIn(namespace="b", text="x y")], now=1)
        )
        assert await store.read(lambda c: _stats(c, "a")) == _expected(TEXTS)

        first = added[0]["id"]
        await store.write(
            lambda c: qm.patch_memory(c, "t", first, {"text": "Caroline: I love hiking."}, now=2)
        )
        now_texts = ["Caroline: I love hiking.", *TEXTS[1:]]
        assert await store.read(lambda c: _stats(c, "a")) == _expected(now_texts)

        await store.write(lambda c: qm.forget(c, "t", added[1]["id"], purge=False, now=3))
        await store.write(lambda c: qm.forget(c, "t", added[2]["id"], purge=True, now=3))
        remaining = [now_texts[0], *TEXTS[3:]]
        assert await store.read(lambda c: _stats(c, "a")) == _expected(remaining)
        assert (await store.read(lambda c: _stats(c, "b")))[0] == 1
        await store.close()

    asyncio.run(main())


@pytest.mark.parametrize("query", ["adoption agencies", "research adoption", "Caroline support"])
def test_rescoring_with_fts5_constants_equals_fts5_bm25_for_one_namespace(
    tmp_path: Path, query: str
) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "e.db")
        await store.start()
        await store.write(
            lambda c: qm.remember(c, "t", [MemoryIn(namespace="a", text=t) for t in TEXTS], now=1)
        )
        match = " OR ".join(f'"{w}"' for w in query.lower().split())

        def both(c: sqlite3.Connection) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
            fts = [
                (int(pk), float(s))
                for pk, s in c.execute(
                    "SELECT rowid, bm25(memories_fts) s FROM memories_fts "
                    "WHERE memories_fts MATCH ? ORDER BY s",
                    (match,),
                )
            ]
            rows = c.execute("SELECT pk, terms FROM memories").fetchall()
            # FTS5's own constants: then the per-namespace scores must equal bm25() exactly.
            ours = kw.rescore(
                c, "t", ["a"], query, [(int(pk), t) for pk, t in rows], k1=1.2, b=0.75
            )
            return fts, [(pk, s) for pk, s in ours if s < 0]

        fts, ours = await store.read(both)
        assert [pk for pk, _ in ours] == [pk for pk, _ in fts]
        assert [s for _, s in ours] == pytest.approx([s for _, s in fts], rel=1e-9)
        await store.close()

    asyncio.run(main())


def test_idf_comes_from_the_searched_namespace(tmp_path: Path) -> None:
    """'tulip' is rare in namespace a but everywhere in namespace b: searching a must
    weight it as rare, whatever b holds."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "i.db")
        await store.start()
        a = [MemoryIn(namespace="a", text=t) for t in ["tulip garden", "rose garden", "oak tree"]]
        b = [MemoryIn(namespace="b", text=f"tulip number {i}") for i in range(50)]
        await store.write(lambda c: qm.remember(c, "t", [*a, *b], now=1))

        def scores(c: sqlite3.Connection) -> list[tuple[int, float]]:
            rows = c.execute("SELECT pk, terms FROM memories WHERE namespace='a'").fetchall()
            return kw.rescore(c, "t", ["a"], "tulip", [(pk, terms) for pk, terms in rows])

        ranked = await store.read(scores)
        _, top_score = ranked[0]
        # idf of a term in 1 of 3 documents: ln((3 - 1 + 0.5) / (1 + 0.5)) = 0.51; over
        # both namespaces (51 of 53) it would be floored to 1e-6.
        assert -top_score > 0.3
        assert [s for _, s in ranked[1:]] == [0.0, 0.0]
        await store.close()

    asyncio.run(main())


def test_match_terms_keep_the_rarest_within_the_postings_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'common' is in every memory, 'rare' in one: with a tight budget only the rare term
    goes to FTS5, yet the common term still counts when the candidates are rescored."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "p.db")
        await store.start()
        texts = [f"common word number {i}" for i in range(30)] + ["common and rare together"]
        await store.write(
            lambda c: qm.remember(c, "t", [MemoryIn(namespace="a", text=t) for t in texts], now=1)
        )
        assert await store.read(lambda c: kw.match_terms(c, "t", "rare common")) == [
            "rare",
            "common",
        ]  # 1 + 31 postings: within the default budget, rarest first
        monkeypatch.setattr(kw, "POSTINGS_BUDGET", 10)
        assert await store.read(lambda c: kw.match_terms(c, "t", "rare common")) == ["rare"]
        # Even over budget, the rarest term is kept: a query never silently matches nothing.
        assert await store.read(lambda c: kw.match_terms(c, "t", "common number")) == ["number"]
        f = qm.MemoryFilter(namespaces=["a"])
        hits = await store.read(
            lambda c: qr.keyword_candidates(c, "t", f, query="rare common", depth=5, now=2)
        )
        assert len(hits) == 1  # only the memory with "rare" was matched
        assert hits[0][1] < 0  # and it scored on both terms' weights
        await store.close()

    asyncio.run(main())

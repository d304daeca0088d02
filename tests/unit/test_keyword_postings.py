"""The in-process BM25 postings (tether.memory.postings) against a real SQLite store.

With a single namespace and FTS5's constants its scores must equal FTS5's own ``bm25()``;
with several namespaces it must weight terms by the searched namespaces alone; and it must
follow every write through the change feed (add, patch, tombstone, purge), also across
compactions and from another connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tether.memory import postings
from tether.memory.analyzer import analyze, query_stems
from tether.memory.postings import KeywordIndex
from tether.memory.schemas import MemoryIn
from tether.store import sql_memory as qm
from tether.store.sqlite import SQLiteStore

TEXTS = [
    "Caroline: I researched adoption agencies last week.",
    "Melanie: Researching is hard; adoption takes years of research.",
    "Caroline: The support group really helped me.",
    "Melanie: I painted a sunrise over the lake.",
    "Caroline: Adoption agencies want references.",
]


def _items(ns: str, texts: list[str]) -> list[MemoryIn]:
    return [MemoryIn(namespace=ns, text=t) for t in texts]


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


@pytest.mark.parametrize("query", ["adoption agencies", "research adoption", "Caroline support"])
def test_scores_with_fts5_constants_equal_fts5_bm25_for_one_namespace(
    tmp_path: Path, query: str
) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "e.db")
        await store.start()
        await store.write(lambda c: qm.remember(c, "t", _items("a", TEXTS), now=1))
        match = " OR ".join(f'"{w}"' for w in query.lower().split())
        index = KeywordIndex()

        def both(c: sqlite3.Connection) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
            fts = [
                (int(pk), float(s))
                for pk, s in c.execute(
                    "SELECT rowid, bm25(memories_fts) s FROM memories_fts "
                    "WHERE memories_fts MATCH ? ORDER BY s",
                    (match,),
                )
            ]
            ours = index.search(c, "t", ["a"], query_stems(query), 10, k1=1.2, b=0.75)
            return fts, ours

        fts, ours = await store.read(both)
        assert [pk for pk, _ in ours] == [pk for pk, _ in fts]
        assert [s for _, s in ours] == pytest.approx([s for _, s in fts], rel=1e-9)
        await store.close()

    asyncio.run(main())


def test_idf_comes_from_the_searched_namespace(tmp_path: Path) -> None:
    """'tulip' is rare in namespace a but everywhere in namespace b: searching a must
    weight it as rare, whatever b holds; and a search of a never returns b's memories."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "i.db")
        await store.start()
        a = _items("a", ["tulip garden", "rose garden", "oak tree"])
        b = _items("b", [f"tulip number {i}" for i in range(50)])
        await store.write(lambda c: qm.remember(c, "t", [*a, *b], now=1))
        index = KeywordIndex()
        only_a = await store.read(lambda c: index.search(c, "t", ["a"], ["tulip"], 10))
        assert len(only_a) == 1
        # idf of a term in 1 of 3 documents: ln((3 - 1 + 0.5) / (1 + 0.5)) = 0.51; over
        # both namespaces (51 of 53) it would be floored to 1e-6.
        assert -only_a[0][1] > 0.3
        both = await store.read(lambda c: index.search(c, "t", ["a", "b"], ["tulip"], 100))
        assert len(both) == 51
        assert -both[0][1] < 1e-3
        everything = await store.read(lambda c: index.search(c, "t", [], ["tulip"], 100))
        assert sorted(everything) == sorted(both)
        await store.close()

    asyncio.run(main())


def test_masks_are_skipped_only_where_they_cannot_reject(tmp_path: Path) -> None:
    """Searches skip the namespace mask when every namespace with live memories is in
    scope, and the liveness mask when nothing is dead: a tombstoned memory, even the only
    one of its namespace, must still never come back."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "m.db")
        await store.start()
        added = await store.write(
            lambda c: qm.remember(
                c, "t", [*_items("a", ["tulip garden"]), *_items("b", ["tulip vase"])], now=1
            )
        )
        pk = dict(await store.read(lambda c: c.execute("SELECT id, pk FROM memories").fetchall()))
        index = KeywordIndex()

        async def hits(namespaces: list[str]) -> set[int]:
            found = await store.read(lambda c: index.search(c, "t", namespaces, ["tulip"], 10))
            return {p for p, _ in found}

        both = {pk[m["id"]] for m in added}
        assert await hits([]) == both  # nothing dead, all namespaces: no mask at all
        assert await hits(["a", "b"]) == both
        assert await hits(["a"]) == {pk[added[0]["id"]]}  # the namespace mask at work
        await store.write(lambda c: qm.forget(c, "t", added[1]["id"], purge=False, now=2))
        # b has no live memory left: ["a"] covers every live namespace, only liveness masks.
        assert await hits(["a"]) == {pk[added[0]["id"]]}
        assert await hits([]) == {pk[added[0]["id"]]}
        assert await hits(["b"]) == set()
        await store.close()

    asyncio.run(main())


def test_follows_add_patch_tombstone_and_purge_through_the_change_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postings, "_COMPACT_MIN", 2)  # compact as soon as a quarter is dead

    async def main() -> None:
        store = SQLiteStore(tmp_path / "k.db")
        await store.start()
        index = KeywordIndex()
        added = await store.write(lambda c: qm.remember(c, "t", _items("a", TEXTS), now=1))
        rows = await store.read(lambda c: c.execute("SELECT id, pk FROM memories").fetchall())
        pk = {memory_id: p for memory_id, p in rows}
        ids = [m["id"] for m in added]

        async def hits(query: str) -> list[int]:
            found = await store.read(lambda c: index.search(c, "t", ["a"], query_stems(query), 10))
            return [p for p, _ in found]

        assert set(await hits("adoption")) == {pk[ids[i]] for i in (0, 1, 4)}

        first = added[0]["id"]
        await store.write(
            lambda c: qm.patch_memory(c, "t", first, {"text": "Caroline: I love hiking."}, now=2)
        )
        assert set(await hits("adoption")) == {pk[ids[i]] for i in (1, 4)}
        assert await hits("hiking") == [pk[first]]

        await store.write(lambda c: qm.forget(c, "t", ids[1], purge=False, now=3))
        await store.write(lambda c: qm.forget(c, "t", ids[4], purge=True, now=3))
        assert await hits("adoption") == []
        assert index.count("t") == 3
        # Several patches of one memory: each retires a slot; compaction renumbers them.
        for i in range(6):
            await store.write(
                lambda c, i=i: qm.patch_memory(c, "t", first, {"text": f"hiking trip {i}"}, now=4)
            )
        assert await hits("trip") == [pk[first]]
        assert await hits("sunrise") == [pk[ids[3]]]
        assert index.count("t") == 3
        # 12 slots were taken (5 adds, 7 patches); compaction dropped the dead ones.
        assert len(index._tenants["t"].alive) < 12
        await store.close()

        # A fresh index over the same file (another process, a restart) agrees.
        store2 = SQLiteStore(tmp_path / "k.db")
        await store2.start()
        fresh = KeywordIndex()
        again = await store2.read(lambda c: fresh.search(c, "t", ["a"], ["trip"], 10))
        assert [p for p, _ in again] == [pk[first]]
        assert fresh.count("t") == 3
        await store2.close()

    asyncio.run(main())


def test_tenants_never_see_each_others_postings(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "t.db")
        await store.start()
        await store.write(lambda c: qm.remember(c, "tenant-a", _items("shared", ["tulip"]), now=1))
        index = KeywordIndex()
        assert (
            await store.read(lambda c: index.search(c, "tenant-c", ["shared"], ["tulip"], 5)) == []
        )
        found = await store.read(lambda c: index.search(c, "tenant-a", ["shared"], ["tulip"], 5))
        assert len(found) == 1
        await store.close()

    asyncio.run(main())

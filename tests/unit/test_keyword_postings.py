"""The in-process BM25 postings (tether.memory.postings), fed by a real store's memory feed.

With a single namespace and FTS5's constants its scores must equal SQLite FTS5's own
``bm25()``; with several namespaces it must weight terms by the searched namespaces alone;
and it must follow every write through the change feed (add, patch, tombstone, purge),
also across compactions and from a fresh process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from tether.domain.memories import MemoryIn
from tether.domain.text import analyze, query_stems
from tether.memory import postings
from tether.memory.follower import IndexFollower
from tether.memory.postings import KeywordIndex
from tether.memory.vectors import VectorIndex
from tether.store.base import IndexRow, Store
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


def _follower(store: Store) -> tuple[IndexFollower, KeywordIndex]:
    keywords = KeywordIndex()
    return IndexFollower(store, keywords, VectorIndex(hnsw_threshold=10_000), model="m"), keywords


async def _ids(store: Store, tenant: str, hits: Sequence[tuple[int, float]]) -> list[str]:
    """Search hits (row keys) as memory ids, in order."""
    records = await store.memories_by_pk(tenant, [pk for pk, _ in hits])
    return [records[pk].id for pk, _ in hits]


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
def test_scores_with_fts5_constants_equal_fts5_bm25_for_one_namespace(query: str) -> None:
    db = sqlite3.connect(":memory:")
    tokenizer = "porter unicode61 remove_diacritics 2"  # the analyzer mirrors it
    db.execute(f"CREATE VIRTUAL TABLE docs USING fts5(text, tokenize='{tokenizer}')")
    db.executemany("INSERT INTO docs (rowid, text) VALUES (?, ?)", enumerate(TEXTS, 1))
    match = " OR ".join(f'"{w}"' for w in query.lower().split())
    fts = [
        (int(pk), float(s))
        for pk, s in db.execute(
            "SELECT rowid, bm25(docs) s FROM docs WHERE docs MATCH ? ORDER BY s", (match,)
        )
    ]
    index = KeywordIndex()
    index.apply(
        [
            IndexRow(0, "t", f"m{pk}", pk, "a", 1, " ".join(analyze(text)), "h", None)
            for pk, text in enumerate(TEXTS, 1)
        ]
    )
    ours = index.search("t", ["a"], query_stems(query), 10, k1=1.2, b=0.75)
    assert [pk for pk, _ in ours] == [pk for pk, _ in fts]
    assert [s for _, s in ours] == pytest.approx([s for _, s in fts], rel=1e-9)


def test_idf_comes_from_the_searched_namespace(tmp_path: Path) -> None:
    """'tulip' is rare in namespace a but everywhere in namespace b: searching a must
    weight it as rare, whatever b holds; and a search of a never returns b's memories."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "i.db")
        await store.start()
        a = _items("a", ["tulip garden", "rose garden", "oak tree"])
        b = _items("b", [f"tulip number {i}" for i in range(50)])
        await store.remember("t", [*a, *b], now=1)
        follower, index = _follower(store)
        await follower.catch_up()
        only_a = index.search("t", ["a"], ["tulip"], 10)
        assert len(only_a) == 1
        # idf of a term in 1 of 3 documents: ln((3 - 1 + 0.5) / (1 + 0.5)) = 0.51; over
        # both namespaces (51 of 53) it would be floored to 1e-6.
        assert -only_a[0][1] > 0.3
        both = index.search("t", ["a", "b"], ["tulip"], 100)
        assert len(both) == 51
        assert -both[0][1] < 1e-3
        assert sorted(index.search("t", [], ["tulip"], 100)) == sorted(both)
        await store.close()

    asyncio.run(main())


def test_masks_are_skipped_only_where_they_cannot_reject(tmp_path: Path) -> None:
    """Searches skip the namespace mask when every namespace with live memories is in
    scope, and the liveness mask when nothing is dead: a tombstoned memory, even the only
    one of its namespace, must still never come back."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "m.db")
        await store.start()
        added = await store.remember(
            "t", [*_items("a", ["tulip garden"]), *_items("b", ["tulip vase"])], now=1
        )
        follower, index = _follower(store)

        async def hits(namespaces: list[str]) -> set[str]:
            await follower.catch_up()
            return set(await _ids(store, "t", index.search("t", namespaces, ["tulip"], 10)))

        both = {m.id for m in added}
        assert await hits([]) == both  # nothing dead, all namespaces: no mask at all
        assert await hits(["a", "b"]) == both
        assert await hits(["a"]) == {added[0].id}  # the namespace mask at work
        await store.forget_memory("t", added[1].id, purge=False, now=2)
        # b has no live memory left: ["a"] covers every live namespace, only liveness masks.
        assert await hits(["a"]) == {added[0].id}
        assert await hits([]) == {added[0].id}
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
        follower, index = _follower(store)
        added = await store.remember("t", _items("a", TEXTS), now=1)
        ids = [m.id for m in added]

        async def hits(query: str) -> list[str]:
            await follower.catch_up()
            return await _ids(store, "t", index.search("t", ["a"], query_stems(query), 10))

        assert set(await hits("adoption")) == {ids[i] for i in (0, 1, 4)}

        first = ids[0]
        await store.update_memory("t", first, {"text": "Caroline: I love hiking."}, now=2)
        assert set(await hits("adoption")) == {ids[i] for i in (1, 4)}
        assert await hits("hiking") == [first]

        await store.forget_memory("t", ids[1], purge=False, now=3)
        await store.forget_memory("t", ids[4], purge=True, now=3)
        assert await hits("adoption") == []
        assert index.count("t") == 3
        # Several patches of one memory: each retires a slot; compaction renumbers them.
        for i in range(6):
            await store.update_memory("t", first, {"text": f"hiking trip {i}"}, now=4)
        assert await hits("trip") == [first]
        assert await hits("sunrise") == [ids[3]]
        assert index.count("t") == 3
        # 12 slots were taken (5 adds, 7 patches); compaction dropped the dead ones.
        assert len(index._tenants["t"].alive) < 12
        await store.close()

        # Fresh indexes over the same file (another process, a restart) agree.
        store2 = SQLiteStore(tmp_path / "k.db")
        await store2.start()
        fresh_follower, fresh = _follower(store2)
        await fresh_follower.catch_up()
        assert await _ids(store2, "t", fresh.search("t", ["a"], ["trip"], 10)) == [first]
        assert fresh.count("t") == 3
        await store2.close()

    asyncio.run(main())


def test_tenants_never_see_each_others_postings(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "t.db")
        await store.start()
        await store.remember("tenant-a", _items("shared", ["tulip"]), now=1)
        follower, index = _follower(store)
        await follower.catch_up()
        assert index.search("tenant-c", ["shared"], ["tulip"], 5) == []
        assert len(index.search("tenant-a", ["shared"], ["tulip"], 5)) == 1
        await store.close()

    asyncio.run(main())

"""Memory SQL against a real SQLite store: tenant scoping, dedupe, tombstone/purge rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tether.errors import NotFound
from tether.memory.postings import KeywordIndex
from tether.memory.schemas import MemoryIn
from tether.store import sql_memory as qm
from tether.store import sql_outbox as qo
from tether.store import sql_recall as qr
from tether.store.sqlite import SQLiteStore


def test_every_memory_query_is_scoped_by_tenant(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "m.db")
        await store.start()
        item = MemoryIn(namespace="shared", text="the launch code is tulip", idempotency_key="k")
        (a,) = await store.write(lambda c: qm.remember(c, "tenant-a", [item], now=1))
        # Same namespace, text and key in another tenant: a separate memory, not a replay.
        (b,) = await store.write(lambda c: qm.remember(c, "tenant-b", [item], now=1))
        assert b["created"] is True
        assert b["replayed"] is False
        assert b["id"] != a["id"]

        def cross(c):  # type: ignore[no-untyped-def]
            with pytest.raises(NotFound):
                qm.get_memory(c, "tenant-b", a["id"])
            with pytest.raises(NotFound):
                qm.history(c, "tenant-b", a["id"], after=0, limit=10, max_bytes=1 << 20)
            f = qm.MemoryFilter(namespaces=["shared"])
            keywords = KeywordIndex()
            assert keywords.search(c, "tenant-c", f.namespaces, ["tulip"], 10) == []
            assert len(keywords.search(c, "tenant-a", f.namespaces, ["tulip"], 10)) == 1
            rows = qr.rows_passing(c, "tenant-b", f, [1, 2], now=2)
            (b_pk,) = c.execute("SELECT pk FROM memories WHERE id=?", (b["id"],)).fetchone()
            assert list(rows) == [b_pk]  # not tenant-a's row
            full = qr.rows_by_pk(c, "tenant-b", [1, 2])
            assert [r["id"] for r in full.values()] == [b["id"]]
            items, _ = qm.changes(c, "tenant-a", after=0, limit=100, max_bytes=1 << 20)
            assert {i["memory_id"] for i in items} == {a["id"]}
            assert qm.stats(c, "tenant-c")["count"] == 0

        await store.read(cross)
        with pytest.raises(NotFound):
            await store.write(lambda c: qm.forget(c, "tenant-b", a["id"], purge=True, now=3))
        await store.write(
            lambda c: qo.enqueue_reindex(c, "tenant-a", model="m", everything=True, now=3)
        )
        jobs = await store.read(lambda c: qo.due_jobs(c, now=10, limit=100))
        assert {j.tenant_id for j in jobs} == {"tenant-a", "tenant-b"}
        dead = await store.write(lambda c: qo.replay(c, "tenant-b", None, now=4))
        assert dead == 0
        await store.close()

    asyncio.run(main())


def test_purge_leaves_no_text_behind(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "p.db")
        await store.start()
        item = MemoryIn(namespace="n", text="secret recipe: saffron")
        (a,) = await store.write(lambda c: qm.remember(c, "t", [item], now=1))
        await store.write(lambda c: qm.forget(c, "t", a["id"], purge=True, now=2))

        def leftovers(c):  # type: ignore[no-untyped-def]
            texts = [r[0] for r in c.execute("SELECT snapshot FROM memory_changes")]
            fts = c.execute("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'saffron'")
            outbox = c.execute("SELECT count(*) FROM memory_outbox").fetchone()[0]
            return texts, fts.fetchone()[0], outbox

        texts, fts_hits, outbox = await store.read(leftovers)
        assert texts == [None, None]
        assert fts_hits == 0
        assert outbox == 0
        await store.close()

    asyncio.run(main())


def test_rows_by_pk_leaves_out_memories_forgotten_since(tmp_path: Path) -> None:
    """A search reads its results' full rows in a later read than their candidates: a
    memory forgotten in between must not be rendered."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "f.db")
        await store.start()
        items = [MemoryIn(namespace="n", text=t) for t in ("kept", "forgotten")]
        kept, gone = await store.write(lambda c: qm.remember(c, "t", items, now=1))
        pk = dict(await store.read(lambda c: c.execute("SELECT id, pk FROM memories").fetchall()))
        await store.write(lambda c: qm.forget(c, "t", gone["id"], purge=False, now=2))
        full = await store.read(lambda c: qr.rows_by_pk(c, "t", [pk[kept["id"]], pk[gone["id"]]]))
        assert [row["id"] for row in full.values()] == [kept["id"]]
        await store.close()

    asyncio.run(main())

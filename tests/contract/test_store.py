"""The Store contract (``tether.store.base``), run on every backend.

Tenant scoping, dedupe and idempotency, tombstones and purges, the change feed and the
records a search reads back: what every backend must do the same way.
"""

from __future__ import annotations

import pytest

from tether.domain.filters import MemoryFilter, SessionFilter
from tether.domain.memories import MemoryIn
from tether.domain.time import iso
from tether.errors import NotFound
from tether.store.base import Store

pytestmark = pytest.mark.anyio


async def _pks(store: Store) -> dict[str, int]:
    """Memory id -> row key, from the store's own snapshot (every tenant)."""
    _, rows = await store.memory_snapshot(model="m", after_pk=0, limit=10_000)
    return {r.memory_id: r.pk for r in rows}


async def test_every_memory_call_is_scoped_by_tenant(store: Store) -> None:
    item = MemoryIn(namespace="shared", text="the launch code is tulip", idempotency_key="k")
    (a,) = await store.remember("tenant-a", [item], now=1)
    # Same namespace, text and key in another tenant: a separate memory, not a replay.
    (b,) = await store.remember("tenant-b", [item], now=1)
    assert b.created is True
    assert b.replayed is False
    assert b.id != a.id
    with pytest.raises(NotFound):
        await store.get_memory("tenant-b", a.id)
    with pytest.raises(NotFound):
        await store.memory_history("tenant-b", a.id, after=0, limit=10, max_bytes=1 << 20)
    with pytest.raises(NotFound):
        await store.forget_memory("tenant-b", a.id, purge=True, now=3)
    pk = await _pks(store)
    f = MemoryFilter(namespaces=["shared"])
    both = [pk[a.id], pk[b.id]]
    assert list(await store.ranking_rows("tenant-b", f, both, now=2)) == [pk[b.id]]
    assert [m.id for m in (await store.memories_by_pk("tenant-b", both)).values()] == [b.id]
    items, _ = await store.memory_changes("tenant-a", after=0, limit=100, max_bytes=1 << 20)
    assert {i.memory_id for i in items} == {a.id}
    assert (await store.memory_stats("tenant-c")).count == 0
    await store.enqueue_reindex("tenant-a", model="m", everything=True, now=3)
    jobs = await store.claim_jobs(now=10, limit=100, lease_ms=60_000)
    assert {j.tenant_id for j in jobs} == {"tenant-a", "tenant-b"}
    assert await store.replay_jobs("tenant-b", None, now=4) == 0


async def test_a_purge_leaves_no_text_behind(store: Store) -> None:
    (a,) = await store.remember("t", [MemoryIn(namespace="n", text="secret recipe")], now=1)
    await store.forget_memory("t", a.id, purge=True, now=2)
    with pytest.raises(NotFound):
        await store.get_memory("t", a.id, include_deleted=True)
    changes, _ = await store.memory_changes("t", after=0, limit=100, max_bytes=1 << 20)
    assert [c.op for c in changes] == ["add", "purge"]
    assert all(c.memory is None for c in changes)
    assert (await store.memory_stats("t")).index_backlog == 0
    _, rows = await store.memory_snapshot(model="m", after_pk=0, limit=100)
    assert rows == []


async def test_records_of_memories_forgotten_since_are_left_out(store: Store) -> None:
    """A search reads its results' records after their candidates: a memory forgotten in
    between must not be rendered."""
    items = [MemoryIn(namespace="n", text=t) for t in ("kept", "forgotten")]
    kept, gone = await store.remember("t", items, now=1)
    pk = await _pks(store)
    await store.forget_memory("t", gone.id, purge=False, now=2)
    records = await store.memories_by_pk("t", [pk[kept.id], pk[gone.id]])
    assert [m.id for m in records.values()] == [kept.id]


async def test_the_memory_feed_reports_each_memory_as_it_is_now(store: Store) -> None:
    (a,) = await store.remember("t", [MemoryIn(namespace="n", text="first text")], now=1)
    lsn, snapshot = await store.memory_snapshot(model="m", after_pk=0, limit=100)
    assert [r.memory_id for r in snapshot] == [a.id]
    assert snapshot[0].terms == "first text"
    assert snapshot[0].vector is None  # not embedded yet
    await store.update_memory("t", a.id, {"text": "second text"}, now=2)
    await store.forget_memory("t", a.id, purge=False, now=3)
    feed = await store.memory_feed(model="m", after=lsn, limit=100)
    assert [r.lsn for r in feed] == sorted(r.lsn for r in feed)
    assert all(r.lsn > lsn for r in feed)
    assert len(feed) == 2
    assert all(r.terms is None for r in feed)  # as it is now: gone


async def test_metadata_filters_compare_json_values(store: Store) -> None:
    """``metadata.k = v`` means equal as JSON, the same on every backend: ``true`` is not
    ``1``, ``"1"`` is not ``1``, ``1`` is ``1.0``, and ``None`` is JSON null (not absent)."""
    values = {"t": True, "one": 1, "onef": 1.0, "s": "1", "null": None, "f": False}
    items = [
        MemoryIn(namespace="n", text=f"memory {k}", metadata={"k": v}) for k, v in values.items()
    ]
    items.append(MemoryIn(namespace="n", text="no key at all", metadata={}))
    made = await store.remember("t", items, now=1)
    ids = {k: r.id for k, r in zip([*values, "absent"], made, strict=True)}
    pk = await _pks(store)
    name_of = {pk[memory_id]: name for name, memory_id in ids.items()}

    async def matching(value: object) -> set[str]:
        f = MemoryFilter(namespaces=["n"], metadata={"k": value})
        rows = await store.ranking_rows("t", f, list(name_of), now=2)
        return {name_of[p] for p in rows}

    assert await matching(True) == {"t"}
    assert await matching(False) == {"f"}
    assert await matching(1) == {"one", "onef"}
    assert await matching("1") == {"s"}
    assert await matching(None) == {"null"}


def _key(key_id: str, tenant: str, **extra: object) -> dict[str, object]:
    return {
        "id": key_id,
        "tenant_id": tenant,
        "name": None,
        "scope": "write",
        "namespaces": ["user/alice/"],
        "secret_hash": "ab" * 32,
        "created_at": 1_000,
        "expires_at": None,
        "created_by": None,
        **extra,
    }


async def test_keys_are_found_listed_revoked_and_counted_per_tenant(store: Store) -> None:
    a = await store.create_key(_key("K1", "acme"))
    assert (a.tenant_id, a.scope, a.namespaces, a.revoked_at) == (
        "acme",
        "write",
        ["user/alice/"],
        None,
    )
    await store.create_key(_key("K2", "globex", expires_at=5_000, namespaces=[]))
    found = await store.find_key("K1")
    assert found is not None
    assert found[0] == a
    assert found[1] == "ab" * 32
    assert await store.find_key("nope") is None
    assert [k.id for k in await store.list_keys("acme")] == ["K1"]
    assert [k.id for k in await store.list_keys(None)] == ["K1", "K2"]
    assert await store.live_key_count(now=4_000) == 2
    assert await store.live_key_count(now=5_000) == 1  # K2 expired at 5,000 ms
    with pytest.raises(NotFound):
        await store.revoke_key("globex", "K1", now=6_000)  # another tenant's: unknown
    revoked = await store.revoke_key("acme", "K1", now=6_000)
    assert revoked.revoked_at is not None
    again = await store.revoke_key(None, "K1", now=7_000)
    assert again.revoked_at == revoked.revoked_at  # the first revocation time stays
    assert await store.live_key_count(now=4_000) == 1
    await store.touch_keys({"K2": 9_000})
    await store.touch_keys({"K2": 8_000})  # an older time never wins
    (k2,) = await store.list_keys("globex")
    assert k2.last_used_at == iso(9_000)
    assert revoked.revoked_at == iso(6_000)


async def test_audit_entries_page_per_tenant_in_order(store: Store) -> None:
    entries = [
        {"tenant_id": "acme" if n % 2 else "globex", "at": n, "action": f"a{n}", "detail": {"n": n}}
        for n in range(1, 8)
    ]
    entries[0]["key_id"], entries[0]["correlation_id"] = "K1", "cid-1"
    await store.append_audit(entries)
    first, after = await store.audit_page("acme", after=0, limit=2)
    assert [e.action for e in first] == ["a1", "a3"]
    assert (first[0].key_id, first[0].correlation_id, first[0].detail) == ("K1", "cid-1", {"n": 1})
    assert after is not None
    rest, end = await store.audit_page("acme", after=after, limit=10)
    assert [e.action for e in rest] == ["a5", "a7"]
    assert end is None
    everyone, _ = await store.audit_page(None, after=0, limit=100)
    assert [e.action for e in everyone] == [f"a{n}" for n in range(1, 8)]
    assert [e.seq for e in everyone] == sorted(e.seq for e in everyone)


async def test_memory_head_is_the_latest_lsn_of_every_tenant(store: Store) -> None:
    assert await store.memory_head() == 0
    await store.remember("tenant-a", [MemoryIn(namespace="n", text="one")], now=1)
    await store.remember("tenant-b", [MemoryIn(namespace="n", text="two")], now=2)
    a, _ = await store.memory_changes("tenant-a", after=0, limit=10, max_bytes=1 << 20)
    b, _ = await store.memory_changes("tenant-b", after=0, limit=10, max_bytes=1 << 20)
    assert await store.memory_head() == max(c.lsn for c in a + b) == b[-1].lsn


async def test_active_sessions_counts_one_tenants_active_sessions(store: Store) -> None:
    for sid in ("s1", "s2", "s3"):
        await store.create_session("tenant-a", {"id": sid}, now=1, correlation_id=None)
    await store.create_session("tenant-b", {"id": "s1"}, now=1, correlation_id=None)
    await store.end_session(
        "tenant-a", "s2", status="completed", summary=None, now=2, correlation_id=None
    )
    assert await store.active_sessions("tenant-a") == 2
    assert await store.active_sessions("tenant-b") == 1
    assert await store.active_sessions("tenant-c") == 0


async def test_sessions_by_id_and_changed_since_serve_a_live_list(store: Store) -> None:
    for sid, now in (("s1", 10), ("s2", 20), ("s3", 20)):
        await store.create_session("tenant-a", {"id": sid}, now=now, correlation_id=None)
    await store.create_session("tenant-b", {"id": "s1"}, now=15, correlation_id=None)
    found = await store.sessions_by_id("tenant-a", ["s3", "nope", "s1"])
    assert [s.id for s in found] == ["s3", "s1"]
    assert await store.sessions_by_id("tenant-c", ["s1"]) == []

    async def changed(since: int, after: str, limit: int = 10) -> list[str]:
        items = await store.sessions_changed(
            "tenant-a", since_ms=since, after_id=after, limit=limit
        )
        return [s.id for s in items]

    assert await changed(0, "") == ["s1", "s2", "s3"]
    assert await changed(0, "", limit=2) == ["s1", "s2"]
    assert await changed(20, "s2") == ["s3"]  # the page after (20 ms, "s2")
    await store.end_session(
        "tenant-a", "s1", status="completed", summary=None, now=30, correlation_id=None
    )
    assert await changed(20, "s3") == ["s1"]  # updated later: it moves to the end
    (s1,) = await store.sessions_by_id("tenant-a", ["s1"])
    assert s1.status == "completed"


async def test_prices_are_per_tenant_replaced_whole_and_deleted(store: Store) -> None:
    row = await store.put_price("tenant-a", "m-1", {"input": 1.0, "output": 2.0}, now=1_000)
    assert (row.model, row.input, row.output, row.cached_input, row.source) == (
        "m-1",
        1.0,
        2.0,
        None,
        "tenant",
    )
    await store.put_price("tenant-a", "m-1", {"reasoning": 3.0}, now=2_000)  # replaces the row
    await store.put_price("tenant-b", "m-1", {"input": 9.0}, now=1_000)
    [a] = await store.list_prices("tenant-a")
    assert (a.input, a.output, a.reasoning, a.updated_at) == (None, None, 3.0, iso(2_000))
    assert [p.input for p in await store.list_prices("tenant-b")] == [9.0]
    assert await store.delete_price("tenant-a", "m-1") is True
    assert await store.delete_price("tenant-a", "m-1") is False
    assert await store.list_prices("tenant-a") == []
    assert len(await store.list_prices("tenant-b")) == 1


async def test_state_versions_record_each_patch_per_tenant(store: Store) -> None:
    for tenant in ("tenant-a", "tenant-b"):
        await store.create_session(tenant, {"id": "s"}, now=1, correlation_id=None)
    for now, patch in ((10, {"a": 1}), (20, {"a": None, "b": [2]})):
        await store.patch_state("tenant-a", "s", patch, if_match=None, now=now, max_bytes=10_000)
    items, nxt = await store.state_versions("tenant-a", "s", after=0, limit=10)
    assert [(v.version, v.patch, v.state, v.at) for v in items] == [
        (1, {"a": 1}, {"a": 1}, iso(10)),
        (2, {"a": None, "b": [2]}, {"b": [2]}, iso(20)),
    ]
    assert nxt is None
    assert await store.state_versions("tenant-b", "s", after=0, limit=10) == ([], None)
    items, nxt = await store.state_versions("tenant-a", "s", after=0, limit=1)
    assert [v.version for v in items] == [1]
    assert nxt == 1
    with pytest.raises(NotFound):
        await store.state_versions("tenant-c", "s", after=0, limit=10)
    await store.delete_session("tenant-a", "s", now=30)
    await store.create_session("tenant-a", {"id": "s"}, now=40, correlation_id=None)
    assert await store.state_versions("tenant-a", "s", after=0, limit=10) == ([], None)


async def test_namespaces_are_counted_per_tenant_in_code_point_order(store: Store) -> None:
    def item(ns: str, text: str) -> MemoryIn:
        return MemoryIn(namespace=ns, text=text)

    made = await store.remember(
        "tenant-a",
        [item("b", "one"), item("a/1", "two"), item("a/1", "three"), item("a/2", "four")],
        now=1,
    )
    await store.remember("tenant-a", [item("Z", "upper case sorts first")], now=1)
    await store.remember("tenant-b", [item("a/1", "other tenant")], now=1)
    await store.forget_memory("tenant-a", made[0].id, purge=False, now=2)  # "b" is now empty

    async def listed(after: str | None = None, limit: int = 10, **f: object) -> tuple[object, ...]:
        items, nxt = await store.memory_namespaces(
            "tenant-a",
            MemoryFilter(**f),
            after=after,
            limit=limit,
            now=3,  # type: ignore[arg-type]
        )
        return [(n.namespace, n.count) for n in items], nxt

    assert await listed() == ([("Z", 1), ("a/1", 2), ("a/2", 1)], None)
    assert await listed(limit=2) == ([("Z", 1), ("a/1", 2)], "a/1")
    assert await listed(after="a/1") == ([("a/2", 1)], None)
    assert await listed(namespace_prefixes=("a/2",)) == ([("a/2", 1)], None)
    items, _ = await store.memory_namespaces(
        "tenant-c", MemoryFilter(), after=None, limit=10, now=3
    )
    assert items == []


async def test_session_words_match_id_title_agent_or_user_case_insensitively(
    store: Store,
) -> None:
    rows = (
        {"id": "s-1", "title": "Refund for Order 42", "agent": "billing", "user_id": "alice"},
        {"id": "s-2", "title": "Weather in Paris", "agent": "weather-bot", "user_id": "bob"},
        {"id": "s-3", "title": "100% off_sale", "agent": "billing", "user_id": "carol"},
    )
    for row in rows:
        await store.create_session("tenant-a", row, now=1, correlation_id=None)
    await store.create_session(
        "tenant-b", {"id": "s-9", "title": "refund"}, now=1, correlation_id=None
    )

    async def ids(*words: str) -> list[str]:
        items, _ = await store.list_sessions(
            "tenant-a", SessionFilter(words=words), cursor=None, limit=10, max_bytes=1 << 20
        )
        return [s.id for s in items]

    assert await ids("REFUND") == ["s-1"]
    assert await ids("billing") == ["s-3", "s-1"]
    assert await ids("billing", "alice") == ["s-1"]
    assert await ids("s-2") == ["s-2"]
    assert await ids("100%") == ["s-3"]  # LIKE wildcards are matched literally
    assert await ids("f_s") == ["s-3"]
    assert await ids("%") == ["s-3"]
    assert await ids("o_d") == []  # "_" is not "any character"

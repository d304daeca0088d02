"""The Store contract with two stores on one storage, writing at once.

Two store instances on the same database are what two replicas are (for SQLite: two
processes on one file). Whatever interleaving the database picks, the contract holds:
seqs stay gapless, retries and races over one id or key resolve to one row, the memory
feed is read in commit order without a later gap, and an outbox job is claimed once.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tether.domain.events import EventIn
from tether.domain.memories import MemoryIn
from tether.store.base import Store

pytestmark = pytest.mark.anyio

_ROUNDS = 40


def _events(keys: list[str]) -> list[EventIn]:
    return [EventIn.model_validate({"kind": "log", "idempotency_key": k}) for k in keys]


async def test_appends_through_two_stores_number_one_session_gaplessly(
    store: Store, replica: Store
) -> None:
    await store.create_session("t", {"id": "s"}, now=1, correlation_id=None)
    seen: dict[str, set[int]] = {}

    async def writer(name: str, first: int) -> None:
        for n in range(_ROUNDS):
            keys = [f"{name}-{n}-{i}" for i in range(1 + n % 3)]
            for attempt in range(2):  # each batch is retried through the other store
                target = (store, replica)[(first + n + attempt) % 2]
                res = await target.append_events(
                    "t", "s", _events(keys), now=2, correlation_id=None
                )
                for key, seq in zip(keys, res.seqs, strict=True):
                    seen.setdefault(key, set()).add(seq)

    await asyncio.gather(*(writer(f"w{i}", i) for i in range(4)))
    assert all(len(seqs) == 1 for seqs in seen.values()), "a retry got another seq"
    items, _ = await replica.list_events(
        "t", "s", after_seq=0, kinds=[], limit=10_000, max_bytes=1 << 30
    )
    assert [e.seq for e in items] == list(range(1, len(seen) + 1))
    assert {e.idempotency_key: e.seq for e in items} == {k: next(iter(v)) for k, v in seen.items()}
    assert (await store.get_session("t", "s")).counters.event_count == len(seen)


async def test_racing_creates_of_one_id_or_key_make_one_row(store: Store, replica: Store) -> None:
    made = await asyncio.gather(
        *(
            s.create_session("t", {"id": "same", "title": "x"}, now=1, correlation_id=None)
            for s in (store, replica, store, replica)
        )
    )
    assert sorted(m.created for m in made) == [False, False, False, True]
    item = MemoryIn(namespace="n", text="the one fact", idempotency_key="k")
    outcomes = await asyncio.gather(*(s.remember("t", [item], now=1) for s in (store, replica)))
    ids = {o[0].id for o in outcomes}
    assert len(ids) == 1
    assert sorted(o[0].replayed for o in outcomes) == [False, True]
    twin = MemoryIn(namespace="n", text="another fact")  # no key: dedupe by text
    dupes = await asyncio.gather(*(s.remember("t", [twin], now=1) for s in (store, replica)))
    assert len({d[0].id for d in dupes}) == 1
    assert sorted(d[0].deduplicated for d in dupes) == [False, True]
    assert (await store.memory_stats("t")).count == 2


async def test_the_feed_read_during_writes_through_two_stores_is_in_commit_order(
    store: Store, replica: Store
) -> None:
    read: list[int] = []
    done = asyncio.Event()

    async def writer(target: Store, name: str) -> None:
        for n in range(_ROUNDS):
            (r,) = await target.remember("t", [MemoryIn(namespace="n", text=f"{name} {n}")], now=n)
            if n % 3 == 0:
                await target.update_memory("t", r.id, {"importance": 0.9}, now=n)
            if n % 4 == 1:
                await target.forget_memory("t", r.id, purge=n % 8 == 1, now=n)

    async def reader() -> None:
        after = 0
        while True:
            finished = done.is_set()
            page = await replica.memory_feed(model="m", after=after, limit=7)
            read.extend(row.lsn for row in page)
            if page:
                after = page[-1].lsn
            elif finished:
                return
            await asyncio.sleep(0)

    polling = asyncio.create_task(reader())
    await asyncio.gather(*(writer(s, f"{i}") for i, s in enumerate((store, replica, store))))
    done.set()
    await polling
    everything = await store.memory_feed(model="m", after=0, limit=100_000)
    assert read == [row.lsn for row in everything]  # each once, in order, no late gap
    assert read == sorted(set(read))
    assert len(read) > 3 * _ROUNDS


async def test_an_outbox_job_is_claimed_by_one_store(store: Store, replica: Store) -> None:
    items = [MemoryIn(namespace="n", text=f"fact {i}") for i in range(30)]
    await store.remember("t", items, now=1)
    claims = await asyncio.gather(
        *(
            s.claim_jobs(now=10, limit=4, lease_ms=60_000)
            for s in itertools.islice(itertools.cycle((store, replica)), 12)
        )
    )
    ids = [job.id for jobs in claims for job in jobs]
    assert len(ids) == len(set(ids)) == 30
    assert await replica.claim_jobs(now=11, limit=100, lease_ms=60_000) == []  # leased

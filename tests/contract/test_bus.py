"""The Bus contract, on every backend (``bus`` is parametrised over local and redis).

Nothing here asserts a duration: each wait is for a condition, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence

import orjson
import pytest

import tether.bus
from tests.services import RedisService
from tether.bus import Bus, BusGap, BusOverflow, LocalBus, Subscription, build_bus
from tether.domain.changes import MEMORY_TOPIC, Change, session_topic

pytestmark = pytest.mark.anyio

WAIT_S = 15.0  # generous: only ever reached when something is broken


def ch(topic: str, cursor: int, tenant: str = "t1", **data: object) -> Change:
    return Change(topic=topic, tenant_id=tenant, kind="test", cursor=cursor, data=data)


async def take(sub: Subscription, n: int) -> list[Change]:
    """The next ``n`` changes of ``sub``."""
    async with asyncio.timeout(WAIT_S):
        return [await anext(sub) for _ in range(n)]


async def eventually(predicate: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_S):
        # Polling: the state lives in another task or in Redis, with no event to await.
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def status_is(bus: Bus, status: str) -> None:
    async def check() -> bool:
        return bool((await bus.check())["status"] == status)

    await eventually(check)


def cursors(changes: Sequence[Change]) -> list[int]:
    return [c.cursor for c in changes]


# -- delivery ----------------------------------------------------------------------------------
async def test_a_subscriber_receives_what_is_published_in_order(bus: Bus) -> None:
    async with bus.subscribe([MEMORY_TOPIC]) as sub:
        first = [
            ch(MEMORY_TOPIC, i, text=f"m{i}", tags=["a"], nested={"x": 1.5}) for i in range(1, 41)
        ]
        await bus.publish(first[:25])
        await bus.publish(first[25:])
        got = await take(sub, 40)
    assert got == first  # fields and JSON data survive the trip
    assert sub.last_delivered == {(MEMORY_TOPIC, "t1"): 40}


async def test_topics_are_isolated_and_exact(bus: Bus) -> None:
    a, b = session_topic("a"), session_topic("b")
    sub_a = bus.subscribe([a])
    sub_b = bus.subscribe([b])
    sub_ab = bus.subscribe([a, b])
    for sub in (sub_a, sub_b, sub_ab):
        await sub.ready()
    await bus.publish([ch(a, 1), ch(b, 1), ch(session_topic("ab"), 1), ch("session:", 9), ch(a, 2)])
    await bus.publish([ch(b, 2), ch(MEMORY_TOPIC, 1)])
    assert [(c.topic, c.cursor) for c in await take(sub_a, 2)] == [(a, 1), (a, 2)]
    assert [(c.topic, c.cursor) for c in await take(sub_b, 2)] == [(b, 1), (b, 2)]
    assert [(c.topic, c.cursor) for c in await take(sub_ab, 4)] == [(a, 1), (b, 1), (a, 2), (b, 2)]
    # Nothing else arrived: a marker published last is the next thing each one sees.
    await bus.publish([ch(a, 3), ch(b, 3)])
    assert cursors(await take(sub_a, 1)) == [3]
    assert cursors(await take(sub_b, 1)) == [3]
    for sub in (sub_a, sub_b, sub_ab):
        await sub.close()


async def test_every_subscriber_of_a_topic_receives_each_change(bus: Bus) -> None:
    subs = [bus.subscribe([MEMORY_TOPIC]) for _ in range(3)]
    for sub in subs:
        await sub.ready()
    await bus.publish([ch(MEMORY_TOPIC, i) for i in range(1, 6)])
    for sub in subs:
        assert cursors(await take(sub, 5)) == [1, 2, 3, 4, 5]
        await sub.close()


async def test_another_replica_receives_what_one_publishes(bus: Bus, peer: Bus) -> None:
    async with peer.subscribe([MEMORY_TOPIC]) as theirs, bus.subscribe([MEMORY_TOPIC]) as ours:
        await bus.publish([ch(MEMORY_TOPIC, 1), ch(MEMORY_TOPIC, 2)])
        assert cursors(await take(theirs, 2)) == [1, 2]
        # Each instance publishes in its own order; across instances there is no order.
        await peer.publish([ch(MEMORY_TOPIC, 3)])
        assert cursors(await take(theirs, 1)) == [3]
        assert cursors(await take(ours, 3)) == [1, 2, 3]


async def test_every_tenant_shares_a_topic_unless_the_subscription_filters(bus: Bus) -> None:
    topic = session_topic("same-id-in-two-tenants")
    async with bus.subscribe([topic]) as everyone, bus.subscribe([topic], tenant_id="t2") as t2:
        await bus.publish(
            [ch(topic, 1, "t1"), ch(topic, 1, "t2"), ch(topic, 2, "t1"), ch(topic, 2, "t2")]
        )
        got = await take(everyone, 4)
        assert [(c.tenant_id, c.cursor) for c in got] == [
            ("t1", 1),
            ("t2", 1),
            ("t1", 2),
            ("t2", 2),
        ]
        assert [(c.tenant_id, c.cursor) for c in await take(t2, 2)] == [("t2", 1), ("t2", 2)]
        assert everyone.last_delivered == {(topic, "t1"): 2, (topic, "t2"): 2}


# -- slow consumers ----------------------------------------------------------------------------
async def test_a_slow_subscriber_overflows_while_a_fast_one_keeps_up(bus: Bus) -> None:
    max_queue, total = 10, 80
    slow = bus.subscribe([MEMORY_TOPIC], max_queue=max_queue)
    fast = bus.subscribe([MEMORY_TOPIC], max_queue=max_queue)
    await slow.ready()
    await fast.ready()
    received: list[Change] = []

    async def consume() -> None:
        async for change in fast:
            received.append(change)

    consumer = asyncio.create_task(consume())
    await bus.publish([ch(MEMORY_TOPIC, i) for i in range(1, 4)])
    assert cursors(await take(slow, 3)) == [1, 2, 3]  # then it stops reading

    async def fast_has(n: int) -> bool:
        return len(received) >= n

    seen_sizes = []
    for start in range(1, total + 1, 5):  # half a queue at a time, for the fast one's sake
        await bus.publish([ch(MEMORY_TOPIC, 3 + i) for i in range(start, start + 5)])
        await eventually(functools.partial(fast_has, start + 7))
        seen_sizes.append(slow.qsize())
    assert max(seen_sizes) <= max_queue  # memory stays flat: never more than max_queue held
    assert slow.qsize() == 0  # and the overflowed queue was freed at once
    with pytest.raises(BusOverflow) as info:
        await anext(slow)
    assert info.value.cursor(MEMORY_TOPIC, "t1") == 3  # the last one it did receive
    assert info.value.cursors == {(MEMORY_TOPIC, "t1"): 3}
    with pytest.raises(BusOverflow):  # it stays over: the consumer must resubscribe
        await anext(slow)
    assert slow.closed
    assert cursors(received) == list(range(1, total + 4))
    await fast.close()
    await asyncio.wait_for(consumer, WAIT_S)


# -- closing -----------------------------------------------------------------------------------
async def test_closing_a_subscription_ends_its_iteration(bus: Bus) -> None:
    sub = bus.subscribe([MEMORY_TOPIC])
    await sub.ready()
    got: list[Change] = []

    async def consume() -> None:
        async for change in sub:
            got.append(change)

    task = asyncio.create_task(consume())
    await bus.publish([ch(MEMORY_TOPIC, 1)])

    async def one() -> bool:
        return len(got) == 1

    await eventually(one)
    await sub.close()
    await asyncio.wait_for(task, WAIT_S)  # ended without an error
    assert sub.closed
    await bus.publish([ch(MEMORY_TOPIC, 2)])  # no subscriber: fine
    with pytest.raises(StopAsyncIteration):
        await anext(sub)


async def test_closing_the_bus_ends_every_subscription(bus_factory: Callable[[], Bus]) -> None:
    bus = bus_factory()
    await bus.start()
    subs = [bus.subscribe([MEMORY_TOPIC]), bus.subscribe([session_topic("x")])]
    tasks = [asyncio.create_task(anext(s, None)) for s in subs]
    await asyncio.sleep(0)
    await bus.close()
    assert await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S) == [None, None]
    await bus.publish([ch(MEMORY_TOPIC, 1)])  # after close: dropped, never raised
    await bus.close()  # idempotent
    with pytest.raises(RuntimeError):
        bus.subscribe([MEMORY_TOPIC])


async def test_subscribe_refuses_bad_arguments(bus: Bus) -> None:
    with pytest.raises(ValueError, match="topic"):
        bus.subscribe([])
    with pytest.raises(ValueError, match="topic"):
        bus.subscribe([""])
    with pytest.raises(ValueError, match="max_queue"):
        bus.subscribe([MEMORY_TOPIC], max_queue=0)


# -- health ------------------------------------------------------------------------------------
async def test_check_reports_ok_in_the_readiness_shape(bus: Bus) -> None:
    result = await bus.check()
    assert set(result) == {"name", "kind", "status", "latency_ms", "detail"}
    assert result["name"] == "bus"
    assert result["kind"] == bus.name
    assert result["status"] == "ok"
    assert result["latency_ms"] >= 0
    assert result["detail"] is None


# -- Redis only: the wire, one connection, outages ---------------------------------------------
@pytest.mark.redis
async def test_redis_wire_format_is_json_on_tether_topic(redis_service: RedisService) -> None:
    from redis.asyncio import Redis

    raw = Redis.from_url(redis_service.url)
    listener = raw.pubsub()
    await listener.subscribe("tether:memory")
    async with asyncio.timeout(WAIT_S):
        while (await listener.get_message(timeout=1.0) or {}).get("type") != "subscribe":
            pass
    bus = build_bus(redis_service.url)
    await bus.start()
    try:
        await bus.publish([Change("memory", "t1", "memory.add", 7, {"id": "m1", "n": [1, 2]})])
        async with asyncio.timeout(WAIT_S):
            msg = None
            while msg is None or msg["type"] != "message":
                msg = await listener.get_message(timeout=1.0)
    finally:
        await bus.close()
        await listener.aclose()  # type: ignore[no-untyped-call]
        await raw.aclose()
    assert msg["channel"] == b"tether:memory"
    assert orjson.loads(msg["data"]) == {
        "topic": "memory",
        "tenant_id": "t1",
        "kind": "memory.add",
        "cursor": 7,
        "data": {"id": "m1", "n": [1, 2]},
    }


@pytest.mark.redis
async def test_redis_uses_one_subscription_per_instance_and_drops_unused_topics(
    redis_service: RedisService, channel_prefix: str
) -> None:
    from redis.asyncio import Redis

    from tether.bus.redis import RedisBus

    raw = Redis.from_url(redis_service.url)
    bus = RedisBus(redis_service.url, channel_prefix=channel_prefix)
    await bus.start()
    channel = f"{channel_prefix}{MEMORY_TOPIC}"

    async def numsub() -> int:
        return int(dict(await raw.pubsub_numsub(channel))[channel.encode()])

    try:
        subs = [bus.subscribe([MEMORY_TOPIC]) for _ in range(5)]
        for sub in subs:
            await sub.ready()
        assert await numsub() == 1  # five subscribers, one Redis subscription
        for sub in subs[:4]:
            await sub.close()
        assert await numsub() == 1

        async def gone() -> bool:
            return await numsub() == 0

        await subs[4].close()  # the last one leaves: UNSUBSCRIBE
        await eventually(gone)
        again = bus.subscribe([MEMORY_TOPIC])  # and a new one brings it back
        await again.ready()
        assert await numsub() == 1
        await bus.publish([ch(MEMORY_TOPIC, 1)])
        assert cursors(await take(again, 1)) == [1]
    finally:
        await bus.close()
        await raw.aclose()


@pytest.mark.redis
async def test_redis_outage_is_down_then_a_gap_then_new_changes(
    own_redis: RedisService, channel_prefix: str
) -> None:
    from tether.bus.redis import RedisBus

    bus = RedisBus(own_redis.url, channel_prefix=channel_prefix)
    peer = RedisBus(own_redis.url, channel_prefix=channel_prefix)
    await bus.start()
    await peer.start()
    try:
        sub = bus.subscribe([MEMORY_TOPIC])
        await sub.ready()
        await bus.publish([ch(MEMORY_TOPIC, 1)])  # arrives, left unread across the outage

        async def one_queued() -> bool:
            return sub.qsize() == 1

        await eventually(one_queued)

        own_redis.kill()
        await status_is(bus, "down")
        down = await bus.check()
        assert down["status"] == "down"
        assert f"127.0.0.1:{own_redis.port}" in down["detail"]  # where, and why
        await bus.publish([ch(MEMORY_TOPIC, 2)])  # lost, but the caller never sees an error
        late = bus.subscribe([MEMORY_TOPIC])  # made during the outage
        await late.ready()  # returns at once while Redis is down

        own_redis.restart()
        await status_is(bus, "ok")
        await status_is(peer, "ok")
        assert cursors(await take(sub, 1)) == [1]  # what it had, first
        with pytest.raises(BusGap) as info:
            await take(sub, 1)  # then: you may have missed changes
        assert info.value.cursors == {(MEMORY_TOPIC, "t1"): 1}
        with pytest.raises(BusGap) as late_info:
            await take(late, 1)
        assert late_info.value.cursors == {}

        await peer.publish([ch(MEMORY_TOPIC, 3)])  # and then it goes on
        assert cursors(await take(sub, 1)) == [3]
        assert cursors(await take(late, 1)) == [3]
        assert bus.counters["reconnects"] == 1
    finally:
        await bus.close()
        await peer.close()


@pytest.mark.redis
async def test_redis_that_stops_answering_is_noticed_by_the_idle_ping(
    own_redis: RedisService, channel_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tether.bus.redis as redis_bus

    monkeypatch.setattr(redis_bus, "_IDLE_PING_S", 0.2)  # 5 s in production
    bus = redis_bus.RedisBus(own_redis.url, channel_prefix=channel_prefix)
    await bus.start()
    try:
        sub = bus.subscribe([MEMORY_TOPIC])
        await sub.ready()
        own_redis.pause()  # the socket stays open: only a missing PONG tells
        try:
            await status_is(bus, "down")
            await bus.publish([ch(MEMORY_TOPIC, 1)])
        finally:
            own_redis.resume()
        await status_is(bus, "ok")
        with pytest.raises(BusGap):
            await take(sub, 1)
        await bus.publish([ch(MEMORY_TOPIC, 2)])
        seen: list[int] = []
        while 2 not in seen:
            seen += cursors(await take(sub, 1))
        # Change 1 may come too, late (it sat in a socket while Redis was stopped), but
        # only after the gap: harmless, the consumer skips cursors it read from the store.
        assert seen in ([2], [1, 2])
    finally:
        await bus.close()


@pytest.mark.redis
async def test_redis_bus_starts_without_redis_and_connects_when_it_appears(
    own_redis: RedisService, channel_prefix: str
) -> None:
    from tether.bus.redis import RedisBus

    own_redis.stop()
    bus = RedisBus(own_redis.url, channel_prefix=channel_prefix)
    await bus.start()  # does not raise, does not hang
    try:
        assert (await bus.check())["status"] == "down"
        await bus.publish([ch(MEMORY_TOPIC, 1)])
        sub = bus.subscribe([MEMORY_TOPIC])
        own_redis.start()
        await status_is(bus, "ok")
        with pytest.raises(BusGap):  # it was made while Redis was away
            await take(sub, 1)
        await sub.ready()
        await bus.publish([ch(MEMORY_TOPIC, 2)])
        assert cursors(await take(sub, 1)) == [2]
    finally:
        await bus.close()


@pytest.mark.redis
async def test_redis_a_change_that_cannot_be_published_is_a_gap_not_an_error(
    redis_service: RedisService, channel_prefix: str
) -> None:
    from tether.bus.redis import RedisBus

    bus = RedisBus(redis_service.url, channel_prefix=channel_prefix)
    await bus.start()
    try:
        async with bus.subscribe([MEMORY_TOPIC]) as sub:
            await bus.publish(
                [ch(MEMORY_TOPIC, 1), ch(MEMORY_TOPIC, 2, bad={1, 2}), ch(MEMORY_TOPIC, 3)]
            )
            got: list[object] = []
            async with asyncio.timeout(WAIT_S):
                while len(got) < 3:
                    try:
                        got.append((await anext(sub)).cursor)
                    except BusGap:
                        got.append("gap")
            assert got == ["gap", 1, 3]  # told before its neighbours arrive
            assert bus.counters["dropped"] == 1
    finally:
        await bus.close()


# -- the package -------------------------------------------------------------------------------
def test_public_api() -> None:
    assert set(tether.bus.__all__) == {
        "DEFAULT_MAX_QUEUE",
        "Bus",
        "BusGap",
        "BusMissed",
        "BusOverflow",
        "LocalBus",
        "Subscription",
        "build_bus",
    }
    assert issubclass(BusOverflow, tether.bus.BusMissed)
    assert issubclass(BusGap, tether.bus.BusMissed)


def test_build_bus_picks_the_backend_and_imports_redis_only_for_it() -> None:
    assert isinstance(build_bus(None), LocalBus)
    assert build_bus("redis://127.0.0.1:1/0").name == "redis"
    with pytest.raises(ValueError, match="Redis URL"):
        build_bus("http://127.0.0.1:6379")
    code = "import sys, tether.bus; tether.bus.build_bus(None); print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_bus_imports_no_web_or_cli_framework() -> None:
    """Layering (ARCHITECTURE §1): the bus sits at the bottom, with the store."""
    code = (
        "import sys, tether.bus, tether.bus.redis;"
        " print(sorted(m for m in ('fastapi', 'starlette', 'typer', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

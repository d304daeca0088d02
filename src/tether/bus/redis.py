"""The Redis bus: committed changes fanned out to every replica over Redis pub/sub.

Wire format: each change is ``PUBLISH <prefix><topic> <json>`` (prefix ``tether:`` by
default) where ``<json>`` is the orjson encoding of ``{topic, tenant_id, kind, cursor,
data}`` (:func:`encode_change`). Any Redis client can listen in.

Shape, per :class:`RedisBus` instance (one per process):

- **One pub/sub connection** subscribes to the union of this instance's subscriptions'
  topics (plus a control channel, so the link exists, and is watched, with no
  subscriber) and fans each message out to the local subscriptions in memory. A topic is
  SUBSCRIBEd when its first local subscriber arrives and UNSUBSCRIBEd when its last one
  leaves; subscribers never open connections of their own.
- **One publisher task** drains an outbox in order, pipelining up to
  :data:`_PUBLISH_BATCH` PUBLISH commands per round trip. :meth:`RedisBus.publish` only
  appends to the outbox, so a write request never waits on Redis. This replica's own
  subscribers receive its changes back through Redis, like every other replica's, so they
  all see one order per topic.

Delivery is at most once (pub/sub keeps nothing for a disconnected client); the store is
the truth and consumers read gaps back by cursor:

- **Redis goes away.** The reader notices (a reset connection at once; a silent one within
  ``2 * _IDLE_PING_S`` through an idle PING), reports ``down`` in :meth:`RedisBus.check`,
  and reconnects with capped, jittered exponential backoff (:data:`_BACKOFF`, redis-py's
  ``EqualJitterBackoff``). Every subscription is flagged, and once its topics are
  subscribed again on the new connection it receives :class:`~tether.bus.base.BusGap`
  (after whatever it had already received), then the changes published from then on.
  The consumer reads ``(its cursor, now]`` from the store and skips repeats by cursor.
- **A PUBLISH fails** (Redis down, timeout) or the outbox is full: the changes are dropped
  and logged (once per outage, not per change), counted in :attr:`RedisBus.counters`, and
  this replica's subscribers of their topics get a ``BusGap``. Nothing is raised to the
  caller: the write has committed, and a committed write must never fail because
  fan-out did. *Other* replicas' subscribers cannot be told of a change that never
  reached Redis; when the outage is Redis itself, their own connections dropped too and
  they get their ``BusGap`` on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tether.bus.base import Bus, Subscription
from tether.domain.changes import Change

__all__ = ["DEFAULT_CHANNEL_PREFIX", "RedisBus", "decode_change", "encode_change"]

log = logging.getLogger("tether.bus")

#: Channel of topic ``t`` is ``tether:t``.
DEFAULT_CHANNEL_PREFIX: Final = "tether:"

#: A refused connection fails at once; this bounds a black-holed host, so ``start()`` and
#: each reconnect attempt give up within it.
_CONNECT_TIMEOUT_S: Final = 2.0
#: Bounds a PUBLISH round trip and a SUBSCRIBE send. Only the publisher task waits on it,
#: never a request: a slow Redis backs changes up in the outbox, not in the API.
_SOCKET_TIMEOUT_S: Final = 2.0
#: ``/readyz`` answers within about a second, as the store's check does.
_CHECK_TIMEOUT_S: Final = 1.0
#: After this long without a message the reader sends PING; no reply by the next period
#: means the link is dead (a peer that vanished without a FIN is noticed in ≤ 10 s).
_IDLE_PING_S: Final = 5.0
#: Reconnect waits: 100-200 ms after the first failure, doubling, capped at 2.5-5 s, so a
#: restarted Redis is back in use within ~5 s and a long outage costs one attempt per ~4 s.
_BACKOFF: Final = EqualJitterBackoff(cap=5.0, base=0.1)
#: How long ``start()`` waits for the first connection before returning anyway.
_START_WAIT_S: Final = 5.0
#: Changes waiting to be published. At a few hundred bytes each this is a few MB; it only
#: fills when Redis stalls for seconds under heavy writes, and then newer changes are
#: dropped (and this replica's subscribers told) rather than memory grown.
_OUTBOX_MAX: Final = 10_000
#: PUBLISH commands per pipeline round trip.
_PUBLISH_BATCH: Final = 256
#: How long ``close()`` lets the publisher drain the outbox.
_CLOSE_FLUSH_S: Final = 2.0
#: Cancellation rounds in ``close()`` (0.1 s each) before giving up on a task.
_STOP_ATTEMPTS: Final = 50


def encode_change(change: Change) -> bytes:
    """The wire form of a change: JSON ``{topic, tenant_id, kind, cursor, data}``.

    Raises:
        TypeError: ``data`` holds something JSON cannot carry (orjson's ``JSONEncodeError``).
    """
    return orjson.dumps(
        {
            "topic": change.topic,
            "tenant_id": change.tenant_id,
            "kind": change.kind,
            "cursor": change.cursor,
            "data": change.data,
        },
        default=_jsonable,
    )


def decode_change(payload: bytes | str) -> Change:
    """Parse :func:`encode_change`'s output (unknown keys are ignored, for rolling upgrades).

    Raises:
        ValueError: not JSON, or a field missing or of the wrong type.
    """
    obj = orjson.loads(payload)
    if not isinstance(obj, dict):
        raise ValueError("a change must be a JSON object")
    topic, tenant_id, kind, cursor = (obj.get(k) for k in ("topic", "tenant_id", "kind", "cursor"))
    data = obj.get("data") or {}
    if not (isinstance(topic, str) and isinstance(tenant_id, str) and isinstance(kind, str)):
        raise ValueError("topic, tenant_id and kind must be strings")
    if not isinstance(cursor, int) or isinstance(cursor, bool) or not isinstance(data, dict):
        raise ValueError("cursor must be an integer and data an object")
    return Change(topic=topic, tenant_id=tenant_id, kind=kind, cursor=cursor, data=data)


def _jsonable(obj: object) -> object:
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _where(url: str) -> str:
    """``host:port/db`` of a Redis URL, without credentials (for logs and ``detail``)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again if one survives.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py wraps around socket writes when a
    socket timeout is set) can swallow a cancellation that lands as the write completes
    (CPython gh-86296, fixed in 3.12), so one ``cancel()`` is not always enough.
    """
    for _ in range(_STOP_ATTEMPTS):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)
    else:
        log.warning("Redis bus: %d task(s) did not stop", sum(not t.done() for t in tasks))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("Redis bus: task %s failed", task.get_name(), exc_info=task.exception())


class RedisBus(Bus):
    """Pub/sub over Redis for several replicas; see the module docstring for the design.

    Args:
        url: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or ``unix://``.
        channel_prefix: Put before each topic to name its channel; deployments (or tests)
            sharing one Redis keep apart with different prefixes.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """

    name = "redis"

    def __init__(self, url: str, *, channel_prefix: str = DEFAULT_CHANNEL_PREFIX) -> None:
        super().__init__()
        self._where = _where(url)
        # Retries are ours (the reader's backoff), not redis-py's: a hidden reconnect would
        # resubscribe without telling the subscribers that they missed changes.
        self._client: Redis = Redis.from_url(
            url,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            # RESP2: the pub/sub every Redis speaks (RESP3 needs HELLO, Redis >= 6) and
            # the default of redis-py before 8, so the bus behaves alike on every version.
            protocol=2,
        )
        self._prefix = channel_prefix
        self._prefix_b = channel_prefix.encode()
        self._control = f"{channel_prefix}_bus".encode()
        # Connection state, owned by the reader task.
        self._pubsub: PubSub | None = None
        self._up = False
        self._ever_up = False
        self._failures = 0
        self._down_since: float | None = None
        self._last_error: str | None = "not started"
        self._sent: set[str] = set()  # topics whose last command sent was SUBSCRIBE
        self._pending: dict[str, int] = {}  # (UN)SUBSCRIBE commands not yet confirmed
        self._live: set[str] = set()  # confirmed subscribed, nothing pending
        self._changed = asyncio.Event()  # replaced after each set: wakes ready() waiters
        self._dirty = asyncio.Event()  # the topic union changed: reconcile
        self._first_attempt = asyncio.Event()
        # Publishing.
        self._outbox: deque[Change] = deque()
        self._outbox_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._publish_ok = True
        self._tasks: list[asyncio.Task[None]] = []
        self._counters = {"published": 0, "dropped": 0, "reconnects": 0, "malformed": 0}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Start the reader, reconciler and publisher tasks and wait (at most
        ``_START_WAIT_S``) for the first connection attempt. An unreachable Redis is
        logged and reported by :meth:`check`, not raised; the reader keeps retrying."""
        if self._tasks or self._closed:
            return
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="tether-bus-redis-reader"),
            asyncio.create_task(self._reconcile_loop(), name="tether-bus-redis-subscriber"),
            asyncio.create_task(self._publish_loop(), name="tether-bus-redis-publisher"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_START_WAIT_S):
                await self._first_attempt.wait()

    async def close(self) -> None:
        """Let the publisher drain the outbox (at most ``_CLOSE_FLUSH_S``), stop every
        task, close the connections and end every subscription. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_FLUSH_S):
                    await self._drained.wait()
        self._dirty.set()  # loops see _closed as they wake; cancellation does the rest
        await _stop(self._tasks)
        self._tasks = []
        self._set_down(None)
        with contextlib.suppress(Exception):
            await self._client.aclose()
        self._end_all()

    # -- publishing --------------------------------------------------------------------
    def publish_nowait(self, changes: Sequence[Change]) -> None:
        """Append to the outbox for the publisher task; never raises, never waits.

        Past ``_OUTBOX_MAX`` waiting changes the newest are dropped (and counted), and
        this replica's subscribers of their topics get a ``BusGap``.
        """
        if self._closed or not changes:
            return
        room = _OUTBOX_MAX - len(self._outbox)
        if len(changes) > room:
            self._drop(changes[max(room, 0) :], "the outbox is full (Redis is slow or down)")
            changes = changes[: max(room, 0)]
        if changes:
            self._outbox.extend(changes)
            self._drained.clear()
            self._outbox_ready.set()

    async def _publish_loop(self) -> None:
        while True:
            if not self._outbox:
                self._drained.set()
                if self._closed:
                    return
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), _PUBLISH_BATCH))]
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not kill the task that all writes feed
                log.exception("Redis bus: publishing failed unexpectedly")
                self._drop(batch, f"{type(exc).__name__}: {exc}")

    async def _send(self, batch: list[Change]) -> None:
        pipe = self._client.pipeline(transaction=False)
        sent: list[Change] = []
        for change in batch:
            try:
                payload = encode_change(change)
            except TypeError as exc:
                log.error("Redis bus: change on %r not JSON-serialisable: %s", change.topic, exc)
                self._drop([change], "not JSON-serialisable", quiet=True)
                continue
            pipe.publish(self._prefix + change.topic, payload)
            sent.append(change)
        if not sent:
            return
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self._drop(sent, f"{type(exc).__name__}: {exc}")
            return
        self._counters["published"] += len(sent)
        if not self._publish_ok:
            log.info("Redis bus: publishing to %s works again", self._where)
            self._publish_ok = True

    def _drop(self, changes: Sequence[Change], reason: str, *, quiet: bool = False) -> None:
        self._counters["dropped"] += len(changes)
        if self._publish_ok and not quiet:
            log.warning(
                "Redis bus: dropped %d change(s) not published to %s (%s); subscribers"
                " will read them back from the store",
                len(changes),
                self._where,
                reason,
            )
            self._publish_ok = False
        self._gap_topics({c.topic for c in changes})

    def _gap_topics(self, topics: Iterable[str]) -> None:
        # A subscription flagged by a disconnect gets its marker when its topics are
        # live again; queuing one now would let it believe it was told about the outage.
        hit: dict[Subscription, None] = {}
        for topic in topics:
            hit.update(self._by_topic.get(topic, {}))
        for sub in hit:
            if not sub._needs_gap:
                sub._mark_gap()

    # -- the pub/sub connection ----------------------------------------------------------
    async def _read_loop(self) -> None:
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                topics = sorted(self._by_topic)
                self._sent = set(topics)
                self._pending = dict.fromkeys(topics, 1)
                self._live.clear()
                await pubsub.subscribe(self._control, *(self._prefix + t for t in topics))
                self._pubsub = pubsub
                self._dirty.set()  # subscriptions made while connecting
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._set_down(exc)
            except Exception as exc:  # a bug: log it, and do not leave the bus dead
                log.exception("Redis bus: reader failed unexpectedly")
                self._set_down(exc)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            self._failures += 1
            await asyncio.sleep(_BACKOFF.compute(self._failures))

    async def _read(self, pubsub: PubSub) -> None:
        ping_sent = False
        while not self._closed:
            msg = await pubsub.get_message(timeout=_IDLE_PING_S)
            if msg is None:
                if ping_sent:
                    raise RedisConnectionError(f"no reply from Redis in {2 * _IDLE_PING_S:g} s")
                await pubsub.ping()
                ping_sent = True
                continue
            ping_sent = False
            self._on_message(msg)

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        channel = msg["channel"]
        if kind == "message":
            if channel == self._control:
                return
            self._on_change(channel, msg["data"])
        elif kind == "subscribe" and channel == self._control:
            self._set_up()
        elif kind in ("subscribe", "unsubscribe") and isinstance(channel, bytes):
            self._confirmed(channel[len(self._prefix_b) :].decode())

    def _on_change(self, channel: bytes, payload: bytes) -> None:
        topic = channel[len(self._prefix_b) :].decode(errors="replace")
        try:
            change = decode_change(payload)
            if change.topic != topic:
                raise ValueError(f"topic {change.topic!r} published on {topic!r}")
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            self._counters["malformed"] += 1
            log.warning("Redis bus: ignored a malformed message on %r: %s", channel, exc)
            return
        self._fan_out(change)

    def _confirmed(self, topic: str) -> None:
        left = self._pending.get(topic, 0) - 1
        if left > 0:
            self._pending[topic] = left
            return
        self._pending.pop(topic, None)
        if topic not in self._sent:
            self._live.discard(topic)
            return
        self._live.add(topic)
        for sub in list(self._by_topic.get(topic, ())):
            if sub._needs_gap and sub.topics <= self._live:
                sub._needs_gap = False
                sub._mark_gap()
        self._notify()

    def _set_up(self) -> None:
        self._up = True
        self._failures = 0
        if self._ever_up:
            self._counters["reconnects"] += 1
            down_s = time.monotonic() - (self._down_since or time.monotonic())
            log.info("Redis bus: reconnected to %s after %.1f s", self._where, down_s)
        self._ever_up = True
        self._down_since = None
        self._last_error = None
        self._first_attempt.set()
        self._notify()

    def _set_down(self, exc: BaseException | None) -> None:
        was_up = self._up
        self._up = False
        self._live.clear()
        self._pending.clear()
        self._sent.clear()
        for sub in self._subscriptions:
            sub._needs_gap = True
        if exc is not None:
            self._last_error = f"{type(exc).__name__}: {exc}"
            if was_up or self._failures == 0:
                log.warning(
                    "Redis bus: %s %s (%s); retrying with backoff",
                    "lost its connection to" if was_up else "cannot reach",
                    self._where,
                    self._last_error,
                )
        else:
            self._last_error = "closed"
        if was_up or self._down_since is None:
            self._down_since = time.monotonic()
        self._first_attempt.set()
        self._notify()

    async def _reconcile_loop(self) -> None:
        """SUBSCRIBE topics that gained a first subscriber, UNSUBSCRIBE those that lost
        their last, on the live pub/sub connection (a new one subscribes the whole union)."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            pubsub = self._pubsub
            if self._closed:
                return
            if pubsub is None:
                continue
            want = set(self._by_topic)
            drop = sorted(self._sent - want)
            add = sorted(want - self._sent)
            try:
                if drop:
                    self._track(drop, subscribe=False)
                    await pubsub.unsubscribe(*(self._prefix + t for t in drop))
                if add:
                    self._track(add, subscribe=True)
                    await pubsub.subscribe(*(self._prefix + t for t in add))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The connection is suspect: drop it, and the reader reconnects with the
                # whole union (and tells the subscribers of the gap).
                log.debug("Redis bus: (un)subscribe failed (%s); reconnecting", exc)
                if pubsub.connection is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.connection.disconnect(nowait=True)

    def _track(self, topics: list[str], *, subscribe: bool) -> None:
        for topic in topics:
            self._pending[topic] = self._pending.get(topic, 0) + 1
            self._live.discard(topic)
            if subscribe:
                self._sent.add(topic)
            else:
                self._sent.discard(topic)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- Bus hooks -----------------------------------------------------------------------
    def _subscribed(self, sub: Subscription, *, new_topic: bool) -> None:
        if not self._up:
            sub._needs_gap = True  # it may miss what is published until Redis is back
        if new_topic:
            self._dirty.set()

    def _topics_changed(self) -> None:
        self._dirty.set()

    async def _wait_live(self, sub: Subscription) -> None:
        while self._up and not sub.closed and not sub.topics <= self._live:
            await self._changed.wait()

    # -- health --------------------------------------------------------------------------
    async def check(self) -> dict[str, Any]:
        """``ok`` when the pub/sub link is up and a PING answers within
        ``_CHECK_TIMEOUT_S``; ``down`` with the reason (and for how long) otherwise."""
        t0 = time.perf_counter()
        status, detail = "ok", None
        if not self._up:
            status = "down"
            since = (
                f" for {time.monotonic() - self._down_since:.1f} s"
                if self._down_since is not None
                else ""
            )
            detail = f"Redis at {self._where} unreachable{since}: {self._last_error}"
        else:
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT_S):
                    await self._client.ping()
            except (RedisError, OSError) as exc:  # TimeoutError is an OSError
                status = "down"
                detail = f"Redis at {self._where} did not answer PING: {type(exc).__name__}: {exc}"
        return {
            "name": "bus",
            "kind": self.name,
            "status": status,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
            "detail": detail,
        }

    @property
    def connected(self) -> bool:
        """True while the pub/sub connection is up (what ``check()`` starts from)."""
        return self._up

    @property
    def counters(self) -> dict[str, int]:
        """Totals since start: ``published``, ``dropped`` (not published: Redis failed or
        the outbox was full), ``reconnects``, ``malformed`` (messages ignored)."""
        return dict(self._counters)

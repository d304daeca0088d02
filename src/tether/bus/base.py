"""The Bus contract: fan-out of committed changes to live subscribers (ARCHITECTURE §3, §9).

A bus carries :class:`~tether.domain.changes.Change` records *after* their write has
committed. It is a notification channel, not a log: delivery is at most once, and the store
is the truth. A subscriber that may have missed changes is told so (:class:`BusOverflow`,
:class:`BusGap`, both :class:`BusMissed`) together with the cursor of the last change it
did receive on each topic, and reads the gap back from the store by cursor.

Topics are exact strings (``"memory"``, ``"sessions"``, ``"session:<id>"``; see
:mod:`tether.domain.changes`); a subscription names a list of them. **Changes of every
tenant travel on the same topic**: a subscription made without ``tenant_id`` receives every
tenant's changes and its consumer must filter on :attr:`Change.tenant_id`; one made with
``tenant_id`` only ever receives that tenant's (the filter runs before the queue, so other
tenants' traffic neither reaches it nor fills its queue).

How a live consumer uses it (an SSE stream, a WebSocket, a derived index)::

    async with bus.subscribe([topic], tenant_id=tenant) as sub:   # live before the read
        cursor = await replay_from_store(cursor)                   # read what exists
        while True:
            try:
                async for change in sub:
                    if change.cursor <= cursor:                   # already read from the store
                        continue
                    deliver(change)
                    cursor = change.cursor
                break                                             # the bus closed
            except BusGap:                                         # the subscription goes on
                cursor = await replay_from_store(cursor)
    # BusOverflow ends the subscription: subscribe again, then replay from the store.

Backends: :mod:`tether.bus.local` (in-process, the embedded default) and
:mod:`tether.bus.redis` (Redis pub/sub, for several replicas). Neither imports FastAPI,
Typer or httpx: the bus sits at the bottom with the store.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Final

from tether.domain.changes import Change

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "Bus",
    "BusGap",
    "BusMissed",
    "BusOverflow",
    "Subscription",
]

#: Changes a subscription may hold undelivered before it is dropped. A change is a few
#: hundred bytes (a summary, not the record), so this bounds one slow subscriber to well
#: under a megabyte, while a live dashboard that stalls for a second under a burst of
#: ~1000 writes/s is not dropped.
DEFAULT_MAX_QUEUE: Final = 1000

#: ``(topic, tenant_id)``: one topic carries every tenant's changes and session ids are
#: only unique within a tenant, so a cursor is only meaningful per tenant.
CursorKey = tuple[str, str]


class BusMissed(Exception):
    """The subscriber may have missed changes: read them back from the store by cursor.

    Attributes:
        cursors: The cursor of the last change this subscription *delivered* (returned from
            iteration), per ``(topic, tenant_id)``; a pair with no entry delivered nothing.
            Resume from these (or from the consumer's own cursors, which are the same if it
            tracked what it was given).
    """

    def __init__(self, message: str, cursors: Mapping[CursorKey, int]) -> None:
        super().__init__(message)
        self.cursors: dict[CursorKey, int] = dict(cursors)

    def cursor(self, topic: str, tenant_id: str) -> int | None:
        """The last delivered cursor of ``tenant_id`` on ``topic``, or None if none was."""
        return self.cursors.get((topic, tenant_id))


class BusOverflow(BusMissed):
    """The subscriber fell ``max_queue`` changes behind and was dropped.

    The subscription is over (its queue was freed at once, so a stalled consumer never
    grows server memory): every later iteration raises this again. Subscribe anew, then
    read the gap back from the store starting at :attr:`cursors`.
    """


class BusGap(BusMissed):
    """Changes published while the bus was disconnected (a Redis outage) or that failed to
    be published were not delivered.

    Raised once, in order: changes received before the outage are delivered first. The
    subscription goes on: read the gap back from the store, then keep iterating (new
    changes follow; some may repeat what the store read returned, so skip cursors at or
    below the one you have).
    """


class _Gap:
    """Queue marker: raise :class:`BusGap` when the consumer reaches this point."""

    __slots__ = ()


_GAP: Final = _Gap()


class Subscription:
    """A bounded queue of the changes on some topics, read as an async iterator.

    Made by :meth:`Bus.subscribe`. One consumer task reads it. Iteration yields
    :class:`Change` records in publish order per topic, raises :class:`BusGap` (then goes
    on) or :class:`BusOverflow` (then is over), and stops when the subscription or its bus
    is closed. ``async with`` waits until it is live (:meth:`ready`) and closes it on exit.

    Attributes:
        topics: The topics it receives (exact match).
        tenant_id: Only this tenant's changes, or every tenant's when None.
        max_queue: The most changes it holds undelivered; one more and it overflows.
    """

    def __init__(
        self, bus: Bus, topics: frozenset[str], *, tenant_id: str | None, max_queue: int
    ) -> None:
        self.topics = topics
        self.tenant_id = tenant_id
        self.max_queue = max_queue
        self._bus = bus
        self._queue: deque[Change | _Gap] = deque()
        self._wakeup = asyncio.Event()
        self._last: dict[CursorKey, int] = {}
        self._overflowed = False
        self._ended = False
        # Set by the Redis backend when this subscription may have missed changes while
        # disconnected; the gap marker is queued once its topics are live again.
        self._needs_gap = False

    # -- the consumer's side -----------------------------------------------------------
    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        while True:
            if self._overflowed:
                raise BusOverflow(
                    f"subscriber fell {self.max_queue} changes behind on {sorted(self.topics)}"
                    " and was dropped; read the gap back from the store",
                    self._last,
                )
            if self._queue:
                item = self._queue.popleft()
                if isinstance(item, _Gap):
                    raise BusGap(
                        f"changes on {sorted(self.topics)} may have been missed;"
                        " read the gap back from the store",
                        self._last,
                    )
                self._last[(item.topic, item.tenant_id)] = item.cursor
                return item
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    async def ready(self) -> None:
        """Return once changes published from now on will reach this subscription.

        Call it (or enter ``async with``) *before* reading the store, so nothing falls
        between the read and the live feed. Immediate on the local bus. On Redis it waits
        for the server to confirm the topics, or returns at once while Redis is
        unreachable (a :class:`BusGap` then follows when it is back).
        """
        await self._bus._wait_live(self)

    @property
    def last_delivered(self) -> dict[CursorKey, int]:
        """The cursor of the last change delivered, per ``(topic, tenant_id)`` (a copy)."""
        return dict(self._last)

    def qsize(self) -> int:
        """Changes (and gap markers) waiting; never more than :attr:`max_queue`."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """True once closed by the consumer, by its bus, or dropped on overflow."""
        return self._ended or self._overflowed

    async def close(self) -> None:
        """Stop receiving; iteration ends (pending changes are discarded). Idempotent."""
        self._end()

    async def __aenter__(self) -> Subscription:
        await self.ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()

    # -- the bus's side (synchronous: fan-out never awaits a consumer) -------------------
    def _offer(self, change: Change) -> None:
        if self._ended or self._overflowed:
            return
        if self.tenant_id is not None and change.tenant_id != self.tenant_id:
            return
        self._put(change)

    def _mark_gap(self) -> None:
        if self._ended or self._overflowed:
            return
        if self._queue and isinstance(self._queue[-1], _Gap):
            return  # one marker covers both gaps: the consumer has not read past it yet
        self._put(_GAP)

    def _put(self, item: Change | _Gap) -> None:
        if len(self._queue) >= self.max_queue:
            self._overflow()
            return
        self._queue.append(item)
        self._wakeup.set()

    def _overflow(self) -> None:
        self._overflowed = True
        self._queue.clear()
        self._bus._detach(self)
        self._wakeup.set()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._queue.clear()
        self._bus._detach(self)
        self._wakeup.set()


class Bus(abc.ABC):
    """Fan-out of committed :class:`Change` records to subscribers, on this replica and
    (Redis) on every other.

    Lifecycle: ``await start()``, then :meth:`publish` / :meth:`subscribe`, then
    ``await close()``. Publishing never raises and never waits on a subscriber; see each
    method for what happens when a subscriber is slow or the backend is down.

    Attributes:
        name: ``"local"`` or ``"redis"``; also the ``kind`` in :meth:`check`.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self._by_topic: dict[str, dict[Subscription, None]] = {}
        self._subscriptions: dict[Subscription, None] = {}
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Open connections and start background tasks. Idempotent; never raises because
        a backend is unreachable (:meth:`check` reports it, and the bus keeps trying)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush what is being published (briefly), stop, and end every subscription's
        iteration. Idempotent. Publishing afterwards is a no-op."""

    # -- publishing --------------------------------------------------------------------
    async def publish(self, changes: Sequence[Change]) -> None:
        """Publish changes that have committed, in commit order.

        Never raises and never waits on a subscriber or on the network: the store calls it
        after a commit, and a committed write must not fail because fan-out did. A slow
        subscriber overflows (:class:`BusOverflow`); a change the backend fails to publish
        is logged, counted and dropped, and this replica's subscribers of its topic get a
        :class:`BusGap`. Same as :meth:`publish_nowait`.
        """
        self.publish_nowait(changes)

    @abc.abstractmethod
    def publish_nowait(self, changes: Sequence[Change]) -> None:
        """:meth:`publish` without a coroutine, for a synchronous after-commit hook
        (``Store.on_commit``). Never raises."""

    # -- subscribing -------------------------------------------------------------------
    def subscribe(
        self,
        topics: Iterable[str],
        *,
        tenant_id: str | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> Subscription:
        """Receive the changes published on ``topics`` from now on.

        Args:
            topics: Exact topic names (at least one).
            tenant_id: Only this tenant's changes; None receives every tenant's, and the
                consumer must then filter on :attr:`Change.tenant_id` itself.
            max_queue: Changes held for a consumer that has not read them; one more and the
                subscription is dropped (:class:`BusOverflow`).

        Returns:
            A :class:`Subscription`; await :meth:`Subscription.ready` (or use ``async with``)
            before reading the store, so that nothing falls between the two.

        Raises:
            ValueError: no topic, an empty topic name, or ``max_queue`` below 1.
            RuntimeError: the bus is closed.
        """
        names = frozenset(topics)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ValueError("subscribe needs at least one non-empty topic name")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if self._closed:
            raise RuntimeError("the bus is closed")
        sub = Subscription(self, names, tenant_id=tenant_id, max_queue=max_queue)
        self._subscriptions[sub] = None
        new_topic = False
        for topic in names:
            subs = self._by_topic.get(topic)
            if subs is None:
                subs = self._by_topic[topic] = {}
                new_topic = True
            subs[sub] = None
        self._subscribed(sub, new_topic=new_topic)
        return sub

    # -- health ------------------------------------------------------------------------
    @abc.abstractmethod
    async def check(self) -> dict[str, Any]:
        """Readiness for ``/readyz`` and ``/v1/deps``: ``{name: "bus", kind, status:
        "ok"|"down", latency_ms, detail}``. Answers within about a second; never raises."""

    # -- for backends ------------------------------------------------------------------
    @property
    def topics(self) -> frozenset[str]:
        """The union of the live subscriptions' topics on this instance."""
        return frozenset(self._by_topic)

    def _fan_out(self, change: Change) -> None:
        """Queue ``change`` on every local subscription of its topic, without awaiting."""
        subs = self._by_topic.get(change.topic)
        if subs:
            # A copy: an overflow detaches the subscription from this very dict.
            for sub in list(subs):
                sub._offer(change)

    def _gap_topics(self, topics: Iterable[str]) -> None:
        """Tell this instance's subscribers of ``topics`` that they missed changes."""
        hit: dict[Subscription, None] = {}
        for topic in topics:
            hit.update(self._by_topic.get(topic, {}))
        for sub in hit:
            sub._mark_gap()

    def _detach(self, sub: Subscription) -> None:
        if self._subscriptions.pop(sub, False) is False:
            return
        gone = False
        for topic in sub.topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.pop(sub, None)
                if not subs:
                    del self._by_topic[topic]
                    gone = True
        if gone:
            self._topics_changed()

    def _end_all(self) -> None:
        for sub in list(self._subscriptions):
            sub._end()

    # Optional hooks (no-ops here; the Redis backend uses them), hence not abstract.
    def _subscribed(self, sub: Subscription, *, new_topic: bool) -> None:  # noqa: B027
        """Hook: a subscription was registered (``new_topic``: the union grew)."""

    def _topics_changed(self) -> None:  # noqa: B027
        """Hook: the union of topics shrank."""

    async def _wait_live(self, sub: Subscription) -> None:  # noqa: B027
        """Hook behind :meth:`Subscription.ready`; the local bus is always live."""

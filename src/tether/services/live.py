"""Live streams: what is committed, as it is committed, resumable by cursor, exactly once.

Two feeds: a session's events (cursor: ``seq``, gapless per session) and a tenant's memory
change feed (cursor: ``lsn``, increasing in commit order). The bus only says *that* a feed
moved (a ``session:<id>`` change carries the last ``seq``, a ``memory`` change its
``lsn``); the items themselves are read from the store, which is the truth. So that N
followers of one feed cost one store read per change and not N, each process keeps one
**tail** per followed feed: a task subscribed to the feed's topic that, for every
notification (and after every bus gap or overflow), reads the store after its own cursor
and hands the items to every follower's queue. Whatever the bus loses, the tail reads
back, so its output has no gap.

A follower with cursor ``c`` joins a tail (whose cursor is then ``t``), then reads its
backlog ``(c, x]`` from the store (``x >= t``: the read happens after the join), then takes
batches from its queue, skipping what it already has: every item after ``c``, once, in
cursor order. A follower more than ``max_queue`` items behind is dropped
(:class:`LiveOverflow`, with the cursor to resume from); the others are not slowed.

Across replicas this works unchanged: the Redis bus wakes every replica's tails, and each
reads the shared store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from tether.bus import Bus, BusGap, BusOverflow
from tether.domain.changes import MEMORY_TOPIC, SESSIONS_TOPIC, session_topic
from tether.domain.records import Event, MemoryChange, Session
from tether.domain.time import iso_ms
from tether.errors import NotFound
from tether.services.context import RequestContext
from tether.store.base import Store

__all__ = ["LiveEnded", "LiveOverflow", "LiveService"]

log = logging.getLogger("tether.services.live")

#: Items read from the store per page (backlog and tail reads).
_PAGE: Final = 500
#: Session summaries a sessions follower remembers having sent (to send none twice).
_SENT_MAX: Final = 100_000
#: Items a follower may hold undelivered before it is dropped.
DEFAULT_MAX_QUEUE: Final = 10_000

T = TypeVar("T", Event, MemoryChange, dict[str, Any])


class LiveEnded(Exception):
    """The followed feed is gone (its session was deleted); ``cursor`` is the last one
    yielded."""

    def __init__(self, cursor: int) -> None:
        super().__init__(f"the session was deleted; the stream ended after {cursor}")
        self.cursor = cursor


class LiveOverflow(Exception):
    """A follower fell too far behind and was dropped; resume from ``cursor``."""

    def __init__(self, cursor: int) -> None:
        super().__init__(f"fell behind and was dropped; resume after {cursor}")
        self.cursor = cursor


@dataclass(frozen=True, slots=True)
class _Feed(Generic[T]):
    """What a tail follows: the bus topic, where the store's feed ends now, a page of
    items after a cursor, and each item's cursor."""

    topic: str
    tenant_id: str
    head: Callable[[], Awaitable[int]]
    page: Callable[[int], Awaitable[list[T]]]
    cursor: Callable[[T], int]
    #: Cursors step by one (a session's seq): a skipped value is a hole to read back.
    gapless: bool


@dataclass(eq=False, slots=True)
class _Follower(Generic[T]):
    max_queue: int
    queue: deque[list[T]]
    wakeup: asyncio.Event
    held: int = 0
    overflowed: bool = False
    ended: bool = False

    def offer(self, batch: list[T]) -> None:
        if self.overflowed:
            return
        if self.held + len(batch) > self.max_queue:
            self.overflowed = True
            self.queue.clear()
            self.held = 0
        else:
            self.queue.append(batch)
            self.held += len(batch)
        self.wakeup.set()


class _Reader:
    """A background task shared by a feed's followers in this process: ``start`` runs
    :meth:`_run`; ``ready`` is set once its bus subscription is live."""

    def __init__(self, live: LiveService, name: str) -> None:
        self.live = live
        self.name = name
        self.cursor = 0
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"tether-{self.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        raise NotImplementedError


class _Tail(_Reader, Generic[T]):
    """One feed's reader in this process, shared by its followers."""

    def __init__(self, live: LiveService, feed: _Feed[T]) -> None:
        super().__init__(live, f"tail-{feed.topic}")
        self.feed: _Feed[T] = feed
        self.followers: set[_Follower[T]] = set()

    async def _run(self) -> None:
        feed = self.feed
        first = True
        while True:
            try:
                async with self.live.bus.subscribe([feed.topic], tenant_id=feed.tenant_id) as sub:
                    if first:  # live now: start from the store's end, later reads are deltas
                        self.cursor = await feed.head()
                        first = False
                        self.ready.set()
                    else:
                        await self._catch_up()
                    while True:
                        try:
                            async for change in sub:
                                if change.cursor > self.cursor:
                                    await self._catch_up()
                            return  # the bus closed
                        except BusGap:
                            await self._catch_up()
            except BusOverflow:
                continue  # subscribe again and read what was missed
            except NotFound:  # the session was deleted: its streams end
                self.live._forget(self)
                self.ready.set()
                for follower in list(self.followers):
                    follower.ended = True
                    follower.wakeup.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live tail of %s failed; retrying", feed.topic, exc_info=True)
                self.ready.set()  # followers read their backlog from the store meanwhile
                await asyncio.sleep(1.0)

    async def _catch_up(self) -> None:
        """Read every item after the tail's cursor and hand it to the followers."""
        while True:
            items = await self.feed.page(self.cursor)
            if not items:
                return
            self.cursor = self.feed.cursor(items[-1])
            for follower in list(self.followers):
                follower.offer(items)
            if len(items) < _PAGE:
                return


class _SessionsHub(_Reader):
    """One tenant's session summaries in this process, shared by its followers: each
    ``sessions`` change names a session; the hub reads the named sessions (all the changes
    waiting at once, one read) and hands ``{"change", "cursor", "session"}`` items to its
    followers. After a bus gap it reads every session changed since the latest it saw."""

    def __init__(self, live: LiveService, tenant_id: str) -> None:
        super().__init__(live, f"sessions-{tenant_id}")  # cursor: the latest updated_at
        self.tenant_id = tenant_id
        self.followers: set[_Follower[dict[str, Any]]] = set()

    async def _run(self) -> None:
        bus = self.live.bus
        while True:
            try:
                async with bus.subscribe([SESSIONS_TOPIC], tenant_id=self.tenant_id) as sub:
                    self.ready.set()
                    while True:
                        try:
                            pending = {}
                            change = await sub.__anext__()
                            pending[change.data.get("id")] = (change.kind, change.cursor)
                            while sub.qsize():  # what else is waiting: one read for all
                                change = await sub.__anext__()
                                pending[change.data.get("id")] = (change.kind, change.cursor)
                            await self._hand_out(pending)
                        except StopAsyncIteration:
                            return
                        except BusGap:
                            await self._catch_up()
            except BusOverflow:
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("sessions hub of %s failed; retrying", self.tenant_id, exc_info=True)
                self.ready.set()
                await asyncio.sleep(1.0)

    async def _hand_out(self, pending: dict[Any, tuple[str, int]]) -> None:
        ids = [str(i) for i, (kind, _) in pending.items() if i and kind != "session.deleted"]
        found = {s.id: s for s in await self.live.store.sessions_by_id(self.tenant_id, ids)}
        items: list[dict[str, Any]] = []
        for sid, (kind, cursor) in pending.items():
            if kind == "session.deleted":
                items.append({"change": kind, "cursor": cursor, "session": {"id": sid}})
            elif sid in found:
                items.append(_summary(found[sid], kind))
        self._offer(items)

    async def _catch_up(self) -> None:
        async for items in self.live._sessions_since(self.tenant_id, self.cursor):
            self._offer(items)

    def _offer(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        self.cursor = max(self.cursor, *(item["cursor"] for item in items))
        for follower in list(self.followers):
            follower.offer(items)


def _summary(session: Session, kind: str = "session.updated") -> dict[str, Any]:
    """A live-list item: the change, its cursor (``updated_at`` in ms) and the session."""
    return {"change": kind, "cursor": iso_ms(session.updated_at), "session": session}


class LiveService:
    """Follows sessions and memory feeds for live streams (WebSocket and SSE).

    Args:
        store: where items are read from.
        bus: what says a feed moved.
        max_page_bytes: the page size limit of store reads (bytes of stored JSON).
        max_queue: items a follower may hold undelivered before it is dropped.
    """

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        max_page_bytes: int,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.store = store
        self.bus = bus
        self.max_page_bytes = max_page_bytes
        self.max_queue = max_queue
        self._tails: dict[tuple[str, str], _Tail[Any]] = {}
        self._hubs: dict[str, _SessionsHub] = {}

    @property
    def followers(self) -> int:
        """Followers in this process, all feeds."""
        return sum(len(t.followers) for t in self._tails.values())

    async def follow_session(
        self, ctx: RequestContext, session_id: str, *, after: int
    ) -> AsyncIterator[list[Event]]:
        """Batches of the session's events with ``seq > after``, in order, each event once;
        the backlog from the store first, then live, without end.

        Raises:
            NotFound: no such session in the caller's tenant (before anything is yielded).
            LiveOverflow: (while iterating) the caller fell ``max_queue`` events behind; its
                ``cursor`` is the last ``seq`` yielded.
            LiveEnded: (while iterating) the session was deleted.
        """
        await self.store.get_session(ctx.tenant_id, session_id)  # NotFound: 404
        tenant = ctx.tenant_id

        async def head() -> int:
            return (await self.store.get_session(tenant, session_id)).counters.event_count

        async def page(after: int) -> list[Event]:
            items, _ = await self.store.list_events(
                tenant, session_id, after_seq=after, kinds=(), limit=_PAGE,
                max_bytes=self.max_page_bytes,
            )  # fmt: skip
            return items

        feed = _Feed(session_topic(session_id), tenant, head, page, _seq, gapless=True)
        return self._follow(feed, after)

    async def follow_memory(
        self, ctx: RequestContext, *, after: int
    ) -> AsyncIterator[list[MemoryChange]]:
        """Batches of the tenant's memory changes with ``lsn > after`` (``add``,
        ``update``, ``delete``, ``purge``), in lsn order, each once; for a key limited to
        namespace prefixes only the changes under them. The backlog first, then live.

        Raises:
            LiveOverflow: (while iterating) the caller fell ``max_queue`` changes behind;
                its ``cursor`` is the last ``lsn`` yielded.
        """
        tenant = ctx.tenant_id

        async def page(after: int) -> list[MemoryChange]:
            items, _ = await self.store.memory_changes(
                tenant, after=after, limit=_PAGE, max_bytes=self.max_page_bytes
            )
            return items

        feed = _Feed(MEMORY_TOPIC, tenant, self.store.memory_head, page, _lsn, gapless=False)
        batches = self._follow(feed, after)
        if not ctx.namespaces:
            return batches
        return _only(batches, lambda c: ctx.may_use(c.namespace))

    async def follow_sessions(
        self, ctx: RequestContext, *, after: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of the tenant's session summaries as sessions are created, updated,
        ended and deleted: ``{"change", "cursor", "session"}`` (``cursor`` the session's
        ``updated_at`` in ms; a deleted session is ``{"id"}``). With ``after``, first every
        session changed at or after that ms (the store's current state of each; deletions
        in between are not replayed); without, live changes only. A summary is not sent
        twice in the same version.

        Raises:
            LiveOverflow: (while iterating) the caller fell ``max_queue`` items behind.
        """
        return self._follow_sessions(ctx.tenant_id, after)

    async def _follow_sessions(
        self, tenant_id: str, after: int | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        follower: _Follower[dict[str, Any]] = _Follower(self.max_queue, deque(), asyncio.Event())
        hub = self._hubs.get(tenant_id)
        if hub is None:
            hub = self._hubs[tenant_id] = _SessionsHub(self, tenant_id)
            hub.start()
        hub.followers.add(follower)
        sent: OrderedDict[str, int] = OrderedDict()  # id -> cursor last sent (bounded)
        cursor = after or 0

        def fresh(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for item in items:
                sid = (
                    item["session"]["id"]
                    if isinstance(item["session"], dict)
                    else item["session"].id
                )
                key = f"{item['change'] == 'session.deleted'}:{sid}"
                if sent.get(key) == item["cursor"]:
                    continue
                sent[key] = item["cursor"]
                sent.move_to_end(key)
                if len(sent) > _SENT_MAX:
                    sent.popitem(last=False)
                out.append(item)
            return out

        try:
            await hub.ready.wait()
            if after is not None:
                async for items in self._sessions_since(tenant_id, after):
                    if kept := fresh(items):
                        cursor = max(cursor, *(i["cursor"] for i in kept))
                        yield kept
            while True:
                if follower.overflowed:
                    raise LiveOverflow(cursor)
                if not follower.queue:
                    follower.wakeup.clear()
                    await follower.wakeup.wait()
                    continue
                batch = follower.queue.popleft()
                follower.held -= len(batch)
                if kept := fresh(batch):
                    cursor = max(cursor, *(i["cursor"] for i in kept))
                    yield kept
        finally:
            hub.followers.discard(follower)
            if not hub.followers and self._hubs.get(tenant_id) is hub:
                del self._hubs[tenant_id]
                await hub.stop()

    async def _sessions_since(
        self, tenant_id: str, since_ms: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of summaries of the sessions changed at or after ``since_ms``."""
        after_id = ""
        since = since_ms - 1  # at or after: (updated_at, id) > (since_ms - 1, "")
        while True:
            page = await self.store.sessions_changed(
                tenant_id, since_ms=since, after_id=after_id, limit=_PAGE
            )
            if not page:
                return
            yield [_summary(s) for s in page]
            since, after_id = iso_ms(page[-1].updated_at), page[-1].id
            if len(page) < _PAGE:
                return

    async def _follow(self, feed: _Feed[T], cursor: int) -> AsyncIterator[list[T]]:
        follower: _Follower[T] = _Follower(self.max_queue, deque(), asyncio.Event())
        tail = await self._join(feed, follower)
        try:
            # The backlog, read after joining: nothing falls in between.
            async for items in self._read(feed, cursor, until=None):
                cursor = feed.cursor(items[-1])
                yield items
            while True:
                if follower.overflowed:
                    raise LiveOverflow(cursor)
                if follower.ended and not follower.queue:
                    raise LiveEnded(cursor)
                if not follower.queue:
                    follower.wakeup.clear()
                    await follower.wakeup.wait()
                    continue
                batch = follower.queue.popleft()
                follower.held -= len(batch)
                # The tail's own list when nothing is skipped: the same object for every
                # follower, so a transport can serialise it once for all of them.
                fresh = (
                    batch
                    if feed.cursor(batch[0]) > cursor
                    else [item for item in batch if feed.cursor(item) > cursor]
                )
                if fresh and feed.gapless and feed.cursor(fresh[0]) > cursor + 1:
                    # Never expected (the tail reads every item): read the hole back.
                    async for items in self._read(feed, cursor, until=feed.cursor(fresh[0]) - 1):
                        cursor = feed.cursor(items[-1])
                        yield items
                if fresh:
                    cursor = feed.cursor(fresh[-1])
                    yield fresh
        except NotFound:  # deleted while its backlog was read
            raise LiveEnded(cursor) from None
        finally:
            await self._leave(tail, follower)

    async def _read(
        self, feed: _Feed[T], after: int, *, until: int | None
    ) -> AsyncIterator[list[T]]:
        """Pages of stored items with ``after < cursor`` (``<= until`` when given)."""
        while True:
            items = await feed.page(after)
            if until is not None:
                items = [item for item in items if feed.cursor(item) <= until]
            if not items:
                return
            after = feed.cursor(items[-1])
            yield items

    async def _join(self, feed: _Feed[T], follower: _Follower[T]) -> _Tail[T]:
        key = (feed.topic, feed.tenant_id)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = _Tail(self, feed)
            tail.start()
        tail.followers.add(follower)
        await tail.ready.wait()
        return tail

    def _forget(self, tail: _Tail[Any]) -> None:
        """Drop a tail that ended by itself (new followers start a new one)."""
        key = (tail.feed.topic, tail.feed.tenant_id)
        if self._tails.get(key) is tail:
            del self._tails[key]

    async def _leave(self, tail: _Tail[T], follower: _Follower[T]) -> None:
        tail.followers.discard(follower)
        key = (tail.feed.topic, tail.feed.tenant_id)
        if not tail.followers:
            if self._tails.get(key) is tail:
                del self._tails[key]
            await tail.stop()

    async def close(self) -> None:
        """Stop every tail (followers' iterators then wait forever: close them first)."""
        tails, self._tails = list(self._tails.values()), {}
        for tail in tails:
            await tail.stop()
        hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            await hub.stop()


def _seq(event: Event) -> int:
    return event.seq


def _lsn(change: MemoryChange) -> int:
    return change.lsn


async def _only(
    batches: AsyncIterator[list[MemoryChange]], keep: Callable[[MemoryChange], bool]
) -> AsyncIterator[list[MemoryChange]]:
    """The batches with only the items ``keep`` accepts (empty batches left out)."""
    try:
        async for batch in batches:
            kept = [item for item in batch if keep(item)]
            if kept:
                yield kept
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()

"""Live streams: a session's events as they are committed, resumable by cursor, exactly once.

The bus only says *that* a session changed (its ``session:<id>`` topic carries the last
``seq`` appended); the events themselves are read from the store, which is the truth. So
that N followers of one session cost one store read per change and not N, each process
keeps one **tail** per followed ``(tenant, session)``: a task subscribed to the session's
topic that, for every notification (and after every bus gap or overflow), reads the store
after its own cursor and hands the events to every follower's queue. Whatever the bus
loses, the tail reads back, so its output is gapless.

A follower with cursor ``c`` joins a tail (whose cursor is then ``t``), then reads its
backlog ``(c, x]`` from the store (``x >= t``: the read happens after the join), then takes
batches from its queue, skipping what it already has: every event after ``c``, once, in
``seq`` order. A follower more than ``max_queue`` events behind is dropped
(:class:`LiveOverflow`, with the cursor to resume from); the others are not slowed.

Across replicas this works unchanged: the Redis bus wakes every replica's tails, and each
reads the shared store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from tether.bus import Bus, BusGap, BusOverflow
from tether.domain.changes import session_topic
from tether.domain.records import Event
from tether.services.context import RequestContext
from tether.store.base import Store

__all__ = ["LiveOverflow", "LiveService"]

log = logging.getLogger("tether.services.live")

#: Events read from the store per page (backlog and tail reads).
_PAGE: Final = 500
#: Events a follower may hold undelivered before it is dropped.
DEFAULT_MAX_QUEUE: Final = 10_000


class LiveOverflow(Exception):
    """A follower fell too far behind and was dropped; resume from ``cursor``."""

    def __init__(self, cursor: int) -> None:
        super().__init__(f"fell behind and was dropped; resume after seq {cursor}")
        self.cursor = cursor


@dataclass(eq=False, slots=True)
class _Follower:
    max_queue: int
    queue: deque[list[Event]]
    wakeup: asyncio.Event
    held: int = 0
    overflowed: bool = False

    def offer(self, batch: list[Event]) -> None:
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


class _Tail:
    """One session's reader in this process, shared by its followers."""

    def __init__(self, live: LiveService, tenant_id: str, session_id: str) -> None:
        self.live = live
        self.tenant_id = tenant_id
        self.session_id = session_id
        self.followers: set[_Follower] = set()
        self.cursor = 0
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"tether-tail-{self.session_id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        topic = session_topic(self.session_id)
        first = True
        while True:
            try:
                async with self.live.bus.subscribe([topic], tenant_id=self.tenant_id) as sub:
                    if first:  # live now: start from the store's end, later reads are deltas
                        detail = await self.live.store.get_session(self.tenant_id, self.session_id)
                        self.cursor = detail.counters.event_count
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
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "live tail of session %s failed; retrying", self.session_id, exc_info=True
                )
                self.ready.set()  # followers read their backlog from the store meanwhile
                await asyncio.sleep(1.0)

    async def _catch_up(self) -> None:
        """Read every event after the tail's cursor and hand it to the followers."""
        while True:
            items, _ = await self.live.store.list_events(
                self.tenant_id,
                self.session_id,
                after_seq=self.cursor,
                kinds=(),
                limit=_PAGE,
                max_bytes=self.live.max_page_bytes,
            )
            if not items:
                return
            self.cursor = items[-1].seq
            for follower in list(self.followers):
                follower.offer(items)
            if len(items) < _PAGE:
                return


class LiveService:
    """Follows sessions for live streams (WebSocket and SSE).

    Args:
        store: where events are read from.
        bus: what says a session changed.
        max_page_bytes: the page size limit of store reads (bytes of stored JSON).
        max_queue: events a follower may hold undelivered before it is dropped.
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
        self._tails: dict[tuple[str, str], _Tail] = {}

    @property
    def followers(self) -> int:
        """Followers in this process, all sessions."""
        return sum(len(t.followers) for t in self._tails.values())

    async def follow_session(
        self, ctx: RequestContext, session_id: str, *, after: int
    ) -> AsyncIterator[list[Event]]:
        """Batches of the session's events with ``seq > after``, in order, each event once;
        the backlog from the store first, then live, without end.

        Raises:
            NotFound: no such session in the caller's tenant (before anything is yielded).
            LiveOverflow: the caller fell ``max_queue`` events behind; its ``cursor`` is
                the last ``seq`` yielded.
        """
        await self.store.get_session(ctx.tenant_id, session_id)  # NotFound: 404
        return self._follow(ctx.tenant_id, session_id, after)

    async def _follow(
        self, tenant_id: str, session_id: str, cursor: int
    ) -> AsyncIterator[list[Event]]:
        follower = _Follower(self.max_queue, deque(), asyncio.Event())
        tail = await self._join(tenant_id, session_id, follower)
        try:
            # The backlog, read after joining: nothing falls in between.
            async for items in self._read(tenant_id, session_id, cursor, until=None):
                cursor = items[-1].seq
                yield items
            while True:
                if follower.overflowed:
                    raise LiveOverflow(cursor)
                if not follower.queue:
                    follower.wakeup.clear()
                    await follower.wakeup.wait()
                    continue
                batch = follower.queue.popleft()
                follower.held -= len(batch)
                fresh = _after(batch, cursor)
                if fresh and fresh[0].seq > cursor + 1:  # never expected: read the hole
                    hole = self._read(tenant_id, session_id, cursor, until=fresh[0].seq - 1)
                    async for items in hole:
                        cursor = items[-1].seq
                        yield items
                if fresh:
                    cursor = fresh[-1].seq
                    yield fresh
        finally:
            await self._leave(tail, follower)

    async def _read(
        self, tenant_id: str, session_id: str, after: int, *, until: int | None
    ) -> AsyncIterator[list[Event]]:
        """Pages of stored events with ``after < seq`` (``<= until`` when given)."""
        while True:
            items, _ = await self.store.list_events(
                tenant_id,
                session_id,
                after_seq=after,
                kinds=(),
                limit=_PAGE,
                max_bytes=self.max_page_bytes,
            )
            if until is not None:
                items = [e for e in items if e.seq <= until]
            if not items:
                return
            after = items[-1].seq
            yield items

    async def _join(self, tenant_id: str, session_id: str, follower: _Follower) -> _Tail:
        key = (tenant_id, session_id)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = _Tail(self, tenant_id, session_id)
            tail.start()
        tail.followers.add(follower)
        await tail.ready.wait()
        return tail

    async def _leave(self, tail: _Tail, follower: _Follower) -> None:
        tail.followers.discard(follower)
        key = (tail.tenant_id, tail.session_id)
        if not tail.followers and self._tails.get(key) is tail:
            del self._tails[key]
            await tail.stop()

    async def close(self) -> None:
        """Stop every tail (followers' iterators then wait forever: close them first)."""
        tails, self._tails = list(self._tails.values()), {}
        for tail in tails:
            await tail.stop()


def _after(batch: list[Event], cursor: int) -> list[Event]:
    """The events of ``batch`` with ``seq > cursor`` (a batch is in ``seq`` order)."""
    if not batch or batch[0].seq > cursor:
        return batch
    return [e for e in batch if e.seq > cursor]

"""The ``metrics`` live channel: a snapshot of a tenant's activity every second, summed
over every replica.

Each replica counts what it committed (events and error events, from the change records
of its own group commits: exact, and nothing is counted twice) and how many WebSocket
connections of each tenant it holds, and publishes that on the bus's ``metrics`` topic
once a second (only for tenants with something to say). Every replica's subscribers of a
tenant share one **hub** that listens to those reports and, once a second, adds to them
what only the store knows (active sessions, the embedding backlog) and hands the snapshot
to its followers:

``{"cursor" (ms), "at", "interval_s", "events", "events_per_s", "errors", "errors_per_s",
"active_sessions", "index_backlog", "ws_connections", "replicas"}``

``events``/``errors`` are the counts the replicas reported since the previous snapshot (so
their sum over snapshots is every event committed); the rates divide them by the seconds
since the previous snapshot. ``ws_connections`` sums the latest report of each replica
heard from in the last 3 s (``replicas`` counts those). A follower that does not keep up
keeps only the 10 latest snapshots: a metrics view wants the present, not a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tether.bus import Bus, BusMissed
from tether.domain.changes import METRICS_TOPIC, Change
from tether.domain.time import iso, new_id, now_ms
from tether.services.context import RequestContext
from tether.store.base import Store

__all__ = ["LiveMetrics"]

log = logging.getLogger("tether.services.live_metrics")

#: Seconds between snapshots (and between a replica's reports).
INTERVAL_S: Final = 1.0
#: A replica not heard from for this many intervals no longer counts.
_STALE_INTERVALS: Final = 3
#: Snapshots a slow follower keeps (the latest).
_KEEP: Final = 10


@dataclass(eq=False, slots=True)
class _Follower:
    queue: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_KEEP))
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class _Hub:
    """One tenant's snapshots in this process, shared by its followers."""

    def __init__(self, metrics: LiveMetrics, tenant_id: str) -> None:
        self.metrics = metrics
        self.tenant_id = tenant_id
        self.followers: set[_Follower] = set()
        self.events = 0
        self.errors = 0
        self.replicas: dict[str, tuple[float, int]] = {}  # replica -> (heard at, connections)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._tick())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _listen(self) -> None:
        bus = self.metrics.bus
        while True:
            try:
                async with bus.subscribe([METRICS_TOPIC], tenant_id=self.tenant_id) as sub:
                    async for change in sub:
                        data = change.data
                        self.events += int(data.get("events", 0))
                        self.errors += int(data.get("errors", 0))
                        replica = str(data.get("replica", ""))
                        self.replicas[replica] = (time.monotonic(), int(data.get("connections", 0)))
                    return
            except BusMissed:
                continue  # a report or two lost: the next ones come within a second
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("metrics hub of %s failed; retrying", self.tenant_id, exc_info=True)
                await asyncio.sleep(INTERVAL_S)

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(INTERVAL_S - (time.monotonic() - last) % INTERVAL_S)
            now = time.monotonic()
            elapsed, last = now - last, now
            events, self.events = self.events, 0
            errors, self.errors = self.errors, 0
            stale = now - _STALE_INTERVALS * INTERVAL_S
            live = {r: c for r, (at, c) in self.replicas.items() if at >= stale}
            self.replicas = {r: v for r, v in self.replicas.items() if v[0] >= stale}
            try:
                store = self.metrics.store
                active = await store.active_sessions(self.tenant_id)
                backlog = (await store.memory_stats(self.tenant_id)).index_backlog
            except Exception:
                log.warning("metrics snapshot of %s failed", self.tenant_id, exc_info=True)
                continue
            at = now_ms()
            snapshot = {
                "cursor": at,
                "at": iso(at),
                "interval_s": round(elapsed, 3),
                "events": events,
                "events_per_s": round(events / elapsed, 1),
                "errors": errors,
                "errors_per_s": round(errors / elapsed, 1),
                "active_sessions": active,
                "index_backlog": backlog,
                "ws_connections": sum(live.values()),
                "replicas": len(live),
            }
            for follower in list(self.followers):
                follower.queue.append(snapshot)
                follower.wakeup.set()


class LiveMetrics:
    """Counts what this replica commits, reports it on the bus, and serves snapshots.

    Args:
        store: for the counts only the store knows (active sessions, backlog).
        bus: where replicas report to each other.
    """

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.replica_id = new_id()
        self.connections: Counter[str] = Counter()
        self._counts: dict[str, list[int]] = {}
        self._hubs: dict[str, _Hub] = {}
        self._task: asyncio.Task[None] | None = None

    def count(self, changes: Sequence[Change]) -> None:
        """Count the events of this replica's committed changes (call after each commit)."""
        for change in changes:
            if change.kind == "events" and change.topic.startswith("session:"):
                slot = self._counts.setdefault(change.tenant_id, [0, 0])
                slot[0] += change.cursor - int(change.data.get("first", change.cursor)) + 1
                slot[1] += int(change.data.get("errors", 0))

    def connected(self, tenant_id: str) -> None:
        self.connections[tenant_id] += 1

    def disconnected(self, tenant_id: str) -> None:
        self.connections[tenant_id] -= 1
        if self.connections[tenant_id] <= 0:
            del self.connections[tenant_id]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._report(), name="tether-metrics-report")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            await hub.stop()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            counts, self._counts = self._counts, {}
            at = now_ms()
            changes = [
                Change(
                    METRICS_TOPIC,
                    tenant,
                    "metrics.replica",
                    at,
                    {
                        "replica": self.replica_id,
                        "events": counts.get(tenant, (0, 0))[0],
                        "errors": counts.get(tenant, (0, 0))[1],
                        "connections": self.connections.get(tenant, 0),
                    },
                )
                for tenant in counts.keys() | self.connections.keys()
            ]
            if changes:
                self.bus.publish_nowait(changes)

    async def follow(self, ctx: RequestContext) -> AsyncIterator[dict[str, Any]]:
        """The caller's tenant's snapshots, one a second, without end (see the module
        docstring for the fields)."""
        follower = _Follower()
        hub = self._hubs.get(ctx.tenant_id)
        if hub is None:
            hub = self._hubs[ctx.tenant_id] = _Hub(self, ctx.tenant_id)
            hub.start()
        hub.followers.add(follower)
        try:
            while True:
                if not follower.queue:
                    follower.wakeup.clear()
                    await follower.wakeup.wait()
                    continue
                yield follower.queue.popleft()
        finally:
            hub.followers.discard(follower)
            if not hub.followers and self._hubs.get(ctx.tenant_id) is hub:
                del self._hubs[ctx.tenant_id]
                await hub.stop()

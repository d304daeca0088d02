"""The container: builds, starts and stops everything a Tether process runs on.

One place wires the store (by URL), the bus, the embedder, the in-process indexes and the
services, for the server, the CLI and (later) MCP, OTLP and the runtime (ARCHITECTURE §9).

After every group commit the store hands its change records to :meth:`Container._on_commit`,
which publishes them on the bus. Every replica (this one too) listens to the ``memory``
topic: a change brings its indexes up to date from the store's feed and wakes its indexer,
so a memory written through any replica is searchable through all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tether.bus import Bus, BusMissed, build_bus
from tether.config import Settings
from tether.domain.changes import MEMORY_TOPIC, Change
from tether.errors import Unavailable
from tether.services import EventService, SessionService
from tether.services.analytics import AnalyticsService
from tether.services.doctor import with_hint
from tether.services.keys import AuditLog, Authenticator, KeyService
from tether.services.live import LiveService
from tether.services.live_metrics import LiveMetrics
from tether.services.memory import MemoryService, build_memory
from tether.services.metrics import Metrics
from tether.services.prices import PriceBook, load_price_file
from tether.services.ratelimit import RateLimiter
from tether.store.base import Store
from tether.store.shared.events import ROWS_TOPIC

__all__ = ["Container", "open_store", "preflight"]

log = logging.getLogger("tether.container")

# Memory changes that leave an embedding job behind (the indexer has work).
_QUEUES_EMBEDDING = frozenset({"memory.add", "memory.update"})
# Wait this long (s) before listening again after the bus subscription failed.
_RELISTEN_S = 1.0


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres_backend() -> Any:
    try:
        import tether.store.postgres as backend
    except ImportError as exc:  # psycopg is the postgres extra
        raise Unavailable(
            f"PostgreSQL needs the postgres extra ({exc.name} is missing): "
            "pip install 'tether[postgres]'"
        ) from None
    return backend


def open_store(settings: Settings) -> Store:
    """The store ``settings.store_url`` names (not started).

    Raises:
        ValueError: an unsupported URL.
        Unavailable: a PostgreSQL URL without the postgres extra installed.
    """
    url = settings.store_url
    if url.startswith("sqlite:"):
        from tether.store.sqlite import SQLiteStore

        return SQLiteStore(
            settings.db_path,
            synchronous=settings.sqlite_synchronous,
            readers=settings.reader_pool_size,
        )
    if url.startswith(_POSTGRES_SCHEMES):
        store: Store = _postgres_backend().PostgresStore(url, readers=settings.reader_pool_size)
        return store
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://...")


def preflight(settings: Settings) -> None:
    """Check, before anything starts, that the configured store can be opened (the SQLite
    file's folder and file are writable; PostgreSQL answers and accepts the login) and that
    the price file (``TETHER_PRICES_FILE``), if any, reads.

    Raises:
        Unavailable: either cannot; the message is one line naming the cause (never the
            password).
        ValueError: an unsupported URL.
    """
    if settings.prices_file is not None:
        try:
            load_price_file(settings.prices_file)
        except ValueError as exc:
            raise Unavailable(str(exc)) from None
    url = settings.store_url
    if url.startswith("sqlite:"):
        from tether.store.sqlite import check_writable

        check_writable(settings.db_path)
    elif url.startswith(_POSTGRES_SCHEMES):
        _postgres_backend().check_reachable(url)
    else:
        raise ValueError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://...")


class Container:
    """Everything a process serves with, built from ``settings``.

    Args:
        settings: configuration.
        store: an already-built store (tests); otherwise :func:`open_store`.
        bus: an already-built bus (tests); otherwise from ``settings.redis_url``.
    """

    def __init__(
        self, settings: Settings, *, store: Store | None = None, bus: Bus | None = None
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self.bus = bus if bus is not None else build_bus(settings.redis_url)
        self.memory: MemoryService
        self.memory, self.indexer = build_memory(self.store, settings)
        self.sessions = SessionService(
            self.store,
            max_state_bytes=settings.max_state_bytes,
            max_page_bytes=settings.max_page_bytes,
        )
        self.audit = AuditLog(self.store)
        file_prices = load_price_file(settings.prices_file) if settings.prices_file else None
        self.prices = PriceBook(self.store, self.audit, file_prices)
        self.events = EventService(self.store, self.prices, max_page_bytes=settings.max_page_bytes)
        self.analytics = AnalyticsService(self.store, max_page_bytes=settings.max_page_bytes)
        self.live = LiveService(
            self.store,
            self.bus,
            max_page_bytes=settings.max_page_bytes,
            max_queue=settings.live_max_queue,
        )
        self.live_metrics = LiveMetrics(self.store, self.bus)
        # Prometheus metrics (docs/metrics.md); None when TETHER_METRICS_ENABLED is off.
        self.metrics: Metrics | None = None
        if settings.metrics_enabled:
            self.metrics = Metrics(self.store, max_names=settings.metrics_max_names)
            self.memory.on_search = self.metrics.recalled
        self.memory.audit = self.audit
        self.authenticator = Authenticator(self.store, settings, self.audit)
        self.keys = KeyService(self.store, self.audit, self.authenticator)
        self._redis: Any = None
        if settings.redis_url is not None:
            from redis.asyncio import Redis  # the redis extra; imported only when configured

            self._redis = Redis.from_url(settings.redis_url, socket_timeout=1.0)
        self.limiter = RateLimiter(settings, self._redis)
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store (migrations), start the bus, load the indexes, start the indexer
        and the bus listener."""
        self.store.on_commit = self._on_commit
        await self.store.start()
        await self.bus.start()
        await self.memory.load_index()
        self.indexer.start()
        await self.authenticator.start()
        await self.live_metrics.start()
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name="memory-feed-listener"
        )

    async def stop(self) -> None:
        """Stop the listener and the indexer, write pending statistics, close the bus and
        the store (queued writes finish first)."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self.live.close()
        await self.live_metrics.stop()
        await self.indexer.stop()
        await self.memory.drain()
        await self.authenticator.stop()
        if self._redis is not None:
            await self._redis.aclose()
        await self.bus.close()
        await self.store.close()

    async def checks(self) -> list[dict[str, Any]]:
        """The readiness checks beyond the store: the bus and the embedder."""
        return [with_hint(await self.bus.check()), with_hint(await self.memory.embedder_check())]

    def _on_commit(self, changes: list[Change]) -> None:
        """After a group commit (on the event loop): publish its changes; wake the
        indexer at once when they queued embedding work (the bus would too, a hop later).
        The inserted rows the store handed over (:data:`ROWS_TOPIC`) are only counted by
        the metrics: they never leave this process."""
        published = [c for c in changes if c.topic != ROWS_TOPIC]
        self.bus.publish_nowait(published)
        self.live_metrics.count(published)
        if any(c.kind in _QUEUES_EMBEDDING for c in published):
            self.indexer.wake()
        if self.metrics is not None:
            try:
                self.metrics.committed(changes)
            except Exception:  # a counting bug must not stop the change feed
                log.exception("metrics: a group commit was not counted")

    async def _listen(self) -> None:
        """Follow the ``memory`` topic of every replica: catch the indexes up from the
        store's feed (by lsn, so a missed notification costs nothing but latency) and
        wake the indexer when another replica queued embedding work."""
        while True:
            try:
                async with self.bus.subscribe([MEMORY_TOPIC]) as sub:
                    await self.memory.recall.follower.catch_up()
                    async for change in sub:
                        await self._apply(change)
                return  # the bus closed
            except BusMissed:
                continue  # overflow or gap: catch up from the store on resubscribing
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("memory feed listener failed; listening again")
                await asyncio.sleep(_RELISTEN_S)

    async def _apply(self, change: Change) -> None:
        if change.kind in _QUEUES_EMBEDDING:
            self.indexer.wake()
        if change.cursor > self.memory.recall.follower.lsn:
            await self.memory.recall.follower.catch_up()

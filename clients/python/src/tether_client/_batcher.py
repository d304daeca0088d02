"""The background batcher: queue → spool (durable) → server.

Two daemon threads per client, so a slow or hanging server never delays durability:

* the **spooler** wakes every ``flush_interval`` (200 ms) or when ``batch_size`` (100)
  events are queued, drains the in-memory queue, cuts it into self-contained bodies
  and writes them to the spool in one SQLite transaction;
* the **sender** sends the spool's oldest rows (merged up to ``max_batch_events``),
  deletes them once the server answers 2xx, and otherwise backs off (exponential with
  jitter, ``Retry-After`` wins) behind the circuit breaker. What each answer means,
  and how a refused event is isolated into the dead letters so that it never blocks
  the events after it, is :mod:`~._delivery`.

The agent's thread only appends a tuple to a :class:`collections.deque`.

Guarantee: an event is durable (survives ``kill -9`` of the agent) once the spooler has
written it, i.e. at most ``flush_interval`` plus one SQLite commit after it was logged,
and for certain once :meth:`Batcher.checkpoint` or :meth:`Batcher.flush` returned
``True``. Delivery is at-least-once; the idempotency key makes it exactly-once on the
server. An event the server refuses is not delivered but kept as a dead letter in the
spool file (:meth:`Batcher.dead_letters`).
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._batch import BatchBuilder, Op, merge
from ._breaker import CircuitBreaker
from ._config import Config
from ._deadletter import DeadLetter
from ._delivery import Deliverer
from ._spool import Spool

logger = logging.getLogger("tether_client")

_FLUSH_PROBE_INTERVAL = 0.25  # seconds between forced attempts while flush() waits


@dataclass
class _Barrier:
    """A marker in the queue; set once what was queued before it is spooled/delivered."""

    deliver: bool
    done: threading.Event = field(default_factory=threading.Event)
    high_water: int | None = None  # spool row id that must be delivered (deliver=True)


@dataclass
class BatcherStats:
    """Counters since the client started.

    Attributes:
        queued: Events logged and not yet spooled.
        spooled_events: Events in the spool (unsent, across restarts).
        sent_events: Events the server acknowledged (including duplicates).
        duplicates: Events the server already had (idempotency key seen before).
        dropped_events: Events lost: queue overflow (including events logged after
            ``close()``) or the spool cap.
        breaker: Circuit state (``closed``, ``open``, ``half_open``).
        dead_letters: Dead letters stored in the spool (across restarts): items the
            server refused, one per event (or per session end or descriptor); see
            :meth:`Client.dead_letters`. Not counted in ``dropped_events``.
    """

    queued: int
    spooled_events: int
    sent_events: int
    duplicates: int
    dropped_events: int
    breaker: str
    dead_letters: int


_LIVE: weakref.WeakSet[Batcher] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for batcher in list(_LIVE):
        batcher.close()


class Batcher:
    """Owns the queue, the spool and the two background threads.

    Args:
        config: Client settings.
        registry: Session descriptors by id (see :class:`~._batch.BatchBuilder`).
        breaker: Circuit breaker shared with direct calls.
        transport: httpx transport to use instead of the network; for tests.

    Raises:
        sqlite3.Error: The spool file cannot be opened.
    """

    def __init__(
        self,
        config: Config,
        registry: dict[str, dict[str, Any]],
        breaker: CircuitBreaker,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = config
        self._breaker = breaker
        self._builder = BatchBuilder(registry, config.batch_size)
        self._queue: collections.deque[Op | tuple[str, _Barrier]] = collections.deque()
        self.spool = Spool(config.spool_path if config.spool else None, config.spool_max_bytes)
        self._delivery = Deliverer(config, self.spool, breaker, transport)
        self._spool_wake = threading.Event()
        self._send_wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._urgent = False
        self._unspooled: list[tuple[bytes, int]] = []
        self._deliver_barriers: list[_Barrier] = []
        self._barrier_lock = threading.Lock()
        self._overflow_warned = 0.0
        self.overflow_events = 0
        rows, events, _ = self.spool.counts()
        if rows:
            logger.info(
                "tether_client: %d unsent events found in the spool %s; replaying them",
                events,
                self.spool.path,
            )
        dead = self.spool.dead_letter_count()
        if dead:
            logger.info(
                "tether_client: %d dead letters (events the server refused) in the spool "
                "%s; see client.dead_letters()",
                dead,
                self.spool.path,
            )
        self._spooler = threading.Thread(
            target=self._spool_loop, name="tether-spooler", daemon=True
        )
        self._sender = threading.Thread(target=self._send_loop, name="tether-sender", daemon=True)
        self._spooler.start()
        self._sender.start()
        _LIVE.add(self)

    # -- hot path (agent's thread) -----------------------------------------------------

    def put(self, op: Op) -> None:
        """Queue one operation. Never blocks, never raises, never does I/O."""
        queue = self._queue
        if len(queue) >= self._config.max_queue or self._stopping:
            self._overflow()
            return
        queue.append(op)
        if len(queue) >= self._config.batch_size:
            self._spool_wake.set()

    def _overflow(self) -> None:
        self.overflow_events += 1
        now = time.monotonic()
        if now - self._overflow_warned > 10.0:
            self._overflow_warned = now
            reason = "the client is closed" if self._stopping else "the queue is full"
            logger.warning(
                "tether_client dropped an event because %s (%d dropped so far)",
                reason,
                self.overflow_events,
            )

    # -- waiting ---------------------------------------------------------------------------

    def checkpoint(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event queued before this call is in the spool.

        Args:
            timeout: Seconds to wait at most; ``None`` waits forever.

        Returns:
            ``True`` when those events are durable (on disk, unless the spool is in
            memory), ``False`` on timeout or when the client is closed.
        """
        if self._stopping:
            return False
        barrier = _Barrier(deliver=False)
        self._queue.append(("b", barrier))
        self._spool_wake.set()
        return barrier.done.wait(timeout)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event queued before this call is acknowledged by the server.

        While waiting, the sender ignores its backoff and the open circuit and probes the
        server every 250 ms.

        Args:
            timeout: Seconds to wait at most; ``None`` waits forever.

        Returns:
            ``True`` when delivered (events the server refused, now dead letters, and
            events dropped by the spool cap count as done), ``False`` on timeout;
            undelivered events stay in the spool.
        """
        if self._closed:
            return self.spool_empty()
        barrier = _Barrier(deliver=True)
        self._queue.append(("b", barrier))
        self._spool_wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _FLUSH_PROBE_INTERVAL
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return barrier.done.is_set()
            if barrier.done.wait(wait):
                return True
            self._urgent = True
            self._send_wake.set()

    def spool_empty(self) -> bool:
        """Whether nothing is waiting in the queue or the spool."""
        return not self._queue and self.spool.min_id() is None

    def stats(self) -> BatcherStats:
        """Return current counters (see :class:`BatcherStats`)."""
        _, spooled, _ = self.spool.counts()
        return BatcherStats(
            queued=sum(1 for op in list(self._queue) if op[0] == "e"),
            spooled_events=spooled,
            sent_events=self._delivery.sent_events,
            duplicates=self._delivery.duplicates,
            dropped_events=self.overflow_events + self.spool.dropped_events,
            breaker=self._breaker.state.value,
            dead_letters=self.spool.dead_letter_count(),
        )

    # -- dead letters (the spool file; any thread) -------------------------------------------

    def dead_letters(self, ids: Sequence[int] | None = None) -> list[DeadLetter]:
        """Return the stored dead letters, oldest first (only ``ids`` when given)."""
        return self.spool.dead_letters(ids)

    def drop_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Delete dead letters (``ids``, or all); return how many were deleted."""
        return self.spool.drop_dead_letters(ids)

    def retry_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Move dead letters back into the spool to be sent again; return how many."""
        moved = self.spool.requeue_dead_letters(ids)
        if moved:
            self._send_wake.set()
        return moved

    # -- spooler thread --------------------------------------------------------------------

    def _spool_loop(self) -> None:
        while True:
            self._spool_wake.wait(self._config.flush_interval)
            self._spool_wake.clear()
            stopping = self._stopping
            try:
                self._spool_once()
            except Exception:  # keep the thread alive whatever happens
                logger.exception("tether_client spooler failed; will retry")
            if stopping and not self._queue:
                return

    def _spool_once(self) -> None:
        ops: list[Op] = []
        barriers: list[_Barrier] = []
        queue = self._queue
        while queue:
            op = queue.popleft()
            if op[0] == "b":
                barriers.append(op[1])  # type: ignore[arg-type]
            else:
                ops.append(op)  # type: ignore[arg-type]
        self._unspooled.extend(self._builder.build(ops))
        try:
            last_id = self.spool.append(self._unspooled)
        except Exception:
            logger.exception(
                "tether_client could not write the spool %s; %d batches kept in memory",
                self.spool.path,
                len(self._unspooled),
            )
            with self._barrier_lock:
                self._deliver_barriers.extend(b for b in barriers if b.deliver)
            return
        wrote = bool(self._unspooled)
        self._unspooled = []
        for barrier in barriers:
            if barrier.deliver:
                barrier.high_water = last_id
                with self._barrier_lock:
                    self._deliver_barriers.append(barrier)
            else:
                barrier.done.set()
        if wrote or barriers:
            self._send_wake.set()

    # -- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._closed:
            self._send_wake.wait(self._next_wait())
            self._send_wake.clear()
            if self._closed:
                return
            try:
                self._send_ready()
                self._release_barriers()
            except Exception:
                if self._closed:
                    return
                logger.exception("tether_client sender failed; will retry")
                self._delivery.schedule_retry(None)

    def _next_wait(self) -> float:
        # Sleep through the backoff and the open circuit instead of polling them; the
        # spooler and flush() wake this thread early when there is something to do.
        wait = self._config.flush_interval
        backoff = self._delivery.retry_at - time.monotonic()
        wait = max(wait, backoff, self._breaker.retry_in())
        return min(max(wait, 0.01), 30.0)

    def _may_send(self) -> bool:
        if self._urgent:
            self._urgent = False
            return True
        if time.monotonic() < self._delivery.retry_at:
            return False
        return self._breaker.allow()

    def _send_ready(self) -> None:
        while not self._closed:
            rows = self.spool.oldest(self._config.max_batch_events)
            if not rows or not self._may_send():
                return
            raw, used = merge([row.body for row in rows])
            if not self._delivery.deliver(rows[:used], raw):
                return

    def _release_barriers(self) -> None:
        with self._barrier_lock:
            if not self._deliver_barriers:
                return
            oldest = self.spool.min_id()
            keep = []
            for barrier in self._deliver_barriers:
                assert barrier.high_water is not None
                if oldest is None or oldest > barrier.high_water:
                    barrier.done.set()
                else:
                    keep.append(barrier)
            self._deliver_barriers = keep

    # -- shutdown --------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` seconds (default ``close_timeout``), then stop.

        Events still unsent stay in the spool file and are replayed by the next client
        on the same URL and key; with an in-memory spool they are lost (logged).
        Idempotent.
        """
        if self._stopping:
            return
        budget = self._config.close_timeout if timeout is None else timeout
        delivered = self.flush(budget)
        self._stopping = True
        self._spool_wake.set()
        self._spooler.join(max(budget, 1.0))
        self._closed = True
        self._send_wake.set()
        self._sender.join(1.0)
        if not delivered:
            _, events, _ = self.spool.counts()
            if self.spool.path is not None:
                logger.info(
                    "tether_client closed with %d unsent events in the spool %s; the next "
                    "client on this URL replays them",
                    events,
                    self.spool.path,
                )
            elif events:
                logger.warning(
                    "tether_client closed with %d unsent events and no spool file: lost", events
                )
        self._delivery.close()
        if not self._sender.is_alive():
            self.spool.close()
        _LIVE.discard(self)

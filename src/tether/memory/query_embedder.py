"""Query embeddings for search: a time budget, a circuit breaker, own threads, a cache.

A search embeds its query while its keyword step runs (ARCHITECTURE §4). An embedder that
hangs (an embeddings API that accepts connections and never answers) must not hold the
search: :class:`QueryEmbedder` waits at most ``budget_ms`` (``TETHER_EMBED_QUERY_TIMEOUT_MS``,
300 ms by default) for the vector, and the search then answers from BM25 with
``degraded: true``, as it does when the embedder is down. Around that:

- **Breaker** (:class:`Breaker`): after :data:`OPEN_AFTER` consecutive failed or timed-out
  query embeddings, searches stop calling the embedder for a cool-down (1 s, doubling per
  failed trial up to 30 s) and degrade at once; then one call at a time tries it
  (half-open) and a success closes it. While the indexer knows the embedder is down
  (``Indexer.embedder_down``) the call is skipped too.
- **Own threads**: calls run on a small dedicated executor (:data:`_WORKERS` threads),
  never on the event loop's default executor that ``asyncio.to_thread`` shares with the
  indexer and the vector index. A call still queued when its budget ends is cancelled
  unrun; one already running finishes in its thread (a remote embedder gives a query
  request its own short HTTP timeout, see
  :class:`~tether.memory.embedders.OpenAICompatibleEmbedder`, so the thread frees soon).
- **Cache**: vectors are kept per (model, text) in a small LRU. A call that answers after
  its budget still fills it, so the same question asked again gets its vector at once.

Everything except the embedder call itself runs on the event loop thread, so the breaker
and the cache need no lock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Literal

from tether.errors import EmbedderUnavailable
from tether.memory.embedders import Embedder, FloatMatrix

__all__ = [
    "DEFAULT_BUDGET_MS",
    "OPEN_AFTER",
    "Breaker",
    "BreakerState",
    "QueryEmbedder",
    "QueryVector",
]

log = logging.getLogger("tether.memory.query_embedder")

#: Default query-embedding budget in ms (``Settings.embed_query_timeout_ms``): a local
#: MiniLM query takes 5-9 ms and a hosted embeddings API usually answers in 50-200 ms.
DEFAULT_BUDGET_MS: Final = 300
#: Consecutive failed or timed-out query embeddings that open the breaker. One can be a
#: blip (a dropped connection, a slow first TLS handshake); three in a row have already
#: cost three searches their budget (~1 s at 300 ms) and the next would most likely too.
OPEN_AFTER: Final = 3
# First cool-down of an open breaker, in s: a short blip costs about a second of BM25-only
# answers. It doubles per failed trial call up to _MAX_COOLDOWN_S.
_COOLDOWN_S: Final = 1.0
# Cap on the cool-down, in s: during a long outage one search per 30 s pays the budget as
# the trial call, and a recovered embedder is used again within 30 s.
_MAX_COOLDOWN_S: Final = 30.0
# Threads for query embeddings. A local model is CPU-bound (one query: 5-9 ms on the
# 2-core reference box), so more threads than this only queue in the OS; a remote call that
# hangs holds its thread for its HTTP timeout (about two budgets), and after OPEN_AFTER of
# them the breaker stops new calls. Four bounds the threads a hung embedder can hold while
# a healthy one still embeds concurrent queries side by side.
_WORKERS: Final = 4
# A lazily loaded local model's first call includes loading it (MiniLM int8: 0.97 s on the
# 2-core reference box). Until it is loaded a call may wait this long (s) instead of the
# budget, so a fresh server's first searches are not degraded by a one-off load.
_COLD_LOAD_S: Final = 10.0
# Query vectors kept (keyed by model and text): an agent often asks the same question again
# within a session. The latency benchmark uses distinct queries.
_QUERY_CACHE: Final = 256
_PROBE_TEXT: Final = "ping"

BreakerState = Literal["closed", "open", "half_open"]
Miss = Literal["timeout", "error", "open", "down"]
# A cache key, (model name, query text); None for the probe, which is never cached.
Key = tuple[str, str] | None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class Breaker:
    """A consecutive-failure circuit breaker (Nygard, *Release It!*, 2007).

    ``closed``: calls go ahead; ``failures`` failures in a row open it. ``open``: calls are
    refused until the cool-down (seconds) has passed; the next caller then becomes the one
    trial call (``half_open``; others are still refused). The trial's success closes it and
    resets the cool-down; its failure opens it again with the cool-down doubled, capped at
    ``max_cooldown_s``. A success reported in any state closes it (a call admitted earlier
    answered in time: the embedder works).

    Not thread-safe: use it from one thread (here, the event loop).

    Args:
        failures: Consecutive failures that open it (default :data:`OPEN_AFTER`).
        cooldown_s: First cool-down in seconds.
        max_cooldown_s: Longest cool-down in seconds.
        clock: Monotonic time in seconds (tests pass a fake).
    """

    def __init__(
        self,
        *,
        failures: int = OPEN_AFTER,
        cooldown_s: float = _COOLDOWN_S,
        max_cooldown_s: float = _MAX_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._streak = 0
        self._cooldown = cooldown_s
        self._until = 0.0
        #: The message of the last failure (``None`` once closed by a success).
        self.last_error: str | None = None

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` (refusing), or ``half_open`` (a trial call is out)."""
        return self._state

    @property
    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 otherwise)."""
        return max(0.0, self._until - self._clock()) if self._state == "open" else 0.0

    def allow(self) -> bool:
        """Whether a call may go ahead now; the first caller after the cool-down is the
        trial call (the state becomes ``half_open``)."""
        if self._state == "closed":
            return True
        if self._state == "open" and self._clock() >= self._until:
            self._state = "half_open"
            return True
        return False

    def success(self) -> None:
        """A call answered in time: close, forget the failures, reset the cool-down."""
        if self._state != "closed":
            log.info("query embeddings work again: breaker closed")
        self._state = "closed"
        self._streak = 0
        self._cooldown = self.cooldown_s
        self.last_error = None

    def failure(self, error: str) -> None:
        """A call failed or ran out of time. Counted while closed (the ``failures``-th in a
        row opens it); the trial call's failure re-opens it for twice the cool-down;
        while open it changes nothing (a call admitted before it opened)."""
        self.last_error = error
        if self._state == "closed":
            self._streak += 1
            if self._streak >= self.failures:
                self._open(self.cooldown_s)
        elif self._state == "half_open":
            self._open(min(self._cooldown * 2, self.max_cooldown_s))

    def abandon(self) -> None:
        """The trial call ended without an answer either way (its caller was cancelled):
        the next caller may be the trial instead."""
        if self._state == "half_open":
            self._state = "open"
            self._until = self._clock()

    def _open(self, cooldown_s: float) -> None:
        self._state = "open"
        self._cooldown = cooldown_s
        self._until = self._clock() + cooldown_s
        log.warning(
            "query embeddings failing (%s): breaker open, searches use BM25 only for %.1f s",
            self.last_error,
            cooldown_s,
        )


@dataclass(frozen=True, slots=True)
class QueryVector:
    """The outcome of one query embedding.

    Attributes:
        vector: float32 ``[dim]``, L2-normalised; ``None`` when the search must do without.
        ms: Wall time waited for it, in ms (0 on a cache hit or when the call was skipped).
        miss: Why there is no vector: ``"timeout"`` (the budget ran out), ``"error"`` (the
            embedder failed), ``"open"`` (breaker open: not called), ``"down"`` (the indexer
            found the embedder down: not called); ``None`` when there is a vector.
        detail: A message saying so (the 503 message of a ``mode="vector"`` search).
    """

    vector: FloatMatrix | None
    ms: float
    miss: Miss | None = None
    detail: str | None = None


class QueryEmbedder:
    """Query embeddings under a budget, behind a breaker, on own threads, with a cache.

    See the module docstring. Call :meth:`embed` and :meth:`probe` from the event loop;
    :meth:`close` at shutdown.

    Args:
        embedder: The embedder; its ``embed_query`` runs on this object's threads.
        budget_ms: Longest wait for a vector, in ms.
        outage: Returns True while the embedder is known to be down (the indexer's state):
            no call is made then.
        breaker: The circuit breaker (a new :class:`Breaker` when not given).
        workers: Threads of the dedicated executor.
        cache_size: Query vectors kept (least recently used evicted).
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        budget_ms: int = DEFAULT_BUDGET_MS,
        outage: Callable[[], bool] = lambda: False,
        breaker: Breaker | None = None,
        workers: int = _WORKERS,
        cache_size: int = _QUERY_CACHE,
    ) -> None:
        self.embedder = embedder
        self.budget_ms = budget_ms
        self.outage = outage
        self.breaker = breaker if breaker is not None else Breaker()
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], FloatMatrix] = OrderedDict()
        # Threads start on first use; nothing runs until a search or probe.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="tether-query-embed")

    def close(self) -> None:
        """Stop the threads: queued calls are dropped, running ones end on their own (a
        remote query request within its HTTP timeout); does not wait for them."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def embed(self, text: str) -> QueryVector:
        """The vector of a search query, from the cache or the embedder within the budget.

        Never raises :class:`EmbedderUnavailable`: a failure, a timeout, an open breaker or
        a known outage comes back as a :class:`QueryVector` without a vector.
        """
        key = (self.embedder.name, text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return QueryVector(cached, 0.0)
        return await self._call(text, key)

    async def probe(self) -> QueryVector:
        """Embed a short text as a search would (breaker, budget), bypassing the cache: the
        readiness probe. While the breaker is open this makes no call; once its cool-down
        is over the probe may be the trial call that closes it."""
        return await self._call(_PROBE_TEXT, None)

    def _wait_s(self) -> float:
        return self.budget_ms / 1000 if self.embedder.loaded else _COLD_LOAD_S

    async def _call(self, text: str, key: Key) -> QueryVector:
        if self.outage():
            return QueryVector(
                None, 0.0, "down", f"{self.embedder.name} is down (the indexer's last try failed)"
            )
        if not self.breaker.allow():
            return QueryVector(
                None,
                0.0,
                "open",
                f"{self.embedder.name}: not called, breaker open after repeated failures "
                f"(last: {self.breaker.last_error})",
            )
        trial = self.breaker.state == "half_open"
        wait_s = self._wait_s()
        started = time.perf_counter()
        job = self._executor.submit(self.embedder.embed_query, text)
        pending = asyncio.wrap_future(job)
        try:
            done, _ = await asyncio.wait({pending}, timeout=wait_s)
        except BaseException:  # cancelled (the client went away): never strand a trial
            self._abandon(job, pending, key)
            if trial:
                self.breaker.abandon()
            raise
        ms = _ms_since(started)
        if not done:
            self._abandon(job, pending, key)
            detail = f"{self.embedder.name}: no query vector within {round(wait_s * 1000)} ms"
            self.breaker.failure(detail)
            return QueryVector(None, ms, "timeout", detail)
        try:
            row = pending.result()
        except EmbedderUnavailable as exc:
            self.breaker.failure(exc.message)
            return QueryVector(None, ms, "error", exc.message)
        except Exception as exc:  # a bug, not an outage: counted, then raised (500)
            self.breaker.failure(f"{type(exc).__name__}: {exc}")
            raise
        self.breaker.success()
        if key is not None:
            self._remember(key, row)
        return QueryVector(row, ms)

    def _abandon(
        self, job: Future[FloatMatrix], pending: asyncio.Future[FloatMatrix], key: Key
    ) -> None:
        """Give up waiting: drop a call still queued; let a running one finish into the
        cache."""
        if job.cancel():
            return
        pending.add_done_callback(functools.partial(self._late, key))

    def _late(self, key: Key, pending: asyncio.Future[FloatMatrix]) -> None:
        """A call answered after its budget (on the loop): cache the vector. It does not
        close the breaker: it was not in time."""
        if pending.cancelled():
            return
        exc = pending.exception()
        if exc is not None:
            log.debug("abandoned query embedding failed late: %s", exc)
        elif key is not None:
            self._remember(key, pending.result())

    def _remember(self, key: tuple[str, str], row: FloatMatrix) -> None:
        self._cache[key] = row
        self._cache.move_to_end(key)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

"""The indexer: drains the embedding outbox into stored vectors and the in-process index.

One asyncio task per server (started in the app lifespan). Each round it reads up to
``8 x batch_size`` due jobs, sorts them by text length, and per ``batch_size`` of them
embeds the texts off the event loop (``asyncio.to_thread``), commits the vectors (float32,
with the model name) and deletes the jobs in one store write; each stored vector logs a
``memory.embedded`` change, which every replica's vector index follows
(:class:`~tether.memory.follower.IndexFollower`). Jobs are claimed with a lease, so the
indexers of several replicas drain one outbox without embedding a text twice.
A write wakes it at once (:meth:`Indexer.wake`), so a new memory is vector-searchable
within one embedding batch (~10-150 ms with the default embedder).

Failures are told apart with a probe (one tiny text):

- **outage** (the probe fails too: the model or service is down): no job is charged; the
  whole indexer backs off exponentially (``retry_base_ms`` doubling up to
  ``retry_max_ms``) and ignores wake-ups until then, so an outage of any length never
  dead-letters the backlog. Memories stay stored and keyword-searchable meanwhile
  (ARCHITECTURE §3), and recall skips query embedding (degraded, BM25 only).
- **poison** (the probe succeeds): the batch is retried item by item; each failing job is
  charged an attempt and retried after ``retry_base_ms * 2**attempts`` (capped, with
  jitter, x0.5-1.0: "full jitter" against synchronized retries), and moves to the dead
  letters after ``max_attempts``. ``POST /v1/admin/outbox/replay`` requeues it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence

import numpy as np

from tether.domain.time import now_ms
from tether.errors import EmbedderUnavailable
from tether.memory.embedders import Embedder, FloatMatrix
from tether.store.base import EmbeddedJob, Job, Store

__all__ = ["Indexer"]

log = logging.getLogger("tether.memory.indexer")

_PROBE_TEXT = "ping"
# Texts per embedder call after sorting by length. Measured on LoCoMo turns, MiniLM int8,
# one thread: unsorted batches of 64 gave 26 texts/s, sorted chunks of 64: 53/s, of 8-16:
# ~65/s (less padding per chunk; per-call overhead stays small).
_EMBED_CHUNK = 16
# Batches read from the outbox per round when that many are due (see run_once).
_WINDOW = 8
# When idle with nothing scheduled, re-check the outbox this often (s): covers jobs queued by
# another process or replica (whose writes do not wake this one).
_IDLE_POLL_S = 5.0
# How long claimed jobs stay hidden from other indexers (ms): a window of _WINDOW batches
# of long texts embeds in well under a minute on the reference box (35 texts/s worst
# case), and a remote embedder's calls time out at 30 s. If this indexer dies, another
# replica's takes the jobs over once the lease ends.
_LEASE_MS = 5 * 60 * 1000


class Indexer:
    """Background embedding of outbox jobs.

    Args:
        store: The store holding the outbox and vectors.
        embedder: The embedder; its ``name`` is stored with each vector.
        batch_size: Jobs per round (``Settings.indexer_batch_size``).
        max_attempts: Attempts before a poison job is dead-lettered.
        retry_base_ms: First retry delay; doubles per attempt (or per failed outage probe).
        retry_max_ms: Cap on any retry delay.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        *,
        batch_size: int,
        max_attempts: int,
        retry_base_ms: int,
        retry_max_ms: int,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.retry_base_ms = retry_base_ms
        self.retry_max_ms = retry_max_ms
        self.last_error: str | None = None
        self.embedded_total = 0
        self._outage_failures = 0
        self._outage_until = 0.0  # time.monotonic() deadline
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the background task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="indexer")

    async def stop(self) -> None:
        """Cancel the task and wait for it (an in-flight embedding finishes in its thread;
        its jobs stay pending and are redone next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Tell the indexer new jobs were committed (cheap; safe to call often)."""
        self._wake.set()

    @property
    def embedder_down(self) -> bool:
        """Whether the embedder failed its last probe and the retry time has not come."""
        return time.monotonic() < self._outage_until

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            pause = self._outage_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store error must not kill the task; log and retry
                log.exception("indexer round failed")
                await asyncio.sleep(1.0)
                continue
            if handled:
                continue
            await self._idle()

    async def _idle(self) -> None:
        due = await self.store.next_due_at()
        timeout = _IDLE_POLL_S if due is None else max(0.0, (due - now_ms()) / 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, _IDLE_POLL_S))

    async def run_once(self) -> int:
        """Process one batch of due jobs.

        Returns:
            How many jobs were settled (stored, dropped or charged an attempt); 0 when none
            were due or the embedder is down.
        """
        now = now_ms()
        limit = self.batch_size * _WINDOW
        jobs = await self.store.claim_jobs(now=now, limit=limit, lease_ms=_LEASE_MS)
        if not jobs:
            return 0
        # Under a backlog, read a window of several batches and embed it shortest first:
        # each embedder call then holds texts of similar length (less padding), and each
        # batch is committed (searchable) as soon as it is embedded.
        live = sorted((j for j in jobs if j.text is not None), key=lambda j: len(j.text or ""))
        gone = [j.id for j in jobs if j.text is None]
        settled = 0
        start = 0
        try:
            for start in range(0, max(len(live), 1), self.batch_size):
                part = live[start : start + self.batch_size]
                drop = gone if start == 0 else []
                try:
                    vectors = await self._embed([j.text or "" for j in part])
                except EmbedderUnavailable as exc:
                    handled = await self._after_failure(part, drop, exc)
                    settled += handled
                    if handled:  # poison: the part was settled item by item
                        start += len(part)
                    break
                await self._commit(part, vectors, drop)
                self._healthy()
                settled += len(part) + len(drop)
            else:
                start = len(live)
        finally:
            # Claimed but not settled (an outage, or a batch after a poison one): due
            # again when the embedder may be back, not when the lease ends.
            rest = [j.id for j in live[start:]]
            if rest:
                due = now_ms() + max(0, int((self._outage_until - time.monotonic()) * 1000))
                await self.store.release_jobs(rest, due_at=due)
        return settled

    async def _embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed in a worker thread, sorted by length, in chunks of ``_EMBED_CHUNK``: the
        embedder pads each batch to its longest text. Rows come back in the input order."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = await asyncio.to_thread(self._embed_sorted, [texts[i] for i in order])
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def _embed_sorted(self, texts: list[str]) -> FloatMatrix:
        parts = [
            self.embedder.embed(texts[i : i + _EMBED_CHUNK])
            for i in range(0, len(texts), _EMBED_CHUNK)
        ]
        return np.concatenate(parts, axis=0)

    async def _commit(self, jobs: Sequence[Job], vectors: FloatMatrix, drop: list[int]) -> None:
        """Store the vectors (each logs a ``memory.embedded`` change, which every
        replica's vector index follows) and delete the jobs."""
        done = [
            EmbeddedJob(job, np.ascontiguousarray(vec, dtype="<f4").tobytes(), int(vec.shape[0]))
            for job, vec in zip(jobs, vectors, strict=True)
        ]
        stored = await self.store.complete_jobs(self.embedder.name, done, drop, now=now_ms())
        self.embedded_total += stored

    def _healthy(self) -> None:
        if self._outage_failures:
            log.info("embedder %s is back", self.embedder.name)
        self._outage_failures = 0
        self._outage_until = 0.0
        self.last_error = None

    def _backoff_ms(self, attempts: int) -> int:
        """Delay before retry number ``attempts`` (>= 1): exponential, capped."""
        return int(min(self.retry_base_ms * 2 ** (attempts - 1), self.retry_max_ms))

    async def _after_failure(
        self, live: list[Job], gone: list[int], exc: EmbedderUnavailable
    ) -> int:
        self.last_error = exc.message
        try:
            await self._embed([_PROBE_TEXT])
        except EmbedderUnavailable:
            self._outage_failures += 1
            delay = self._backoff_ms(self._outage_failures)
            self._outage_until = time.monotonic() + delay / 1000
            log.warning("embedder down (%s); next try in %d ms", exc.message, delay)
            if gone:
                await self._commit([], np.zeros((0, 0), dtype=np.float32), gone)
            return 0
        # The embedder works: some text in the batch is poison. Settle item by item.
        ok: list[Job] = []
        vecs: list[FloatMatrix] = []
        bad: list[tuple[Job, str]] = []
        for job in live:
            try:
                vecs.append((await self._embed([job.text or ""]))[0])
                ok.append(job)
            except EmbedderUnavailable as item_exc:
                bad.append((job, item_exc.message))
        if ok or gone:
            matrix = np.stack(vecs) if vecs else np.zeros((0, 0), dtype=np.float32)
            await self._commit(ok, matrix, gone)
        if bad:
            now = now_ms()
            delays = [
                int(self._backoff_ms(j.attempts + 1) * random.uniform(0.5, 1.0)) for j, _ in bad
            ]
            error = bad[0][1]
            dead = await self.store.fail_jobs(
                [j for j, _ in bad],
                error=error,
                now=now,
                max_attempts=self.max_attempts,
                backoff_ms=delays,
            )
            if dead:
                log.warning("%d embedding job(s) moved to the dead letters: %s", dead, error)
        return len(live) + len(gone)

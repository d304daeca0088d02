"""What every backend's engine shares: the queue of write jobs a writer thread commits in
groups, handing results and change records back after the commit, and readiness.

A backend's engine (``store/<backend>/engine.py``) subclasses :class:`GroupCommitEngine`
and supplies the writer loop (how a group is committed on its database), ``read``,
``_probe`` (a real write for readiness) and its limits (``probe_after_s``,
``check_timeout_s``). No SQL here.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tether.domain.changes import Change
from tether.errors import Unavailable
from tether.store.base import OnCommit, StoreHealth

__all__ = ["Failure", "GroupCommitEngine", "WriteJob"]

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class WriteJob:
    """One ``write(fn)`` call waiting for, or in, a group commit."""

    fn: Callable[[Any], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    feed: bool = False
    result: Any = None
    error: BaseException | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Failure:
    """A write that failed for a storage or database reason: why, and when
    (``time.monotonic()``)."""

    cause: str
    at: float


def _resolve(jobs: list[WriteJob]) -> None:
    for job in jobs:
        if job.future.done():  # the caller was cancelled; its write still committed
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


def _select_one(conn: Any) -> None:
    conn.execute("SELECT 1").fetchone()


class GroupCommitEngine:
    """The write queue, the hand-back after commit and readiness, for a backend engine.

    Attributes:
        on_commit: Called on the event loop with each committed group's change records,
            in commit order (the container publishes them on the bus).
    """

    #: Probe writes when none succeeded for this long (s), or a failure is this recent.
    probe_after_s: float = 30.0
    #: Readiness answers within this many seconds.
    check_timeout_s: float = 1.0

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[WriteJob | None] = queue.SimpleQueue()
        self._closed = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_commit: OnCommit | None = None
        # Written by the writer thread, read by the event loop (single assignments).
        self._last_failure: Failure | None = None
        self._last_write_ok: float | None = None  # time.monotonic() of a commit that wrote

    # -- the queue -----------------------------------------------------------------
    async def write(self, fn: Callable[[Any], T], *, feed: bool = False) -> T:
        """Run ``fn(conn)`` in the next group commit; return its result after COMMIT.

        Args:
            feed: ``fn`` appends to the memory change feed (a backend with several
                writers orders those commits; see its engine).

        Raises:
            Unavailable: the store is closed, or the database failed (the message names
                the cause); nothing of ``fn`` is known to be committed.
            Exception: whatever else ``fn`` raised (its savepoint was rolled back).
        """
        if self._closed:
            raise Unavailable("store is closed")
        loop = asyncio.get_running_loop()
        job = WriteJob(fn=fn, loop=loop, future=loop.create_future(), feed=feed)
        self._queue.put(job)
        result: T = await job.future
        return result

    def _more_jobs(self, group: list[WriteJob], limit: int) -> bool:
        """Add every job already queued to ``group`` (up to ``limit``); ``False`` when the
        close marker was among them (commit this group, then stop)."""
        while len(group) < limit:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return True
            if nxt is None:
                return False
            group.append(nxt)
        return True

    def _hand_back(self, group: Sequence[WriteJob], changes: list[Change]) -> None:
        """After the group's commit (or failure): its change records to ``on_commit``,
        then each caller its result or error, on the caller's own event loop."""
        if changes and self.on_commit is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed; nobody listens
                self._loop.call_soon_threadsafe(self.on_commit, changes)
        by_loop: dict[asyncio.AbstractEventLoop, list[WriteJob]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed; nobody waits
                loop.call_soon_threadsafe(_resolve, jobs)

    # -- readiness -----------------------------------------------------------------
    async def read(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _probe(self, conn: Any) -> None:
        """A real write for readiness, run by the writer as a job."""
        raise NotImplementedError

    def write_failure(self) -> str | None:
        """The last failure of a write, unless a later commit wrote something.

        Returns:
            ``None``, or e.g. ``"write failed 2.1 s ago: database or disk is full
            (SQLITE_FULL)"``.
        """
        failure, ok_at = self._last_failure, self._last_write_ok
        if failure is None or (ok_at is not None and ok_at > failure.at):
            return None
        return f"write failed {time.monotonic() - failure.at:.1f} s ago: {failure.cause}"

    def _writes_in_doubt(self) -> bool:
        """A failure in the last ``probe_after_s``, or no write for that long."""
        now = time.monotonic()
        failure, ok_at = self._last_failure, self._last_write_ok
        if failure is not None and now - failure.at < self.probe_after_s:
            return True
        return ok_at is None or now - ok_at >= self.probe_after_s

    async def check(self) -> StoreHealth:
        """Readiness: can the store read, and can it write?

        A ``SELECT 1`` on a reader; then, when writes are in doubt (a failure in the last
        ``probe_after_s`` seconds, or no write committed for that long), the backend's
        write probe through the writer. Down while the last write failed and nothing has
        been written since; a successful probe clears that, so readiness recovers by
        itself once e.g. space is freed or the database is back.

        Returns:
            ``StoreHealth("ok")`` or ``StoreHealth("down", detail)``. Never raises, and
            answers within ``check_timeout_s`` (a probe still queued then runs later).
        """
        if self._closed:
            return StoreHealth("down", "store is closed")
        try:
            async with asyncio.timeout(self.check_timeout_s):
                await self.read(_select_one)
                if self._writes_in_doubt():
                    await self.write(self._probe)
        except TimeoutError:
            return StoreHealth("down", f"store did not answer within {self.check_timeout_s:g} s")
        except Exception as exc:  # reported, not raised: this is the readiness check
            return StoreHealth("down", self.write_failure() or str(exc))
        failure = self.write_failure()
        return StoreHealth("down", failure) if failure else StoreHealth("ok")

"""The derived views of memory follow the change feed (ARCHITECTURE §9).

:class:`IndexFollower` builds the keyword postings and the vector index from a snapshot of
the store at start, then applies the memory feed (``Store.memory_feed``: every change with
``lsn > n``, in commit order, each as the memory is *now*) before every search and when
the bus says memory changed. So a write is searchable by the next search on any replica,
whichever replica wrote it, and a replica that restarts or falls behind catches up from
the store by cursor: nothing updates an index by a hand call after a write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tether.memory.postings import KeywordIndex
from tether.memory.vectors import VectorIndex
from tether.store.base import IndexRow, Store

__all__ = ["IndexFollower"]

log = logging.getLogger("tether.memory.follower")

# Rows per snapshot page and per feed read.
_PAGE = 2000
# Feed rows applied on the event loop rather than in a worker thread: a handful (the usual
# catch-up between two searches) costs less than the thread hop.
_INLINE_ROWS = 8


class IndexFollower:
    """Keeps a :class:`KeywordIndex` and a :class:`VectorIndex` current with the store.

    Args:
        store: The store whose memory feed it follows.
        keywords: The BM25 postings.
        vectors: The vector index.
        model: The embedding model whose vectors are indexed (the embedder's name).

    Attributes:
        lsn: The last change applied (-1 before :meth:`load`).
    """

    def __init__(
        self, store: Store, keywords: KeywordIndex, vectors: VectorIndex, *, model: str
    ) -> None:
        self.store = store
        self.keywords = keywords
        self.vectors = vectors
        self.model = model
        self.lsn = -1
        self._lock = asyncio.Lock()

    def _apply(self, rows: Sequence[IndexRow]) -> None:
        self.keywords.apply(rows)
        self.vectors.apply(self.model, rows)

    async def load(self) -> int:
        """Build both indexes from a snapshot of the store (page by page, in a worker
        thread), then catch up with the feed from the snapshot's lsn.

        Returns:
            How many memories the snapshot held.
        """
        async with self._lock:
            started = time.perf_counter()
            after_pk, lsn, total = 0, None, 0
            while True:
                page_lsn, rows = await self.store.memory_snapshot(
                    model=self.model, after_pk=after_pk, limit=_PAGE
                )
                lsn = page_lsn if lsn is None else lsn
                if not rows:
                    break
                await asyncio.to_thread(self._apply, rows)
                total += len(rows)
                after_pk = rows[-1].pk
            self.lsn = lsn or 0
            await self._follow()
            log.info(
                "indexes loaded: %d memories up to lsn %d in %.1f s",
                total,
                self.lsn,
                time.perf_counter() - started,
            )
            return total

    async def catch_up(self) -> int:
        """Apply every change committed since the last call (loading first if needed).

        Returns:
            The lsn applied up to.
        """
        if self.lsn < 0:
            await self.load()
            return self.lsn
        async with self._lock:
            await self._follow()
            return self.lsn

    async def _follow(self) -> None:
        while True:
            rows = await self.store.memory_feed(model=self.model, after=self.lsn, limit=_PAGE)
            if not rows:
                return
            if len(rows) <= _INLINE_ROWS:
                self._apply(rows)
            else:
                await asyncio.to_thread(self._apply, rows)
            self.lsn = rows[-1].lsn
            if len(rows) < _PAGE:
                return

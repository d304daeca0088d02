"""Event ingest (one session, or many sessions in one call) and reads."""

from __future__ import annotations

from collections.abc import Sequence

from tether.domain.events import EventBatchIn, EventIn
from tether.domain.records import AppendResult, BatchResult, Event, Stats
from tether.domain.time import now_ms
from tether.services.context import RequestContext
from tether.services.prices import PriceBook
from tether.store.base import Store

_DAY_MS = 86_400_000


class EventService:
    """Append and read events; every call is scoped to ``ctx.tenant_id``.

    Args:
        store: The store.
        prices: Prices ``cost_usd`` of events with tokens and no cost, before they are stored.
        max_page_bytes: Stored JSON per page of events, at most (bytes).
    """

    def __init__(self, store: Store, prices: PriceBook, *, max_page_bytes: int) -> None:
        self.store = store
        self.prices = prices
        self.max_page_bytes = max_page_bytes

    async def append(
        self, ctx: RequestContext, session_id: str, events: Sequence[EventIn]
    ) -> AppendResult:
        """Append to one existing session in one transaction.

        Raises:
            NotFound: unknown session.
        """
        await self.prices.price_events(ctx.tenant_id, events)
        return await self.store.append_events(
            ctx.tenant_id, session_id, events, now=now_ms(), correlation_id=ctx.correlation_id
        )

    async def ingest_batch(self, ctx: RequestContext, batch: EventBatchIn) -> BatchResult:
        """The SDK's flush path: sessions on first sight, events, then ends; all or nothing.
        Seqs are aligned with ``batch.events``."""
        await self.prices.price_events(ctx.tenant_id, batch.events)
        return await self.store.ingest_batch(
            ctx.tenant_id, batch, now=now_ms(), correlation_id=ctx.correlation_id
        )

    async def list(
        self,
        ctx: RequestContext,
        session_id: str,
        *,
        after_seq: int,
        kinds: Sequence[str],
        limit: int,
    ) -> tuple[list[Event], int | None]:
        """A page of events after ``after_seq``. Raises NotFound."""
        return await self.store.list_events(
            ctx.tenant_id,
            session_id,
            after_seq=after_seq,
            kinds=kinds,
            limit=limit,
            max_bytes=self.max_page_bytes,
        )

    async def stats(self, ctx: RequestContext) -> Stats:
        """Sessions by status, events by kind, and the last 24 h."""
        return await self.store.stats(ctx.tenant_id, since_ms=now_ms() - _DAY_MS)

"""Diagnostics, tool analytics, time series, anomalies and the cross-session event query
(ARCHITECTURE §4; the HTTP surface and every formula in ``docs/analytics.md``).

The store hands over compact samples of the events in a window
(:meth:`Store.event_samples`, newest first, at most :data:`MAX_SAMPLES`); the reports are
built from them by :mod:`tether.services.reports` in a worker thread, so both backends
answer identically and the event loop is not held while 100,000 samples are aggregated
(~85 ms of Python).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, Literal

from tether.domain.common import EARLIEST
from tether.domain.time import now_ms, to_ms
from tether.services.context import RequestContext
from tether.services.reports import (
    Anomaly,
    AnomalyReport,
    Component,
    Diagnostics,
    ErrorRef,
    EventQueryPage,
    Point,
    Timeseries,
    ToolReport,
    ToolStat,
    Totals,
    anomaly_report,
    diagnostics_report,
    percentiles,
    series_report,
    tool_report,
)
from tether.store.base import EventQuery, EventSample, Store

__all__ = [
    "ANOMALY_KINDS",
    "BUCKETS",
    "LEVELS",
    "MAX_BUCKETS",
    "METRICS",
    "AnalyticsService",
    "Anomaly",
    "AnomalyReport",
    "Component",
    "Diagnostics",
    "ErrorRef",
    "EventQueryPage",
    "Point",
    "Timeseries",
    "ToolReport",
    "ToolStat",
    "Totals",
    "percentiles",
]

#: Event levels, lowest first; an event without a level counts as ``info``.
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
#: Time-series bucket widths, seconds.
BUCKETS: Final = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}
METRICS: Final = (
    "events",
    "errors",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "tokens",
    "cost_usd",
)
Metric = Literal[
    "events", "errors", "error_rate", "latency_p50", "latency_p95", "tokens", "cost_usd"
]
#: A time series has at most this many buckets: an older ``since`` is moved forward.
MAX_BUCKETS: Final = 1000
#: Events read per report at most (newest first); beyond, the report says ``truncated``.
#: Reading and aggregating 100,000 took ~0.7 s on SQLite (2 cores; docs/analytics.md).
MAX_SAMPLES: Final = 200_000
#: ``since`` of tenant-wide reports when none is given: 24 h before now.
DEFAULT_SPAN_MS: Final = 86_400_000
#: The earliest time a record can show (0001-01-01, ms): windows and buckets start at or
#: after it. It is a whole number of days from the epoch, so every bucket aligns on it.
EARLIEST_MS: Final = to_ms(EARLIEST) or 0
#: The kinds anomalies watch: tools by name, model calls by name (else model).
ANOMALY_KINDS: Final = ("tool", "llm")


class AnalyticsService:
    """Reports over a tenant's events; every call is scoped to ``ctx.tenant_id``. Times in
    arguments are ms since the epoch, RFC 3339 in the records.

    Args:
        store: The store.
        max_page_bytes: Stored JSON per page of :meth:`query_events`, at most (bytes).
        max_samples: Events one report reads at most (newest first).
    """

    def __init__(
        self, store: Store, *, max_page_bytes: int, max_samples: int = MAX_SAMPLES
    ) -> None:
        self.store = store
        self.max_page_bytes = max_page_bytes
        self.max_samples = max_samples

    async def diagnostics(
        self,
        ctx: RequestContext,
        *,
        session_id: str | None,
        since_ms: int | None,
        until_ms: int | None,
        agent: str | None = None,
    ) -> Diagnostics:
        """Per component (``kind``, ``name``): counts, running spans, errors with the last
        three messages, p50/p95/max duration (ms), tokens and cost (USD); of one session
        (whole by default) or of every session (``since`` defaults to 24 h ago; ``agent``
        keeps sessions of that agent).

        Raises:
            NotFound: ``session_id`` names no session of the tenant.
        """
        if session_id is None and since_ms is None:
            since_ms = now_ms() - DEFAULT_SPAN_MS
        found, truncated = await self.store.event_samples(
            ctx.tenant_id,
            since_ms=since_ms,
            until_ms=until_ms,
            session_id=session_id,
            agent=None if session_id is not None else agent,
            limit=self.max_samples,
        )
        return await asyncio.to_thread(
            lambda: diagnostics_report(
                found, truncated, session_id=session_id, since_ms=since_ms, until_ms=until_ms
            )
        )

    async def tools(
        self, ctx: RequestContext, *, since_ms: int | None, until_ms: int | None
    ) -> ToolReport:
        """Per tool name (events of kind ``tool`` with a final event in the window, ``since``
        24 h ago by default): invocations, success rate, latency (ms), last error."""
        since = now_ms() - DEFAULT_SPAN_MS if since_ms is None else since_ms
        found, truncated = await self.store.event_samples(
            ctx.tenant_id, since_ms=since, until_ms=until_ms, kinds=["tool"], limit=self.max_samples
        )
        return await asyncio.to_thread(
            lambda: tool_report(found, truncated, since_ms=since, until_ms=until_ms)
        )

    async def timeseries(
        self,
        ctx: RequestContext,
        *,
        metric: Metric,
        bucket: str,
        since_ms: int | None,
        until_ms: int | None,
        kinds: Sequence[str] = (),
        name: str | None = None,
    ) -> Timeseries:
        """``metric`` per bucket of final events (of ``kinds`` and ``name`` when given).

        Buckets are ``BUCKETS[bucket]`` seconds wide, aligned to multiples of that since
        the epoch (UTC); the first is the one holding ``since`` (default: ``until`` - 24 h;
        ``until`` defaults to now, exclusive). At most :data:`MAX_BUCKETS`: an older
        ``since`` is moved forward (``clipped``). ``since >= until`` gives no points.
        Values: ``events``, ``errors`` (counts), ``error_rate`` (``None`` without events),
        ``latency_p50``/``latency_p95`` (ms, ``None`` without durations), ``tokens``
        (input + output, which include cache and reasoning tokens), ``cost_usd``.

        Raises:
            KeyError: an unknown ``bucket`` (the route validates it first).
        """
        width = BUCKETS[bucket] * 1000
        until = now_ms() if until_ms is None else until_ms
        since = until - DEFAULT_SPAN_MS if since_ms is None else since_ms
        start = max(since // width * width, EARLIEST_MS)
        count = -(-(until - start) // width) if since < until else 0
        clipped = count > MAX_BUCKETS
        if clipped:  # the last MAX_BUCKETS buckets before until (all after EARLIEST_MS)
            count = MAX_BUCKETS
            start = (until - 1) // width * width - (MAX_BUCKETS - 1) * width
        found: list[EventSample] = []
        truncated = False
        if count:
            found, truncated = await self.store.event_samples(
                ctx.tenant_id,
                since_ms=start,
                until_ms=until,
                kinds=list(kinds),
                names=[] if name is None else [name],
                limit=self.max_samples,
            )
        return await asyncio.to_thread(
            lambda: series_report(
                found,
                truncated,
                metric=metric,
                bucket=bucket,
                width_ms=width,
                start_ms=start,
                count=count,
                until_ms=until,
                clipped=clipped,
            )
        )

    async def anomalies(
        self,
        ctx: RequestContext,
        *,
        window_s: int,
        baseline: int,
        min_samples: int,
        until_ms: int | None = None,
    ) -> AnomalyReport:
        """Tools (by name) and model calls (by name, else model) whose p95 latency or
        error rate in the latest window ``[until - window_s, until)`` is at least 3
        standard deviations above the ``baseline`` windows before it (the method:
        :data:`tether.services.reports.METHOD`). ``until`` defaults to now."""
        width = window_s * 1000
        # The latest window starts at year 1 at the earliest (it is rendered in RFC 3339).
        until = max(now_ms() if until_ms is None else until_ms, EARLIEST_MS + width)
        found, truncated = await self.store.event_samples(
            ctx.tenant_id,
            since_ms=until - (baseline + 1) * width,
            until_ms=until,
            kinds=list(ANOMALY_KINDS),
            limit=self.max_samples,
        )
        return await asyncio.to_thread(
            lambda: anomaly_report(
                found,
                truncated,
                window_s=window_s,
                baseline=baseline,
                min_samples=min_samples,
                until_ms=until,
            )
        )

    async def query_events(
        self,
        ctx: RequestContext,
        *,
        session_id: str | None = None,
        kinds: Sequence[str] = (),
        name: str | None = None,
        level: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        after: int = 0,
        limit: int = 100,
        tail: int | None = None,
    ) -> EventQueryPage:
        """Events across the tenant's sessions in cursor order (``pk > after``), filtered:
        any of ``kinds``; ``level`` at least this (:data:`LEVELS`; no level counts as
        ``info``); ``status``; event time in ``[since, until)``. ``tail``: the last
        ``tail`` matching instead of the first ``limit`` (still ascending)."""
        levels = tuple(LEVELS[LEVELS.index(level) :]) if level is not None else ()
        q = EventQuery(
            session_id=session_id,
            kinds=tuple(kinds),
            name=name,
            levels=levels,
            status=status,
            since_ms=since_ms,
            until_ms=until_ms,
        )
        items, more, head = await self.store.query_events(
            ctx.tenant_id,
            q,
            after=after,
            limit=tail if tail is not None else limit,
            tail=tail is not None,
            max_bytes=self.max_page_bytes,
        )
        last = items[-1][0] if items else max(after, head)
        return EventQueryPage(
            items=[e for _, e in items],
            next_after=last if more and items else None,
            cursor=last,
        )

"""Diagnostics, tool analytics and the cross-session event query (``docs/analytics.md``).

Read-only reports over the caller's tenant, thin over
:class:`~tether.services.analytics.AnalyticsService`: the routes parse and bound the query
(422 for a bad metric, bucket, level, status or time), the service aggregates.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.common import MAX_SAFE_INT, ClientId, ShortText, Timestamp
from tether.domain.events import EventKind
from tether.domain.time import to_ms
from tether.server.bodies import JSONRoute
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import ok
from tether.server.shapes import returns
from tether.services.analytics import (
    AnomalyReport,
    Diagnostics,
    EventQueryPage,
    Timeseries,
    ToolReport,
)

router = APIRouter(tags=["analytics"], route_class=JSONRoute)

Since = Annotated[
    Timestamp | None,
    Query(description="Event time at or after (RFC 3339): started_at, else created_at."),
]
Until = Annotated[Timestamp | None, Query(description="Event time before (RFC 3339).")]
Kinds = Annotated[
    list[EventKind] | None, Query(max_length=len(EventKind), description="Any of these kinds.")
]
Level = Literal["debug", "info", "warning", "error", "critical"]

# An anomaly window: seconds, or a number with a unit (``90s``, ``15m``, ``1h``, ``1d``).
_WINDOW_PATTERN = r"^[0-9]{1,7}[smhd]?$"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
# The window is held within these bounds (s) rather than refused: any value the pattern
# admits is a request the server answers (its ``window_s`` says what it used).
_MIN_WINDOW_S, _MAX_WINDOW_S = 60, 7 * 86_400


def _window_s(text: str) -> int:
    """``"1h"`` -> 3600, ``"90"`` -> 90, held within [60 s, 7 d]."""
    unit = _UNIT_S.get(text[-1], 1)
    seconds = int(text.rstrip("smhd")) * unit
    return min(max(seconds, _MIN_WINDOW_S), _MAX_WINDOW_S)


@router.get(
    "/v1/sessions/{session_id}/diagnostics",
    operation_id="sessions.diagnostics",
    responses=returns(Diagnostics),
)
async def session_diagnostics(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    since: Since = None,
    until: Until = None,
) -> Response:
    """Per component (kind and name) of one session (all of it by default): counts,
    running spans, errors with the last messages, p50/p95/max duration (ms), tokens and
    cost (USD). 404 for an unknown session."""
    report = await svc.analytics.diagnostics(
        ctx, session_id=session_id, since_ms=to_ms(since), until_ms=to_ms(until)
    )
    return ok(request, report)


@router.get("/v1/diagnostics", operation_id="diagnostics.get", responses=returns(Diagnostics))
async def diagnostics(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    since: Annotated[
        Timestamp | None, Query(description="Event time at or after (RFC 3339); default 24 h ago.")
    ] = None,
    until: Until = None,
    agent: Annotated[ShortText | None, Query(description="Sessions of this agent only.")] = None,
) -> Response:
    """The same report across every session of the tenant (default: the last 24 h)."""
    report = await svc.analytics.diagnostics(
        ctx, session_id=None, since_ms=to_ms(since), until_ms=to_ms(until), agent=agent
    )
    return ok(request, report)


@router.get("/v1/analytics/tools", operation_id="analytics.tools", responses=returns(ToolReport))
async def tools(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    since: Annotated[
        Timestamp | None, Query(description="Event time at or after (RFC 3339); default 24 h ago.")
    ] = None,
    until: Until = None,
) -> Response:
    """Per tool name: invocations, success rate, p50/p95/max latency (ms), last error."""
    return ok(request, await svc.analytics.tools(ctx, since_ms=to_ms(since), until_ms=to_ms(until)))


@router.get(
    "/v1/analytics/timeseries", operation_id="analytics.timeseries", responses=returns(Timeseries)
)
async def timeseries(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    metric: Literal[
        "events", "errors", "error_rate", "latency_p50", "latency_p95", "tokens", "cost_usd"
    ] = "events",
    bucket: Literal["1m", "5m", "15m", "1h", "1d"] = "1h",
    since: Annotated[
        Timestamp | None,
        Query(description="Default: 24 h before until; at most 1,000 buckets (else moved on)."),
    ] = None,
    until: Annotated[Timestamp | None, Query(description="Exclusive; default now.")] = None,
    kind: Kinds = None,
    name: Annotated[ShortText | None, Query(description="Events of this name only.")] = None,
) -> Response:
    """``metric`` per time bucket of final events, empty buckets included (0, or null for
    a rate or a latency without data)."""
    report = await svc.analytics.timeseries(
        ctx,
        metric=metric,
        bucket=bucket,
        since_ms=to_ms(since),
        until_ms=to_ms(until),
        kinds=[k.value for k in kind or []],
        name=name,
    )
    return ok(request, report)


@router.get(
    "/v1/analytics/anomalies", operation_id="analytics.anomalies", responses=returns(AnomalyReport)
)
async def anomalies(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    window: Annotated[
        str,
        Query(
            pattern=_WINDOW_PATTERN,
            description="Window width: seconds, or a number with s, m, h or d (1h); "
            "held within 60 s to 7 d.",
        ),
    ] = "1h",
    baseline: Annotated[
        int, Query(ge=3, le=720, description="Windows before the latest one to compare with.")
    ] = 24,
    min_samples: Annotated[
        int, Query(ge=1, le=100_000, description="Final events a window needs to count.")
    ] = 10,
    until: Annotated[
        Timestamp | None, Query(description="End of the latest window (exclusive); default now.")
    ] = None,
) -> Response:
    """Tools and model calls whose p95 latency or error rate in the latest window is at
    least 3 standard deviations above their rolling baseline."""
    report = await svc.analytics.anomalies(
        ctx,
        window_s=_window_s(window),
        baseline=baseline,
        min_samples=min_samples,
        until_ms=to_ms(until),
    )
    return ok(request, report)


@router.get("/v1/events", operation_id="events.query", responses=returns(EventQueryPage))
async def query_events(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    session_id: Annotated[ClientId | None, Query(description="Events of this session.")] = None,
    kind: Kinds = None,
    name: Annotated[ShortText | None, Query(description="Events of this name.")] = None,
    level: Annotated[
        Level | None, Query(description="At least this level; no level counts as info.")
    ] = None,
    status: Literal["ok", "error", "running"] | None = None,
    since: Since = None,
    until: Until = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_SAFE_INT, description="The previous page's cursor.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tail: Annotated[
        int | None, Query(ge=1, le=1000, description="The last N matching instead (ascending).")
    ] = None,
) -> Response:
    """Events across the tenant's sessions, oldest first by a global cursor; poll
    ``after=cursor`` to follow."""
    page = await svc.analytics.query_events(
        ctx,
        session_id=session_id,
        kinds=[k.value for k in kind or []],
        name=name,
        level=level,
        status=status,
        since_ms=to_ms(since),
        until_ms=to_ms(until),
        after=after,
        limit=limit,
        tail=tail,
    )
    return ok(request, page)

"""``GET /metrics`` (Prometheus text format) and the server's part of the metrics: HTTP
requests by route, refused ingest events, live streams. The families are listed in
``docs/metrics.md``; the counting of committed data is in ``services/metrics.py``.

Who may scrape (operation ``metrics.scrape``): in local mode (no API key exists, a
loopback address) anyone who can reach the port. With auth on, only a caller that sends
``Authorization: Bearer <TETHER_METRICS_TOKEN>`` (compared in constant time); without it
401, and 403 when no token is configured. Metrics are deployment-wide (no tenant label), so
no tenant's API key opens them: :class:`~tether.server.auth.AuthMiddleware` leaves a bearer
that is not a ``tk_`` key to this route on this path.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import orjson
from fastapi import APIRouter
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from tether.errors import Forbidden, NotFound, Unauthorized
from tether.server.access import CONTEXT_KEY
from tether.server.bodies import JSONRoute
from tether.server.deps import ServicesDep
from tether.server.envelope import ERROR_CODE_KEY, SCOPE_T0, documented, operation_of
from tether.services.metrics import CONTENT_TYPE, Metrics

__all__ = [
    "METRICS_PATH",
    "counted_stream",
    "refused_events",
    "response_recorder",
    "router",
]

#: Where Prometheus scrapes.
METRICS_PATH: Final = "/metrics"
#: The route label of a request that matched no route.
UNMATCHED: Final = "unmatched"

router = APIRouter(tags=["metrics"], route_class=JSONRoute)

_TEXT = {
    200: {
        "description": "Every metric family of this process (docs/metrics.md), Prometheus "
        "text exposition format 0.0.4.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    **documented(403, 404),
}


@router.get(
    METRICS_PATH,
    operation_id="metrics.scrape",
    responses=_TEXT,
    response_class=Response,
)
async def scrape(request: Request, svc: ServicesDep) -> Response:
    """This process's metrics in the Prometheus text format (a replica is one target).

    Open in local mode; with auth on it needs ``Authorization: Bearer
    <TETHER_METRICS_TOKEN>`` (401 without it, 403 when no token is configured; API keys
    do not open it). 404 when ``TETHER_METRICS_ENABLED`` is off. The store gauges (active
    sessions, index backlog) are read now, within 2 s, or keep their last values.
    """
    metrics: Metrics | None = svc.metrics
    if metrics is None:
        raise NotFound("metrics are off on this server (TETHER_METRICS_ENABLED=false)")
    _check_token(request, svc.settings.metrics_token)
    await metrics.refresh()
    return Response(metrics.render(), media_type=CONTENT_TYPE)


def _check_token(request: Request, token: Any) -> None:
    """Pass local mode's callers and holders of the metrics token.

    Raises:
        Forbidden: auth is on and no ``TETHER_METRICS_TOKEN`` is configured.
        Unauthorized: the token was not sent, or another was.
    """
    ctx = request.scope.get(CONTEXT_KEY)
    if ctx is not None and ctx.key_id is None:
        return  # local mode: no key exists, loopback
    if token is None:
        raise Forbidden(
            "/metrics needs TETHER_METRICS_TOKEN when auth is on: set it on the server and "
            "scrape with Authorization: Bearer <token> (API keys do not open metrics)"
        )
    kind, _, given = (request.headers.get("authorization") or "").partition(" ")
    expected = token.get_secret_value().encode()
    if kind.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized("send the metrics token: Authorization: Bearer <TETHER_METRICS_TOKEN>")


# -- HTTP requests --------------------------------------------------------------------------
class _Templates:
    """Operation ids by method and path template, from the app's OpenAPI document (built
    on first use): names the route of a request refused before routing (auth, limits)."""

    def __init__(self) -> None:
        self.table: list[tuple[str, re.Pattern[str], str]] | None = None

    def match(self, scope: Scope) -> str | None:
        if self.table is None:
            self.table = self._build(scope.get("app"))
        method, path = scope["method"].lower(), scope["path"]
        for want, pattern, op in self.table:
            if want == method and pattern.fullmatch(path):
                return op
        return None

    @staticmethod
    def _build(app: Any) -> list[tuple[str, re.Pattern[str], str]]:
        try:
            paths = app.openapi()["paths"]
        except Exception:  # no app or no document: every refusal is "unmatched"
            return []
        table = [
            (method, _template(path), op["operationId"])
            for path, item in paths.items()
            for method, op in item.items()
            if "operationId" in op
        ]
        # Literal segments win over parameters (/v1/sessions/stream before /{session_id}).
        table.sort(key=lambda row: row[1].pattern.count("[^/]+"))
        return table


def _template(path: str) -> re.Pattern[str]:
    """A regex for an OpenAPI path template (``{name}``: one path segment)."""
    return re.compile(
        "/".join("[^/]+" if part.startswith("{") else re.escape(part) for part in path.split("/"))
    )


def response_recorder(metrics: Metrics) -> Callable[[Scope, int, float], None]:
    """The callback :class:`~tether.server.envelope.RequestMiddleware` calls as each
    response starts: ``(scope, status, now)`` with ``now`` from ``time.perf_counter()``.

    The route label is the operation id of the route that served the request; for one
    refused before routing (auth, limits), the one its method and path would have reached
    (looked up only for those); ``unmatched`` when none."""
    templates = _Templates()

    def record(scope: Scope, status: int, now: float) -> None:
        t0 = scope.get(SCOPE_T0)
        seconds = now - t0 if isinstance(t0, float) else 0.0
        reason = scope.get(ERROR_CODE_KEY) if status >= 400 else None
        route = operation_of(scope) or templates.match(scope) or UNMATCHED
        metrics.http(route, scope["method"], status, seconds, reason)

    return record


def refused_events(metrics: Metrics, operation_id: str, scope: Scope, request: Request) -> None:
    """Count the events of an ingest request the fast lane refused, if its body was read
    and parses: ``{"events": [...]}`` counts its events; a single event (``events.append``)
    one. Bodies refused before they were read (bad key, rate limit, size) count as refused
    requests only."""
    body = getattr(request, "_body", None)  # what the handler read (Starlette caches it)
    if not isinstance(body, bytes) or not body:
        return
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    count = 0
    if isinstance(value, dict):
        events = value.get("events")
        if isinstance(events, list):
            count = len(events)
        elif operation_id == "events.append":
            count = 1
    reason = str(scope.get(ERROR_CODE_KEY) or "error")
    metrics.events_rejected(operation_id, reason, count)


# -- live streams ----------------------------------------------------------------------------
async def counted_stream(
    metrics: Metrics | None, events: AsyncIterator[ServerSentEvent]
) -> AsyncIterator[ServerSentEvent]:
    """``events`` (an SSE stream), counted as an open ``sse`` connection while it runs and
    as an overflow when it ends with one."""
    if metrics is None:
        async for event in events:
            yield event
        return
    metrics.connection("sse", 1)
    try:
        async for event in events:
            if event.event == "overflow":
                metrics.overflowed("sse")
            yield event
    finally:
        metrics.connection("sse", -1)
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()

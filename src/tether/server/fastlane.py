"""The fast lane: the two ingest routes served without FastAPI's router and DI.

On the single-event benchmark about 70% of the event-loop thread's time went to the
framework layers (nested router matching, dependency solving, response plumbing) rather
than to Tether. :class:`FastLane` is the *innermost* middleware of the app: every request
has passed the whole pipeline (correlation id and body limits, and every middleware added
after it) before it gets here, and only then are the requests that match a fast route
handed to the *same* handler functions the FastAPI routes call; errors go through the same
:func:`~tether.server.errors.error_response`. Behaviour, errors and the OpenAPI document
stay one implementation; only dispatch is shorter. Anything else goes on to FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.server.access import authorize
from tether.server.envelope import OPERATION_KEY, BodyTooLarge
from tether.server.errors import error_response
from tether.server.metrics import refused_events
from tether.services.metrics import Metrics

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """``method`` + ``pattern`` (named groups become handler keyword arguments)."""

    method: str
    pattern: re.Pattern[str]
    operation_id: str
    handler: Handler


class FastLane:
    """Innermost ASGI middleware: serves a handful of hot routes, passes the rest on.

    Args:
        app: the rest of the app (FastAPI's router).
        routes: the fast routes.
        metrics: counts the events of refused requests (``None``: metrics off).
    """

    def __init__(
        self, app: ASGIApp, *, routes: list[FastRoute], metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            for route in self.routes:
                if route.method == method and (m := route.pattern.match(path)):
                    await self._serve(route, m.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self,
        route: FastRoute,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        scope[OPERATION_KEY] = route.operation_id
        request = Request(scope, receive)
        try:
            authorize(scope, route.operation_id)
            response = await route.handler(request, **params)
        except BodyTooLarge:
            raise  # the 413 has gone out; RequestMiddleware ends the request
        except Exception as exc:  # the same map as every other route
            response = error_response(scope, exc)
            if self.metrics is not None:  # ingest drops are visible (docs/metrics.md)
                refused_events(self.metrics, route.operation_id, scope, request)
        await response(scope, receive, send)


def route(method: str, path: str, operation_id: str, handler: Handler) -> FastRoute:
    """A :class:`FastRoute` for an OpenAPI-style ``path`` (``{name}`` = one path segment)."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return FastRoute(method, re.compile(f"^{regex}$"), operation_id, handler)

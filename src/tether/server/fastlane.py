"""The fast lane: the two ingest routes served without FastAPI's router and DI.

On the single-event benchmark about 70% of the event-loop thread's time went to the
framework layers (middleware chain, nested router matching, dependency solving, response
plumbing) rather than to Tether. :class:`~tether.server.envelope.RequestMiddleware` hands
requests that match a route here to the *same* handler functions the FastAPI routes call,
so behaviour, errors and the OpenAPI document stay one implementation; only dispatch is
shorter. Anything else (other methods, other paths) goes through FastAPI as usual.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tether.errors import TetherError
from tether.server.envelope import OPERATION_KEY, fail
from tether.server.errors import field_errors

log = logging.getLogger("tether.server")

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """``method`` + ``pattern`` (named groups become handler keyword arguments)."""

    method: str
    pattern: re.Pattern[str]
    operation_id: str
    handler: Handler


class FastLane:
    """A tiny dispatcher for a handful of hot routes."""

    def __init__(self, routes: list[FastRoute]) -> None:
        self.routes = routes

    def match(self, scope: Scope) -> tuple[FastRoute, dict[str, str]] | None:
        method = scope["method"]
        path = scope["path"]
        for route in self.routes:
            if route.method == method and (m := route.pattern.match(path)):
                return route, m.groupdict()
        return None

    async def serve(
        self,
        route: FastRoute,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run the handler and send its response; errors become envelopes as in FastAPI."""
        scope[OPERATION_KEY] = route.operation_id
        request = Request(scope, receive)
        try:
            response = await route.handler(request, **params)
        except TetherError as exc:
            response = fail(scope, exc.status, exc.code, exc.message, exc.details)
        except ValidationError as exc:
            response = fail(
                scope, 422, "invalid_input", "request validation failed", field_errors(exc.errors())
            )
        except Exception:
            log.exception("unhandled error in %s", route.operation_id)
            response = fail(scope, 500, "internal", "internal server error")
        await response(scope, receive, send)


def route(method: str, path: str, operation_id: str, handler: Handler) -> FastRoute:
    """A :class:`FastRoute` for an OpenAPI-style ``path`` (``{name}`` = one path segment)."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return FastRoute(method, re.compile(f"^{regex}$"), operation_id, handler)

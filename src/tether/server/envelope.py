"""The response envelope (ARCHITECTURE §5) and the request middleware that feeds it.

Every JSON response is ``{ok, service, operation, correlation_id, duration_ms, data, error}``
with ``error = {code, message, details}``. Streams (SSE, NDJSON) are not enveloped.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.domain.time import new_id
from tether.logs import CORRELATION_ID

log = logging.getLogger("tether.server")

SERVICE = "tether"
CORRELATION_HEADER = "x-correlation-id"
# A caller's id is echoed only if it is a plain token: no header or log injection.
_CID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_SCOPE_CID = "tether.correlation_id"
#: Scope key with the operation id when a request bypasses FastAPI's router (fastlane.py).
OPERATION_KEY = "tether.operation"
#: Scope key of the request's arrival time (``time.perf_counter()``).
SCOPE_T0 = _SCOPE_T0 = "tether.t0"
#: Scope key of the error code of the envelope sent (set by :func:`render`; the metrics'
#: refusal reason).
ERROR_CODE_KEY = "tether.error_code"


class ErrorBody(BaseModel):
    """``error`` of a failed request: a stable ``code``, a human ``message`` and
    ``details`` (field errors ``[{loc, msg, type}]`` for a 422)."""

    code: str
    message: str
    details: Any = None


class Envelope(BaseModel):
    """Every JSON response (ARCHITECTURE §5). ``duration_ms`` is the server-side time
    from the request's arrival to the response, in milliseconds."""

    ok: bool
    service: Literal["tether"]
    operation: str | None
    correlation_id: str | None
    duration_ms: float | None
    data: Any
    error: ErrorBody | None


class ErrorEnvelope(Envelope):
    """A failed request's envelope: ``ok`` false, ``data`` null, ``error`` set."""

    ok: Literal[False]
    data: None
    error: ErrorBody


#: What each error status means, for the OpenAPI document (bodies.install_openapi).
ERROR_STATUSES: dict[int, str] = {
    401: "No API key, or not a live one (Authorization: Bearer tk_...).",
    403: "The key's scope or namespaces do not allow this, or a cross-origin request "
    "would change state.",
    404: "Not found (an unknown id, or another tenant's).",
    409: "Conflict (the same id or idempotency key with another body).",
    412: "Precondition failed (If-Match names a version that is not current).",
    413: "Request body over the size limit.",
    415: "Body not sent as JSON.",
    421: "The Host header is not one this server answers (TETHER_ALLOWED_HOSTS).",
    422: "Invalid input; error.details lists the fields.",
    429: "The key's rate limit is spent; Retry-After says when to come back (seconds).",
    503: "A dependency (the store) is unavailable; retry later.",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may also answer ``statuses`` beyond the ones every
    route of its kind declares (the OpenAPI step fills in schemas and descriptions)."""
    return {status: {"description": ERROR_STATUSES.get(status, "")} for status in statuses}


def correlation_id(scope: Scope) -> str | None:
    """The correlation id the middleware put on this request."""
    value = scope.get(_SCOPE_CID)
    return value if isinstance(value, str) else None


def operation_of(scope: Scope) -> str | None:
    """The operation id of the route serving the request, once known (after routing)."""
    return _operation(scope)


def _operation(scope: Scope) -> str | None:
    if (op := scope.get(OPERATION_KEY)) is not None:
        return str(op)
    route = scope.get("route")
    op = getattr(route, "operation_id", None) or getattr(route, "name", None)
    return op if isinstance(op, str) else None


def render(
    scope: Scope,
    *,
    status: int,
    data: Any = None,
    error: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    operation: str | None = None,
) -> Response:
    """Build an enveloped JSON response for the request whose ASGI scope is ``scope``."""
    t0 = scope.get(_SCOPE_T0)
    if error is not None:
        scope[ERROR_CODE_KEY] = error["code"]
    duration_ms = round((time.perf_counter() - t0) * 1000, 3) if isinstance(t0, float) else None
    body = {
        "ok": error is None,
        "service": SERVICE,
        "operation": operation or _operation(scope),
        "correlation_id": correlation_id(scope),
        "duration_ms": duration_ms,
        "data": data,
        "error": error,
    }
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def ok(
    request: Request, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A success envelope for ``request``."""
    return render(request.scope, status=status, data=data, headers=headers)


def fail(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error envelope (``ok: false``)."""
    return render(
        scope,
        status=status,
        error={"code": code, "message": message, "details": details},
        headers=headers,
    )


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DIGITS = re.compile(r"[0-9]+")


def _is_json_type(ctype: str) -> bool:
    """``application/json``, any ``+json`` type (RFC 6839), or NDJSON for streamed imports."""
    return ctype in ("application/json", "application/x-ndjson") or (
        ctype.startswith("application/") and ctype.endswith("+json")
    )


class BodyTooLarge(Exception):
    """Raised into the app by the body reader once a body passes the limit (the 413 has
    been sent); it unwinds the handler and is swallowed by :class:`RequestMiddleware`."""


class RequestMiddleware:
    """Pure-ASGI middleware: correlation id in and out, request timing, body size limit.

    A body over ``max_body_bytes`` (by ``Content-Length`` or while streaming) gets a 413
    envelope at once; the application never sees the rest of it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        on_response: Callable[[Scope, int, float], None] | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        #: Called as each response starts: (scope, status, time.perf_counter()); the
        #: metrics' HTTP counts (server/metrics.py).
        self.on_response = on_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # _http sets the correlation id for log records (tether.logs); back when it ends.
        token = CORRELATION_ID.set(None)
        try:
            await self._http(scope, receive, send)
        finally:
            CORRELATION_ID.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = ctype = cid = None
        chunked = False
        for name, value in scope["headers"]:  # raw pairs: cheaper than a Headers object
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                ctype = value.decode("latin-1")
            elif name == b"x-correlation-id":
                cid = value.decode("latin-1")
        if cid is None or not _CID_OK.match(cid):
            cid = new_id()
        cid_header = (b"x-correlation-id", cid.encode())
        scope[_SCOPE_CID] = cid
        CORRELATION_ID.set(cid)
        scope[_SCOPE_T0] = time.perf_counter()
        responded = False

        async def send_wrapper(message: Message) -> None:
            nonlocal responded
            if responded and message["type"].startswith("http.response"):
                return  # the 413 already went out; drop the app's late answer
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), cid_header]
                if self.on_response is not None:
                    self.on_response(scope, message["status"], time.perf_counter())
            await send(message)

        async def too_large() -> None:
            nonlocal responded
            resp = fail(
                scope,
                413,
                "payload_too_large",
                f"request body exceeds {self.max_body_bytes} bytes",
                {"max_body_bytes": self.max_body_bytes},
            )
            await resp(scope, receive, send_wrapper)
            responded = True

        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            # No path parameter or query value accepts U+0000 (see bodies.loads).
            resp = fail(scope, 422, "invalid_input", "the URL contains U+0000 (NUL)")
            await resp(scope, receive, send_wrapper)
            return
        # The HTTP server (h11/httptools) refuses a malformed Content-Length before this;
        # a length of more than 18 digits is over any limit without converting it.
        if (
            length is not None
            and _DIGITS.fullmatch(length) is not None
            and (len(length) > 18 or int(length) > self.max_body_bytes)
        ):
            await too_large()
            return
        # A body is coming when it has a length or is chunked (no Content-Length at all).
        if scope["method"] in _BODY_METHODS and (chunked or length not in (None, "0")):
            ctype = (ctype or "").split(";")[0].strip().lower()
            if not _is_json_type(ctype):
                resp = fail(
                    scope,
                    415,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                    {"content_type": ctype or None},
                )
                await resp(scope, receive, send_wrapper)
                return
        seen = 0

        async def receive_wrapper() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    if not responded:
                        await too_large()
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if not responded:
                await too_large()

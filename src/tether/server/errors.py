"""One map from exceptions to responses: every error leaves as an envelope with the right
status, whichever route raised it (FastAPI's handlers and the fast lane call it)."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from tether.errors import RateLimited, TetherError, Unauthorized
from tether.server.envelope import correlation_id, fail
from tether.server.jsonparse import NulInString, nul_error

log = logging.getLogger("tether.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{loc, msg, type}]`` (inputs and contexts are not echoed,
    except a JSON parse error's reason, which names a position, never the input)."""
    return [
        {
            "loc": list(e.get("loc", ())),
            "msg": _message(e),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def _message(error: Any) -> str:
    msg = str(error.get("msg", ""))
    if error.get("type") == "json_invalid" and (reason := (error.get("ctx") or {}).get("error")):
        return f"{msg}: {reason}"
    return msg


def error_response(scope: Scope, exc: BaseException, *, app: Any = None) -> Response:
    """The one map from an exception to its response (an error envelope), for every route:
    FastAPI's exception handlers and the fast lane both call it.

    - :class:`~tether.errors.TetherError`: its status and code (5xx are logged); a 401
      says ``WWW-Authenticate: Bearer``, a 429 ``Retry-After`` (whole seconds).
    - pydantic / FastAPI validation errors: 422 ``invalid_input`` with ``[{loc, msg, type}]``
      (U+0000 in a body: ``string_nul`` at its location).
    - Starlette's ``HTTPException`` (404 no route, 405 with ``Allow``): its status.
    - anything else: 500 ``internal``, logged with the correlation id, never echoed.

    Args:
        app: the FastAPI app, for the ``Allow`` header of a 405.
    """
    if isinstance(exc, TetherError):
        if exc.status >= 500:
            log.error("%s: %s [cid=%s]", exc.code, exc.message, correlation_id(scope))
        headers: dict[str, str] = {}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="tether"'  # RFC 6750 §3
        elif isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return fail(scope, exc.status, exc.code, exc.message, exc.details, headers or None)
    if isinstance(exc, RequestValidationError | ValidationError):
        if isinstance(exc.__cause__, NulInString):  # FastAPI's body parse raised it
            return fail(scope, 422, "invalid_input", exc.__cause__.msg, [nul_error(exc.__cause__)])
        errors = field_errors(exc.errors())
        return fail(scope, 422, "invalid_input", "request validation failed", errors)
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405 and app is not None:
            headers["Allow"] = _allowed_methods(app, scope)
        return fail(scope, exc.status_code, code, str(exc.detail), None, headers or None)
    log.error("unhandled error [cid=%s]", correlation_id(scope), exc_info=exc)
    return fail(scope, 500, "internal", "internal server error")


def _allowed_methods(app: Any, scope: Scope) -> str:
    """Every method some route serves at this path (RFC 9110 §10.2.1 ``Allow``).

    Starlette's own 405 names only the methods of the first route whose path matched, and
    a path here is often served by several routes (``GET`` and ``POST /v1/memories``).
    """
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "\0"})
        if match is Match.PARTIAL:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response(request.scope, exc, app=request.app)


def install(app: FastAPI) -> None:
    """Route every exception FastAPI catches to :func:`error_response`."""
    for kind in (TetherError, RequestValidationError, ValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, _handle)

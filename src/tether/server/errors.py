"""Exception handlers: every error leaves as an envelope with the right status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from tether.errors import TetherError
from tether.server.envelope import correlation_id, fail

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
    """Pydantic errors as ``[{loc, msg, type}]`` (inputs and contexts are not echoed)."""
    return [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


async def _tether_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TetherError)
    if exc.status >= 500:
        log.error("%s: %s [cid=%s]", exc.code, exc.message, correlation_id(request.scope))
    return fail(request.scope, exc.status, exc.code, exc.message, exc.details)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return fail(
        request.scope, 422, "invalid_input", "request validation failed", field_errors(exc.errors())
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110 §10.2.1 ``Allow``).

    Starlette's own 405 names only the methods of the first route whose path matched, and
    a path here is often served by several routes (``GET`` and ``POST /v1/memories``).
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\0"})
        if match is Match.PARTIAL:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return fail(request.scope, exc.status_code, code, str(exc.detail), None, headers or None)


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error [cid=%s]", correlation_id(request.scope), exc_info=exc)
    return fail(request.scope, 500, "internal", "internal server error")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(TetherError, _tether_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)

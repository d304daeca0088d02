"""Fast JSON request bodies for the hot ingest routes, still documented in OpenAPI.

FastAPI parses bodies with the stdlib ``json`` module and validates afterwards; on the
event ingest path that is most of a request's CPU. Routes listed here read the raw body,
parse it with orjson and validate with pydantic directly (about 1.5x cheaper per event),
and declare the schema through ``openapi_extra`` so ``/openapi.json`` still shows it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import FastAPI, Query
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from tether.errors import InvalidInput
from tether.server.access import authorize, needs_key
from tether.server.envelope import ERROR_STATUSES, Envelope, ErrorEnvelope
from tether.server.errors import field_errors
from tether.server.jsonparse import NUL_MESSAGE, NulInString, loads, nul_error

M = TypeVar("M", bound=BaseModel)


class ORJSONRequest(Request):
    """A request whose ``json()`` parses with orjson.

    Beyond speed, orjson is stricter than the stdlib parser in the ways storage needs: it
    rejects lone UTF-16 surrogates ("\\ud800") and numbers that overflow to infinity,
    which the stdlib accepts and which then fail on the way into SQLite (a 500). Its
    ``JSONDecodeError`` subclasses the stdlib's, so FastAPI answers 422 ``json_invalid``.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """Every Tether route: FastAPI's, authorized first (:func:`tether.server.access.authorize`,
    before the body is read) and with bodies parsed by :class:`ORJSONRequest` (FastAPI's
    documented custom-route-class hook)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        operation_id = self.operation_id

        async def route_handler(request: Request) -> Response:
            authorize(request.scope, operation_id)
            return await handler(ORJSONRequest(request.scope, request.receive))

        return route_handler


# A decimal this server could have issued: ASCII digits only (``str.isdigit`` also takes
# "²" and other Unicode digits, which ``int`` then refuses: a 500), at most 15 of them
# (below 2**53, see tether.domain.common.MAX_SAFE_INT). The OpenAPI patterns say the same.
DECIMAL_PATTERN = "^[0-9]{1,15}$"
_DECIMAL = re.compile(DECIMAL_PATTERN)


def parse_decimal(value: str, loc: list[str], message: str) -> int:
    """A non-negative decimal of at most 15 ASCII digits.

    Raises:
        InvalidInput: anything else (422 with ``loc``).
    """
    if _DECIMAL.fullmatch(value) is None:
        raise InvalidInput(message, details=[{"loc": loc}])
    return int(value)


_IDEMPOTENCY_KEY_MAX = 200


def idempotency_header(request: Request) -> str | None:
    """The ``Idempotency-Key`` header (1-200 characters), or ``None`` when absent.

    Checked whenever it is sent, even when the body's own key wins, so a malformed header
    is never silently accepted.

    Raises:
        InvalidInput: empty or longer than 200 characters (422).
    """
    value = request.headers.get("idempotency-key")
    if value is not None and not 1 <= len(value) <= _IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(
            f"Idempotency-Key must be 1-{_IDEMPOTENCY_KEY_MAX} characters",
            details=[{"loc": ["header", "Idempotency-Key"]}],
        )
    return value


#: The ``cursor`` query parameter of a list (parsed by :func:`parse_cursor`).
CursorQ = Annotated[
    str | None, Query(pattern=DECIMAL_PATTERN, description="The previous page's next_cursor.")
]


def parse_cursor(value: str | None) -> int | None:
    """A list cursor (the decimal row key this server issued) as an int; ``None`` stays.

    Raises:
        InvalidInput: not a cursor this server could have issued (422).
    """
    if value is None:
        return None
    return parse_decimal(value, ["query", "cursor"], "cursor is not one this server issued")


_REF = "#/components/schemas/{model}"
#: The OpenAPI security scheme of API keys.
BEARER = "apiKey"


def openapi_body(*models: type[BaseModel], idempotency_header: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of one of ``models`` (and, with
    ``idempotency_header``, the optional ``Idempotency-Key`` header the route reads)."""
    refs = [{"$ref": _REF.format(model=m.__name__)} for m in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    extra: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "x-tether-models": [m.__name__ for m in models],
    }
    if idempotency_header:
        extra["parameters"] = [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Used when the body has no idempotency_key (1-200 characters).",
                "schema": {"type": "string", "minLength": 1, "maxLength": _IDEMPOTENCY_KEY_MAX},
            }
        ]
    return extra


async def read_json(request: Request) -> Any:
    """The body parsed as JSON (orjson).

    Raises:
        InvalidInput: empty body or not JSON (422).
    """
    raw = await request.body()
    try:
        return loads(raw)
    except NulInString as exc:
        raise InvalidInput(NUL_MESSAGE, details=[nul_error(exc)]) from None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            "body is not valid JSON",
            details=[{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}],
        ) from None


def validate(model: type[M], value: Any) -> M:
    """``model.model_validate(value)`` with errors as a 422 whose locations start at ``body``.

    Raises:
        InvalidInput: the value does not fit the model.
    """
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        details = field_errors(exc.errors())
        for d in details:
            d["loc"] = ["body", *d["loc"]]
        raise InvalidInput("request validation failed", details=details) from None


_JSON = "application/json"
_ERROR_HEADERS: dict[str, dict[str, Any]] = {
    "401": {
        "WWW-Authenticate": {
            "description": 'Bearer realm="tether" (RFC 6750 §3).',
            "schema": {"type": "string"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds until the key's bucket has a token again (RFC 9110 §10.2.3).",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
_BODY_METHODS = frozenset({"post", "put", "patch"})


def _document_responses(path: str, method: str, op: dict[str, Any]) -> None:
    """Give one operation the responses every request can get (the envelope's schemas).

    Success answers (2xx, JSON) are the envelope the route declared
    (:func:`tether.server.shapes.returns`), else a plain :class:`Envelope`; every operation
    may answer 421 (foreign Host), 422 and 503; those with a body 413 and 415 (the
    middleware checks size and media type first); those with a path parameter 404; those
    that need a key (:data:`tether.server.access.ACCESS`) 403, and declare the bearer
    scheme; state-changing ones 403 (a cross-origin request); and every one 401 and 429,
    since a key that is sent, even to a public route, is checked and counted. Routes declare their
    own extras with :func:`tether.server.envelope.documented` (409, 412, a 200 beside a 201).
    """
    responses: dict[str, Any] = op.setdefault("responses", {})
    statuses = {401, 421, 422, 429, 503}  # a key that is sent is checked and counted
    if method in _BODY_METHODS | {"delete"}:
        statuses.add(403)
    if method in _BODY_METHODS:
        statuses |= {413, 415}
    if needs_key(op.get("operationId", "")):
        statuses.add(403)
        op["security"] = [{BEARER: []}]
    else:
        op["security"] = []
    if "{" in path:
        statuses.add(404)
    for status in statuses:
        responses.setdefault(str(status), {})
    for code, response in responses.items():
        if code.startswith("2"):
            content = response.setdefault("content", {_JSON: {}})
            if _JSON in content and not content[_JSON].get("schema"):
                content[_JSON] = {"schema": {"$ref": _REF.format(model=Envelope.__name__)}}
            response["description"] = response.get("description") or "Success."
        elif code[0] in "45":
            response["description"] = ERROR_STATUSES.get(int(code), "Error.")
            response["content"] = {
                _JSON: {"schema": {"$ref": _REF.format(model=ErrorEnvelope.__name__)}}
            }
            if code in _ERROR_HEADERS:
                response["headers"] = _ERROR_HEADERS[code]


#: What every plain string field says of U+0000 (refused at the parse, ``jsonparse``).
NO_NUL_PATTERN = "^[^\\u0000]*$"


def _no_nul(node: Any) -> None:
    """Give every plain string schema (no pattern, format, enum or const) the pattern
    that excludes U+0000, so clients and fuzzers know what the parse refuses. Free-form
    JSON values (metadata, state, attributes) cannot say it in their schema; docs/api.md
    does."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(node):
            node["pattern"] = NO_NUL_PATTERN
        for value in node.values():
            _no_nul(value)
    elif isinstance(node, list):
        for value in node:
            _no_nul(value)


def install_openapi(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Make ``app.openapi()`` include the schemas of ``models`` (used via ``openapi_body``)
    and the envelope's responses on every operation (see :func:`_document_responses`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            documented: list[type[BaseModel]] = [*models, Envelope, ErrorEnvelope]
            for model in documented:
                js = model.model_json_schema(ref_template=_REF)
                components.update(js.pop("$defs", {}))
                components[model.__name__] = js
            schema["components"]["securitySchemes"] = {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, tk_<id>_<secret> (`tether keys create`). "
                    "Not needed in local mode (no keys, loopback).",
                }
            }
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)  # FastAPI's 422 shape; ours is the envelope
            for path, item in schema.get("paths", {}).items():
                for method, op in item.items():
                    op.pop("x-tether-models", None)
                    _document_responses(path, method, op)
            _no_nul(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

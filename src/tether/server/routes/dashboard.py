"""The web dashboard's static files (``docs/dashboard.md``): ``GET /`` and ``GET /ui/{path}``.

The files live in this package (``tether/server/dashboard/``): plain HTML, CSS and
JavaScript ES modules, no build step. They hold no tenant data, so both routes are public
(``dashboard.index``, ``dashboard.asset`` in :data:`tether.server.access.ACCESS`); the
data comes from the API, which the page calls with the operator's key. Like every route
they pass the whole request pipeline (correlation id, limits, ``Host`` allow-list, rate
limits). They are left out of the OpenAPI document: they are not part of the API.

Safety:

- Only files found in the package when the table is built can be served: a request names
  a key of that table, never a filesystem path, so ``..`` or an absolute path reaches
  nothing (404).
- Every answer carries a strict Content-Security-Policy (no inline script or style, no
  other origin: ``connect-src 'self'`` covers the page's own WebSocket), ``nosniff``,
  ``no-referrer`` and ``frame-ancestors 'none'``.
- Caching: each file has a strong ``ETag`` (SHA-256 of its bytes, 16 hex digits) and
  ``Cache-Control: no-cache``: browsers revalidate and get ``304 Not Modified`` until the
  file changes, so an upgrade never serves a stale module.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from tether.errors import NotFound
from tether.server.bodies import JSONRoute

__all__ = ["CSP", "router"]

router = APIRouter(tags=["dashboard"], route_class=JSONRoute, include_in_schema=False)

#: The Content-Security-Policy of every dashboard file. ``'self'`` in ``connect-src``
#: matches the page's own ``ws://`` / ``wss://`` origin (CSP Level 3).
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
_INDEX: Final = "index.html"


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def _assets() -> dict[str, _Asset]:
    """Every servable file of the dashboard folder, by its path relative to it (``/``
    separated). Built on the first request, then immutable (the package does not change
    while the server runs). Files of an unknown type are not served."""
    root = resources.files("tether.server").joinpath("dashboard")
    table: dict[str, _Asset] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, f"{name}/")
                continue
            suffix = name[name.rfind(".") :] if "." in name else ""
            if suffix not in _TYPES:
                continue
            body = child.read_bytes()
            etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
            table[name] = _Asset(body, _TYPES[suffix], etag)

    walk(root, "")
    return table


def _serve(request: Request, name: str) -> Response:
    """The file ``name`` of the dashboard (``304`` when ``If-None-Match`` names its ETag).

    Raises:
        NotFound: no such file (404 envelope).
    """
    asset = _assets().get(name)
    if asset is None:
        raise NotFound(f"no dashboard file {name!r}")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    match = request.headers.get("if-none-match")
    if match is not None and asset.etag in {tag.strip() for tag in match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/", operation_id="dashboard.index")
async def index(request: Request) -> Response:
    """The dashboard's page (``text/html``); its routes are in the URL fragment
    (``#/sessions/ID/events/SEQ``), so this one page serves every view."""
    return _serve(request, _INDEX)


@router.get("/ui/{path:path}", operation_id="dashboard.asset")
async def asset(request: Request, path: str) -> Response:
    """A dashboard file by its path under ``tether/server/dashboard/`` (``ui/js/app.js``).

    Raises:
        NotFound: not one of the dashboard's files (404; paths are looked up in a table,
            never opened, so ``..`` reaches nothing).
    """
    return _serve(request, path)

"""The dashboard's files over HTTP (no browser): public, but through the whole request
pipeline; correct types, ETag revalidation, a strict CSP, no path traversal, left out of
the OpenAPI document; and the same-origin rule that lets the dashboard write and open
its WebSocket while other sites still cannot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tether.server.routes.dashboard import CSP
from tether.testing import TetherServer

FILES = Path(__file__).resolve().parents[2] / "src" / "tether" / "server" / "dashboard"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TetherServer]:
    home = tmp_path_factory.mktemp("dashboard-http")
    server = TetherServer(home / "tether.db", home=home).start()
    yield server
    server.stop()


def test_the_page_and_its_files(srv: TetherServer) -> None:
    r = httpx.get(f"{srv.url}/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == (FILES / "index.html").read_bytes()
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self';" in CSP
    assert "unsafe-inline" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-correlation-id"]  # the request pipeline ran
    types = {
        "js/app.js": "text/javascript; charset=utf-8",
        "app.css": "text/css; charset=utf-8",
        "favicon.svg": "image/svg+xml",
    }
    for path, media in types.items():
        f = httpx.get(f"{srv.url}/ui/{path}")
        assert (f.status_code, f.headers["content-type"]) == (200, media)
        assert f.content == (FILES / path).read_bytes()


def test_etag_revalidation(srv: TetherServer) -> None:
    first = httpx.get(f"{srv.url}/ui/js/app.js")
    etag = first.headers["etag"]
    again = httpx.get(f"{srv.url}/ui/js/app.js", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = httpx.get(f"{srv.url}/ui/js/app.js", headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/ui/%2e%2e/routes/dashboard.py",
        "/ui/..%2f..%2fconfig.py",
        "/ui//etc/passwd",
        "/ui/js",
        "/ui/",
        "/ui/nope.js",
        "/ui/js/app.js.map",
    ],
)
def test_nothing_else_is_served(srv: TetherServer, path: str) -> None:
    with httpx.Client() as client:
        r = client.send(client.build_request("GET", httpx.URL(f"{srv.url}{path}")))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_a_foreign_host_is_refused_and_the_files_are_not_in_the_api_schema(
    srv: TetherServer,
) -> None:
    assert httpx.get(f"{srv.url}/", headers={"Host": "evil.example"}).status_code == 421
    paths = httpx.get(f"{srv.url}/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/ui")]


def test_the_dashboard_origin_may_write_and_other_origins_may_not(srv: TetherServer) -> None:
    own = srv.url  # http://127.0.0.1:<port>, what a browser sends from the dashboard
    port = srv.port
    cases = {
        own: 201,
        f"http://127.0.0.1:{port + 1}": 403,  # another local page
        f"http://localhost:{port}": 403,  # not the Host the request was sent to
        "https://evil.example": 403,
        "null": 403,
    }
    for n, (origin, status) in enumerate(cases.items()):
        r = httpx.post(f"{srv.url}/v1/sessions", json={"id": f"o{n}"}, headers={"Origin": origin})
        assert r.status_code == status, (origin, r.text)


def test_the_dashboard_origin_may_open_a_websocket(srv: TetherServer) -> None:
    ws_url = f"ws://127.0.0.1:{srv.port}/v1/ws"
    with connect(ws_url, origin=srv.url) as ws:  # type: ignore[arg-type]
        ws.send(json.dumps({"op": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403

"""A real ``tether serve``'s log: JSON lines, the request's correlation id, no secrets and
no bodies.

The server runs with an embedder API key configured, the access log on and DEBUG level
(the most it ever writes); requests carry ``Authorization: Bearer tk_...`` headers, and
bodies, a memory, a search query and a query string carry a marker. The log file (the
server's stdout and stderr) must hold only JSON objects, the access lines must carry their
request's correlation id, and neither marker nor key secret may appear in it. The
redaction of what a real server rarely logs (exceptions, database URLs with passwords) is
unit-tested in tests/unit/test_logs.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from tether.testing import TetherServer

MARKER = "zqxmarker7731"  # one token: the analyzer and the URL encoder leave it whole
KEY = "tk_" + "Q" * 8 + "secretpart" + "9" * 14
EMBEDDER_KEY = "sk-secret-0f9e8d7c6b5a"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_log_lines_are_json_with_correlation_ids_and_no_secrets_or_bodies(
    server_factory: Callable[..., TetherServer], fresh_store: str
) -> None:
    srv = server_factory(
        fresh_store,
        env={
            "TETHER_EMBEDDER_API_KEY": EMBEDDER_KEY,
            "TETHER_ACCESS_LOG": "true",
            "TETHER_LOG_LEVEL": "DEBUG",
        },
    )
    sent: dict[str, tuple[str, str]] = {}  # correlation id -> (method, path)

    with httpx.Client(base_url=srv.url, timeout=30.0) as http:

        def call(
            method: str, path: str, n: int, headers: dict[str, str] | None = None, **kw: Any
        ) -> httpx.Response:
            cid = f"test-cid-{n}"
            sent[cid] = (method, path)
            return http.request(
                method, path, headers={"X-Correlation-ID": cid, **(headers or {})}, **kw
            )

        sid = f"s-{MARKER[:4]}"
        r = call("POST", "/v1/sessions", 123, json={"id": sid, "title": f"title {MARKER}"})
        assert r.status_code == 201
        r = call(
            "POST",
            f"/v1/sessions/{sid}/events",
            2,
            json={"kind": "message", "role": "user", "input": f"hello {MARKER}"},
        )
        assert r.status_code == 201
        r = call("PATCH", f"/v1/sessions/{sid}/state", 3, json={"note": MARKER})
        assert r.status_code == 200
        r = call("POST", "/v1/memories", 4, json={"namespace": "n", "text": f"remember {MARKER}"})
        assert r.status_code == 201
        r = call("POST", "/v1/memories/search", 5, json={"namespace": "n", "query": MARKER})
        assert r.status_code == 200
        r = call("GET", "/v1/memories", 6, params={"namespace": "n", "text": MARKER})
        assert r.status_code == 200
        # Refused input carrying the marker: 422 (bad field), 415 (not JSON).
        r = call("POST", "/v1/sessions", 7, json={"id": sid, "tags": MARKER, "x": {MARKER: 1}})
        assert r.status_code == 422
        r = call("POST", "/v1/memories", 8, content=MARKER, headers={"content-type": "text/plain"})
        assert r.status_code == 415
        # A key secret in the Authorization header, whatever the server answers to it.
        for n, path in enumerate(["/v1/sessions", f"/v1/sessions/{sid}", "/v1/memories"], 9):
            call("GET", path, n, headers={"Authorization": f"Bearer {KEY}"})
        call("POST", "/v1/sessions", 12, json={"title": MARKER}, headers={"Authorization": KEY})
    srv.stop()

    text = srv.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(line, dict)
        assert RFC3339_UTC.match(line["timestamp"]), line
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, line
        assert isinstance(line["logger"], str)
        assert isinstance(line["message"], str)

    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert all("correlation_id" in line for line in access)  # logged while serving
    by_cid = {line["correlation_id"]: line["message"] for line in access}
    for cid, (method, path) in sent.items():
        assert f'"{method} {path}' in by_cid[cid], (cid, by_cid.get(cid))
    assert '"GET /v1/memories?namespace=[redacted]&text=[redacted] ' in by_cid["test-cid-6"]
    assert "test-cid-123" in by_cid

    for secret in (MARKER, KEY, "secretpart", EMBEDDER_KEY, "sk-secret"):
        assert secret not in text, f"{secret!r} found in the server's log"

"""Hostile input never reaches the store as a 500: found by fuzzing the OpenAPI schema
(schemathesis) and kept here as regressions. Every case must answer 4xx in the envelope,
or succeed; and the server must still be healthy afterwards."""

from __future__ import annotations

import httpx
import pytest

U64 = 18446744073709551615  # fits JSON and orjson, not SQLite's signed 64-bit integers
LONE_SURROGATE = b'"\\ud800"'


def _raw(http: httpx.Client, method: str, path: str, body: bytes) -> httpx.Response:
    return http.request(method, path, content=body, headers={"content-type": "application/json"})


@pytest.fixture(scope="module", autouse=True)
def _seed(server: object) -> None:
    with httpx.Client(base_url=server.url) as http:  # type: ignore[attr-defined]
        http.post("/v1/sessions", json={"id": "hostile"})


def test_lone_surrogates_are_rejected_everywhere(http: httpx.Client) -> None:
    mem = http.post("/v1/memories", json={"namespace": "h", "text": "ok"}).json()["data"]
    memory_id = mem.get("id") or mem["memory"]["id"]
    cases = [
        ("POST", "/v1/sessions", b'{"id": "x1", "title": ' + LONE_SURROGATE + b"}"),
        ("PATCH", "/v1/sessions/hostile", b'{"title": ' + LONE_SURROGATE + b"}"),
        (
            "POST",
            "/v1/sessions/hostile/events",
            b'{"kind": "log", "input": ' + LONE_SURROGATE + b"}",
        ),
        (
            "POST",
            "/v1/events/batch",
            b'{"events": [{"session_id": "x2", "kind": "log", "name": ' + LONE_SURROGATE + b"}]}",
        ),
        ("PATCH", "/v1/sessions/hostile/state", b'{"a": ' + LONE_SURROGATE + b"}"),
        ("POST", "/v1/sessions/hostile/goals", b'{"description": ' + LONE_SURROGATE + b"}"),
        ("POST", "/v1/memories", b'{"namespace": "h", "text": ' + LONE_SURROGATE + b"}"),
        ("PATCH", f"/v1/memories/{memory_id}", b'{"text": ' + LONE_SURROGATE + b"}"),
        ("POST", "/v1/memories/search", b'{"namespace": "h", "query": ' + LONE_SURROGATE + b"}"),
    ]
    for method, path, body in cases:
        r = _raw(http, method, path, body)
        assert r.status_code == 422, (method, path, r.text)
        assert r.json()["ok"] is False


def test_integers_beyond_64_bits_are_rejected_or_stored_safely(http: httpx.Client) -> None:
    big = str(U64).encode()
    rejected = [
        ("POST", "/v1/sessions/hostile/events", b'{"kind": "llm", "input_tokens": ' + big + b"}"),
        ("GET", f"/v1/sessions/hostile/events?after_seq={U64}", b""),
        ("GET", f"/v1/sessions?cursor={U64}", b""),
        ("GET", f"/v1/memories?namespace=h&cursor={U64}", b""),
        ("GET", f"/v1/memory/changes?after={U64}", b""),
        ("POST", "/v1/admin/outbox/replay", b'{"ids": [' + big + b"]}"),
    ]
    for method, path, body in rejected:
        r = _raw(http, method, path, body) if body else http.request(method, path)
        assert r.status_code == 422, (method, path, r.text)
    # Inside free-form JSON (metadata, input, state) a big integer is data: stored as JSON.
    ok = _raw(
        http,
        "POST",
        "/v1/sessions/hostile/events",
        b'{"kind": "log", "attributes": {"n": ' + big + b"}}",
    )
    assert ok.status_code == 201
    search = _raw(
        http,
        "POST",
        "/v1/memories/search",
        b'{"namespace": "h", "query": "ok", "filters": {"metadata": {"n": ' + big + b"}}}",
    )
    assert search.status_code == 200
    assert search.json()["data"]["results"] == []


def test_deep_nesting_and_infinities_are_422(http: httpx.Client) -> None:
    deep = b"[" * 2000 + b"]" * 2000
    assert (
        _raw(http, "PATCH", "/v1/sessions/hostile/state", b'{"a": ' + deep + b"}").status_code
        == 422
    )
    assert (
        _raw(
            http, "POST", "/v1/sessions/hostile/events", b'{"kind": "log", "duration_ms": 1e400}'
        ).status_code
        == 422
    )
    assert http.get("/healthz").status_code == 200

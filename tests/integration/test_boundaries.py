"""Every limit is checked at the boundary, on every route and field it concerns.

The cases are generated from the server's own ``/openapi.json``, not from a hand-kept
list of fields: free-form JSON fields (objects without declared properties, or values of
any type), RFC 3339 times, numbers, query parameters and headers are found by walking the
request schemas, and each gets the hostile value of its class:

- JSON nested past the documented depth (64): a 422 naming the field; nested exactly to
  the limit: accepted, and every read of it afterwards answers (no value is stored that
  cannot be served back);
- a time whose UTC year leaves 1-9999 (``9999-12-31T23:59:59-01:00``): a 422 naming it;
- ``true`` where a number goes: a 422;
- query parameters: non-ASCII digits (``²``), 25 digits, 1,000 repetitions, 10,000
  characters: a 4xx, never a 5xx;
- and a request answered with an error writes nothing (the counters do not move).

Only a valid example body per operation is written here; the test fails when an
operation with a JSON body has none, so a new route cannot slip past it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer

pytestmark = pytest.mark.slow

MAX_DEPTH = 64
SESSION = "bnd-s"
GOAL = "bnd-g"

_EVENT = {
    "kind": "log",
    "input": {},
    "output": {},
    "attributes": {},
    "started_at": "2026-01-01T00:00:00Z",
    "ended_at": "2026-01-01T00:00:01Z",
    "duration_ms": 1,
    "cost_usd": 0.1,
    "input_tokens": 1,
    "output_tokens": 1,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "price": {"input": 1.0, "output": 1.0},
}

#: Valid bodies per operation that takes JSON (a list where the body schema has several
#: shapes): each generated field goes into the example that has its parent.
EXAMPLES: dict[str, Any] = {
    "sessions.create": {"id": "bnd-new", "metadata": {}},
    "sessions.update": {"title": "t", "metadata": {}},
    "sessions.end": {"status": "completed"},
    "sessions.state.patch": {"a": 1},
    "sessions.goals.create": {"description": "d", "metadata": {}},
    "sessions.goals.update": {"progress": 0.5, "priority": 1, "metadata": {}},
    "sessions.agents.spawn": {"agent": "a", "metadata": {}},
    "events.append": [_EVENT, {"events": [_EVENT]}],
    "events.batch": {
        "sessions": [{"id": "bnd-batch", "metadata": {}}],
        "events": [
            {
                "session_id": "bnd-batch",
                "kind": "log",
                "input": {},
                "output": {},
                "attributes": {},
                "started_at": "2026-01-01T00:00:00Z",
                "ended_at": "2026-01-01T00:00:01Z",
                "duration_ms": 1,
                "cost_usd": 0.1,
                "input_tokens": 1,
                "output_tokens": 1,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "price": {"input": 1.0, "output": 1.0},
            }
        ],
        "ends": [{"session_id": "bnd-batch"}],
    },
    "memories.create": {
        "namespace": "bnd",
        "text": "a boundary memory",
        "metadata": {},
        "importance": 0.5,
        "occurred_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
    },
    "memories.batch": {
        "items": [
            {
                "namespace": "bnd",
                "text": "a batched boundary memory",
                "metadata": {},
                "importance": 0.5,
                "occurred_at": "2026-01-01T00:00:00Z",
                "expires_at": "2099-01-01T00:00:00Z",
            }
        ]
    },
    "memories.search": {
        "namespace": "bnd",
        "query": "boundary",
        "limit": 5,
        "filters": {
            "since": "2020-01-01T00:00:00Z",
            "until": "2099-01-01T00:00:00Z",
            "metadata": {"k": 1},
        },
    },
    "memories.update": {
        "importance": 0.4,
        "metadata": {},
        "occurred_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
    },
    "admin.outbox.replay": {"ids": [1]},
    "admin.keys.create": [
        {
            "scope": "write",
            "name": "n",
            "namespaces": ["bnd/"],
            "expires_at": "2099-01-01T00:00:00Z",
        },
        {"scope": "admin", "name": "a", "expires_at": "2099-01-01T00:00:00Z"},
    ],
    "admin.memory.reindex": {"all": False},
    "admin.prices.put": {
        "input": 1.0,
        "cached_input": 0.1,
        "cache_write": 1.25,
        "output": 4.0,
        "reasoning": 4.0,
    },
}
#: Operations whose body is not JSON (covered elsewhere: NDJSON import).
NOT_JSON = {"memories.import"}


def nest(depth: int) -> Any:
    """A JSON value ``depth`` levels deep (objects and arrays alternating)."""
    value: Any = 1
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def _resolve(openapi: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _options(openapi: dict[str, Any], schema: Any) -> list[Any]:
    schema = _resolve(openapi, schema)
    if isinstance(schema, dict) and "anyOf" in schema:
        return [o for opt in schema["anyOf"] for o in _options(openapi, opt)]
    return [schema]


def fields(openapi: dict[str, Any], schema: Any, path: tuple[Any, ...] = ()) -> Iterator[Any]:
    """``(path, kind)`` for every free-form, date-time, number and other string field
    under ``schema``; array items are addressed at index 0."""
    for option in _options(openapi, schema):
        if not isinstance(option, dict) or option.get("type") == "null":
            continue
        kind = option.get("type")
        if option == {} or (kind == "object" and "properties" not in option):
            yield path, "json"
        elif kind == "object":
            for name, sub in option["properties"].items():
                yield from fields(openapi, sub, (*path, name))
        elif kind == "array":
            yield from fields(openapi, option.get("items", {}), (*path, 0))
        elif kind == "string" and option.get("format") == "date-time":
            yield path, "time"
        elif kind in ("number", "integer"):
            yield path, "number"
        elif kind == "string":
            yield path, "text"


def example_for(op_id: str, path: tuple[Any, ...]) -> Any:
    """The example of ``op_id`` that holds the parent of ``path``."""
    examples = EXAMPLES[op_id] if isinstance(EXAMPLES[op_id], list) else [EXAMPLES[op_id]]
    for example in examples:
        node = example
        try:
            for key in path[:-1]:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(node, dict | list):
            return example
    raise AssertionError(f"no example of {op_id} has the parent of {path}")


def put(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``body`` with ``value`` at ``path``; containers are created as needed,
    and a scalar where the path needs a container (``namespace: "a"`` for the list form
    ``namespace[0]``) is replaced by one."""
    if not path:
        return value
    out = copy.deepcopy(body)
    parent: Any = None
    node: Any = out
    for depth, key in enumerate(path):
        want: type = list if isinstance(key, int) else dict
        if not isinstance(node, want):
            node = want()
            parent[path[depth - 1]] = node
        if isinstance(node, list):
            while len(node) <= key:
                node.append(None)
        elif depth + 1 < len(path):
            node.setdefault(key, None)
        if depth + 1 == len(path):
            node[key] = value
        else:
            parent, node = node, node[key]
    return out


@pytest.fixture(scope="module")
def api(server: TetherServer) -> Iterator[tuple[httpx.Client, dict[str, Any], dict[str, str]]]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/v1/sessions", json={"id": SESSION}).status_code == 201
        assert http.post(
            f"/v1/sessions/{SESSION}/goals", json={"id": GOAL, "description": "g"}
        ).status_code in (200, 201)
        made = http.post("/v1/memories", json={"namespace": "bnd", "text": "seed memory"})
        ids = {
            "session_id": SESSION,
            "goal_id": GOAL,
            "memory_id": made.json()["data"]["memory"]["id"],
            "key_id": "01JZZZZZZZZZZZZZZZZZZZZZZZ",  # no such key: nothing is revoked
            "model": "bnd-model",
        }
        yield http, http.get("/openapi.json").json(), ids


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, op in item.items():
            yield op["operationId"], method.upper(), path, op


def _url(path: str, ids: dict[str, str]) -> str:
    return path.format(**ids)


def _counters(http: httpx.Client) -> tuple[Any, ...]:
    stats = http.get("/v1/stats").json()["data"]
    memory = http.get("/v1/memory/stats").json()["data"]
    return (
        stats["sessions"]["total"],
        stats["events"]["total"],
        memory["count"],
        http.get(f"/v1/sessions/{SESSION}/state").json()["data"]["version"],
        len(http.get(f"/v1/sessions/{SESSION}").json()["data"]["goals"]),
    )


def _json_body_operations(openapi: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    out = []
    for op_id, method, path, op in _operations(openapi):
        content = op.get("requestBody", {}).get("content", {})
        json_type = next((t for t in content if t == "application/json"), None)
        if json_type is None:
            continue
        out.append((op_id, method, path, content[json_type]["schema"]))
    return out


def test_every_json_body_operation_has_an_example(api: Any) -> None:
    _, openapi, _ = api
    ops = {op_id for op_id, *_ in _json_body_operations(openapi)}
    assert ops - set(EXAMPLES) == set(), "add an example body for these operations"
    assert set(EXAMPLES) - ops == set(), "examples for operations that no longer exist"
    for op_id, _method, _path, op in _operations(openapi):
        content = op.get("requestBody", {}).get("content", {})
        assert op_id in ops or op_id in NOT_JSON or not content, op_id


def test_hostile_values_in_every_field_are_422_and_write_nothing(api: Any) -> None:
    http, openapi, ids = api
    before = _counters(http)
    hostile = {
        "json": nest(MAX_DEPTH + 1),
        "time": "9999-12-31T23:59:59-01:00",
        "number": True,
        "text": "before\x00after",  # U+0000: no backend stores it (PostgreSQL text refuses)
    }
    tried: dict[str, int] = {}
    for op_id, method, path, schema in _json_body_operations(openapi):
        for field, kind in fields(openapi, schema):
            try:
                example = example_for(op_id, field)
            except AssertionError:
                if kind != "text":
                    raise
                # An optional string list no example fills (tags): put() creates it.
                example = (
                    EXAMPLES[op_id][0] if isinstance(EXAMPLES[op_id], list) else EXAMPLES[op_id]
                )
            body = put(example, field, hostile[kind])
            r = http.request(method, _url(path, ids), json=body)
            assert r.status_code == 422, (op_id, field, kind, r.text)
            locs = [tuple(d.get("loc", ())) for d in r.json()["error"]["details"]]
            want = ("body", *field)
            assert any(loc[: len(want)] == want for loc in locs), (op_id, field, locs)
            tried[kind] = tried.get(kind, 0) + 1
    # Times on either side of the range, also in query parameters; U+0000 in any.
    for op_id, method, path, op in _operations(openapi):
        for param in op.get("parameters", []):
            if param["in"] != "query":
                continue
            r = http.request(method, _url(path, ids), params={param["name"]: "a\x00"})
            assert r.status_code == 422, (op_id, param["name"], r.text)
            tried["query nul"] = tried.get("query nul", 0) + 1
            if any(o.get("format") == "date-time" for o in _options(openapi, param["schema"])):
                r = http.request(method, _url(path, ids), params={param["name"]: hostile["time"]})
                assert r.status_code == 422, (op_id, param["name"], r.text)
                tried["query time"] = tried.get("query time", 0) + 1
    assert _counters(http) == before
    # Generated, not hand-listed: these counts only grow as fields are added.
    print(tried)
    assert tried["json"] >= 14
    assert tried["time"] >= 10
    assert tried["number"] >= 15
    assert tried["query time"] >= 6
    assert tried["text"] >= 40
    assert tried["query nul"] >= 20


def test_json_at_the_depth_limit_is_stored_and_served_everywhere(api: Any) -> None:
    http, openapi, ids = api
    deepest = nest(MAX_DEPTH)
    stored = 0
    for op_id, method, path, schema in _json_body_operations(openapi):
        if op_id in ("memories.search", "admin.outbox.replay"):
            continue  # not stored
        for field, kind in fields(openapi, schema):
            if kind != "json" or (field and field[-1] == "metadata" and op_id == "memories.search"):
                continue
            body = put(example_for(op_id, field), field, deepest)
            if op_id == "sessions.create":
                body["id"] = f"deep-{stored}"
            if op_id == "events.batch":
                body["sessions"][0]["id"] = body["events"][0]["session_id"] = f"deep-b{stored}"
                body["ends"] = []
            if op_id in ("memories.create", "memories.batch"):
                text = f"deep memory {stored}"
                if op_id == "memories.create":
                    body["text"] = text
                else:
                    body["items"][0]["text"] = text
            r = http.request(method, _url(path, ids), json=body)
            assert r.status_code in (200, 201), (op_id, field, r.text)
            stored += 1
    assert stored >= 12
    # Every read that can return those values still answers: each list, and each
    # session's and memory's own reads.
    for path in ("/v1/memories/export", "/v1/memory/changes?limit=1000"):
        assert http.get(path).status_code == 200, path
    sessions = http.get("/v1/sessions", params={"limit": 500})
    assert sessions.status_code == 200
    for session in sessions.json()["data"]["items"]:
        for tail in ("", "/state", "/events?limit=1000"):
            r = http.get(f"/v1/sessions/{session['id']}{tail}")
            assert r.status_code == 200, (session["id"], tail, r.text[:300])
    memories = http.get("/v1/memories", params={"limit": 500})
    assert memories.status_code == 200
    for memory in memories.json()["data"]["items"]:
        for tail in ("", "/history"):
            r = http.get(f"/v1/memories/{memory['id']}{tail}")
            assert r.status_code == 200, (memory["id"], tail, r.text[:300])
    search = http.post("/v1/memories/search", json={"namespace": "bnd", "query": "deep memory"})
    assert search.status_code == 200
    assert search.json()["data"]["results"]


def test_query_parameters_and_headers_get_a_bounded_parse(api: Any) -> None:
    http, openapi, ids = api
    checked = 0
    for op_id, method, path, op in _operations(openapi):
        url = _url(path, ids)
        for param in op.get("parameters", []):
            if param["in"] not in ("query", "header"):
                continue
            name = param["name"]
            options = [o for o in _options(openapi, param["schema"]) if o.get("type") != "null"]
            # Declared with a bound: a maximum, a length, a pattern, an enum or a format.
            bounded = ("maximum", "maxLength", "pattern", "enum", "format", "maxItems")
            assert all(
                any(k in o for k in bounded)
                or o.get("type") == "boolean"
                or (o.get("type") == "array" and "maxItems" in o)
                or "$ref" in o
                for o in options
            ), (op_id, name, options)
            values = ["²", "1" * 25, "x" * 10_000, "-1"]
            for value in values:
                if param["in"] == "header":
                    if not value.isascii():
                        continue
                    r = http.request(method, url, headers={name: value}, json={})
                else:
                    r = http.request(method, url, params={name: value})
                assert r.status_code < 500, (op_id, name, value[:30], r.text[:300])
                checked += 1
            if param["in"] == "query":
                r = http.request(method, url, params=[(name, "a")] * 1000)
                assert r.status_code < 500, (op_id, name, "x1000", r.text[:300])
                if any(o.get("type") == "array" for o in options):
                    assert r.status_code == 422, (op_id, name)
    assert checked > 100
    # The header classes of the issue, by hand: Unicode digits, 20+ digits.
    for value in ("²".encode(), b"1" * 25, b'W/"' + b"9" * 30 + b'"'):
        r = http.patch(f"/v1/sessions/{SESSION}/state", json={"b": 1}, headers={"If-Match": value})
        assert r.status_code == 422, r.text
    r = http.get("/v1/sessions", params={"cursor": "²"})
    assert r.status_code == 422


def test_true_is_not_a_number_and_chunked_text_is_415(api: Any) -> None:
    http, openapi, ids = api
    for op_id, method, path, _ in _json_body_operations(openapi):

        def chunks() -> Iterator[bytes]:
            yield b"not json"

        r = http.request(
            method, _url(path, ids), content=chunks(), headers={"content-type": "text/plain"}
        )
        assert r.status_code == 415, (op_id, r.text)
    export = next(op for op_id, _, _, op in _operations(openapi) if op_id == "memories.export")
    assert list(export["responses"]["200"]["content"]) == ["application/x-ndjson"]
    r = http.get("/v1/memories/export")
    assert r.headers["content-type"].startswith("application/x-ndjson")

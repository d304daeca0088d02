"""Tenant and namespace isolation, on every route of the server's own ``/openapi.json``.

A server with ``TETHER_REQUIRE_AUTH=true`` holds tenant A's session (events, state, a
goal, a sub-agent), memories under ``user/alice/`` and ``user/bob/`` (one edited, so it
has history), an extra key and audit entries. Then, for every operation the OpenAPI
document lists:

- tenant B's admin key calls it on A's ids (path parameters filled with them, the body a
  valid example from the boundary test): a route naming one of A's resources answers 404
  (never 403, which would confirm it exists); a list, search, export, feed, stats or audit
  answers 200 and holds nothing of A's (no id, no text); a write lands in B's tenant.
- a key of tenant A limited to ``user/alice/`` calls every memory operation on Bob's
  memory: a read by id is 404, a write 403, a list or feed holds Alice's and none of
  Bob's.

Every operation needs a row in :data:`MATRIX`: a route added without one fails
:func:`test_every_operation_has_a_row`. Afterwards A's data reads back exactly as before.
"""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.test_boundaries import EXAMPLES
from tests.services import BACKENDS, store_url
from tether.testing import TetherServer, wait_until

pytestmark = pytest.mark.slow

#: What tenant B's admin key gets from each operation aimed at A's resources:
#: ``missing`` 404; ``hidden`` 200 and nothing of A's in it; ``own`` a write that lands
#: in B's tenant (2xx) and leaves A's data as it was; ``public`` 2xx, nothing of A's
#: (health checks, which hold no tenant data); ``refused`` 403 (deployment-wide metrics:
#: no tenant's key opens them, only TETHER_METRICS_TOKEN, not configured here).
#: Second column, a write key of A limited to ``user/alice/`` aimed at Bob's memory:
#: ``missing`` 404, ``refused`` 403, ``hidden`` 200 with Alice's and none of Bob's,
#: ``scope`` 403 (an admin route), ``-`` not a memory operation (tenant-wide).
MATRIX: dict[str, tuple[str, str]] = {
    "health.alive": ("public", "-"),
    "health.ready": ("public", "-"),
    "health.deps": ("public", "-"),
    "metrics.scrape": ("refused", "-"),
    "stats.get": ("hidden", "-"),
    "sessions.list": ("hidden", "-"),
    "sessions.get": ("missing", "-"),
    "sessions.update": ("missing", "-"),
    "sessions.delete": ("missing", "-"),
    "sessions.end": ("missing", "-"),
    "sessions.state.get": ("missing", "-"),
    "sessions.state.patch": ("missing", "-"),
    "sessions.goals.create": ("missing", "-"),
    "sessions.goals.update": ("missing", "-"),
    "sessions.agents.spawn": ("missing", "-"),
    "sessions.stream": ("missing", "-"),
    "sessions.list.stream": ("hidden", "-"),
    "events.list": ("missing", "-"),
    "events.append": ("missing", "-"),
    "sessions.create": ("own", "-"),
    "events.batch": ("own", "-"),
    "events.query": ("hidden", "-"),
    "sessions.diagnostics": ("missing", "-"),
    "diagnostics.get": ("hidden", "-"),
    "analytics.tools": ("hidden", "-"),
    "analytics.timeseries": ("hidden", "-"),
    "analytics.anomalies": ("hidden", "-"),
    "memories.list": ("hidden", "hidden"),
    "memories.search": ("hidden", "hidden"),
    "memories.export": ("hidden", "hidden"),
    "memory.changes": ("hidden", "hidden"),
    "memory.changes.stream": ("hidden", "hidden"),
    "memory.stats": ("hidden", "refused"),
    "memory.namespaces": ("hidden", "hidden"),
    "memories.get": ("missing", "missing"),
    "memories.history": ("missing", "missing"),
    "memories.update": ("missing", "missing"),
    "memories.delete": ("missing", "missing"),
    "memories.create": ("own", "refused"),
    "memories.batch": ("own", "refused"),
    "memories.import": ("own", "refused"),
    "admin.outbox.list": ("hidden", "scope"),
    "admin.outbox.replay": ("own", "scope"),
    "admin.memory.reindex": ("own", "scope"),
    "admin.keys.list": ("hidden", "scope"),
    "admin.keys.create": ("own", "scope"),
    "admin.keys.revoke": ("missing", "scope"),
    "admin.audit.list": ("hidden", "scope"),
    "admin.prices.list": ("hidden", "scope"),
    "admin.prices.put": ("own", "scope"),
    "admin.prices.delete": ("missing", "scope"),
    "sessions.state.versions": ("missing", "-"),
}

ALICE_NS, BOB_NS = "user/alice/notes", "user/bob/notes"
ALICE_TEXT = "alicemarker prefers window seats on long flights"
BOB_TEXT = "bobmarker is allergic to peanuts and shellfish"


@dataclass
class World:
    srv: TetherServer
    openapi: dict[str, Any]
    a: httpx.Client  # tenant A, admin
    b: httpx.Client  # tenant B, admin
    alice: httpx.Client  # tenant A, write, limited to user/alice/
    ids: dict[str, str]  # path parameters: A's resources (memory_id: Bob's)
    markers: dict[str, str]  # what of A's must never reach B (name -> text)
    bob_export: bytes  # Bob's memory as an export line (for the import cases)


def _client(srv: TetherServer, secret: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=60, headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("isolation")
    srv = TetherServer(
        store_url(request, request.param, home), home=home, env={"TETHER_REQUIRE_AUTH": "true"}
    ).start()
    clients: list[httpx.Client] = []
    try:
        a_secret, a_key = srv.create_key("acme", "admin", name="acme-ops")
        b_secret, _ = srv.create_key("globex", "admin")
        alice_secret, _ = srv.create_key("acme", "write", namespaces=("user/alice/",))
        a, b, alice = (_client(srv, s) for s in (a_secret, b_secret, alice_secret))
        clients += [a, b, alice]
        sid, gid = "sess-acme-7f3", "goal-acme-7f3"
        assert a.post("/v1/sessions", json={"id": sid, "title": "acmetitle"}).status_code == 201
        events = {"events": [{"kind": "log", "input": "acmeevent", "idempotency_key": "k1"}]}
        assert a.post(f"/v1/sessions/{sid}/events", json=events).status_code == 201
        assert a.patch(f"/v1/sessions/{sid}/state", json={"acmestate": 1}).status_code == 200
        goal = {"id": gid, "description": "acmegoal"}
        assert a.post(f"/v1/sessions/{sid}/goals", json=goal).status_code == 201
        spawn = a.post(f"/v1/sessions/{sid}/agents", json={"agent": "acmeagent"})
        assert spawn.status_code == 201
        mem = {}
        for name, ns, text in (("alice", ALICE_NS, ALICE_TEXT), ("bob", BOB_NS, BOB_TEXT)):
            r = a.post("/v1/memories", json={"namespace": ns, "text": text})
            assert r.status_code == 201, r.text
            mem[name] = r.json()["data"]["memory"]["id"]
        assert a.patch(f"/v1/memories/{mem['bob']}", json={"importance": 0.9}).status_code == 200
        wait_until(  # indexed: the snapshots compare A's memories before and after
            lambda: all(
                m["embedding_model"] for m in a.get("/v1/memories").json()["data"]["items"]
            ),
            timeout=120,
        )
        extra = a.post("/v1/admin/keys", json={"scope": "read", "name": "acme-extra"})
        assert extra.status_code == 201
        price = a.put("/v1/admin/prices/acmemodel", json={"input": 1.5, "output": 2.5})
        assert price.status_code == 200, price.text
        export = a.get("/v1/memories/export", params={"namespace": BOB_NS})
        assert export.status_code == 200
        assert BOB_TEXT in export.text
        yield World(
            srv=srv,
            openapi=httpx.get(f"{srv.url}/openapi.json").json(),
            a=a,
            b=b,
            alice=alice,
            ids={
                "session_id": sid,
                "goal_id": gid,
                "memory_id": mem["bob"],
                "key_id": extra.json()["data"]["key"]["id"],
                "model": "acmemodel",
            },
            markers={
                "session": sid,
                "goal": gid,
                "title": "acmetitle",
                "event": "acmeevent",
                "state": "acmestate",
                "agent": "acmeagent",
                "alice memory": mem["alice"],
                "bob memory": mem["bob"],
                "alice text": "alicemarker",
                "bob text": "bobmarker",
                "admin key": a_key["id"],
                "extra key": extra.json()["data"]["key"]["id"],
                "key name": "acme-ops",
                "price model": "acmemodel",
            },
            bob_export=export.content,
        )
    finally:
        for c in clients:
            c.close()
        srv.stop()


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for path, item in openapi["paths"].items():
        for method, op in item.items():
            yield op["operationId"], method.upper(), path


def _body(op_id: str, w: World, namespace: str | None = None) -> dict[str, Any]:
    """The request arguments of ``op_id``: a valid example body (the boundary test's),
    aimed at A's ids, memories (when given) in ``namespace``."""
    if op_id == "memories.import":
        line = orjson.loads(w.bob_export.splitlines()[0])
        if namespace is not None:
            line["namespace"] = namespace
        return {"content": orjson.dumps(line), "headers": {"Content-Type": "application/x-ndjson"}}
    if op_id not in EXAMPLES:
        return {}
    example = EXAMPLES[op_id]
    body = copy.deepcopy(example[0] if isinstance(example, list) else example)
    if op_id == "sessions.create":
        body["id"] = w.ids["session_id"]  # B may use the same id: its own session
    if op_id == "events.batch":
        body["sessions"][0]["id"] = body["events"][0]["session_id"] = w.ids["session_id"]
        body["ends"][0]["session_id"] = w.ids["session_id"]
    if op_id == "admin.keys.create":
        body["namespaces"] = []
    if namespace is not None:
        for item in [body, *body.get("items", [])]:
            if "namespace" in item:
                item["namespace"] = namespace
    return {"json": body}


def _streams(openapi: dict[str, Any]) -> set[str]:
    """Operations whose 200 is a live stream (``text/event-stream``) that never ends."""
    return {
        op["operationId"]
        for item in openapi["paths"].values()
        for op in item.values()
        if "text/event-stream" in op["responses"].get("200", {}).get("content", {})
    }


def _call(client: httpx.Client, w: World, op_id: str, method: str, path: str, **kw: Any) -> Any:
    """The response; for a live stream (which never ends), what it sent until it was
    quiet for a second (its backlog), as the response's body."""
    if op_id not in _streams(w.openapi):
        return client.request(method, path.format(**w.ids), **kw)
    timeout = httpx.Timeout(60, read=1.0)
    with client.stream(method, path.format(**w.ids), timeout=timeout, **kw) as response:
        if response.status_code >= 300:
            response.read()
            return response
        body = b""
        with contextlib.suppress(httpx.ReadTimeout):
            for chunk in response.iter_bytes():
                body += chunk
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def _leaks(w: World, text: str, names: set[str] | None = None) -> list[str]:
    return [n for n, m in w.markers.items() if (names is None or n in names) and m in text]


def _snapshot(w: World) -> dict[str, Any]:
    """What A reads of its own data (last-used times aside)."""
    sid, a = w.ids["session_id"], w.a
    reads = {
        "session": a.get(f"/v1/sessions/{sid}").json()["data"],
        "events": a.get(f"/v1/sessions/{sid}/events").json()["data"]["items"],
        "state": a.get(f"/v1/sessions/{sid}/state").json()["data"],
        "memories": a.get("/v1/memories", params={"limit": 100}).json()["data"]["items"],
        "keys": a.get("/v1/admin/keys").json()["data"]["items"],
        "stats": a.get("/v1/stats").json()["data"],
        "prices": a.get("/v1/admin/prices").json()["data"],
        "state versions": a.get(f"/v1/sessions/{sid}/state/versions").json()["data"],
    }
    for key in reads["keys"]:
        key.pop("last_used_at")
    reads["stats"].pop("last_24h", None)
    return reads


def test_every_operation_has_a_row(world: World) -> None:
    ops = {op_id for op_id, _, _ in _operations(world.openapi)}
    assert ops - set(MATRIX) == set(), "add these operations to the isolation matrix"
    assert set(MATRIX) - ops == set(), "rows for operations that no longer exist"
    for op_id, _, path in _operations(world.openapi):
        if path.startswith(("/v1/memories", "/v1/memory")):
            assert MATRIX[op_id][1] != "-", f"{op_id} is a memory operation: give its column"


def _order(w: World) -> list[tuple[str, str, str]]:
    """Reads first, while B has nothing of its own; then writes aimed at A's resources;
    then B's own writes (B's session may take A's session id)."""
    return sorted(
        _operations(w.openapi),
        key=lambda o: (o[1] != "GET", MATRIX.get(o[0], ("",))[0] == "own", o),
    )


def test_another_tenant_gets_404_and_sees_nothing(world: World) -> None:
    w = world
    before = _snapshot(w)
    checked: dict[str, int] = {}
    for op_id, method, path in _order(w):
        kind = MATRIX[op_id][0]
        args = _body(op_id, w)
        r = _call(w.b, w, op_id, method, path, **args)
        where = f"{op_id} {method} {path}: {r.status_code} {r.text[:300]}"
        if kind == "missing":
            assert r.status_code == 404, where
        elif kind == "refused":
            assert r.status_code == 403, where
            assert _leaks(w, r.text) == [], where
        else:
            assert r.status_code < 300, where
            sent = (  # what B sent itself may come back (a model name in its path)
                path.format(**w.ids)
                + orjson.dumps(args.get("json")).decode()
                + args.get("content", b"").decode()
            )
            assert [n for n in _leaks(w, r.text) if w.markers[n] not in sent] == [], where
        if kind == "hidden" and "application/json" in r.headers["content-type"]:
            data = r.json()["data"]
            for name in ("items", "results", "changes"):
                for item in data.get(name, []) if isinstance(data, dict) else []:
                    # Only B's own keys and audit entries; B has nothing else yet.
                    assert item.get("tenant_id") == "globex", where
        checked[kind] = checked.get(kind, 0) + 1
    # Stats count B's own (nothing yet when they were read).
    stats = w.b.get("/v1/memory/stats").json()["data"]
    listed = w.b.get("/v1/memories", params={"limit": 100}).json()["data"]["items"]
    assert stats["count"] == len(listed) == 3  # B's create, batch and import; not A's two
    assert _leaks(w, orjson.dumps(listed).decode(), {"alice text", "alice memory"}) == []
    # B's import of a line carrying A's memory id made B's own memory, not a skip.
    assert w.ids["memory_id"] in {m["id"] for m in listed}
    assert _snapshot(w) == before
    # B's writes are B's: its session with A's id holds B's events only.
    mine = w.b.get(f"/v1/sessions/{w.ids['session_id']}/events").json()["data"]["items"]
    assert mine
    assert _leaks(w, orjson.dumps(mine).decode(), {"event", "title", "state"}) == []
    assert checked == Counter(kind for kind, _ in MATRIX.values())


def test_a_namespace_limited_key_reaches_only_its_prefixes(world: World) -> None:
    w = world
    before = _snapshot(w)
    bob = {"bob memory", "bob text"}
    for op_id, method, path in _order(w):
        kind = MATRIX[op_id][1]
        if kind == "-":
            continue
        r = _call(w.alice, w, op_id, method, path, **_body(op_id, w, namespace=BOB_NS))
        where = f"{op_id} {method} {path}: {r.status_code} {r.text[:300]}"
        if kind == "missing":
            assert r.status_code == 404, where
        elif kind in ("refused", "scope"):
            assert r.status_code == 403, where
        else:
            assert r.status_code == 200, where
            assert _leaks(w, r.text, bob) == [], where
            if op_id == "memory.namespaces":  # names, not memories: Alice's and not Bob's
                assert ALICE_NS in r.text, where
                assert BOB_NS not in r.text, where
            elif op_id != "memories.search":
                assert w.markers["alice memory"] in r.text, where  # the key does work
    both = [ALICE_NS, BOB_NS]
    for query, want in (("peanuts allergy", None), ("window seats on flights", "alicemarker")):
        search = w.alice.post("/v1/memories/search", json={"namespace": both, "query": query})
        assert search.status_code == 200, search.text
        assert "bobmarker" not in search.text
        assert want is None or want in search.text
    # Inside its prefix the key writes and reads normally.
    r = w.alice.post("/v1/memories", json={"namespace": "user/alice/x", "text": "alice again"})
    assert r.status_code == 201, r.text
    made = r.json()["data"]["memory"]["id"]
    assert w.alice.get(f"/v1/memories/{made}").status_code == 200
    assert w.alice.delete(f"/v1/memories/{made}").status_code == 200
    after = _snapshot(w)
    assert after == before


def test_a_read_key_cannot_write_and_a_write_key_cannot_administer(world: World) -> None:
    """Generated from the OpenAPI document: every operation above a key's scope is 403
    for it, body or not; every one within it is not refused for scope."""
    from tether.server.access import ACCESS

    w = world
    read_secret, _ = w.srv.create_key("acme", "read")
    write_secret, _ = w.srv.create_key("acme", "write")
    rank = {"read": 0, "write": 1, "admin": 2}
    refused = 0
    with _client(w.srv, read_secret) as read, _client(w.srv, write_secret) as write:
        for key_scope, client in (("read", read), ("write", write)):
            for op_id, method, path in _order(w):
                need = ACCESS[op_id]
                if need is None or rank[need.value] <= rank[key_scope]:
                    continue
                r = _call(client, w, op_id, method, path, **_body(op_id, w))
                assert r.status_code == 403, f"{key_scope} key, {op_id}: {r.text[:300]}"
                assert r.json()["error"]["code"] == "forbidden"
                refused += 1
        for op_id, method, path in _order(w):
            if method == "GET" and ACCESS[op_id] is not None and ACCESS[op_id].value == "read":
                params = {"namespace": BOB_NS} if op_id == "memories.export" else {}
                r = _call(read, w, op_id, method, path, params=params)
                assert r.status_code not in (401, 403), f"read key, {op_id}: {r.text[:300]}"
        # The finer rule: every namespace at once is an admin's export.
        assert read.get("/v1/memories/export").status_code == 403
        assert write.get("/v1/memories/export").status_code == 403
    above = [rank[n.value] for n in ACCESS.values() if n is not None]
    assert refused == sum(r > 0 for r in above) + sum(r > 1 for r in above)


def test_no_key_or_a_bad_key_is_401_everywhere_but_health(world: World) -> None:
    """Without a key every operation but the public health checks is 401 with
    ``WWW-Authenticate: Bearer``; so is any operation with a key that is not live (a
    credential that was sent is always checked, on public routes too)."""
    from tether.server.access import ACCESS

    w = world
    forged = "tk_01JZZZZZZZZZZZZZZZZZZZZZZZ_" + "A" * 43
    bad = [{"Authorization": f"Bearer {forged}"}, {"Authorization": "Basic eDp5"}]
    with httpx.Client(base_url=w.srv.url, timeout=30) as anon:
        for op_id, method, path in _order(w):
            for headers in [{}, *bad]:
                r = anon.request(method, path.format(**w.ids), headers=headers)
                if op_id == "metrics.scrape" and not headers:
                    assert r.status_code == 403, r.text  # no TETHER_METRICS_TOKEN set
                    continue
                if ACCESS[op_id] is None and not headers:
                    assert r.status_code == 200, op_id
                    continue
                assert r.status_code == 401, f"{op_id} {headers}: {r.text[:200]}"
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert _leaks(w, r.text) == []

"""Live session streams over a real WebSocket client (``websockets``) and a real SSE reader
(httpx streaming, parsed per the WHATWG event-stream format), against real servers on
both stores and across two replicas on PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.integration import stalled_ws
from tether.testing import TetherServer

Factory = Callable[..., TetherServer]


def _ws_url(srv: TetherServer) -> str:
    return srv.url.replace("http://", "ws://") + "/v1/ws"


def _post(
    srv: TetherServer, sid: str, names: list[str], headers: dict[str, str] | None = None
) -> None:
    body = {"events": [{"kind": "log", "name": n, "idempotency_key": n} for n in names]}
    r = httpx.post(f"{srv.url}/v1/sessions/{sid}/events", json=body, headers=headers, timeout=30)
    assert r.status_code == 201, r.text


def _session(srv: TetherServer, sid: str, headers: dict[str, str] | None = None) -> None:
    r = httpx.post(f"{srv.url}/v1/sessions", json={"id": sid}, headers=headers, timeout=30)
    assert r.status_code == 201, r.text


async def _ws_items(ws: Any, want: int, channel: str, kind: str) -> list[dict[str, Any]]:
    """Read until ``want`` items of ``channel`` arrived (10 s without a message fails), one
    dict per item: ``{"cursor", "data"}``. A message (``type`` ``events`` or ``changes``)
    carries a batch; its ``cursor`` must be its last item's."""
    key = "seq" if kind == "events" else "lsn"
    got: list[dict[str, Any]] = []
    while len(got) < want:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message.get("type") not in ("error", "overflow"), message
        if message.get("type") == kind and message["channel"] == channel:
            assert message["data"], message
            assert message["cursor"] == message["data"][-1][key]
            got.extend({"cursor": item[key], "data": item} for item in message["data"])
    return got


async def _ws_events(ws: Any, want: int, channel: str) -> list[dict[str, Any]]:
    return await _ws_items(ws, want, channel, "events")


async def _ws_changes(ws: Any, want: int) -> list[dict[str, Any]]:
    return await _ws_items(ws, want, "memory", "changes")


def _sse(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Messages of an event stream (fields ``event``, ``id``, ``data``; comments skipped)."""
    message: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if message:
                yield message
            message = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")


def _read_sse(srv: TetherServer, sid: str, count: int, **kw: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    with httpx.stream("GET", f"{srv.url}/v1/sessions/{sid}/stream", timeout=30, **kw) as r:
        assert r.status_code == 200, r.read()
        for message in _sse(r):
            out.append(message)
            if len(out) == count:
                break
    return out


def test_sse_resumes_mid_session_and_after_a_disconnect_exactly_once(
    server_factory: Factory, fresh_store: str
) -> None:
    srv = server_factory(fresh_store)
    _session(srv, "sse-1")
    _post(srv, "sse-1", [f"a{n}" for n in range(30)])
    first = _read_sse(srv, "sse-1", 20, params={"after": 10})
    assert [int(m["id"]) for m in first] == list(range(11, 31))
    assert {m["event"] for m in first} == {"event"}
    assert json.loads(first[0]["data"])["name"] == "a10"
    # Disconnected at 30: 100 more are posted; reconnecting with Last-Event-ID brings
    # exactly those (the header wins over ?after=).
    _post(srv, "sse-1", [f"b{n}" for n in range(100)])
    again = _read_sse(srv, "sse-1", 100, headers={"Last-Event-ID": "30"}, params={"after": 0})
    assert [int(m["id"]) for m in again] == list(range(31, 131))
    assert [json.loads(m["data"])["name"] for m in again] == [f"b{n}" for n in range(100)]


def test_sse_delivers_live_events_and_refuses_unknown_sessions(
    server_factory: Factory, fresh_store: str
) -> None:
    srv = server_factory(fresh_store)
    _session(srv, "sse-live")
    got: list[int] = []

    async def main() -> None:
        async def read() -> None:
            async with (
                httpx.AsyncClient(timeout=30) as client,
                client.stream("GET", f"{srv.url}/v1/sessions/sse-live/stream") as r,
            ):
                async for line in r.aiter_lines():
                    if line.startswith("id:"):
                        got.append(int(line[3:]))
                        if len(got) == 50:
                            return

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        for n in range(5):  # while the reader waits: each batch arrives live
            await asyncio.to_thread(_post, srv, "sse-live", [f"live{n}-{i}" for i in range(10)])
        await asyncio.wait_for(reader, 30)

    asyncio.run(main())
    assert got == list(range(1, 51))
    assert httpx.get(f"{srv.url}/v1/sessions/nope/stream").status_code == 404
    bad = httpx.get(f"{srv.url}/v1/sessions/sse-live/stream", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422


def test_websocket_cursor_resume_and_a_running_span_before_it_ends(
    server_factory: Factory, fresh_store: str
) -> None:
    srv = server_factory(fresh_store)
    _session(srv, "ws-1")
    _post(srv, "ws-1", [f"a{n}" for n in range(10)])

    async def main() -> None:
        async with websockets.connect(_ws_url(srv)) as ws:
            sub = {"op": "subscribe", "channels": ["session:ws-1"], "cursor": {"session:ws-1": 4}}
            await ws.send(json.dumps(sub))
            backlog = await _ws_events(ws, 6, "session:ws-1")
            assert [m["cursor"] for m in backlog] == list(range(5, 11))
            assert [m["data"]["seq"] for m in backlog] == list(range(5, 11))
            # A stage that starts: its running event arrives while it runs.
            running = {"kind": "tool", "name": "search", "status": "running", "span_id": "sp-1"}
            r = await asyncio.to_thread(
                httpx.post, f"{srv.url}/v1/sessions/ws-1/events", json=running, timeout=30
            )
            assert r.status_code == 201
            (start,) = await _ws_events(ws, 1, "session:ws-1")
            assert (start["data"]["status"], start["data"]["span_id"]) == ("running", "sp-1")
            done = {**running, "status": "ok", "duration_ms": 12.5}
            r = await asyncio.to_thread(
                httpx.post, f"{srv.url}/v1/sessions/ws-1/events", json=done, timeout=30
            )
            (end,) = await _ws_events(ws, 1, "session:ws-1")
            assert (end["data"]["status"], end["data"]["span_id"]) == ("ok", "sp-1")
            assert end["cursor"] == start["cursor"] + 1
            await ws.send(json.dumps({"op": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}
        # Disconnected at 12; 100 more; a new connection with the cursor gets exactly them.
        await asyncio.to_thread(_post, srv, "ws-1", [f"b{n}" for n in range(100)])
        async with websockets.connect(_ws_url(srv)) as ws:
            sub = {"op": "subscribe", "channels": ["session:ws-1"], "cursor": {"session:ws-1": 12}}
            await ws.send(json.dumps(sub))
            resumed = await _ws_events(ws, 100, "session:ws-1")
            assert [m["cursor"] for m in resumed] == list(range(13, 113))
            assert [m["data"]["name"] for m in resumed] == [f"b{n}" for n in range(100)]
            await ws.send(json.dumps({"op": "ping"}))  # and nothing more is queued
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}

    asyncio.run(main())


def test_a_slow_websocket_is_cut_off_while_a_fast_one_keeps_up(
    server_factory: Factory, fresh_store: str
) -> None:
    """TETHER_LIVE_MAX_QUEUE=50: a client that stops reading (tests/integration/
    stalled_ws.py) falls behind once the socket buffers are full (24 MB are sent), gets
    the overflow message with its cursor and is closed (4008); a client reading the same
    session meanwhile receives every event."""
    srv = server_factory(fresh_store, env={"TETHER_LIVE_MAX_QUEUE": "50"})
    _session(srv, "ws-slow")
    bulky = "x" * 40_000
    total = 600
    sub = json.dumps({"op": "subscribe", "channels": ["session:ws-slow"]})
    slow = stalled_ws.connect(srv.port)
    stalled_ws.send_text(slow, sub)

    async def main() -> list[dict[str, Any]]:
        async with websockets.connect(_ws_url(srv), max_size=None) as fast:
            await fast.send(sub)
            assert json.loads(await fast.recv())["type"] == "subscribed"

            async def write() -> None:
                for start in range(0, total, 20):
                    body = {
                        "events": [
                            {"kind": "log", "name": f"e{n}", "input": bulky}
                            for n in range(start, start + 20)
                        ]
                    }
                    r = await asyncio.to_thread(
                        httpx.post, f"{srv.url}/v1/sessions/ws-slow/events", json=body, timeout=30
                    )
                    assert r.status_code == 201

            writer = asyncio.create_task(write())
            got = await _ws_events(fast, total, "session:ws-slow")
            await writer
            return got

    got = asyncio.run(main())
    assert [m["cursor"] for m in got] == list(range(1, total + 1))
    # Now read the stalled one: what it was sent, the overflow, then the close frame.
    slow.settimeout(10)
    messages: list[dict[str, Any]] = []
    close_code = None
    with slow:
        for opcode, payload in stalled_ws.frames(slow):
            if opcode == 1:
                messages.append(json.loads(payload))
            elif opcode == 8:
                close_code = int.from_bytes(payload[:2], "big")
    assert close_code == 4008
    assert messages[0]["type"] == "subscribed"
    seen = [e["seq"] for m in messages if m["type"] == "events" for e in m["data"]]
    (overflow,) = [m for m in messages if m["type"] == "overflow"]
    assert seen == list(range(1, len(seen) + 1))
    assert overflow["cursor"] == (seen[-1] if seen else 0)
    assert overflow["cursor"] < total


def test_a_tenant_receives_nothing_of_another_tenants_sessions(
    server_factory: Factory, fresh_store: str
) -> None:
    srv = server_factory(fresh_store, env={"TETHER_REQUIRE_AUTH": "true"})
    a_key, _ = srv.create_key("acme", "write")
    b_key, _ = srv.create_key("globex", "read")
    b_writer, _ = srv.create_key("globex", "write")
    a = {"Authorization": f"Bearer {a_key}"}
    _session(srv, "shared-id", a)
    _post(srv, "shared-id", ["secret-a-1", "secret-a-2"], a)

    async def main() -> None:
        # B authenticates in its first message (a browser cannot set the header).
        async with websockets.connect(_ws_url(srv)) as ws:
            await ws.send(json.dumps({"op": "auth", "key": b_key}))
            assert json.loads(await ws.recv()) == {"type": "authenticated", "tenant": "globex"}
            await ws.send(json.dumps({"op": "subscribe", "channels": ["session:shared-id"]}))
            refused = json.loads(await ws.recv())
            assert (refused["type"], refused["code"]) == ("error", "not_found")
            # B makes its own session with the same id and follows it; A keeps writing.
            headers = {"Authorization": f"Bearer {b_writer}"}
            await asyncio.to_thread(_session, srv, "shared-id", headers)
            await ws.send(json.dumps({"op": "subscribe", "channels": ["session:shared-id"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await asyncio.to_thread(_post, srv, "shared-id", ["secret-a-3"], a)
            await asyncio.to_thread(_post, srv, "shared-id", ["b-own-1"], headers)
            (mine,) = await _ws_events(ws, 1, "session:shared-id")
            assert mine["data"]["name"] == "b-own-1"
            assert mine["cursor"] == 1
        # Without a key, and with a bad one, the socket is closed.
        async with websockets.connect(_ws_url(srv)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["session:shared-id"]}))
            error = json.loads(await ws.recv())
            assert error["code"] == "unauthorized"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
        bad = {"Authorization": "Bearer tk_01JZZZZZZZZZZZZZZZZZZZZZZZ_" + "A" * 43}
        foreign = {**a, "Origin": "https://evil.example"}  # a page on another site
        for headers in (bad, foreign):
            with pytest.raises(websockets.InvalidStatus) as refused_at_handshake:
                await websockets.connect(_ws_url(srv), additional_headers=headers)
            assert refused_at_handshake.value.response.status_code == 403

    asyncio.run(main())
    with httpx.stream(
        "GET",
        f"{srv.url}/v1/sessions/shared-id/stream",
        headers={"Authorization": f"Bearer {b_key}"},
    ) as r:
        first = next(_sse(r))
    assert json.loads(first["data"])["name"] == "b-own-1"


@pytest.mark.postgres
@pytest.mark.redis
def test_a_subscriber_on_replica_2_gets_events_posted_to_both_exactly_once_in_order(
    replica_factory: Callable[..., list[TetherServer]],
) -> None:
    replicas = replica_factory()
    one, two = replicas
    _session(one, "multi")

    async def main() -> None:
        async with websockets.connect(_ws_url(two)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["session:multi"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"

            async def write() -> None:
                for n in range(200):
                    await asyncio.to_thread(_post, replicas[n % 2], "multi", [f"m{n}"])

            writer = asyncio.create_task(write())
            got = await _ws_events(ws, 200, "session:multi")
            await writer
        assert [m["cursor"] for m in got] == list(range(1, 201))
        assert [m["data"]["name"] for m in got] == [f"m{n}" for n in range(200)]

    asyncio.run(main())


def _remember(srv: TetherServer, ns: str, text: str, headers: dict[str, str] | None = None) -> str:
    r = httpx.post(
        f"{srv.url}/v1/memories", json={"namespace": ns, "text": text}, headers=headers, timeout=30
    )
    assert r.status_code == 201, r.text
    memory_id: str = r.json()["data"]["memory"]["id"]
    return memory_id


def test_the_memory_feed_streams_by_lsn_over_sse_and_websocket(
    server_factory: Factory, fresh_store: str
) -> None:
    """Changes (add, update, delete) arrive with their lsn, the backlog first; a reconnect
    with the last lsn gets exactly what came after; a key limited to ``user/alice/`` gets
    only Alice's changes; another tenant gets none of them."""
    srv = server_factory(fresh_store, env={"TETHER_REQUIRE_AUTH": "true"})
    admin, _ = srv.create_key("acme", "admin")
    alice_key, _ = srv.create_key("acme", "read", namespaces=("user/alice/",))
    other, _ = srv.create_key("globex", "read")
    a = {"Authorization": f"Bearer {admin}"}
    first = _remember(srv, "user/alice/notes", "alice likes green tea", a)
    _remember(srv, "user/bob/notes", "bob likes black coffee", a)
    feed = httpx.get(f"{srv.url}/v1/memory/changes", headers=a).json()["data"]["items"]
    lsns = [c["lsn"] for c in feed]
    # SSE from the first change: the rest of the backlog.
    with httpx.stream(
        "GET", f"{srv.url}/v1/memory/changes/stream", params={"after": lsns[0]}, headers=a
    ) as r:
        assert r.status_code == 200
        message = next(_sse(r))
    assert (message["event"], int(message["id"])) == ("change", lsns[1])
    assert json.loads(message["data"])["memory"]["text"] == "bob likes black coffee"

    async def main() -> None:
        async with (
            websockets.connect(_ws_url(srv), additional_headers=a) as ws_admin,
            websockets.connect(_ws_url(srv)) as ws_alice,
            websockets.connect(_ws_url(srv)) as ws_other,
        ):
            for ws, key in ((ws_alice, alice_key), (ws_other, other)):
                await ws.send(json.dumps({"op": "auth", "key": key}))
                assert json.loads(await ws.recv())["type"] == "authenticated"
            for ws in (ws_admin, ws_alice, ws_other):
                await ws.send(json.dumps({"op": "subscribe", "channels": ["memory"]}))
                assert json.loads(await ws.recv())["type"] == "subscribed"
            # From lsn 0: the backlog (the two adds), then what happens now.
            await asyncio.to_thread(
                httpx.patch, f"{srv.url}/v1/memories/{first}", json={"importance": 0.9}, headers=a
            )
            await asyncio.to_thread(httpx.delete, f"{srv.url}/v1/memories/{first}", headers=a)
            _ = await asyncio.to_thread(_remember, srv, "user/bob/x", "bob again", a)
            everything = await _ws_changes(ws_admin, 5)
            assert [m["data"]["op"] for m in everything] == [
                "add",
                "add",
                "update",
                "delete",
                "add",
            ]
            cursors = [m["cursor"] for m in everything]
            assert cursors == sorted(cursors)
            assert cursors[:2] == lsns
            alices = await _ws_changes(ws_alice, 3)
            assert [m["data"]["op"] for m in alices] == ["add", "update", "delete"]
            assert {m["data"]["namespace"] for m in alices} == {"user/alice/notes"}
            await ws_alice.send(json.dumps({"op": "ping"}))  # nothing of Bob's is queued
            assert json.loads(await asyncio.wait_for(ws_alice.recv(), 10)) == {"type": "pong"}
            await ws_other.send(json.dumps({"op": "ping"}))  # nor of acme's for globex
            assert json.loads(await asyncio.wait_for(ws_other.recv(), 10)) == {"type": "pong"}
        # Reconnect after the third change: exactly the last two.
        async with websockets.connect(_ws_url(srv), additional_headers=a) as ws:
            sub = {"op": "subscribe", "channels": ["memory"], "cursor": {"memory": cursors[2]}}
            await ws.send(json.dumps(sub))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            resumed = await _ws_changes(ws, 2)
            assert [m["cursor"] for m in resumed] == cursors[3:]
            await ws.send(json.dumps({"op": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}

    asyncio.run(main())


def test_a_connection_follows_at_most_100_channels_and_sends_small_messages(
    server_factory: Factory, tmp_path: Path
) -> None:
    srv = server_factory(tmp_path / "t.db")
    ids = [f"many-{n}" for n in range(101)]
    batch = {"sessions": [{"id": i} for i in ids]}
    assert httpx.post(f"{srv.url}/v1/events/batch", json=batch, timeout=30).status_code == 200

    async def main() -> None:
        async with websockets.connect(_ws_url(srv)) as ws:
            channels = [f"session:{i}" for i in ids]
            await ws.send(json.dumps({"op": "subscribe", "channels": channels[:100]}))
            answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(100)]
            assert {a["type"] for a in answers} == {"subscribed"}
            await ws.send(json.dumps({"op": "subscribe", "channels": channels[100:]}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (refused["type"], refused["code"]) == ("error", "too_many_channels")
            # Unsubscribing frees a place.
            await ws.send(json.dumps({"op": "unsubscribe", "channels": channels[:1]}))
            assert json.loads(await ws.recv())["type"] == "unsubscribed"
            await ws.send(json.dumps({"op": "subscribe", "channels": channels[100:]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
        async with websockets.connect(_ws_url(srv), max_size=None) as ws:
            await ws.send("x" * (65 * 1024))  # over the 64 KiB a client message may hold
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009  # message too big (RFC 6455 §7.4.1)

    asyncio.run(main())


def test_deleting_a_followed_session_ends_its_streams(
    server_factory: Factory, fresh_store: str
) -> None:
    srv = server_factory(fresh_store)
    _session(srv, "doomed")
    _post(srv, "doomed", ["a", "b"])

    async def main() -> None:
        async with websockets.connect(_ws_url(srv)) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["session:doomed"]}))
            assert len(await _ws_events(ws, 2, "session:doomed")) == 2
            r = await asyncio.to_thread(httpx.delete, f"{srv.url}/v1/sessions/doomed", timeout=30)
            assert r.status_code == 200
            ended = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ended == {"channel": "session:doomed", "type": "deleted", "cursor": 2}
            await ws.send(json.dumps({"op": "ping"}))  # the connection stays usable
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}

    asyncio.run(main())


async def _snapshots_until(ws: Any, done: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
    """Metrics snapshots until ``done(snapshots)`` (at most 30 of them)."""
    got: list[dict[str, Any]] = []
    while not done(got):
        assert len(got) < 30, got
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message.get("type") == "snapshot":
            assert message["channel"] == "metrics"
            assert message["cursor"] == message["data"]["cursor"]
            got.append(message["data"])
    return got


def _post_mixed(srv: TetherServer, sid: str, ok: int, errors: int, headers: Any = None) -> None:
    events = [{"kind": "log", "name": f"ok{n}"} for n in range(ok)]
    events += [{"kind": "tool", "name": f"bad{n}", "status": "error"} for n in range(errors)]
    r = httpx.post(
        f"{srv.url}/v1/sessions/{sid}/events", json={"events": events}, headers=headers, timeout=30
    )
    assert r.status_code == 201, r.text


def test_the_metrics_channel_counts_a_tenants_events_errors_and_connections(
    server_factory: Factory, fresh_store: str
) -> None:
    srv = server_factory(fresh_store, env={"TETHER_REQUIRE_AUTH": "true"})
    a_key, _ = srv.create_key("acme", "write")
    b_key, _ = srv.create_key("globex", "read")
    a = {"Authorization": f"Bearer {a_key}"}
    for sid in ("m-1", "m-2"):
        _session(srv, sid, a)

    async def main() -> None:
        async with (
            websockets.connect(_ws_url(srv), additional_headers=a) as ws_a,
            websockets.connect(_ws_url(srv), additional_headers=a) as idle_a,
            websockets.connect(_ws_url(srv)) as ws_b,
        ):
            await ws_b.send(json.dumps({"op": "auth", "key": b_key}))
            assert json.loads(await ws_b.recv())["type"] == "authenticated"
            for ws in (ws_a, ws_b):
                await ws.send(json.dumps({"op": "subscribe", "channels": ["metrics"]}))
                assert json.loads(await ws.recv())["type"] == "subscribed"
            await asyncio.to_thread(_post_mixed, srv, "m-1", 20, 3, a)
            await asyncio.to_thread(_post_mixed, srv, "m-2", 10, 2, a)
            mine = await _snapshots_until(ws_a, lambda s: sum(x["events"] for x in s) >= 35)
            assert sum(x["events"] for x in mine) == 35
            assert sum(x["errors"] for x in mine) == 5
            assert mine[-1]["active_sessions"] == 2
            assert max(x["ws_connections"] for x in mine) == 2  # acme's two sockets
            assert {x["replicas"] for x in mine} <= {0, 1}
            theirs = await _snapshots_until(ws_b, lambda s: len(s) >= 3)
            assert sum(x["events"] for x in theirs) == 0  # nothing of acme's
            assert theirs[-1]["active_sessions"] == 0
            assert max(x["ws_connections"] for x in theirs) == 1
            del idle_a

    asyncio.run(main())


@pytest.mark.postgres
@pytest.mark.redis
def test_metrics_sum_every_replicas_reports(
    replica_factory: Callable[..., list[TetherServer]],
) -> None:
    one, two = replica_factory()
    _session(one, "mr")

    async def main() -> None:
        async with (
            websockets.connect(_ws_url(two)) as watcher,
            websockets.connect(_ws_url(one)) as other,
        ):
            await watcher.send(json.dumps({"op": "subscribe", "channels": ["metrics"]}))
            assert json.loads(await watcher.recv())["type"] == "subscribed"
            await asyncio.to_thread(_post_mixed, one, "mr", 20, 1)
            await asyncio.to_thread(_post_mixed, two, "mr", 20, 1)
            got = await _snapshots_until(watcher, lambda s: sum(x["events"] for x in s) >= 42)
            assert sum(x["events"] for x in got) == 42
            assert sum(x["errors"] for x in got) == 2
            assert max(x["replicas"] for x in got) == 2
            assert max(x["ws_connections"] for x in got) == 2
            del other

    asyncio.run(main())


async def _session_items(ws: Any, want: Callable[[list[Any]], bool]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not want(got):
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message.get("type") not in ("error", "overflow"), message
        if message.get("type") == "sessions":
            assert message["cursor"] == message["data"][-1]["cursor"]
            got.extend(message["data"])
    return got


def test_the_sessions_channel_feeds_a_live_list(server_factory: Factory, fresh_store: str) -> None:
    srv = server_factory(fresh_store, env={"TETHER_REQUIRE_AUTH": "true"})
    a_key, _ = srv.create_key("acme", "write")
    b_key, _ = srv.create_key("globex", "write")
    a = {"Authorization": f"Bearer {a_key}"}
    b = {"Authorization": f"Bearer {b_key}"}
    base = f"{srv.url}/v1/sessions"
    reserved = httpx.post(base, json={"id": "stream"}, headers=a)
    assert reserved.status_code == 422  # GET /v1/sessions/stream is the stream

    def call(method: str, path: str, headers: dict[str, str], **kw: Any) -> None:
        r = httpx.request(method, f"{base}{path}", headers=headers, timeout=30, **kw)
        assert r.status_code < 300, r.text

    async def main() -> None:
        async with websockets.connect(_ws_url(srv), additional_headers=a) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channels": ["sessions"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            steps = [
                ("POST", "", {"json": {"id": "live-1", "title": "first"}}, "session.created"),
                ("POST", "/live-1/events", {"json": {"kind": "log"}}, "session.updated"),
                ("POST", "/live-1/end", {"json": {"status": "completed"}}, "session.ended"),
                ("DELETE", "/live-1", {}, "session.deleted"),
            ]
            seen: list[dict[str, Any]] = []
            for method, path, kw, want in steps:
                await asyncio.to_thread(call, "POST", "", b, json={"id": f"b-{want}"})
                await asyncio.to_thread(call, method, path, a, **kw)
                (item,) = await _session_items(ws, lambda got: len(got) >= 1)
                assert item["change"] == want  # and nothing of globex's in between
                seen.append(item)
            assert seen[0]["session"]["title"] == "first"
            assert seen[2]["session"]["status"] == "completed"
            assert seen[3]["session"] == {"id": "live-1"}
            cursors = [i["cursor"] for i in seen]
            assert cursors == sorted(cursors)
            # Disconnected: two sessions change; a reconnect with the last cursor gets
            # both (current state), once each.
            await asyncio.to_thread(call, "POST", "", a, json={"id": "live-2"})
            await asyncio.to_thread(call, "POST", "", a, json={"id": "live-3"})
            await asyncio.to_thread(call, "PATCH", "/live-2", a, json={"title": "renamed"})
        async with websockets.connect(_ws_url(srv), additional_headers=a) as ws:
            sub = {"op": "subscribe", "channels": ["sessions"], "cursor": {"sessions": cursors[-1]}}
            await ws.send(json.dumps(sub))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            backlog = await _session_items(
                ws, lambda got: {"live-2", "live-3"} <= {i["session"]["id"] for i in got}
            )
            ids = [i["session"]["id"] for i in backlog]
            assert sorted(ids) == ["live-2", "live-3"]
            (two,) = [i for i in backlog if i["session"]["id"] == "live-2"]
            assert two["session"]["title"] == "renamed"

    asyncio.run(main())
    with httpx.stream("GET", f"{base}/stream", params={"after": 0}, headers=a, timeout=30) as r:
        assert r.status_code == 200
        first = next(_sse(r))
    assert first["event"] == "session.updated"
    assert json.loads(first["data"])["id"] in {"live-2", "live-3"}

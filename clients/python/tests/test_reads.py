"""The SDK's reads (sessions, events, state history, diagnostics, analytics, stats, deps,
memory administration) against a real server on each store, with the sync and the async
client: the same request definitions, so the same answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer
from tether_client import AsyncClient, Client, EventQuery, NotFoundError, Page, ValidationError

T0 = "2026-03-01T10:00:00Z"


def _post(http: httpx.Client, path: str, body: Any) -> Any:
    r = http.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()["data"]


@pytest.fixture(scope="module")
def seeded(server: TetherServer) -> TetherServer:
    """Sessions r-1..r-5 (agent reads-bot; r-5 by another agent), events on r-1, a state
    history and two memories."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(1, 6):
            agent = "reads-bot" if i < 5 else "other-bot"
            _post(http, "/v1/sessions", {"id": f"r-{i}", "agent": agent, "tags": ["reads"]})
            time.sleep(0.01)  # distinct created_at (ms): a defined newest-first order
        _post(
            http,
            "/v1/sessions/r-1/events",
            {
                "events": [
                    {"kind": "llm", "name": "plan", "duration_ms": 100, "started_at": T0,
                     "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.5},
                    {"kind": "llm", "name": "plan", "duration_ms": 300,
                     "started_at": "2026-03-01T10:00:01Z", "input_tokens": 50,
                     "output_tokens": 10, "cost_usd": 0.25},
                    {"kind": "tool", "name": "search", "status": "error", "duration_ms": 40,
                     "started_at": "2026-03-01T10:00:02Z", "output": {"error": "timeout"},
                     "level": "error"},
                    {"kind": "log", "name": "note", "level": "debug",
                     "started_at": "2026-03-01T10:00:03Z"},
                ]
            },
        )  # fmt: skip
        for patch in ({"step": 1}, {"step": 2, "plan": ["a"]}):
            r = http.patch("/v1/sessions/r-1/state", json=patch)
            assert r.status_code == 200, r.text
        _post(http, "/v1/sessions/r-2/end", {"status": "failed"})
        for text in ("Reads likes green tea", "Reads lives in Lyon"):
            _post(http, "/v1/memories", {"namespace": "reads/ns", "text": text})
            time.sleep(0.01)
    return server


@pytest.fixture
def client(seeded: TetherServer) -> Iterator[Client]:
    with Client(seeded.url, spool=False, close_timeout=0.2) as c:
        yield c


def test_sessions_pages_filters_and_iterator(client: Client) -> None:
    first = client.list_sessions(agent="reads-bot", limit=3)
    assert isinstance(first, Page)
    assert [s["id"] for s in first.items] == ["r-4", "r-3", "r-2"]  # newest first
    assert first.next_cursor is not None
    second = client.list_sessions(agent="reads-bot", limit=3, cursor=first.next_cursor)
    assert [s["id"] for s in second.items] == ["r-1"]
    assert second.next_cursor is None
    assert [s["id"] for s in client.iter_sessions(tag="reads")] == [
        "r-5", "r-4", "r-3", "r-2", "r-1",
    ]  # fmt: skip
    assert [s["id"] for s in client.iter_sessions(status="failed", tag="reads")] == ["r-2"]
    assert client.list_sessions(since=timedelta(hours=1), tag="reads").items
    assert not client.list_sessions(until="2000-01-01T00:00:00Z", tag="reads").items


def test_session_detail_state_and_history(client: Client) -> None:
    detail = client.get_session("r-1")
    assert detail["agent"] == "reads-bot"
    assert detail["counters"]["event_count"] == 4
    assert detail["counters"]["error_count"] == 1
    assert detail["counters"]["input_tokens"] == 150
    state = client.get_state("r-1")
    assert (state.state, state.version) == ({"step": 2, "plan": ["a"]}, 2)
    page = client.state_versions("r-1", limit=1)
    assert [v["version"] for v in page.items] == [1]
    assert page.next_cursor == 1
    history = list(client.iter_state_versions("r-1"))
    assert [(v["version"], v["patch"], v["state"]) for v in history] == [
        (1, {"step": 1}, {"step": 1}),
        (2, {"step": 2, "plan": ["a"]}, {"step": 2, "plan": ["a"]}),
    ]
    with pytest.raises(NotFoundError) as info:
        client.get_session("no-such-session")
    assert info.value.code == "not_found"


def test_events_pages_and_query(client: Client) -> None:
    page = client.list_events("r-1", limit=2)
    assert [e["seq"] for e in page.items] == [1, 2]
    assert page.next_cursor == 2
    assert [e["seq"] for e in client.iter_events("r-1", after_seq=1)] == [2, 3, 4]
    assert [e["name"] for e in client.iter_events("r-1", kind="tool")] == ["search"]
    q = client.query_events(session_id="r-1", level="warning")
    assert isinstance(q, EventQuery)
    assert [(e["session_id"], e["seq"]) for e in q.items] == [("r-1", 3)]
    assert [e["seq"] for e in client.query_events(session_id="r-1", kind=["llm", "log"]).items] == [
        1, 2, 4,
    ]  # fmt: skip
    assert [e["seq"] for e in client.query_events(session_id="r-1", tail=2).items] == [3, 4]
    since = client.query_events(session_id="r-1", since="2026-03-01T10:00:02Z")
    assert [e["seq"] for e in since.items] == [3, 4]
    after = client.query_events(session_id="r-1", after=since.cursor)
    assert after.items == []
    assert client.query_events(session_id="r-1", status="error").items[0]["name"] == "search"
    with pytest.raises(ValidationError):
        client.query_events(kind="no-such-kind")


def test_diagnostics_analytics_stats_and_deps(client: Client) -> None:
    diag = client.diagnostics("r-1")
    by = {(c["kind"], c["name"]): c for c in diag["components"]}
    plan = by[("llm", "plan")]
    assert (plan["count"], plan["errors"], plan["max_ms"]) == (2, 0, 300)
    assert (plan["input_tokens"], plan["output_tokens"]) == (150, 30)
    assert plan["cost_usd"] == pytest.approx(0.75)
    search = by[("tool", "search")]
    assert (search["errors"], search["error_rate"]) == (1, 1.0)
    assert [e["message"] for e in search["last_errors"]] == ["timeout"]
    everywhere = client.diagnostics(since="2026-03-01T00:00:00Z", agent="reads-bot")
    assert everywhere["session_id"] is None
    assert {(c["kind"], c["name"]) for c in everywhere["components"]} == set(by)
    tools = client.tool_analytics(since="2026-03-01T00:00:00Z")
    assert [(t["name"], t["invocations"], t["errors"]) for t in tools["tools"]] == [
        ("search", 1, 1)
    ]
    series = client.timeseries(
        "events", bucket="1h", since="2026-03-01T09:00:00Z", until="2026-03-01T12:00:00Z"
    )
    assert [p["value"] for p in series["points"]] == [0, 4, 0]
    assert client.anomalies(window=3600)["anomalies"] == []
    stats = client.server_stats()
    assert stats["sessions"]["total"] >= 5
    names = {d["name"]: d for d in client.deps()}
    assert names["store"]["status"] == "ok"
    assert {"store", "bus", "embedder"} <= set(names)


def test_memory_admin_round_trip(client: Client) -> None:
    page = client.list_memories(namespace="reads/ns", limit=1)
    assert [m["text"] for m in page.items] == ["Reads lives in Lyon"]  # newest first
    everything = list(client.iter_memories(namespace="reads/ns"))
    assert [m["text"] for m in everything] == ["Reads lives in Lyon", "Reads likes green tea"]
    assert client.get_memory(everything[0]["id"])["text"] == "Reads lives in Lyon"
    exported = list(client.export_memories(namespace="reads/ns"))
    assert sorted(m["text"] for m in exported) == ["Reads likes green tea", "Reads lives in Lyon"]
    again = client.import_memories(exported)
    assert (again["imported"], again["skipped"]) == (0, 2)
    fresh = {"namespace": "reads/imported", "text": "Imported through the SDK"}
    done = client.import_memories([fresh])
    assert done["imported"] == 1
    assert client.get_memory(done["ids"][0])["namespace"] == "reads/imported"
    stats = client.memory_stats()
    assert stats["count"] >= 3


def test_end_and_delete(client: Client) -> None:
    ended = client.end_session("r-3", "abandoned", summary="stopped by hand")
    assert (ended["status"], ended["summary"]) == ("abandoned", "stopped by hand")
    assert client.delete_session("r-4") == 0
    with pytest.raises(NotFoundError):
        client.get_session("r-4")


def test_the_async_client_reads_the_same(seeded: TetherServer) -> None:
    async def main() -> None:
        async with AsyncClient(seeded.url, spool=False, close_timeout=0.2) as c:
            # (test_end_and_delete deleted r-4)
            page = await c.list_sessions(agent="reads-bot", limit=2)
            assert [s["id"] for s in page.items] == ["r-3", "r-2"]
            ids = [s["id"] async for s in c.iter_sessions(tag="reads")]
            assert ids == ["r-5", "r-3", "r-2", "r-1"]
            assert (await c.get_state("r-1")).version == 2
            versions = [v["version"] async for v in c.iter_state_versions("r-1")]
            assert versions == [1, 2]
            assert [e["seq"] async for e in c.iter_events("r-1")] == [1, 2, 3, 4]
            q = await c.query_events(session_id="r-1", tail=1)
            assert [e["seq"] for e in q.items] == [4]
            diag = await c.diagnostics("r-1")
            assert {c_["kind"] for c_ in diag["components"]} == {"llm", "tool", "log"}
            assert (await c.server_stats())["sessions"]["total"] >= 4
            assert any(d["name"] == "store" for d in await c.deps())
            memories = [m async for m in c.export_memories(namespace="reads/ns")]
            assert len(memories) == 2
            assert (await c.memory_stats())["count"] >= 2
            with pytest.raises(NotFoundError):
                await c.get_session("no-such-session")

    asyncio.run(main())

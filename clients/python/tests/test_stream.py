"""``Client.stream`` and ``AsyncClient.stream`` against a real ``tether serve``: the backlog
and live events once and in order, a span's running event before it ends, and no gap or
duplicate across a server restart in the middle of the stream."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer
from tether_client import AsyncClient, Client, NotFoundError


def _post(server: TetherServer, sid: str, names: list[str]) -> None:
    body = {"events": [{"kind": "log", "name": n, "idempotency_key": n} for n in names]}
    r = httpx.post(f"{server.url}/v1/sessions/{sid}/events", json=body, timeout=30)
    assert r.status_code == 201, r.text


def _follow(client: Client, sid: str, after: int, out: queue.Queue[dict[str, Any]]) -> None:
    for event in client.stream(sid, after=after):
        out.put(event)
        if event.get("name") == "last":
            return


def _take(out: queue.Queue[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [out.get(timeout=30) for _ in range(count)]


def test_stream_survives_a_server_restart_without_gap_or_duplicate(
    tether_server: TetherServer, tmp_path: Path
) -> None:
    httpx.post(f"{tether_server.url}/v1/sessions", json={"id": "st-1"}, timeout=30)
    _post(tether_server, "st-1", [f"a{n}" for n in range(20)])
    out: queue.Queue[dict[str, Any]] = queue.Queue()
    with Client(tether_server.url, spool_dir=tmp_path, retry_base=0.05, retry_max=0.5) as client:
        reader = threading.Thread(target=_follow, args=(client, "st-1", 5, out), daemon=True)
        reader.start()
        backlog = _take(out, 15)
        assert [e["seq"] for e in backlog] == list(range(6, 21))
        _post(tether_server, "st-1", [f"b{n}" for n in range(10)])
        assert [e["name"] for e in _take(out, 10)] == [f"b{n}" for n in range(10)]
        tether_server.restart()  # the stream breaks; the client reconnects with seq 30
        _post(tether_server, "st-1", [f"c{n}" for n in range(30)] + ["last"])
        after = _take(out, 31)
        reader.join(30)
        assert not reader.is_alive()
    assert [e["seq"] for e in after] == list(range(31, 62))
    assert [e["name"] for e in after] == [f"c{n}" for n in range(30)] + ["last"]
    assert out.empty()


def test_a_span_is_seen_running_before_it_ends(tether_server: TetherServer, tmp_path: Path) -> None:
    out: queue.Queue[dict[str, Any]] = queue.Queue()
    with (
        Client(tether_server.url, spool_dir=tmp_path / "a", flush_interval=0.02) as agent,
        Client(tether_server.url, spool_dir=tmp_path / "b") as watcher,
    ):
        with agent.session("st-span", agent="demo") as session:
            assert agent.flush(10)
            reader = threading.Thread(
                target=_follow, args=(watcher, "st-span", 0, out), daemon=True
            )
            reader.start()
            with session.span("tool", name="slow-search") as span:
                deadline = time.monotonic() + 30
                started = None
                while started is None and time.monotonic() < deadline:
                    event = out.get(timeout=30)
                    if event.get("span_id") == span.span_id:
                        started = event
                assert started is not None
                assert started["status"] == "running"  # seen while the span is open
            session.log_action("last")
        assert agent.flush(10)
        rest = []
        while not rest or rest[-1].get("name") != "last":
            rest.append(out.get(timeout=30))
        reader.join(30)
    final = [e for e in rest if e.get("span_id") == started["span_id"]]
    assert [e["status"] for e in final] == ["ok"]
    assert final[0]["seq"] > started["seq"]
    assert final[0]["duration_ms"] >= 0


def test_async_stream_and_an_unknown_session(tether_server: TetherServer, tmp_path: Path) -> None:
    httpx.post(f"{tether_server.url}/v1/sessions", json={"id": "st-async"}, timeout=30)
    _post(tether_server, "st-async", [f"a{n}" for n in range(5)])

    async def main() -> list[int]:
        async with AsyncClient(tether_server.url, spool_dir=tmp_path) as client:
            seqs: list[int] = []
            feed = client.stream("st-async", after=2)
            async for event in feed:
                seqs.append(event["seq"])
                if event["seq"] == 5:
                    await asyncio.to_thread(_post, tether_server, "st-async", ["b0", "b1"])
                if event["seq"] == 7:
                    break
            with pytest.raises(NotFoundError):
                async for _ in client.stream("no-such-session"):
                    pass
            return seqs

    assert asyncio.run(main()) == [3, 4, 5, 6, 7]
    with (
        Client(tether_server.url, spool_dir=tmp_path / "sync") as client,
        pytest.raises(NotFoundError),
    ):
        next(iter(client.stream("no-such-session")))

"""The SDK against a real ``tether serve`` subprocess (quick checks; drills are in test_drills)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tether.testing import TetherServer
from tether_client import (
    AsyncClient,
    CircuitOpenError,
    Client,
    NotFoundError,
    PreconditionFailedError,
    ServerUnreachableError,
    traced,
)
from tether_client._delivery import BATCH_PATH, PROBE_BODY


def user_events(server: TetherServer, session_id: str) -> list[dict[str, object]]:
    return [
        e
        for e in server.events(session_id)
        if (e.get("attributes") or {}).get("origin") != "server"
    ]


def test_round_trip(tether_server: TetherServer, tmp_path: Path) -> None:
    @traced(kind="tool")
    def lookup(city: str) -> dict[str, str]:
        return {"city": city, "weather": "sunny"}

    with Client(tether_server.url, spool_dir=tmp_path) as client:
        with client.session(agent="it", user_id="u1", title="round trip", tags=["t"]) as session:
            session.log_message("what is the weather?")
            with session.span("llm", name="plan") as span:
                span.set_usage(model="m", input_tokens=10, output_tokens=2, cost_usd=0.001)
                lookup("Paris")
            child = session.spawn_agent(agent="helper")
            child.log_action("subtask")
            session.complete_agent(child, summary="ok")
            session.log_response("sunny")
            assert client.flush(10)
            state = session.update_state({"step": 1, "plan": {"a": 1}})
            assert state.version == 1
            assert session.update_state({"plan": None}, if_match=1).state == {"step": 1}
            with pytest.raises(PreconditionFailedError):
                session.update_state({"step": 2}, if_match=1)
            goal = session.add_goal("answer the user", priority=1)
            assert session.update_goal(goal["id"], status="done")["status"] == "done"
        assert client.flush(10)
    kinds = [(e["kind"], e["status"]) for e in user_events(tether_server, session.id)]
    assert kinds == [
        ("message", "ok"), ("llm", "running"), ("tool", "running"), ("tool", "ok"),
        ("llm", "ok"), ("response", "ok"),
    ]  # fmt: skip
    server_made = [e for e in tether_server.events(session.id) if e["kind"] == "agent"]
    assert len(server_made) == 2  # spawn and end of the sub-agent
    stored = tether_server.get(f"/v1/sessions/{session.id}")
    assert stored["status"] == "completed"
    assert stored["counters"]["input_tokens"] == 10
    assert tether_server.get(f"/v1/sessions/{child.id}")["parent_id"] == session.id


def test_failed_session_and_error_span(tether_server: TetherServer, tmp_path: Path) -> None:
    with Client(tether_server.url, spool_dir=tmp_path) as client:
        with (
            pytest.raises(ZeroDivisionError),
            client.session(agent="boom") as session,
            session.span("tool", name="divide"),
        ):
            _ = 1 / 0
        assert client.flush(10)
    final = user_events(tether_server, session.id)[-1]
    assert final["status"] == "error"
    assert final["attributes"]["exception.type"] == "ZeroDivisionError"  # type: ignore[index]
    assert tether_server.get(f"/v1/sessions/{session.id}")["status"] == "failed"


def test_async_client(tether_server: TetherServer, tmp_path: Path) -> None:
    async def main() -> str:
        async with AsyncClient(tether_server.url, spool_dir=tmp_path) as client:
            async with client.session(agent="async") as session:
                session.log_action("a")
                assert await client.flush(10)
                assert (await session.update_state({"x": 1})).version == 1
                assert (await session.get_state()).state == {"x": 1}
            assert await client.flush(10)
            return session.id

    session_id = asyncio.run(main())
    assert [e["kind"] for e in user_events(tether_server, session_id)] == ["action"]


def test_direct_calls_fail_clearly_when_server_is_down(
    tether_server: TetherServer, tmp_path: Path
) -> None:
    with Client(tether_server.url, spool_dir=tmp_path, max_retries=2, retry_max=0.1) as client:
        session = client.session()
        assert client.flush(10)
        with pytest.raises(NotFoundError):
            client.session(id="never-created").get_state()
        tether_server.kill()
        with pytest.raises(ServerUnreachableError):
            session.get_state()
        session.log_action("while down")  # logging never raises
        with pytest.raises(CircuitOpenError):
            session.get_state()
        started = time.perf_counter()
        for _ in range(100):
            session.log_action("still down")
        assert time.perf_counter() - started < 0.5
        tether_server.start()
        assert client.flush(20)
    assert len(user_events(tether_server, session.id)) == 101


def _memory_api(server: TetherServer) -> bool:
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json().get("paths", {})
    return "/v1/memories/search" in paths


def test_the_write_probe_is_an_empty_batch_the_server_accepts(tether_server: TetherServer) -> None:
    """The sender dead-letters an item that keeps answering 500 only if this passes."""
    response = httpx.post(
        f"{tether_server.url}{BATCH_PATH}",
        content=PROBE_BODY,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"seqs": [], "duplicates": 0, "created_sessions": []}


def test_memory(tether_server: TetherServer, tmp_path: Path) -> None:
    if not _memory_api(tether_server):
        pytest.skip("this server has no memory API yet (issue 4)")
    with Client(tether_server.url, spool_dir=tmp_path) as client:
        first = client.remember(
            "user/alice", "Alice prefers green tea in the morning", kind="preference"
        )
        client.remember_many(
            ["Alice lives in Lyon", {"text": "Alice's dog is called Pixel", "tags": ["pets"]}],
            namespace="user/alice",
        )
        results = client.recall("user/alice", "what does Alice drink?", limit=3)
        assert results
        assert any("tea" in r.memory["text"] for r in results)
        client.forget(first["id"])
        after = client.recall("user/alice", "green tea", limit=10)
        assert all(r.memory["id"] != first["id"] for r in after)


def test_docs_example_runs_as_written(tether_server: TetherServer, tmp_path: Path) -> None:
    """The example in docs/sdk.md (also the README's) runs unchanged against a server."""
    docs = Path(__file__).resolve().parents[3] / "docs" / "sdk.md"
    if not docs.exists():
        pytest.skip("docs/sdk.md is not in this checkout")
    example = re.search(r"```python\n(.*?)```", docs.read_text(), re.S)
    assert example is not None
    code = example.group(1)
    assert len(code.strip().splitlines()) <= 12
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(TETHER_URL=tether_server.url, TETHER_SPOOL_DIR=str(tmp_path / "spool"))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    sessions = tether_server.get("/v1/sessions", limit=100)
    items = sessions["items"] if isinstance(sessions, dict) else sessions
    (bot,) = [s for s in items if s.get("agent") == "weather-bot"]
    assert bot["status"] == "completed"
    kinds = [(e["kind"], e["status"]) for e in user_events(tether_server, bot["id"])]
    assert kinds == [
        ("message", "ok"), ("llm", "running"), ("tool", "running"), ("tool", "ok"),
        ("llm", "ok"), ("response", "ok"),
    ]  # fmt: skip

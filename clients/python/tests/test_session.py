"""Sessions, spans, sub-agents and @traced against the fake server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tether_client import AsyncClient, Client, current_session, traced

from .sdk_helpers import FakeServer


def events(fake: FakeServer, session_id: str) -> list[dict[str, Any]]:
    return fake.events.get(session_id, [])


def test_context_manager_ends_completed_or_failed(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    with client.session(agent="ok") as good:
        assert current_session() is good
        good.log_message("hello", role="user")
        good.log_response("hi there", model="m1", output_tokens=3)
    assert current_session() is None
    with pytest.raises(RuntimeError), client.session(agent="bad") as bad:
        raise RuntimeError("boom")
    assert client.flush(5)
    assert fake.ended == {good.id: "completed", bad.id: "failed"}
    message, response = events(fake, good.id)
    assert (message["kind"], message["role"], message["input"]) == ("message", "user", "hello")
    assert (response["kind"], response["output"], response["output_tokens"]) == (
        "response",
        "hi there",
        3,
    )


def test_end_is_once(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client()
    session = client.session()
    session.end("abandoned", summary="gave up")
    session.end("completed")
    assert client.flush(5)
    assert fake.ended == {session.id: "abandoned"}


def test_session_id_from_config(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client(session_id="from-env")
    assert client.session().id == "from-env"
    assert client.session(id="explicit").id == "explicit"


def test_spawn_and_complete_agent(make_client: Callable[..., Client], fake: FakeServer) -> None:
    client = make_client()
    parent = client.session(agent="lead", user_id="alice")
    child = parent.spawn_agent(agent="researcher")
    child.log_action("search")
    grandchild = child.spawn_agent(agent="reader", id="gc-1")
    parent.complete_agent(child, "completed", "found it")
    parent.complete_agent("gc-1", "failed")
    assert client.flush(5)
    assert fake.sessions[child.id] == {
        "id": child.id,
        "parent_id": parent.id,
        "agent": "researcher",
        "user_id": "alice",
    }
    assert fake.sessions["gc-1"]["parent_id"] == child.id
    assert grandchild.parent_id == child.id
    assert fake.ended == {child.id: "completed", "gc-1": "failed"}


def test_span_records_running_and_final_event(
    make_client: Callable[..., Client], fake: FakeServer
) -> None:
    client = make_client()
    session = client.session()
    with session.span("stt", name="whisper", input={"bytes": 10}) as span:
        span.set_output("hello")
        span.set_usage(model="whisper-1", cost_usd=0.001)
        with session.span("llm", name="inner"):
            session.log_action("nested")
    with pytest.raises(ValueError, match="bad audio"), session.span("tts", name="voice"):
        raise ValueError("bad audio")
    assert client.flush(5)
    running, inner_running, nested, inner_final, final, err_running, err_final = events(
        fake, session.id
    )
    assert running["status"] == "running"
    assert running["span_id"] == final["span_id"] == span.span_id
    assert final.get("status", "ok") == "ok"
    assert final["output"] == "hello"
    assert final["model"] == "whisper-1"
    assert final["duration_ms"] >= 0
    assert "ended_at" in final
    assert "started_at" in final
    assert inner_running["parent_id"] == span.span_id == inner_final["parent_id"]
    assert nested["parent_id"] == inner_running["span_id"]
    assert err_running["status"] == "running"
    assert err_final["status"] == "error"
    assert err_final["level"] == "error"
    assert err_final["attributes"]["exception.type"] == "ValueError"
    assert err_final["attributes"]["exception.message"] == "bad audio"
    assert "Traceback" in err_final["attributes"]["exception.stacktrace"]


def test_traced_sync_and_async(make_client: Callable[..., Client], fake: FakeServer) -> None:
    @traced(kind="tool")
    def add(a: int, b: int) -> int:
        return a + b

    @traced(kind="retrieval", name="lookup", capture=False)
    async def lookup(query: str) -> list[str]:
        await asyncio.sleep(0)
        return [query]

    @traced
    def explode() -> None:
        raise KeyError("k")

    assert add(1, 2) == 3  # no session: untraced
    client = make_client()
    with client.session() as session:
        assert add(2, 3) == 5
        assert asyncio.run(lookup("q")) == ["q"]
        with pytest.raises(KeyError):
            explode()
    assert client.flush(5)
    stored = events(fake, session.id)
    assert [(e["kind"], e.get("status", "ok")) for e in stored] == [
        ("tool", "running"), ("tool", "ok"),
        ("retrieval", "running"), ("retrieval", "ok"),
        ("tool", "running"), ("tool", "error"),
    ]  # fmt: skip
    assert stored[1]["name"].endswith("add")
    assert stored[1]["input"] == {"args": [2, 3], "kwargs": {}}
    assert stored[1]["output"] == 5
    assert stored[3]["name"] == "lookup"
    assert "input" not in stored[3]
    assert "output" not in stored[3]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.log_event("nonsense"), ValueError),
        (lambda s: s.log_event("action", status="great"), ValueError),
        (lambda s: s.log_event("action", colour="red"), TypeError),
        (lambda s: s.log_action("x", idempotency_key="k" * 201), ValueError),
        (lambda s: s.end("done"), ValueError),
        (lambda s: s.span("nonsense"), ValueError),
    ],
)
def test_programming_errors_raise_at_call_site(
    make_client: Callable[..., Client], call: Callable[[Any], Any], error: type[Exception]
) -> None:
    session = make_client().session()
    with pytest.raises(error):
        call(session)


def test_async_client_same_surface(fake: FakeServer, tmp_path: Any) -> None:
    async def main() -> None:
        async with AsyncClient(
            "http://tether.test",
            transport=fake.transport(),
            spool_dir=tmp_path,
            flush_interval=0.02,
        ) as client:
            async with client.session(agent="async") as session:
                session.log_action("a")
                async with session.span("llm", name="gen") as span:
                    span.set_output("text")
                child = session.spawn_agent(agent="child")
                session.complete_agent(child)
            assert await client.flush(5)
            assert await client.checkpoint(5)
            assert [e["kind"] for e in fake.events[session.id]] == ["action", "llm", "llm"]
            assert fake.ended == {child.id: "completed", session.id: "completed"}
            state = await session.update_state({"step": 1})
            assert (state.state, state.version) == ({"step": 1}, 1)
            assert (await session.get_state()).version == 1
            goal = await session.add_goal("ship it", priority=1)
            assert (await session.update_goal(goal["id"], status="done"))["status"] == "done"
            await client.remember("user/a", "likes tea")
            assert [r.memory["text"] for r in await client.recall("user/a", "tea")] == ["likes tea"]

    asyncio.run(main())


@pytest.mark.parametrize("bad", ["has space", "a/b", "", "x" * 201])
def test_invalid_session_ids_fail_at_call_site(
    make_client: Callable[..., Client], bad: str
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="invalid session id"):
        client.session(id=bad or " ")
    with pytest.raises(ValueError, match="invalid session id"):
        client.session().spawn_agent(id=bad or " ")

"""The Store contract's analytics reads (``event_samples``, ``query_events``), run on every
backend: tenant scoping, event time, derived durations, error messages, truncation, and the
cross-session cursor with its filters."""

from __future__ import annotations

from typing import Any

import pytest

from tether.domain.events import EventIn
from tether.errors import NotFound
from tether.store.base import EventQuery, Store

pytestmark = pytest.mark.anyio

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def _iso(ms: int) -> str:
    from tether.domain.time import iso

    out = iso(ms)
    assert out is not None
    return out


def _ev(**fields: Any) -> EventIn:
    return EventIn.model_validate(fields)


async def _session(store: Store, tenant: str, sid: str, agent: str | None = None) -> None:
    fields: dict[str, Any] = {"id": sid}
    if agent is not None:
        fields["agent"] = agent
    await store.create_session(tenant, fields, now=T0, correlation_id=None)


async def _append(store: Store, tenant: str, sid: str, *events: EventIn, now: int = T0) -> None:
    await store.append_events(tenant, sid, list(events), now=now, correlation_id=None)


async def test_samples_carry_event_time_durations_and_error_messages(store: Store) -> None:
    await _session(store, "t", "s1")
    await _append(
        store,
        "t",
        "s1",
        # time = started_at; duration = ended_at - started_at (no duration_ms)
        _ev(kind="stt", name="w", started_at=_iso(T0 + 10), ended_at=_iso(T0 + 260)),
        # duration_ms wins over the times
        _ev(
            kind="tts",
            started_at=_iso(T0 + 20),
            ended_at=_iso(T0 + 9_000),
            duration_ms=12.5,
            input_tokens=7,
            output_tokens=3,
            cost_usd=0.25,
        ),
        # no started_at: time = created_at (the append's now)
        _ev(
            kind="tool", name="grep", status="error", output={"error": {"message": "no such file"}}
        ),
        _ev(kind="tool", name="grep", status="error", output={"message": "m2", "error": None}),
        _ev(kind="tool", name="grep", status="error", output="plain text failure"),
        _ev(kind="tool", name="grep", status="error", attributes={"error.message": "from attrs"}),
        _ev(kind="tool", name="grep", status="error", output={"error": "x" * 600}),
        _ev(kind="tool", name="grep", status="ok", output={"error": "not an error event"}),
        _ev(kind="error", output={"code": 7}, attributes={"exception.message": "otel"}),
        # ended before it started: no duration
        _ev(kind="vad", started_at=_iso(T0 + 30), ended_at=_iso(T0 + 5)),
        now=T0 + 50,
    )
    samples, truncated = await store.event_samples("t", since_ms=None, until_ms=None, limit=100)
    assert truncated is False
    by_seq = {s.seq: s for s in samples}
    assert [s.seq for s in samples] == [9, 8, 7, 6, 5, 4, 3, 10, 2, 1]  # newest first
    assert (by_seq[1].at, by_seq[1].duration_ms) == (T0 + 10, 250.0)
    assert (by_seq[2].at, by_seq[2].duration_ms) == (T0 + 20, 12.5)
    assert (by_seq[2].input_tokens, by_seq[2].output_tokens, by_seq[2].cost_usd) == (7, 3, 0.25)
    assert (by_seq[2].cache_read_tokens, by_seq[1].input_tokens, by_seq[1].cost_usd) == (0, 0, 0.0)
    assert (by_seq[3].at, by_seq[3].duration_ms) == (T0 + 50, None)
    assert (by_seq[10].at, by_seq[10].duration_ms) == (T0 + 30, None)
    assert [by_seq[i].error for i in range(3, 7)] == [
        "no such file",
        "m2",
        "plain text failure",
        "from attrs",
    ]
    long = by_seq[7].error
    assert long is not None
    assert len(long) == 500
    assert long.endswith("…")
    assert by_seq[8].error is None  # status ok: not an error
    assert by_seq[9].error == "otel"  # kind error: an error whatever its status
    assert {s.session_id for s in samples} == {"s1"}


async def test_samples_are_scoped_filtered_windowed_and_capped(store: Store) -> None:
    await _session(store, "t", "a1", agent="alpha")
    await _session(store, "t", "b1", agent="beta")
    await _session(store, "other", "a1", agent="alpha")
    for i in range(5):
        start = _iso(T0 + i * 1000)
        await _append(store, "t", "a1", _ev(kind="tool", name=f"n{i % 2}", started_at=start))
        await _append(store, "t", "b1", _ev(kind="llm", name="m", started_at=start))
    await _append(store, "other", "a1", _ev(kind="tool", name="n0", started_at=_iso(T0)))

    async def seqs(**kw: Any) -> list[tuple[str, int]]:
        kw.setdefault("since_ms", None)
        kw.setdefault("until_ms", None)
        kw.setdefault("limit", 100)
        found, _ = await store.event_samples("t", **kw)
        return [(s.session_id, s.seq) for s in found]

    assert len(await seqs()) == 10
    # since inclusive, until exclusive, on event time
    assert await seqs(since_ms=T0 + 1000, until_ms=T0 + 3000, kinds=["tool"]) == [
        ("a1", 3),
        ("a1", 2),
    ]
    assert await seqs(agent="beta", since_ms=T0 + 4000) == [("b1", 5)]
    assert await seqs(session_id="a1", names=["n1"]) == [("a1", 4), ("a1", 2)]
    assert await seqs(kinds=["tool", "llm"], names=["m"], until_ms=T0 + 1) == [("b1", 1)]
    capped, truncated = await store.event_samples(
        "t", since_ms=None, until_ms=None, kinds=["llm"], limit=2
    )
    assert ([s.seq for s in capped], truncated) == ([5, 4], True)
    exact, truncated = await store.event_samples(
        "t", since_ms=None, until_ms=None, kinds=["llm"], limit=5
    )
    assert (len(exact), truncated) == (5, False)
    other, _ = await store.event_samples("other", since_ms=None, until_ms=None, limit=100)
    assert [(s.session_id, s.name) for s in other] == [("a1", "n0")]
    with pytest.raises(NotFound):
        await store.event_samples("t", since_ms=None, until_ms=None, session_id="zz", limit=1)
    with pytest.raises(NotFound):  # another tenant's session id is unknown here
        await store.event_samples("nobody", since_ms=None, until_ms=None, session_id="a1", limit=1)


async def _query(store: Store, tenant: str = "t", **kw: Any) -> tuple[list[Any], bool, int]:
    q = EventQuery(**{k: kw.pop(k) for k in list(kw) if k in EventQuery.__dataclass_fields__})
    kw.setdefault("after", 0)
    kw.setdefault("limit", 100)
    kw.setdefault("tail", False)
    kw.setdefault("max_bytes", 1 << 20)
    items, more, head = await store.query_events(tenant, q, **kw)
    return [(pk, e.session_id, e.seq) for pk, e in items], more, head


async def test_the_event_query_walks_one_cursor_across_sessions(store: Store) -> None:
    await _session(store, "t", "x")
    await _session(store, "t", "y")
    await _session(store, "u", "x")
    await _append(store, "t", "x", _ev(kind="log", level="debug"), _ev(kind="tool"))
    await _append(store, "u", "x", _ev(kind="log"))
    await _append(store, "t", "y", _ev(kind="log", level="error", status="error"))
    await _append(store, "t", "x", _ev(kind="llm", status="running", started_at=_iso(T0 - 5)))
    items, more, head = await _query(store)
    pks = [pk for pk, _, _ in items]
    assert [(s, q) for _, s, q in items] == [("x", 1), ("x", 2), ("y", 1), ("x", 3)]
    assert pks == sorted(pks)
    assert (more, head) == (False, pks[-1])
    # after and limit page on; tail takes the last ones, ascending
    page, more, _ = await _query(store, after=pks[0], limit=2)
    assert ([p for p, _, _ in page], more) == (pks[1:3], True)
    page, more, _ = await _query(store, after=pks[2], limit=2)
    assert ([p for p, _, _ in page], more) == (pks[3:], False)
    page, more, _ = await _query(store, limit=2, tail=True)
    assert ([p for p, _, _ in page], more) == (pks[2:], False)
    # filters
    assert [(s, q) for _, s, q in (await _query(store, kinds=("log", "llm")))[0]] == [
        ("x", 1),
        ("y", 1),
        ("x", 3),
    ]
    # no level counts as info: at least info leaves out the debug one only
    levels = ("info", "warning", "error", "critical")
    assert [(s, q) for _, s, q in (await _query(store, levels=levels))[0]] == [
        ("x", 2),
        ("y", 1),
        ("x", 3),
    ]
    assert [q for _, _, q in (await _query(store, levels=("error", "critical")))[0]] == [1]
    assert [(s, q) for _, s, q in (await _query(store, status="running"))[0]] == [("x", 3)]
    assert [(s, q) for _, s, q in (await _query(store, session_id="y"))[0]] == [("y", 1)]
    assert (await _query(store, session_id="nope"))[0] == []
    assert [(s, q) for _, s, q in (await _query(store, until_ms=T0))[0]] == [("x", 3)]
    assert [(s, q) for _, s, q in (await _query(store, since_ms=T0, kinds=("llm",)))[0]] == []
    # another tenant: its own event only, and its own head
    other, _, other_head = await _query(store, "u")
    assert [(s, q) for _, s, q in other] == [("x", 1)]
    assert other_head == other[0][0]
    assert (await _query(store, "nobody"))[2] == 0


async def test_an_event_query_page_stops_at_its_byte_budget(store: Store) -> None:
    await _session(store, "t", "big")
    blob = "z" * 4000
    await _append(store, "t", "big", *[_ev(kind="log", input=blob) for _ in range(5)])
    page, more, _ = await _query(store, max_bytes=9000)
    assert (len(page), more) == (2, True)
    one, more, _ = await _query(store, max_bytes=10)  # at least one
    assert (len(one), more) == (1, True)

"""Diagnostics, tool analytics, time series, anomalies and the cross-session event query,
over real HTTP on every store (``docs/analytics.md``).

Every number asserted here was computed by hand from the events the test posts. Events
carry ``started_at`` times in a past month of their own per test, so the tenant-wide
reports (bounded by ``since``/``until``) see one test's events only, although the
module's server is shared. Percentiles are numpy's linear interpolation: for sorted
``x[0..n-1]`` the p-th is ``x[i] + f * (x[i+1] - x[i])`` with ``i + f = (n - 1) * p``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest


def _at(base: datetime, **delta: float) -> str:
    return (base + timedelta(**delta)).isoformat().replace("+00:00", "Z")


def _post(http: httpx.Client, sid: str, events: list[dict[str, Any]], **session: Any) -> None:
    r = http.post("/v1/sessions", json={"id": sid, **session})
    assert r.status_code in (200, 201), r.text
    for i in range(0, len(events), 1000):
        r = http.post(f"/v1/sessions/{sid}/events", json={"events": events[i : i + 1000]})
        assert r.status_code == 201, r.text


def _data(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _by_key(components: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(c["kind"], c["name"]): c for c in components}


T_A = datetime(2021, 1, 1, tzinfo=UTC)


def _session_a_events() -> list[dict[str, Any]]:
    usage = {
        "model": "m-test",
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 2,
        "cache_write_tokens": 1,
        "reasoning_tokens": 3,
        "cost_usd": 0.01,
    }
    llm = [
        {"kind": "llm", "name": "gpt", "started_at": _at(T_A, seconds=3 + i), "duration_ms": d}
        | usage
        for i, d in enumerate([100, 200, 300, 400])
    ]
    llm.append(
        {
            "kind": "llm",
            "name": "gpt",
            "status": "error",
            "started_at": _at(T_A, seconds=7),
            "duration_ms": 1000,
            "output": {"error": "rate limited"},
        }
        | usage
    )
    stt = {"kind": "stt", "name": "whisper"}
    return [
        stt | {"status": "running", "span_id": "sp1", "started_at": _at(T_A)},
        stt | {"span_id": "sp1", "started_at": _at(T_A), "duration_ms": 100},
        stt | {"status": "running", "span_id": "sp2", "started_at": _at(T_A, seconds=1)},
        # no duration_ms: ended_at - started_at = 300 ms
        stt | {"started_at": _at(T_A, seconds=2), "ended_at": _at(T_A, seconds=2.3)},
        *llm,
        {"kind": "tool", "name": "search", "started_at": _at(T_A, seconds=9), "duration_ms": 10},
        {"kind": "tool", "name": "search", "status": "error", "output": "e1"}
        | {"started_at": _at(T_A, seconds=10)},
        {"kind": "tool", "name": "search", "status": "error", "output": {"code": 1}}
        | {"attributes": {"error.message": "e2"}, "started_at": _at(T_A, seconds=20)},
        {"kind": "tool", "name": "search", "status": "error", "output": {"message": "e3"}}
        | {"started_at": _at(T_A, seconds=30)},
        {"kind": "tool", "name": "search", "status": "error", "output": {"error": "e4"}}
        | {"started_at": _at(T_A, seconds=40)},
        {"kind": "log", "started_at": _at(T_A, seconds=50)},
    ]


def test_session_diagnostics_per_component(http: httpx.Client) -> None:
    _post(http, "diag-a", _session_a_events())
    d = _data(http.get("/v1/sessions/diag-a/diagnostics"))
    assert (d["session_id"], d["since"], d["until"], d["sessions"]) == ("diag-a", None, None, 1)
    assert [(c["kind"], c["name"]) for c in d["components"]] == [
        ("llm", "gpt"),
        ("log", None),
        ("stt", "whisper"),
        ("tool", "search"),
    ]
    c = _by_key(d["components"])
    llm = c["llm", "gpt"]
    assert (llm["count"], llm["running"], llm["errors"], llm["error_rate"]) == (5, 0, 1, 0.2)
    # [100, 200, 300, 400, 1000]: p50 = x[2]; p95 at rank 3.8 = 400 + 0.8 * 600
    assert (llm["p50_ms"], llm["p95_ms"], llm["max_ms"]) == (300.0, 880.0, 1000.0)
    tokens = [llm[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens")]
    tokens += [llm[k] for k in ("cache_write_tokens", "reasoning_tokens")]
    assert tokens == [50, 25, 10, 5, 15]
    assert llm["cost_usd"] == pytest.approx(0.05)
    assert [(e["message"], e["session_id"], e["seq"], e["at"]) for e in llm["last_errors"]] == [
        ("rate limited", "diag-a", 9, "2021-01-01T00:00:07.000Z")
    ]
    stt = c["stt", "whisper"]
    # sp1 ended, sp2 still running; durations [100, 300]: p95 = 100 + 0.95 * 200
    assert (stt["count"], stt["running"], stt["errors"], stt["error_rate"]) == (2, 1, 0, 0.0)
    assert (stt["p50_ms"], stt["p95_ms"], stt["max_ms"]) == (200.0, 290.0, 300.0)
    tool = c["tool", "search"]
    assert (tool["count"], tool["errors"], tool["error_rate"]) == (5, 4, 0.8)
    assert (tool["p50_ms"], tool["p95_ms"], tool["max_ms"]) == (10.0, 10.0, 10.0)
    assert [e["message"] for e in tool["last_errors"]] == ["e4", "e3", "e2"]  # newest first
    log = c["log", None]
    assert (log["count"], log["p50_ms"], log["max_ms"], log["cost_usd"]) == (1, None, None, 0.0)
    totals = d["totals"]
    assert (totals["count"], totals["running"], totals["errors"]) == (13, 1, 5)
    assert totals["error_rate"] == pytest.approx(5 / 13)
    assert (totals["input_tokens"], totals["reasoning_tokens"]) == (50, 15)
    assert totals["cost_usd"] == pytest.approx(0.05)
    assert (d["samples"], d["truncated"]) == (15, False)

    # A window of event time: llm calls at 3..7 s; since inclusive, until exclusive.
    since, until = _at(T_A, seconds=5), _at(T_A, seconds=7)
    d = _data(http.get("/v1/sessions/diag-a/diagnostics", params={"since": since, "until": until}))
    assert (d["since"], d["until"]) == ("2021-01-01T00:00:05.000Z", "2021-01-01T00:00:07.000Z")
    assert [(c["kind"], c["count"], c["p50_ms"]) for c in d["components"]] == [("llm", 2, 350.0)]

    r = http.get("/v1/sessions/no-such-session/diagnostics")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


T_B = datetime(2021, 2, 1, tzinfo=UTC)


def test_tenant_diagnostics_across_sessions_and_by_agent(http: httpx.Client) -> None:
    for sid, agent, durations in (("diag-x", "ag-x", [10, 20]), ("diag-y", "ag-y", [30])):
        events = [
            {"kind": "tts", "name": "piper", "started_at": _at(T_B, minutes=i), "duration_ms": d}
            for i, d in enumerate(durations)
        ]
        _post(http, sid, events, agent=agent)
    window = {"since": _at(T_B), "until": _at(T_B, hours=1)}
    d = _data(http.get("/v1/diagnostics", params=window))
    assert (d["session_id"], d["sessions"]) == (None, 2)
    assert [(c["kind"], c["name"], c["count"]) for c in d["components"]] == [("tts", "piper", 3)]
    assert (d["components"][0]["p50_ms"], d["components"][0]["max_ms"]) == (20.0, 30.0)
    d = _data(http.get("/v1/diagnostics", params={**window, "agent": "ag-x"}))
    assert d["sessions"] == 1
    assert [(c["count"], c["p95_ms"]) for c in d["components"]] == [(2, 19.5)]  # 10 + .95 * 10
    # By default the last 24 h: these events are years old.
    d = _data(http.get("/v1/diagnostics", params={"agent": "ag-x"}))
    assert (d["components"], d["sessions"], d["until"]) == ([], 0, None)
    assert d["since"] is not None


T_C = datetime(2021, 3, 1, tzinfo=UTC)


def test_tool_analytics(http: httpx.Client) -> None:
    def tool(name: str, minute: int, **extra: Any) -> dict[str, Any]:
        return {"kind": "tool", "name": name, "started_at": _at(T_C, minutes=minute)} | extra

    events = [tool("alpha", i, duration_ms=d) for i, d in enumerate([10, 20, 30])]
    events.append(tool("alpha", 3, duration_ms=40, status="error", output={"error": "timeout"}))
    events += [tool("beta", 10 + i, duration_ms=5) for i in range(5)]
    events.append(tool("beta", 20, status="running", span_id="open"))
    events += [tool("gamma", 30 + i) for i in range(4)]
    events.append({"kind": "llm", "name": "not-a-tool", "started_at": _at(T_C)})
    _post(http, "tools-1", events)
    d = _data(
        http.get("/v1/analytics/tools", params={"since": _at(T_C), "until": _at(T_C, hours=1)})
    )
    assert (d["since"], d["until"]) == ("2021-03-01T00:00:00.000Z", "2021-03-01T01:00:00.000Z")
    rows = [
        (t["name"], t["invocations"], t["ok"], t["errors"], t["running"], t["success_rate"])
        for t in d["tools"]
    ]
    assert rows == [
        ("beta", 5, 5, 0, 1, 1.0),
        ("alpha", 4, 3, 1, 0, 0.75),
        ("gamma", 4, 4, 0, 0, 1.0),
    ]
    alpha, gamma = d["tools"][1], d["tools"][2]
    # [10, 20, 30, 40]: p50 at rank 1.5 = 25; p95 at rank 2.85 = 30 + 0.85 * 10
    assert (alpha["p50_ms"], alpha["p95_ms"], alpha["max_ms"]) == (25.0, 38.5, 40.0)
    assert alpha["last_at"] == "2021-03-01T00:03:00.000Z"
    assert alpha["last_error"] == {
        "message": "timeout",
        "at": "2021-03-01T00:03:00.000Z",
        "session_id": "tools-1",
        "seq": 4,
    }
    assert (gamma["p50_ms"], gamma["last_error"]) == (None, None)
    assert d["tools"][0]["last_error"] is None


T_D = datetime(2021, 4, 1, tzinfo=UTC)


def test_time_series_buckets(http: httpx.Client) -> None:
    events = [
        {"kind": "tool", "name": "t", "started_at": _at(T_D, minutes=1), "duration_ms": 10},
        {"kind": "tool", "name": "t", "status": "error", "started_at": _at(T_D, minutes=14)}
        | {"duration_ms": 30},
        {"kind": "llm", "name": "m", "started_at": _at(T_D, minutes=31), "duration_ms": 20}
        | {"input_tokens": 100, "output_tokens": 50, "cost_usd": 0.5},
        {"kind": "llm", "name": "m", "status": "running", "started_at": _at(T_D, minutes=50)},
    ]
    _post(http, "series-1", events)
    window = {"since": _at(T_D), "until": _at(T_D, hours=1), "bucket": "15m"}

    def series(metric: str, **params: Any) -> list[Any]:
        d = _data(
            http.get("/v1/analytics/timeseries", params={**window, "metric": metric, **params})
        )
        assert (d["metric"], d["bucket"], d["bucket_s"], d["clipped"]) == (
            metric,
            "15m",
            900,
            False,
        )
        assert [p["at"][11:16] for p in d["points"]] == ["00:00", "00:15", "00:30", "00:45"]
        return [p["value"] for p in d["points"]]

    assert series("events") == [2, 0, 1, 0]
    assert series("errors") == [1, 0, 0, 0]
    assert series("error_rate") == [0.5, None, 0.0, None]
    assert series("latency_p50") == [20.0, None, 20.0, None]
    assert series("latency_p95") == [29.0, None, 20.0, None]  # 10 + 0.95 * 20
    assert series("tokens") == [0, 0, 150, 0]
    assert series("cost_usd") == [0, 0, 0.5, 0]
    assert series("events", kind="tool") == [2, 0, 0, 0]
    assert series("events", kind=["tool", "llm"], name="m") == [0, 0, 1, 0]

    # An unaligned since falls in its bucket, whose start the answer names.
    d = _data(
        http.get(
            "/v1/analytics/timeseries",
            params={"since": _at(T_D, minutes=20), "until": _at(T_D, minutes=40), "bucket": "15m"},
        )
    )
    assert (d["since"], d["until"]) == ("2021-04-01T00:15:00.000Z", "2021-04-01T00:40:00.000Z")
    assert [p["value"] for p in d["points"]] == [0, 1]
    # At most 1,000 buckets: an older since moves forward.
    d = _data(
        http.get(
            "/v1/analytics/timeseries",
            params={"since": _at(T_D, days=-30), "until": _at(T_D), "bucket": "1m"},
        )
    )
    assert (d["clipped"], len(d["points"]), d["since"]) == (True, 1000, "2021-03-31T07:20:00.000Z")
    d = _data(
        http.get("/v1/analytics/timeseries", params={"since": _at(T_D, hours=1), "until": _at(T_D)})
    )
    assert d["points"] == []
    # Near year 1 (the earliest time there is) buckets start at it, never before.
    d = _data(
        http.get(
            "/v1/analytics/timeseries", params={"until": "0001-01-01T10:00:00Z", "bucket": "1m"}
        )
    )
    assert (d["since"], len(d["points"]), d["clipped"]) == ("0001-01-01T00:00:00.000Z", 600, False)
    for bad in ({"metric": "latency"}, {"bucket": "2m"}, {"since": "yesterday"}, {"kind": "x"}):
        r = http.get("/v1/analytics/timeseries", params=bad)
        assert r.status_code == 422, (bad, r.text)


U_E = datetime(2021, 5, 1, 12, tzinfo=UTC)
WINDOW_S = 600


def test_anomalies_flag_the_tool_whose_latency_jumps(http: httpx.Client) -> None:
    """Seven 10-minute windows (six of baseline, then the latest), ten calls per tool in
    each, all of one duration, so a window's p95 is that duration:

    - ``flat``: 100 ms throughout: z = 0 (constant baseline, std floored at 10 ms).
    - ``jumpy``: baseline p95s 100, 120, 80, 100, 110, 90 (mean 100, sample std
      sqrt(1000 / 5) = 14.142) then 400: z = 300 / 14.142 = 21.213. Flagged.
    - ``blippy``: baseline 100, 100, 500, 100, 100, 100 (a one-off blip; mean 166.67,
      std 163.30) then 110: z = -0.35.
    - ``flaky``: never failed, then 5 of 10 calls fail: error rate 0.5 against a
      baseline of 0 (std 0, floored at 0.05): z = 10. Flagged.
    """
    baseline = {
        "flat": [100] * 6,
        "jumpy": [100, 120, 80, 100, 110, 90],
        "blippy": [100, 100, 500, 100, 100, 100],
        "flaky": [50] * 6,
    }
    latest = {"flat": 100, "jumpy": 400, "blippy": 110, "flaky": 50}
    events: list[dict[str, Any]] = []
    for name in baseline:
        # window k = 0 is the latest, k = 1..6 the baseline, oldest last
        for k, duration in enumerate([latest[name], *baseline[name]]):
            start = U_E - timedelta(seconds=(k + 1) * WINDOW_S)
            for i in range(10):
                event = {
                    "kind": "tool",
                    "name": name,
                    "started_at": _at(start, seconds=30 + 10 * i),
                    "duration_ms": duration,
                }
                if name == "flaky" and k == 0 and i % 2 == 0:
                    event |= {"status": "error", "output": {"error": "boom"}}
                events.append(event)
    _post(http, "anomaly-1", events)
    params = {"window": "10m", "baseline": 6, "until": _at(U_E)}
    d = _data(http.get("/v1/analytics/anomalies", params=params))
    assert (d["window_s"], d["baseline_windows"], d["threshold"], d["min_samples"]) == (
        600,
        6,
        3.0,
        10,
    )
    assert (d["window_start"], d["until"]) == (
        "2021-05-01T11:50:00.000Z",
        "2021-05-01T12:00:00.000Z",
    )
    assert d["method"]
    assert [(a["name"], a["metric"]) for a in d["anomalies"]] == [
        ("jumpy", "latency_p95"),
        ("flaky", "error_rate"),
    ]
    jumpy, flaky = d["anomalies"]
    assert jumpy["kind"] == "tool"
    assert jumpy["value"] == 400.0
    assert jumpy["baseline_mean"] == pytest.approx(100.0)
    assert jumpy["baseline_std"] == pytest.approx(math.sqrt(200), abs=1e-6)
    assert jumpy["std_used"] == pytest.approx(math.sqrt(200), abs=1e-6)
    assert jumpy["z"] == pytest.approx(300 / math.sqrt(200), abs=1e-6)  # 21.213203
    assert (jumpy["samples"], jumpy["windows_used"]) == (10, 6)
    assert jumpy["window_start"] == "2021-05-01T11:50:00.000Z"
    assert (flaky["value"], flaky["baseline_mean"], flaky["baseline_std"]) == (0.5, 0.0, 0.0)
    assert (flaky["std_used"], flaky["z"]) == (0.05, pytest.approx(10.0))
    # The same series with a 60-second window given in seconds, and too few samples.
    assert (
        _data(http.get("/v1/analytics/anomalies", params={**params, "min_samples": 11}))[
            "anomalies"
        ]
        == []
    )
    d = _data(http.get("/v1/analytics/anomalies", params={**params, "window": "600"}))
    assert len(d["anomalies"]) == 2
    d = _data(http.get("/v1/analytics/anomalies", params={"until": "0001-01-01T00:00:00Z"}))
    assert (d["window_start"], d["anomalies"]) == ("0001-01-01T00:00:00.000Z", [])
    for bad in ({"window": "1x"}, {"baseline": 2}, {"until": "soon"}):
        assert http.get("/v1/analytics/anomalies", params=bad).status_code == 422, bad


T_F = datetime(2021, 6, 1, tzinfo=UTC)


def test_the_event_query_filters_and_follows(http: httpx.Client) -> None:
    def ev(minute: int, **fields: Any) -> dict[str, Any]:
        return {"kind": "log", "started_at": _at(T_F, minutes=minute)} | fields

    _post(
        http, "q-a", [ev(1, level="debug"), ev(2, kind="tool"), ev(3, kind="llm", status="running")]
    )
    _post(http, "q-b", [ev(40, level="error", status="error"), ev(41, level="warning")])
    _post(http, "q-a", [ev(42, level="critical")])
    window = {"since": _at(T_F), "until": _at(T_F, hours=1)}

    def query(**params: Any) -> dict[str, Any]:
        return _data(http.get("/v1/events", params={**window, **params}))

    def ids(data: dict[str, Any]) -> list[tuple[str, int]]:
        return [(e["session_id"], e["seq"]) for e in data["items"]]

    everything = query()
    assert ids(everything) == [
        ("q-a", 1),
        ("q-a", 2),
        ("q-a", 3),
        ("q-b", 1),
        ("q-b", 2),
        ("q-a", 4),
    ]
    assert everything["next_after"] is None
    head = everything["cursor"]
    assert ids(query(kind=["tool", "llm"])) == [("q-a", 2), ("q-a", 3)]
    assert ids(query(level="warning")) == [("q-b", 1), ("q-b", 2), ("q-a", 4)]
    assert len(query(level="info")["items"]) == 5  # no level counts as info
    assert ids(query(status="running")) == [("q-a", 3)]
    assert ids(query(session_id="q-b")) == [("q-b", 1), ("q-b", 2)]
    assert query(session_id="nobody")["items"] == []
    assert ids(query(since=_at(T_F, minutes=40))) == [("q-b", 1), ("q-b", 2), ("q-a", 4)]
    tail = query(tail=2)
    assert (ids(tail), tail["next_after"], tail["cursor"]) == ([("q-b", 2), ("q-a", 4)], None, head)
    # Paging by the cursor: pages of two, then the end.
    seen: list[tuple[str, int]] = []
    after = 0
    for _ in range(3):
        page = query(after=after, limit=2)
        seen += ids(page)
        assert page["cursor"] >= after
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["cursor"]
        after = page["next_after"]
    assert seen == ids(everything)
    # Following: nothing new yet (the cursor stays at or past the head), then a new event.
    quiet = query(after=head)
    assert quiet["items"] == []
    assert quiet["cursor"] >= head
    _post(http, "q-b", [ev(50, name="late")])
    new = query(after=quiet["cursor"])
    assert [(e["session_id"], e["seq"], e["name"]) for e in new["items"]] == [("q-b", 3, "late")]
    assert new["cursor"] > quiet["cursor"]
    for bad in (
        {"level": "verbose"},
        {"status": "done"},
        {"kind": "nope"},
        {"since": "garbage"},
        {"tail": 0},
        {"limit": 0},
        {"after": -1},
    ):
        assert http.get("/v1/events", params=bad).status_code == 422, bad

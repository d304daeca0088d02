"""The report arithmetic of ``tether.services.reports`` on hand-made samples: percentile
edges, running spans, and where the anomaly threshold, floors and sample minimums cut."""

from __future__ import annotations

from typing import Any

import pytest

from tether.services.reports import anomaly_report, diagnostics_report, percentiles
from tether.store.base import EventSample

UNTIL = 1_700_000_000_000  # ms
W = 60_000  # one-minute windows


def _s(**kw: Any) -> EventSample:
    fields: dict[str, Any] = {
        "kind": "tool",
        "name": "t",
        "status": "ok",
        "at": UNTIL - 1,
        "duration_ms": None,
        "model": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0,
        "session_id": "s",
        "seq": 1,
        "span_id": None,
        "error": None,
    }
    return EventSample(**(fields | kw))


def test_percentiles_interpolate_linearly() -> None:
    assert percentiles([]) == (None, None, None)
    assert percentiles([42.0]) == (42.0, 42.0, 42.0)
    assert percentiles([1.0, 2.0]) == (1.5, 1.95, 2.0)
    assert percentiles([1000.0, 100.0, 400.0, 200.0, 300.0]) == (300.0, 880.0, 1000.0)


def test_a_running_span_is_running_until_its_final_event_of_the_same_session() -> None:
    found = [
        _s(status="running", span_id="a", session_id="s1"),
        _s(status="ok", span_id="a", session_id="s1", duration_ms=5.0),
        _s(status="running", span_id="a", session_id="s2"),  # same span id, other session
        _s(status="running"),  # no span id
    ]
    report = diagnostics_report(found, False, session_id=None, since_ms=None, until_ms=None)
    (component,) = report.components
    assert (component.count, component.running, component.p50_ms) == (1, 2, 5.0)
    assert (report.sessions, report.totals.running) == (3, 2)  # s1, s2 and s


def _series(name: str, baseline: list[float], latest: float, n: int = 10) -> list[EventSample]:
    """``n`` calls of one duration per window; window 0 is the latest."""
    out = []
    for k, d in enumerate([latest, *baseline]):
        out += [_s(name=name, at=UNTIL - k * W - 1 - i, duration_ms=d) for i in range(n)]
    return out


def _flagged(found: list[EventSample], **kw: Any) -> list[tuple[str | None, str, float]]:
    kw = {"window_s": 60, "baseline": 5, "min_samples": 10, "until_ms": UNTIL} | kw
    report = anomaly_report(found, False, **kw)
    return [(a.name, a.metric, a.z) for a in report.anomalies]


def test_a_constant_baseline_uses_the_floor_and_three_is_flagged() -> None:
    # Baseline 100 ms throughout: std 0, floor 10 % of 100 = 10 ms.
    assert _flagged(_series("at", [100.0] * 5, 130.0)) == [("at", "latency_p95", 3.0)]
    assert _flagged(_series("under", [100.0] * 5, 129.0)) == []
    # Lower is never an anomaly.
    assert _flagged(_series("faster", [100.0] * 5, 10.0)) == []


def test_windows_need_enough_samples() -> None:
    found = _series("few", [100.0] * 5, 500.0, n=10)
    assert _flagged(found, min_samples=11) == []
    # Only two baseline windows have data: fewer than three to compare with.
    two = [s for s in found if UNTIL - s.at <= 3 * W]
    assert _flagged(two) == []
    three = [s for s in found if UNTIL - s.at <= 4 * W]
    assert [(n, m) for n, m, _ in _flagged(three)] == [("few", "latency_p95")]


def test_model_calls_are_watched_by_name_else_model() -> None:
    found = [
        _s(kind="llm", name=None, model="m-1", at=s.at, duration_ms=s.duration_ms)
        for s in _series("x", [50.0, 60.0, 40.0, 50.0, 50.0], 200.0)
    ]
    ((name, metric, z),) = _flagged(found)
    # mean 50, sample std sqrt(200 / 4) = 7.071 (above the 5 ms floor): z = 150 / 7.071
    assert (name, metric) == ("m-1", "latency_p95")
    assert z == pytest.approx(150 / (200 / 4) ** 0.5, abs=1e-6)

"""Reports over event samples: the records the analytics routes answer with and the pure
aggregation that builds them (no I/O; :mod:`tether.services.analytics` fetches the samples
and runs these in a worker thread, off the event loop).

Rules shared by every report (``docs/analytics.md``):

- An event's **time** is ``started_at``, else ``created_at``; ``since`` is inclusive,
  ``until`` exclusive.
- **Final** events are those whose status is not ``running``. Counts, errors, durations,
  tokens and cost come from final events only; a ``running`` event counts as *running*
  when no final event of the same span (session and ``span_id``) is among the samples (one
  without a ``span_id`` always does).
- An **error** is a final event with ``status`` ``error`` (or of kind ``error``), as the
  session's ``error_count`` counts them.
- **Duration**: ``duration_ms``, else ``ended_at - started_at`` (ms); events without one
  are counted but not in percentiles.
- **Percentiles** interpolate linearly between the closest ranks (numpy's default
  ``method="linear"``, Hyndman & Fan type 7): for sorted durations ``x[0..n-1]`` the
  ``p``-th is ``x[i] + f * (x[i+1] - x[i])`` with ``i + f = (n - 1) * p / 100``; rounded
  to 0.001 ms.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from tether.domain.records import Event
from tether.domain.time import iso
from tether.store.base import EventSample

__all__ = [
    "Anomaly",
    "AnomalyReport",
    "Component",
    "Diagnostics",
    "ErrorRef",
    "EventQueryPage",
    "Point",
    "Timeseries",
    "ToolReport",
    "ToolStat",
    "Totals",
    "anomaly_report",
    "diagnostics_report",
    "percentiles",
    "series_report",
    "tool_report",
]

#: How many errors a component lists (newest first).
LAST_ERRORS: Final = 3

#: Anomalies: the z-score that flags, the standard-deviation floors (so a constant
#: baseline followed by a jump is flagged, and a wobble of a few ms is not), and the least
#: number of baseline windows with enough samples to compare against.
THRESHOLD: Final = 3.0
LATENCY_FLOOR_FRACTION: Final = 0.10
LATENCY_FLOOR_MS: Final = 1.0
ERROR_RATE_FLOOR: Final = 0.05
MIN_BASELINE_WINDOWS: Final = 3
METHOD: Final = (
    "z = (latest window - mean of the baseline windows) / max(sample std (n-1), floor); "
    "latency_p95 = p95 (linear) of durations per window, floor max(10% of mean, 1 ms); "
    "error_rate = errors / final events per window, floor 0.05; flagged when z >= 3; "
    "a window counts with >= min_samples final events; needs >= 3 baseline windows"
)


# -- records -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ErrorRef:
    """An error event: its message (``None`` when it carries none), time, session, seq."""

    message: str | None
    at: str
    session_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Component:
    """One component (``kind`` and ``name``) of a diagnostics report. Durations in ms
    (``None`` without any), cost in US dollars; ``error_rate`` is ``errors / count``
    (0 when ``count`` is 0); ``last_errors`` newest first."""

    kind: str
    name: str | None
    count: int
    running: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    last_errors: list[ErrorRef]


@dataclass(frozen=True, slots=True)
class Totals:
    """The components summed."""

    count: int
    running: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """``GET /v1/sessions/{id}/diagnostics`` and ``GET /v1/diagnostics``: components by
    kind then name. ``sessions``: 1 for a session, else those with an event in the window.
    ``truncated``: more than ``samples`` events matched; the oldest were left out."""

    session_id: str | None
    since: str | None
    until: str | None
    sessions: int
    components: list[Component]
    totals: Totals
    samples: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class ToolStat:
    """One tool: final invocations (``ok + errors``), still ``running`` ones,
    ``success_rate = ok / invocations``, latency in ms, the newest invocation's time and
    error."""

    name: str | None
    invocations: int
    ok: int
    errors: int
    running: int
    success_rate: float
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    last_at: str
    last_error: ErrorRef | None


@dataclass(frozen=True, slots=True)
class ToolReport:
    """``GET /v1/analytics/tools``: tools by invocations (most first), then name."""

    since: str | None
    until: str | None
    tools: list[ToolStat]
    samples: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Point:
    """A bucket's start and value (``None``: no data for a rate or a latency)."""

    at: str
    value: float | None


@dataclass(frozen=True, slots=True)
class Timeseries:
    """``GET /v1/analytics/timeseries``: every bucket from ``since`` (the first bucket's
    start) to ``until``, empty ones included. ``clipped``: the range asked for held more
    than 1,000 buckets and ``since`` was moved forward."""

    metric: str
    bucket: str
    bucket_s: int
    since: str
    until: str
    points: list[Point]
    clipped: bool
    samples: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A component whose ``metric`` in the latest window is ``z`` standard deviations
    above its baseline (``baseline_std``: the sample std before the floor; ``std_used``:
    the divisor, after it). ``samples``: final events in the latest window."""

    kind: str
    name: str | None
    metric: Literal["latency_p95", "error_rate"]
    value: float
    baseline_mean: float
    baseline_std: float
    std_used: float
    z: float
    window_start: str
    samples: int
    windows_used: int


@dataclass(frozen=True, slots=True)
class AnomalyReport:
    """``GET /v1/analytics/anomalies``: anomalies by ``z``, largest first."""

    window_s: int
    baseline_windows: int
    threshold: float
    min_samples: int
    method: str
    until: str
    window_start: str
    anomalies: list[Anomaly]
    samples: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class EventQueryPage:
    """``GET /v1/events``: events in cursor order; ``next_after`` the next ``after`` when
    more follow; ``cursor`` the last item's position (the tenant's head when empty), to
    poll ``after=cursor``."""

    items: list[Event]
    next_after: int | None
    cursor: int


# -- arithmetic ----------------------------------------------------------------------------
def _r(value: float) -> float:
    return round(float(value), 3)


def percentiles(durations: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """``(p50, p95, max)`` of durations (ms), linear interpolation (see the module
    docstring), rounded to 0.001 ms; ``(None, None, None)`` for none."""
    if not durations:
        return None, None, None
    p50, p95 = np.percentile(np.asarray(durations, dtype=np.float64), [50, 95])
    return _r(p50), _r(p95), _r(max(durations))


def _is_error(s: EventSample) -> bool:
    return s.status == "error" or s.kind == "error"


def _open_spans(samples: Sequence[EventSample]) -> Iterable[EventSample]:
    """The ``running`` samples whose span has no final sample."""
    done = {(s.session_id, s.span_id) for s in samples if s.status != "running" and s.span_id}
    for s in samples:
        if s.status == "running" and (s.span_id is None or (s.session_id, s.span_id) not in done):
            yield s


def _ref(s: EventSample) -> ErrorRef:
    return ErrorRef(s.error, iso(s.at) or "", s.session_id, s.seq)


class _Acc:
    """Running sums of one component over final samples (fed newest first)."""

    __slots__ = ("cost", "count", "durations", "errors", "last_errors", "running", "tokens")

    def __init__(self) -> None:
        self.count = self.running = self.errors = 0
        self.durations: list[float] = []
        self.tokens = [0, 0, 0, 0, 0]
        self.cost: list[float] = []
        self.last_errors: list[ErrorRef] = []

    def add(self, s: EventSample) -> None:
        self.count += 1
        if s.duration_ms is not None:
            self.durations.append(s.duration_ms)
        if _is_error(s):
            self.errors += 1
            if len(self.last_errors) < LAST_ERRORS:
                self.last_errors.append(_ref(s))
        t = self.tokens
        t[0] += s.input_tokens
        t[1] += s.output_tokens
        t[2] += s.cache_read_tokens
        t[3] += s.cache_write_tokens
        t[4] += s.reasoning_tokens
        if s.cost_usd:
            self.cost.append(s.cost_usd)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _component(kind: str, name: str | None, a: _Acc) -> Component:
    p50, p95, top = percentiles(a.durations)
    return Component(
        kind=kind,
        name=name,
        count=a.count,
        running=a.running,
        errors=a.errors,
        error_rate=_rate(a.errors, a.count),
        p50_ms=p50,
        p95_ms=p95,
        max_ms=top,
        input_tokens=a.tokens[0],
        output_tokens=a.tokens[1],
        cache_read_tokens=a.tokens[2],
        cache_write_tokens=a.tokens[3],
        reasoning_tokens=a.tokens[4],
        cost_usd=math.fsum(a.cost),
        last_errors=a.last_errors,
    )


def _totals(components: Sequence[Component]) -> Totals:
    count = sum(c.count for c in components)
    errors = sum(c.errors for c in components)
    return Totals(
        count=count,
        running=sum(c.running for c in components),
        errors=errors,
        error_rate=_rate(errors, count),
        input_tokens=sum(c.input_tokens for c in components),
        output_tokens=sum(c.output_tokens for c in components),
        cache_read_tokens=sum(c.cache_read_tokens for c in components),
        cache_write_tokens=sum(c.cache_write_tokens for c in components),
        reasoning_tokens=sum(c.reasoning_tokens for c in components),
        cost_usd=math.fsum(c.cost_usd for c in components),
    )


def _by_component(samples: Sequence[EventSample]) -> list[Component]:
    accs: dict[tuple[str, str | None], _Acc] = defaultdict(_Acc)
    for s in samples:
        if s.status != "running":
            accs[s.kind, s.name].add(s)
    for s in _open_spans(samples):
        accs[s.kind, s.name].running += 1
    keys = sorted(accs, key=lambda k: (k[0], k[1] or ""))
    return [_component(kind, name, accs[kind, name]) for kind, name in keys]


def _bucket_value(metric: str, final: Sequence[EventSample]) -> float | None:
    if metric == "events":
        return len(final)
    errors = sum(1 for s in final if _is_error(s))
    if metric == "errors":
        return errors
    if metric == "error_rate":
        return errors / len(final) if final else None
    if metric in ("latency_p50", "latency_p95"):
        p50, p95, _ = percentiles([s.duration_ms for s in final if s.duration_ms is not None])
        return p50 if metric == "latency_p50" else p95
    if metric == "tokens":
        return sum(s.input_tokens + s.output_tokens for s in final)
    return math.fsum(s.cost_usd for s in final)


def _anomaly_key(s: EventSample) -> tuple[str, str | None]:
    """Components watched for anomalies: a tool by name; a model call by name, else model."""
    return s.kind, (s.name or s.model) if s.kind == "llm" else s.name


def _score(
    latest: float, baseline: Sequence[float], metric: str
) -> tuple[float, float, float, float]:
    """``(mean, sample std, std used, z)`` of ``latest`` against ``baseline`` (>= 2 values):
    the std used is the sample std (n - 1) or the metric's floor, whichever is larger."""
    values = np.asarray(baseline, dtype=np.float64)
    mean = float(values.mean())
    std = float(values.std(ddof=1))
    if metric == "latency_p95":
        floor = max(LATENCY_FLOOR_FRACTION * mean, LATENCY_FLOOR_MS)
    else:
        floor = ERROR_RATE_FLOOR
    used = max(std, floor)
    return mean, std, used, (latest - mean) / used


# -- the reports ---------------------------------------------------------------------------
def diagnostics_report(
    found: Sequence[EventSample],
    truncated: bool,
    *,
    session_id: str | None,
    since_ms: int | None,
    until_ms: int | None,
) -> Diagnostics:
    """Per component of ``found`` (newest first), sorted by kind then name."""
    components = _by_component(found)
    return Diagnostics(
        session_id=session_id,
        since=iso(since_ms),
        until=iso(until_ms),
        sessions=1 if session_id is not None else len({s.session_id for s in found}),
        components=components,
        totals=_totals(components),
        samples=len(found),
        truncated=truncated,
    )


def tool_report(
    found: Sequence[EventSample], truncated: bool, *, since_ms: int | None, until_ms: int | None
) -> ToolReport:
    """Per tool name of ``found`` (tool events, newest first) with a final event, by
    invocations (most first), then name."""
    final: dict[str | None, list[EventSample]] = defaultdict(list)
    for s in found:
        if s.status != "running":
            final[s.name].append(s)  # newest first
    running: dict[str | None, int] = defaultdict(int)
    for s in _open_spans(found):
        running[s.name] += 1
    tools: list[ToolStat] = []
    for name, items in final.items():
        errors = [s for s in items if _is_error(s)]
        p50, p95, top = percentiles([s.duration_ms for s in items if s.duration_ms is not None])
        tools.append(
            ToolStat(
                name=name,
                invocations=len(items),
                ok=len(items) - len(errors),
                errors=len(errors),
                running=running[name],
                success_rate=_rate(len(items) - len(errors), len(items)),
                p50_ms=p50,
                p95_ms=p95,
                max_ms=top,
                last_at=iso(items[0].at) or "",
                last_error=_ref(errors[0]) if errors else None,
            )
        )
    tools.sort(key=lambda t: (-t.invocations, t.name or ""))
    return ToolReport(iso(since_ms), iso(until_ms), tools, len(found), truncated)


def series_report(
    found: Sequence[EventSample],
    truncated: bool,
    *,
    metric: str,
    bucket: str,
    width_ms: int,
    start_ms: int,
    count: int,
    until_ms: int,
    clipped: bool,
) -> Timeseries:
    """``metric`` in each of ``count`` buckets of ``width_ms`` from ``start_ms`` (every
    sample of ``found`` falls in one), over final events."""
    buckets: list[list[EventSample]] = [[] for _ in range(count)]
    for s in found:
        if s.status != "running":
            buckets[(s.at - start_ms) // width_ms].append(s)
    points = [
        Point(iso(start_ms + i * width_ms) or "", _bucket_value(metric, b))
        for i, b in enumerate(buckets)
    ]
    return Timeseries(
        metric=metric,
        bucket=bucket,
        bucket_s=width_ms // 1000,
        since=iso(start_ms) or "",
        until=iso(until_ms) or "",
        points=points,
        clipped=clipped,
        samples=len(found),
        truncated=truncated,
    )


def anomaly_report(
    found: Sequence[EventSample],
    truncated: bool,
    *,
    window_s: int,
    baseline: int,
    min_samples: int,
    until_ms: int,
) -> AnomalyReport:
    """Anomalies among ``found`` (samples from the ``baseline + 1`` windows of
    ``window_s`` ending at ``until_ms``), largest ``z`` first (the method: :data:`METHOD`)."""
    width = window_s * 1000
    window_start = iso(until_ms - width) or ""
    # windows[key][0] is the latest window, [k] the k-th before it.
    windows: dict[tuple[str, str | None], list[list[EventSample]]] = defaultdict(
        lambda: [[] for _ in range(baseline + 1)]
    )
    for s in found:
        if s.status != "running":
            windows[_anomaly_key(s)][(until_ms - 1 - s.at) // width].append(s)
    out: list[Anomaly] = []
    for (kind, name), per_window in windows.items():
        out.extend(_anomalies_of(kind, name, per_window, min_samples, window_start))
    out.sort(key=lambda a: (-a.z, a.kind, a.name or "", a.metric))
    return AnomalyReport(
        window_s=window_s,
        baseline_windows=baseline,
        threshold=THRESHOLD,
        min_samples=min_samples,
        method=METHOD,
        until=iso(until_ms) or "",
        window_start=window_start,
        anomalies=out,
        samples=len(found),
        truncated=truncated,
    )


def _p95(window: list[EventSample]) -> float | None:
    return percentiles([s.duration_ms for s in window if s.duration_ms is not None])[1]


def _error_rate(window: list[EventSample]) -> float:
    return sum(1 for s in window if _is_error(s)) / len(window)


def _anomalies_of(
    kind: str,
    name: str | None,
    per_window: list[list[EventSample]],
    min_samples: int,
    window_start: str,
) -> list[Anomaly]:
    latest, *before = per_window
    if len(latest) < min_samples:
        return []
    found: list[Anomaly] = []
    metrics: list[
        tuple[Literal["latency_p95", "error_rate"], Callable[[list[EventSample]], float | None]]
    ] = [("latency_p95", _p95), ("error_rate", _error_rate)]
    for metric, value_of in metrics:
        value = value_of(latest)
        history = [
            v for v in (value_of(w) for w in before if len(w) >= min_samples) if v is not None
        ]
        if value is None or len(history) < MIN_BASELINE_WINDOWS:
            continue
        mean, std, used, z = _score(value, history, metric)
        if z >= THRESHOLD:
            found.append(
                Anomaly(
                    kind=kind,
                    name=name,
                    metric=metric,
                    value=round(value, 6),
                    baseline_mean=round(mean, 6),
                    baseline_std=round(std, 6),
                    std_used=round(used, 6),
                    z=round(z, 6),
                    window_start=window_start,
                    samples=len(latest),
                    windows_used=len(history),
                )
            )
    return found

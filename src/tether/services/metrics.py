"""Prometheus metrics of one Tether process: what it served, ingested and holds open.

Every family, its labels and its unit are listed in ``docs/metrics.md`` (a test parses the
table and finds each one in a live ``/metrics``). Where the OpenTelemetry GenAI semantic
conventions define a metric (``gen_ai.client.operation.duration``,
``gen_ai.client.token.usage``, ``gen_ai.execute_tool.duration``,
``gen_ai.invoke_agent.duration``) it has that name in Prometheus form (dots to
underscores, the unit as a suffix), the convention's attribute names as labels and its
advised bucket boundaries.

Where the numbers come from:

- **Ingest** counts only *committed* rows: the store hands each append's inserted rows to
  the container after the group commit (a change on ``ROWS_TOPIC``, by reference, never
  published), and :meth:`Metrics.committed` tallies them there. Idempotent replays insert
  nothing and count nothing; a rolled-back job emits nothing.
- **HTTP** requests, their latency and refusals come from the request middleware
  (``server/envelope.py``), by route template (the operation id), never by raw path.
- **Active sessions** and the **index backlog** are read from the store when scraped
  (:meth:`Metrics.refresh`, bounded in time), summed over tenants.

Label cardinality is bounded: routes are operation ids, kinds and statuses come from
fixed sets, and tool, model and agent names are labelled as first seen up to
``TETHER_METRICS_MAX_NAMES`` each per process, later ones as ``other``. No session id,
tenant or free text is ever a label.

Each process has its own registry (apps built in one process do not share counters);
with ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes behind one port),
prometheus-client's multiprocess mode aggregates every process's values at scrape.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

from tether import __version__
from tether.domain.changes import MEMORY_TOPIC, Change
from tether.domain.events import EventKind
from tether.services.context import DEFAULT_TENANT
from tether.store.base import Store
from tether.store.prepared import COLUMNS
from tether.store.shared.events import ROWS_TOPIC

__all__ = ["CONTENT_TYPE", "OTHER", "Metrics"]

log = logging.getLogger("tether.services.metrics")

#: The exposition's media type: the text format 0.0.4, which every Prometheus version
#: reads (``generate_latest`` writes that format for names like ours, though recent
#: prometheus-client releases label their default output 1.0.0).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: The label of names past the cap (and of values outside a fixed set).
OTHER: Final = "other"
#: A name longer than this is not a label value (it is text, not a name).
_MAX_NAME_CHARS: Final = 100

# Bucket boundaries (seconds unless said). HTTP: 1 ms (a single-event append) to 10 s.
_HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# OpenTelemetry GenAI advisory boundaries (gen-ai-metrics.md): operation and tool durations,
# agent invocations, and token counts.
_GENAI_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_AGENT_BUCKETS: Final = (
    0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6,
)  # fmt: skip
_TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# Recall: in-process indexes answer in 0.1-2 ms; a query embedding takes up to its budget.
_RECALL_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

#: Store-read gauges are re-read at most this often (s), however often scrapes come ...
_STORE_TTL_S: Final = 1.0
#: ... and a scrape waits at most this long (s) for them; then it shows the last values.
_STORE_BUDGET_S: Final = 2.0

# Fixed label sets: anything else is "other".
_KINDS: Final = frozenset(k.value for k in EventKind)
_STATUSES: Final = frozenset({"ok", "error", "running"})
_MEMORY_OPS: Final = frozenset({"add", "update", "delete", "purge"})
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
TRANSPORTS: Final = ("ws", "sse")

# Positions in a prepared event row (store/prepared.py COLUMNS), looked up by name so the
# table can gain columns.
_KIND = COLUMNS.index("kind")
_NAME = COLUMNS.index("name")
_STATUS = COLUMNS.index("status")
_DURATION = COLUMNS.index("duration_ms")
_MODEL = COLUMNS.index("model")
_COST = COLUMNS.index("cost_usd")
#: ``gen_ai.token.type`` values and their row positions (present columns only).
_TOKEN_TYPES: Final = tuple(
    (kind, COLUMNS.index(column))
    for kind, column in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_tokens"),
        ("cache_write", "cache_write_tokens"),
        ("reasoning", "reasoning_tokens"),
    )
    if column in COLUMNS
)
#: ``error.type`` of a failed call (the OTel fallback value); "" (no label) when it succeeded.
_ERROR_TYPE: Final = "_OTHER"


class _Names:
    """Label values for client-chosen names: the first ``cap`` seen are themselves, later
    ones (and any longer than 100 characters) are :data:`OTHER`; a missing name is
    ``unknown``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.known: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return "unknown"
        if value in self.known:
            return value
        if len(self.known) >= self.cap or len(value) > _MAX_NAME_CHARS:
            return OTHER
        self.known.add(value)
        return value


def _observe_all(child: Histogram, values: Sequence[float]) -> None:
    """``child.observe(v)`` for each of ``values``, at the cost of a sort, one bisection
    per bucket and one update per bucket hit rather than a bucket search and two locked
    updates per value (a group commit hands over hundreds of durations). Adds to
    prometheus-client's bucket and sum values directly, as ``observe`` does (the same
    counts; tests/integration/test_metrics.py compares them); falls back to ``observe``
    if a release ever moves them."""
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    total = getattr(child, "_sum", None)
    if buckets is None or bounds is None or total is None:
        for value in values:
            child.observe(value)
        return
    ordered = sorted(values)
    total.inc(sum(ordered))
    below = 0  # values in the buckets so far: a value goes to the first bound >= it
    for i, bound in enumerate(bounds):
        upto = bisect.bisect_right(ordered, bound)
        if upto > below:
            buckets[i].inc(upto - below)
            below = upto
            if below == len(ordered):
                break


_CALL_KINDS: Final = frozenset({"tool", "llm", "agent"})
#: A row's group: (kind, status, name, model), built in one C call.
_FIELDS = itemgetter(_KIND, _STATUS, _NAME, _MODEL)
_Groups = dict[tuple[str, str, str | None, str | None], list[Sequence[Any]]]


def _group(rows: Sequence[Sequence[Any]], into: _Groups) -> None:
    """Add ``rows`` to ``into`` by (kind, status, name, model)."""
    for row in rows:
        key = _FIELDS(row)
        group = into.get(key)
        if group is None:
            into[key] = [row]
        else:
            group.append(row)


class Metrics:
    """This process's metrics (see the module docstring and ``docs/metrics.md``).

    Args:
        store: for the gauges only the store knows (active sessions, index backlog).
        max_names: tool, model and agent names labelled each (``TETHER_METRICS_MAX_NAMES``).
    """

    def __init__(self, store: Store, *, max_names: int) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.store = store
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self._tools = _Names(max_names)
        self._models = _Names(max_names)
        self._agents = _Names(max_names)
        build = Gauge(
            "tether_build_info",
            "Tether's version (value 1).",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        build.labels(__version__).set(1)
        # -- HTTP ---------------------------------------------------------------------------
        self.http_requests = Counter(
            "tether_http_requests",
            "HTTP requests answered, by route (operation id), method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "tether_http_request_duration_seconds",
            "Time from a request's arrival to its response headers, by route and method.",
            ["route", "method"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self.rejected_requests = Counter(
            "tether_rejected_requests",
            "Requests refused (status 400 and up), by route and reason (the error code).",
            ["route", "reason"],
            registry=r,
        )
        self.rejected_events = Counter(
            "tether_rejected_events",
            "Events in ingest requests that were refused after their body was read, by "
            "route and reason.",
            ["route", "reason"],
            registry=r,
        )
        # -- ingest -------------------------------------------------------------------------
        self.events = Counter(
            "tether_events_ingested",
            "Events committed, by kind and status (idempotent replays not counted).",
            ["kind", "status"],
            registry=r,
        )
        self.tool_calls = Counter(
            "tether_tool_calls",
            "Tool calls recorded (final tool events), by tool name and outcome.",
            ["tool", "outcome"],
            registry=r,
        )
        self.tool_duration = Histogram(
            "gen_ai_execute_tool_duration_seconds",
            "Duration of tool executions (OTel gen_ai.execute_tool.duration), from tool "
            "events with duration_ms.",
            ["gen_ai_tool_name", "error_type"],
            buckets=_GENAI_BUCKETS,
            registry=r,
        )
        self.llm_calls = Counter(
            "tether_llm_calls",
            "LLM calls recorded (final llm events), by model and outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.llm_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of LLM calls (OTel gen_ai.client.operation.duration), from llm events "
            "with duration_ms.",
            ["gen_ai_request_model", "error_type"],
            buckets=_GENAI_BUCKETS,
            registry=r,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per LLM call (OTel gen_ai.client.token.usage), by model and token type "
            "(input includes cache_read and cache_write; output includes reasoning).",
            ["gen_ai_request_model", "gen_ai_token_type"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "tether_llm_cost_usd",
            "Cost of LLM calls in US dollars (as stored on the events), by model.",
            ["model"],
            registry=r,
        )
        self.agent_duration = Histogram(
            "gen_ai_invoke_agent_duration_seconds",
            "Duration of agent invocations (OTel gen_ai.invoke_agent.duration), from agent "
            "events with duration_ms.",
            ["gen_ai_agent_name", "error_type"],
            buckets=_AGENT_BUCKETS,
            registry=r,
        )
        # -- memory -------------------------------------------------------------------------
        self.memory_ops = Counter(
            "tether_memory_operations",
            "Memory operations: committed add, update, delete, purge; and searches.",
            ["op"],
            registry=r,
        )
        self.recall_duration = Histogram(
            "tether_memory_recall_duration_seconds",
            "Memory search (recall) time in the service, by mode and whether it was degraded "
            "to keyword search.",
            ["mode", "degraded"],
            buckets=_RECALL_BUCKETS,
            registry=r,
        )
        self.backlog = Gauge(
            "tether_memory_index_backlog",
            "Embedding jobs pending, every tenant (read from the store at scrape; the same "
            "on every replica: take max, not sum).",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.active_sessions = Gauge(
            "tether_active_sessions",
            "Sessions with status active, every tenant (read from the store at scrape; the "
            "same on every replica: take max, not sum).",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        # -- live ---------------------------------------------------------------------------
        self.live_connections = Gauge(
            "tether_live_connections",
            "Open live connections of this process, by transport (ws: WebSocket "
            "connections, sse: event streams).",
            ["transport"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.live_overflows = Counter(
            "tether_live_overflows",
            "Live followers dropped for falling behind (told with an overflow message), by "
            "transport.",
            ["transport"],
            registry=r,
        )
        for transport in TRANSPORTS:  # present at 0 from the start
            self.live_connections.labels(transport)
            self.live_overflows.labels(transport)
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._store_read_at = -_STORE_TTL_S
        self._store_lock = asyncio.Lock()

    # -- HTTP ---------------------------------------------------------------------------------
    def http(
        self, route: str, method: str, status: int, seconds: float, reason: str | None
    ) -> None:
        """Count one answered request (``seconds`` to its response headers); ``reason``
        is the error code of a refusal (status >= 400)."""
        if method not in _METHODS:
            method = OTHER
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(route, method, str(status)),
                self.http_duration.labels(route, method),
            )
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 400:
            self.rejected_requests.labels(route, reason or str(status)).inc()

    def events_rejected(self, route: str, reason: str, count: int) -> None:
        """``count`` events of a refused ingest request."""
        if count > 0:
            self.rejected_events.labels(route, reason).inc(count)

    # -- committed changes ----------------------------------------------------------------------
    def committed(self, changes: Sequence[Change]) -> None:
        """Tally a group commit's changes (call on the event loop after each commit):
        events from :data:`ROWS_TOPIC` rows, memory operations from memory changes."""
        groups: _Groups = {}
        present: set[int] = set()  # row positions not None in some row
        for change in changes:
            if change.topic == ROWS_TOPIC:
                _group(change.data["rows"], groups)
                present.update(change.data["columns"])
            elif change.topic == MEMORY_TOPIC:
                op = change.kind.removeprefix("memory.")
                self.memory_ops.labels(op if op in _MEMORY_OPS else OTHER).inc()
        if groups:
            self._tally(groups, present)

    def _tally(self, groups: _Groups, present: set[int]) -> None:
        """Rows grouped by (kind, status, name, model): each group costs a few label
        lookups (cached); per row there remain only its duration and tokens (one
        histogram update per bucket hit, see :func:`_observe_all`). Columns not in
        ``present`` (None in every row) are not looked at."""
        child = self._child
        token_types = [(t, pos) for t, pos in _TOKEN_TYPES if pos in present]
        timed, priced = _DURATION in present, _COST in present
        kinds: dict[tuple[str, str], int] = {}
        for (kind, status, name, model_name), rows in groups.items():
            k = (kind if kind in _KINDS else OTHER, status if status in _STATUSES else OTHER)
            kinds[k] = kinds.get(k, 0) + len(rows)
            if kind not in _CALL_KINDS or status == "running":
                continue
            outcome, error_type = ("error", _ERROR_TYPE) if status == "error" else ("ok", "")
            durations = (
                [r[_DURATION] / 1000 for r in rows if r[_DURATION] is not None] if timed else []
            )
            if kind == "llm":
                model = self._models(model_name)
                child(self.llm_calls, model, outcome).inc(len(rows))
                if durations:
                    _observe_all(child(self.llm_duration, model, error_type), durations)
                for token_type, pos in token_types:
                    if counts := [r[pos] for r in rows if r[pos] is not None]:
                        _observe_all(child(self.tokens, model, token_type), counts)
                if priced and (usd := sum(r[_COST] for r in rows if r[_COST] is not None)):
                    child(self.cost, model).inc(usd)
            elif kind == "tool":
                tool = self._tools(name)
                child(self.tool_calls, tool, outcome).inc(len(rows))
                if durations:
                    _observe_all(child(self.tool_duration, tool, error_type), durations)
            elif durations:  # agent
                agent = self._agents(name)
                _observe_all(child(self.agent_duration, agent, error_type), durations)
        for (kind, status), n in kinds.items():
            child(self.events, kind, status).inc(n)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached (``labels`` checks and locks on every call).
        Bounded: every label value comes from a fixed set or a capped name set."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # -- memory and live ------------------------------------------------------------------------
    def recalled(self, seconds: float, *, mode: str, degraded: bool) -> None:
        """One memory search that took ``seconds`` in the service."""
        self.memory_ops.labels("search").inc()
        self.recall_duration.labels(mode, "true" if degraded else "false").observe(seconds)

    def connection(self, transport: str, delta: int) -> None:
        """A live connection of ``transport`` (``ws``, ``sse``) opened (+1) or closed (-1)."""
        self.live_connections.labels(transport).inc(delta)

    def overflowed(self, transport: str) -> None:
        """A live follower was dropped for falling behind."""
        self.live_overflows.labels(transport).inc()

    # -- scrape ---------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Re-read the store gauges (active sessions, index backlog), summed over every
        tenant (``default`` and every tenant with an API key), unless read in the last
        second. Waits at most 2 s; on a timeout or a store error the last values stay
        (and a warning is logged). Never raises."""
        async with self._store_lock:
            if time.monotonic() - self._store_read_at < _STORE_TTL_S:
                return
            try:
                async with asyncio.timeout(_STORE_BUDGET_S):
                    active, backlog = await self._read_store()
            except Exception:  # TimeoutError too: a slow store must not fail the scrape
                log.warning("metrics: the store gauges were not read", exc_info=True)
                return
            self.active_sessions.set(active)
            self.backlog.set(backlog)
            self._store_read_at = time.monotonic()

    async def _read_store(self) -> tuple[int, int]:
        tenants = {DEFAULT_TENANT} | {k.tenant_id for k in await self.store.list_keys(None)}
        active = backlog = 0
        for tenant in sorted(tenants):
            active += await self.store.active_sessions(tenant)
            backlog += (await self.store.memory_stats(tenant)).index_backlog
        return active, backlog

    def render(self) -> bytes:
        """The Prometheus text exposition (0.0.4) of this process, or of every process
        sharing ``PROMETHEUS_MULTIPROC_DIR``."""
        if self.multiprocess:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

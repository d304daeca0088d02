"""``GET /metrics`` against real servers on both stores, two replicas on PostgreSQL + Redis,
and the deploy files that scrape and chart it (docs/metrics.md).

Representative traffic (events of several kinds with durations, tokens, cost and an error,
an idempotent replay, memory writes and a search, refused requests, a WebSocket and an SSE
subscriber), then the scrape is parsed with ``prometheus_client.parser``: every family the
doc's table lists exists, counters moved by exactly what was sent, tool names past the cap
fold into ``other``, no label carries a session id, and every metric the Grafana dashboard
queries is there.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tether.testing import TetherServer, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "tether.json"
TOKEN = "metrics-secret-7f3a9c"
ServerFactory = Callable[..., TetherServer]
ReplicaFactory = Callable[..., list[TetherServer]]
#: Tool, model and agent names labelled per process in these servers (then ``other``).
CAP = 3


def documented() -> dict[str, str]:
    """``{exposed name: type}`` from the table under "## Families" in docs/metrics.md."""
    text = DOC.read_text().split("## Families", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|", text, re.M)
    assert len(rows) >= 15, "the table was not found"
    return dict(rows)


class Scrape:
    """One parsed ``/metrics`` answer."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples: list[Sample] = [s for f in self.families for s in f.samples]

    def exposed(self) -> dict[str, str]:
        """``{exposed family name: type}`` (a counter's name gets its ``_total`` back)."""
        return {
            (f.name + "_total" if f.type == "counter" else f.name): f.type for f in self.families
        }

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def scrape(srv: TetherServer, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{srv.url}/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(r.text)


def _post(srv: TetherServer, path: str, body: Any, status: int, **kw: Any) -> httpx.Response:
    r = httpx.post(f"{srv.url}{path}", json=body, timeout=30, **kw)
    assert r.status_code == status, r.text
    return r


SID, SID2 = "sess-metrics-4b1e9d", "sess-metrics-8c2f0a"
EVENTS = [
    {"kind": "tool", "name": "search", "duration_ms": 30, "idempotency_key": "e1"},
    {
        "kind": "tool",
        "name": "search",
        "status": "error",
        "duration_ms": 5,
        "idempotency_key": "e2",
    },
    {"kind": "tool", "name": "fetch", "status": "running", "idempotency_key": "e3"},
    {"kind": "tool", "name": "fetch", "duration_ms": 1500, "idempotency_key": "e4"},
    {"kind": "tool", "name": "calc", "idempotency_key": "e5"},  # no duration: a call, no sample
    {"kind": "tool", "name": "t4", "duration_ms": 10, "idempotency_key": "e6"},  # past the cap
    {"kind": "tool", "name": "t5", "status": "error", "idempotency_key": "e7"},  # past the cap
    {
        "kind": "llm",
        "model": "model-metrics-x",
        "duration_ms": 1200,
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_tokens": 600,
        "cache_write_tokens": 100,
        "reasoning_tokens": 50,
        "cost_usd": 0.25,
        "idempotency_key": "e8",
    },
    {
        "kind": "llm",
        "model": "model-metrics-x",
        "status": "error",
        "duration_ms": 90,
        "input_tokens": 10,
        "cost_usd": 0.5,
        "idempotency_key": "e9",
    },
    {"kind": "agent", "name": "planner", "duration_ms": 3000, "idempotency_key": "e10"},
    {"kind": "message", "role": "user", "input": SID, "idempotency_key": "e11"},
    {"kind": "error", "status": "error", "name": SID2, "idempotency_key": "e12"},
]


def traffic(srv: TetherServer) -> None:
    """Everything the first test counts, sent once to a fresh server."""
    _post(srv, "/v1/sessions", {"id": SID}, 201)
    _post(srv, "/v1/sessions", {"id": SID2}, 201)
    _post(srv, f"/v1/sessions/{SID}/events", {"events": EVENTS}, 201)
    # A retry of the first three (idempotent replays: nothing stored, nothing counted).
    _post(srv, f"/v1/sessions/{SID}/events", {"events": EVENTS[:3]}, 200)
    _post(srv, f"/v1/sessions/{SID2}/events", {"kind": "log", "name": "one"}, 201)
    _post(srv, f"/v1/sessions/{SID2}/end", {"status": "completed"}, 200)
    # Refused: 3 events of an unknown kind (422), 2 events to an unknown session (404), a
    # forged key (401 before routing), a body over the limit (413).
    bad = {"events": [{"kind": "nonsense"}, {"kind": "log"}, {"kind": "log"}]}
    _post(srv, f"/v1/sessions/{SID}/events", bad, 422)
    _post(srv, "/v1/sessions/nope-404/events", {"events": [{"kind": "log"}] * 2}, 404)
    forged = {"Authorization": "Bearer tk_01JZZZZZZZZZZZZZZZZZZZZZZZ_" + "A" * 43}
    r = httpx.get(f"{srv.url}/v1/sessions", headers=forged, timeout=30)
    assert r.status_code == 401, r.text
    huge = {"kind": "log", "input": "x" * 70_000}
    _post(srv, f"/v1/sessions/{SID}/events", huge, 413)
    # Memory: one add, one update, one search.
    r = _post(srv, "/v1/memories", {"namespace": "user/m", "text": "likes green tea"}, 201)
    mid = r.json()["data"]["memory"]["id"]
    r = httpx.patch(f"{srv.url}/v1/memories/{mid}", json={"importance": 0.9}, timeout=30)
    assert r.status_code == 200, r.text
    _post(srv, "/v1/memories/search", {"namespace": "user/m", "query": "green tea"}, 200)
    wait_until(  # embedded: the backlog is 0 when scraped
        lambda: (
            httpx.get(f"{srv.url}/v1/memories/{mid}", timeout=30).json()["data"]["embedding_model"]
            is not None
        ),
        timeout=120,
    )


@pytest.fixture
def metered(server_factory: ServerFactory, fresh_store: str) -> TetherServer:
    """A fresh server (each store) with a small name cap and body limit."""
    return server_factory(
        fresh_store, env={"TETHER_METRICS_MAX_NAMES": str(CAP), "TETHER_MAX_BODY_BYTES": "65536"}
    )


def test_every_documented_family_with_the_counts_sent(metered: TetherServer) -> None:
    srv = metered
    traffic(srv)
    m = asyncio.run(_with_live_subscribers(srv))
    # Every documented family is served, with its documented type.
    exposed = m.exposed()
    for name, kind in documented().items():
        assert exposed.get(name) == kind, f"{name} ({kind}) missing from /metrics"
    # Events: committed once (the replays not counted), by kind and status.
    ev = "tether_events_ingested_total"
    assert m.value(ev, kind="tool", status="ok") == 4
    assert m.value(ev, kind="tool", status="error") == 2
    assert m.value(ev, kind="tool", status="running") == 1
    assert m.value(ev, kind="llm", status="ok") == m.value(ev, kind="llm", status="error") == 1
    assert m.value(ev, kind="agent") == m.value(ev, kind="message") == 1
    assert m.value(ev, kind="error", status="error") == 1
    assert m.value(ev, kind="log") == 1
    assert m.value(ev) == len(EVENTS) + 1
    # Tool calls: final events only; names past the cap (3) are "other".
    calls = "tether_tool_calls_total"
    assert m.value(calls, tool="search", outcome="ok") == 1
    assert m.value(calls, tool="search", outcome="error") == 1
    assert m.value(calls, tool="fetch", outcome="ok") == 1  # its running event is no call
    assert m.value(calls, tool="calc", outcome="ok") == 1
    assert m.value(calls, tool="other", outcome="ok") == 1
    assert m.value(calls, tool="other", outcome="error") == 1
    tools = {s.labels["tool"] for s in m.samples if s.name == calls}
    assert tools == {"search", "fetch", "calc", "other"}
    # Tool durations (seconds), OTel buckets: 30 ms in (0.02, 0.04], 1.5 s in (1.28, 2.56].
    td = "gen_ai_execute_tool_duration_seconds"
    ok_search = {"gen_ai_tool_name": "search", "error_type": ""}
    assert m.value(f"{td}_count", **ok_search) == 1
    assert m.value(f"{td}_sum", **ok_search) == pytest.approx(0.03)
    assert m.value(f"{td}_bucket", le="0.02", **ok_search) == 0
    assert m.value(f"{td}_bucket", le="0.04", **ok_search) == 1
    assert m.value(f"{td}_count", gen_ai_tool_name="search", error_type="_OTHER") == 1
    assert m.value(f"{td}_bucket", le="1.28", gen_ai_tool_name="fetch") == 0
    assert m.value(f"{td}_bucket", le="2.56", gen_ai_tool_name="fetch") == 1
    assert m.value(f"{td}_count", gen_ai_tool_name="calc") == 0  # no duration_ms
    assert m.value(f"{td}_count") == 4
    # LLM calls, durations, tokens by type, cost.
    model = {"gen_ai_request_model": "model-metrics-x"}
    assert m.value("tether_llm_calls_total", model="model-metrics-x", outcome="ok") == 1
    assert m.value("tether_llm_calls_total", model="model-metrics-x", outcome="error") == 1
    od = "gen_ai_client_operation_duration_seconds"
    assert m.value(f"{od}_sum", error_type="", **model) == pytest.approx(1.2)
    assert m.value(f"{od}_sum", error_type="_OTHER", **model) == pytest.approx(0.09)
    tu = "gen_ai_client_token_usage"
    for token_type, total, calls_with in (
        ("input", 1010, 2),
        ("output", 200, 1),
        ("cache_read", 600, 1),
        ("cache_write", 100, 1),
        ("reasoning", 50, 1),
    ):
        assert m.value(f"{tu}_sum", gen_ai_token_type=token_type, **model) == total
        assert m.value(f"{tu}_count", gen_ai_token_type=token_type, **model) == calls_with
    assert m.value(f"{tu}_bucket", le="1024.0", gen_ai_token_type="input", **model) == 2
    assert m.value(f"{tu}_bucket", le="256.0", gen_ai_token_type="input", **model) == 1
    assert m.value("tether_llm_cost_usd_total", model="model-metrics-x") == pytest.approx(0.75)
    ad = "gen_ai_invoke_agent_duration_seconds"
    assert m.value(f"{ad}_sum", gen_ai_agent_name="planner", error_type="") == pytest.approx(3.0)
    # HTTP: by route template, and refusals by reason.
    http = "tether_http_requests_total"
    assert m.value(http, route="events.append", method="POST", status="201") == 2
    assert m.value(http, route="events.append", method="POST", status="200") == 1
    assert m.value(http, route="sessions.create", method="POST", status="201") == 2
    assert m.value(http, route="memories.search", method="POST", status="200") == 1
    rejected = "tether_rejected_requests_total"
    assert m.value(rejected, route="events.append", reason="invalid_input") == 1
    assert m.value(rejected, route="events.append", reason="not_found") == 1
    assert m.value(rejected, route="events.append", reason="payload_too_large") == 1
    assert m.value(rejected, route="sessions.list", reason="unauthorized") == 1  # pre-routing
    assert m.value("tether_rejected_events_total", route="events.append") == 5
    assert m.value("tether_rejected_events_total", reason="invalid_input") == 3
    assert m.value("tether_rejected_events_total", reason="not_found") == 2
    hd = "tether_http_request_duration_seconds_count"
    assert m.value(hd, route="events.append", method="POST") == 6
    # Memory: committed add and update, one search, its latency; the store gauges.
    ops = "tether_memory_operations_total"
    assert [m.value(ops, op=op) for op in ("add", "update", "search")] == [1, 1, 1]
    assert m.value("tether_memory_recall_duration_seconds_count", mode="hybrid") == 1
    assert m.value("tether_active_sessions") == 1  # SID2 was ended
    assert m.value("tether_memory_index_backlog") == 0
    # Live: one WebSocket and one SSE stream were open during the scrape.
    assert m.value("tether_live_connections", transport="ws") == 1
    assert m.value("tether_live_connections", transport="sse") == 1
    after = scrape(srv)
    wait_until(lambda: scrape(srv).value("tether_live_connections") == 0, timeout=10)
    assert after.value("tether_live_overflows_total") == 0
    # No label value is a session id (both appear in event bodies and paths).
    values = {v for s in m.samples for v in s.labels.values()}
    assert not values & {SID, SID2, "nope-404"}
    assert all(len(v) <= 100 for v in values)
    # Every metric the Grafana dashboard queries is served.
    names = {s.name for s in m.samples}
    queried = dashboard_metrics()
    assert queried, "no metric found in the dashboard's queries"
    assert sorted(queried - names) == []


async def _with_live_subscribers(srv: TetherServer) -> Scrape:
    """Scrape while a WebSocket follows a session and an SSE stream is open."""
    ws_url = srv.url.replace("http://", "ws://") + "/v1/ws"
    async with (
        websockets.connect(ws_url) as ws,
        httpx.AsyncClient(base_url=srv.url, timeout=30) as http,
        http.stream("GET", f"/v1/sessions/{SID}/stream") as sse,
    ):
        assert sse.status_code == 200
        await ws.send(json.dumps({"op": "subscribe", "channels": [f"session:{SID}"]}))
        while True:  # the subscription is live once its backlog arrived
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message.get("type") == "events":
                break
        r = await http.get("/metrics")
        assert r.status_code == 200, r.text
        return Scrape(r.text)


def dashboard_metrics() -> set[str]:
    """Metric names (``tether_*``, ``gen_ai_*``) in the dashboard's PromQL expressions."""
    board = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(board)
    # Label names (in `by (...)` and `{...}`) are not metrics: drop those parts first.
    bare = [re.sub(r"\b(?:by|without)\s*\([^)]*\)|\{[^}]*\}", " ", e) for e in exprs]
    return {n for e in bare for n in re.findall(r"\b(?:tether|gen_ai)_[a-z_]+\b", e)}


def test_the_metrics_token_when_auth_is_on(server_factory: ServerFactory, tmp_path: Path) -> None:
    """With auth on, only TETHER_METRICS_TOKEN opens /metrics; a tenant's admin key does
    not (401); without a configured token it is 403 and says which setting to set."""
    srv = server_factory(
        tmp_path / "auth.db",
        env={"TETHER_REQUIRE_AUTH": "true", "TETHER_METRICS_TOKEN": TOKEN},
    )
    secret, _ = srv.create_key("acme", "admin")
    for headers in (
        {},
        {"Authorization": f"Bearer {secret}"},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        r = httpx.get(f"{srv.url}/metrics", headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in r.text
    m = scrape(srv, TOKEN)
    assert m.value("tether_rejected_requests_total", route="metrics.scrape") == 4
    assert TOKEN not in srv.log_path.read_text()
    srv.stop()
    bare = server_factory(tmp_path / "auth.db", env={"TETHER_REQUIRE_AUTH": "true"})
    r = httpx.get(f"{bare.url}/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 403, r.text
    assert "TETHER_METRICS_TOKEN" in r.json()["error"]["message"]
    assert httpx.get(f"{bare.url}/metrics").status_code == 403


def test_metrics_off(server_factory: ServerFactory, tmp_path: Path) -> None:
    srv = server_factory(tmp_path / "off.db", env={"TETHER_METRICS_ENABLED": "false"})
    _post(srv, "/v1/sessions", {"id": "s"}, 201)
    r = httpx.get(f"{srv.url}/metrics", timeout=30)
    assert r.status_code == 404
    assert "TETHER_METRICS_ENABLED" in r.json()["error"]["message"]


@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_report_their_own_and_sum_to_what_was_sent(
    replica_factory: ReplicaFactory,
) -> None:
    a, b = replica_factory(2)
    _post(a, "/v1/sessions", {"id": "shared"}, 201)
    for srv, n in ((a, 3), (b, 5)):
        body = {"events": [{"kind": "tool", "name": "search", "duration_ms": 20}] * n}
        _post(srv, "/v1/sessions/shared/events", body, 201)
    _post(b, "/v1/sessions", {"id": "second"}, 201)
    ma, mb = scrape(a), scrape(b)
    calls = "tether_tool_calls_total"
    assert (ma.value(calls, tool="search"), mb.value(calls, tool="search")) == (3, 5)
    ev = "tether_events_ingested_total"
    assert ma.value(ev) + mb.value(ev) == 8
    td = "gen_ai_execute_tool_duration_seconds_count"
    assert ma.value(td) + mb.value(td) == 8
    http = "tether_http_requests_total"
    created = {"route": "sessions.create", "status": "201"}
    assert (ma.value(http, **created), mb.value(http, **created)) == (1, 1)
    # The store's gauges are the deployment's: the same on each replica (max, not sum).
    assert ma.value("tether_active_sessions") == mb.value("tether_active_sessions") == 2


def test_the_deploy_files_scrape_and_chart_the_metrics() -> None:
    """No container runtime here: what can be checked without one. Prometheus scrapes
    every replica at /metrics with the token file; Grafana is provisioned with the
    Prometheus data source and the dashboard; every file the compose file mounts exists."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = sorted(name for name in services if name.startswith("tether-"))
    for name in ("prometheus", "grafana"):
        assert name in services
        for volume in services[name].get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
    for name in replicas:
        assert "TETHER_METRICS_TOKEN" in services[name]["environment"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "tether"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == [f"{r}:7117" for r in replicas]
    board = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"].lower() for p in _panels(board))
    for topic in ("ingest", "latency", "rejected", "tool", "token", "cost", "memory", "backlog"):
        assert topic in titles, f"no {topic} panel"
    assert board["uid"]
    assert board["title"]


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_batched_histogram_updates_equal_observe() -> None:
    """The ingest path's batched histogram update counts exactly as ``observe`` does,
    values on bucket bounds included."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from tether.services.metrics import _observe_all

    bounds = (0.01, 0.02, 0.04, 0.08, 1.0)
    values = [0.0, 0.01, 0.015, 0.02, 0.02, 0.04, 0.0400001, 0.5, 1.0, 3.0, 1e9] * 7
    one, batched = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("d_seconds", "d", ["x"], buckets=bounds, registry=one)
    h2 = Histogram("d_seconds", "d", ["x"], buckets=bounds, registry=batched)
    for v in values:
        h1.labels("a").observe(v)
    _observe_all(h2.labels("a"), values)
    a, b = Scrape(generate_latest(one).decode()), Scrape(generate_latest(batched).decode())
    buckets = [(s.labels["le"], s.value) for s in a.samples if s.name == "d_seconds_bucket"]
    assert buckets == [(s.labels["le"], s.value) for s in b.samples if s.name.endswith("bucket")]
    assert buckets == [("0.01", 14), ("0.02", 35), ("0.04", 42), ("0.08", 49), ("1.0", 63),
                       ("+Inf", 77)]  # fmt: skip
    assert a.value("d_seconds_sum") == pytest.approx(b.value("d_seconds_sum"))


def test_the_metrics_token_is_a_secret_and_not_a_key() -> None:
    """Redacted from log lines like every secret setting; refused when it looks like an
    API key (the auth stage would read it as one)."""
    from pydantic import ValidationError

    from tether.config import Settings
    from tether.logs import RedactingFilter, secret_values

    settings = Settings(metrics_token=TOKEN)
    assert TOKEN in secret_values(settings)
    line = RedactingFilter.from_settings(settings).redact(f"scrape failed for token {TOKEN}")
    assert TOKEN not in line
    with pytest.raises(ValidationError, match="must not start with tk_"):
        Settings(metrics_token="tk_0123456789abcdef")

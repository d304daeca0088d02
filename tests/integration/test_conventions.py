"""HTTP conventions: envelope, correlation ids, health, deps, stats, OpenAPI, media types."""

from __future__ import annotations

import httpx

ENVELOPE_KEYS = {"ok", "service", "operation", "correlation_id", "duration_ms", "data", "error"}


def test_healthz_is_ok_in_the_envelope(http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["ok"] is True
    assert body["service"] == "tether"
    assert body["operation"] == "health.alive"
    assert body["correlation_id"] == r.headers["x-correlation-id"]
    assert body["duration_ms"] >= 0


def test_correlation_id_is_echoed_or_generated_everywhere(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/healthz"),
        ("GET", "/v1/sessions/none"),
        ("GET", "/nowhere"),
        ("POST", "/v1/sessions"),
    ]:
        r = http.request(
            method,
            path,
            headers={"X-Correlation-ID": "trace-abc.123"},
            json={} if method == "POST" else None,
        )
        assert r.headers["x-correlation-id"] == "trace-abc.123", path
        assert r.json()["correlation_id"] == "trace-abc.123"
        generated = http.request(method, path, json={} if method == "POST" else None)
        assert len(generated.headers["x-correlation-id"]) == 26
    # A hostile value is not echoed (header/log injection); a fresh id replaces it.
    r = http.get("/healthz", headers={"X-Correlation-ID": "a b<script>"})
    assert r.headers["x-correlation-id"] != "a b<script>"


def test_correlation_id_is_stored_on_created_events(http: httpx.Client) -> None:
    http.post("/v1/sessions", json={"id": "cid-s"})
    http.post(
        "/v1/sessions/cid-s/events", json={"kind": "log"}, headers={"X-Correlation-ID": "req-77"}
    )
    assert (
        http.get("/v1/sessions/cid-s/events").json()["data"]["items"][0]["correlation_id"]
        == "req-77"
    )


def test_readyz_and_deps_report_the_store(http: httpx.Client) -> None:
    r = http.get("/readyz")
    assert r.status_code == 200
    names = {c["name"] for c in r.json()["data"]["checks"]}
    assert "store" in names
    deps = http.get("/v1/deps").json()["data"]["dependencies"]
    store = next(d for d in deps if d["name"] == "store")
    assert store["status"] == "ok"
    assert store["latency_ms"] >= 0


def test_stats_counts_sessions_events_and_last_24h(http: httpx.Client) -> None:
    before = http.get("/v1/stats").json()["data"]
    http.post("/v1/sessions", json={"id": "stats-1"})
    http.post(
        "/v1/sessions/stats-1/events",
        json={"events": [{"kind": "tool"}, {"kind": "tool", "status": "error"}, {"kind": "error"}]},
    )
    after = http.get("/v1/stats").json()["data"]
    assert after["sessions"]["total"] == before["sessions"]["total"] + 1
    assert after["sessions"]["by_status"]["active"] >= 1
    assert after["events"]["by_kind"]["tool"] == before["events"]["by_kind"].get("tool", 0) + 2
    assert after["last_24h"]["events"] == before["last_24h"]["events"] + 3
    assert after["last_24h"]["errors"] == before["last_24h"]["errors"] + 2


def test_openapi_has_stable_operation_ids(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    expected = {
        "sessions.create",
        "sessions.list",
        "sessions.get",
        "sessions.update",
        "sessions.end",
        "sessions.delete",
        "sessions.state.get",
        "sessions.state.patch",
        "sessions.goals.create",
        "sessions.goals.update",
        "sessions.agents.spawn",
        "events.append",
        "events.list",
        "events.batch",
        "stats.get",
        "health.alive",
        "health.ready",
        "health.deps",
    }
    assert expected <= ops


def test_unknown_route_wrong_method_and_media_type_are_enveloped(http: httpx.Client) -> None:
    r = http.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = http.put("/v1/sessions", json={})
    assert r.status_code == 405
    assert r.json()["ok"] is False
    r = http.post(
        "/v1/sessions",
        content=b"id=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"

"""Token usage and cost at ingest, the price table and state history, on both stores.

Prices are USD per million tokens; ``input_tokens`` includes the cached ones and
``output_tokens`` the reasoning ones (docs/cost.md). Every expected cost below is worked
out by hand in the comment beside it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer

#: A tenant override with a distinct price for each of the five token kinds.
PRICES = {"input": 3.0, "cached_input": 0.3, "cache_write": 3.75, "output": 15.0, "reasoning": 20.0}


@pytest.fixture(scope="module")
def api(server: TetherServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.put("/v1/admin/prices/test-model", json=PRICES)
        assert r.status_code == 200, r.text
        yield http
        http.delete("/v1/admin/prices/test-model")


def _session(http: httpx.Client, sid: str) -> None:
    assert http.post("/v1/sessions", json={"id": sid}).status_code == 201


def _events(http: httpx.Client, sid: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = http.post(f"/v1/sessions/{sid}/events", json={"events": events})
    assert r.status_code in (200, 201), r.text
    return list(http.get(f"/v1/sessions/{sid}/events").json()["data"]["items"])


def test_cost_from_the_tenant_price_table_with_cached_and_reasoning_tokens(
    api: httpx.Client,
) -> None:
    _session(api, "cost-table")
    usage = {
        "input_tokens": 10_000,
        "cache_read_tokens": 6_000,
        "cache_write_tokens": 1_000,
        "output_tokens": 2_000,
        "reasoning_tokens": 500,
    }
    # A dated model name resolves to the "test-model" row (longest prefix + "-").
    [event] = _events(
        api, "cost-table", [{"kind": "llm", "model": "test-model-2026-01-01", **usage}]
    )
    # (10000-6000-1000)*3 + 6000*0.3 + 1000*3.75 + (2000-500)*15 + 500*20
    # = 9000 + 1800 + 3750 + 22500 + 10000 = 47050 per million -> $0.04705
    assert event["cost_usd"] == pytest.approx(0.04705, rel=1e-12)
    for name, value in usage.items():
        assert event[name] == value


def test_a_per_event_price_overrides_the_table_and_falls_back(api: httpx.Client) -> None:
    _session(api, "cost-override")
    [event] = _events(
        api,
        "cost-override",
        [
            {
                "kind": "llm",
                "model": "test-model",
                "input_tokens": 1_000,
                "cache_read_tokens": 500,
                "output_tokens": 100,
                "reasoning_tokens": 50,
                "price": {"input": 1.0, "output": 2.0},
            }
        ],
    )
    # cached_input falls back to input (1.0), reasoning to output (2.0):
    # 500*1 + 500*1 + 50*2 + 50*2 = 1200 per million -> $0.0012
    assert event["cost_usd"] == pytest.approx(0.0012, rel=1e-12)
    assert "price" not in event  # used at ingest, not stored


def test_a_client_cost_wins_an_unknown_model_has_none_and_counters_sum(
    api: httpx.Client,
) -> None:
    _session(api, "cost-sum")
    events = _events(
        api,
        "cost-sum",
        [
            {"kind": "llm", "model": "test-model", "input_tokens": 100, "cost_usd": 0.5},
            {"kind": "llm", "model": "no-such-model-xyz", "input_tokens": 100},
            # gpt-4o's shipped row: input 2.5, cached 1.25, output 10 (docs/cost.md):
            # 600*2.5 + 400*1.25 + 50*10 + 50*10 = 1500+500+500+500 = 3000 -> $0.003
            {
                "kind": "llm",
                "model": "openai/gpt-4o-2024-08-06",
                "input_tokens": 1000,
                "cache_read_tokens": 400,
                "output_tokens": 100,
                "reasoning_tokens": 50,
            },
            {"kind": "tool", "name": "search"},
        ],
    )
    assert events[0]["cost_usd"] == 0.5
    assert events[1]["cost_usd"] is None
    assert events[2]["cost_usd"] == pytest.approx(0.003, rel=1e-12)
    assert events[3]["cost_usd"] is None
    counters = api.get("/v1/sessions/cost-sum").json()["data"]["counters"]
    assert counters["input_tokens"] == 1200
    assert counters["cache_read_tokens"] == 400
    assert counters["cache_write_tokens"] == 0
    assert counters["output_tokens"] == 100
    assert counters["reasoning_tokens"] == 50
    assert counters["cost_usd"] == pytest.approx(0.503, rel=1e-12)


def test_the_batch_path_prices_events_too(api: httpx.Client) -> None:
    event = {"session_id": "cost-batch", "kind": "llm", "model": "test-model"}
    body = {"sessions": [{"id": "cost-batch"}], "events": [{**event, "output_tokens": 1000}]}
    assert api.post("/v1/events/batch", json=body).status_code in (200, 201)
    [event] = api.get("/v1/sessions/cost-batch/events").json()["data"]["items"]
    assert event["cost_usd"] == pytest.approx(0.015, rel=1e-12)  # 1000 * 15 per million


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 10, "cache_read_tokens": 8, "cache_write_tokens": 5},
        {"output_tokens": 10, "reasoning_tokens": 11},
        {"input_tokens": 10, "price": {}},
        {"input_tokens": 10, "price": {"input": -1}},
    ],
)
def test_inconsistent_usage_is_a_422_and_stores_nothing(
    api: httpx.Client, usage: dict[str, Any]
) -> None:
    sid = "cost-bad"
    if api.get(f"/v1/sessions/{sid}").status_code == 404:
        _session(api, sid)
    r = api.post(f"/v1/sessions/{sid}/events", json={"events": [{"kind": "llm", **usage}]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert api.get(f"/v1/sessions/{sid}").json()["data"]["counters"]["event_count"] == 0


def test_the_price_table_lists_sources_and_overrides_come_and_go(api: httpx.Client) -> None:
    rows = {p["model"]: p for p in api.get("/v1/admin/prices").json()["data"]["models"]}
    assert rows["gpt-4o"]["source"] == "default"
    assert rows["gpt-4o"]["input"] == 2.5
    assert rows["test-model"] == {
        "model": "test-model",
        **PRICES,
        "source": "tenant",
        "updated_at": rows["test-model"]["updated_at"],
    }
    assert api.put("/v1/admin/prices/Other%2FModel", json={"output": 1}).status_code == 200
    rows = {p["model"]: p for p in api.get("/v1/admin/prices").json()["data"]["models"]}
    assert rows["other/model"]["output"] == 1
    assert rows["other/model"]["input"] is None
    assert api.delete("/v1/admin/prices/other/model").json()["data"] == {
        "model": "other/model",
        "deleted": True,
    }
    r = api.delete("/v1/admin/prices/other/model")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    audit = api.get("/v1/admin/audit", params={"limit": 1000}).json()["data"]["items"]
    actions = [(e["action"], e["target"]) for e in audit]
    assert ("price.set", "other/model") in actions
    assert ("price.delete", "other/model") in actions


def test_state_versions_keep_each_patch_and_document(api: httpx.Client) -> None:
    sid = "state-history"
    _session(api, sid)
    assert api.patch(f"/v1/sessions/{sid}/state", json={"a": 1, "b": {"c": 2}}).status_code == 200
    assert api.patch(f"/v1/sessions/{sid}/state", json={"b": None, "d": [1]}).status_code == 200
    data = api.get(f"/v1/sessions/{sid}/state/versions").json()["data"]
    assert [(v["version"], v["patch"], v["state"]) for v in data["items"]] == [
        (1, {"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2}}),
        (2, {"b": None, "d": [1]}, {"a": 1, "d": [1]}),
    ]
    assert data["next_after"] is None
    page = api.get(f"/v1/sessions/{sid}/state/versions", params={"limit": 1}).json()["data"]
    assert [v["version"] for v in page["items"]] == [1]
    assert page["next_after"] == 1
    page = api.get(f"/v1/sessions/{sid}/state/versions", params={"after": 1}).json()["data"]
    assert [v["version"] for v in page["items"]] == [2]
    assert api.delete(f"/v1/sessions/{sid}").status_code == 200
    assert api.get(f"/v1/sessions/{sid}/state/versions").status_code == 404


def test_a_price_file_is_read_and_a_bad_one_stops_the_server(
    tmp_path: Path, server_factory: Any
) -> None:
    good = tmp_path / "prices.toml"
    good.write_text('[models."house-model"]\ninput = 4.0\noutput = 8.0\n')
    srv = server_factory(env={"TETHER_PRICES_FILE": str(good)})
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        rows = {p["model"]: p for p in http.get("/v1/admin/prices").json()["data"]["models"]}
        assert rows["house-model"]["source"] == "file"
        _session(http, "file-priced")
        [event] = _events(
            http,
            "file-priced",
            [{"kind": "llm", "model": "house-model", "input_tokens": 500, "output_tokens": 250}],
        )
        assert event["cost_usd"] == pytest.approx(0.004, rel=1e-12)  # 500*4 + 250*8 = 4000
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"m": {"input": "cheap"}}}')
    home = tmp_path / "bad-home"
    home.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "tether", "serve", "--db", str(home / "t.db"), "--port", "1"],
        env={"TETHER_HOME": str(home), "TETHER_PRICES_FILE": str(bad), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "bad.json" in run.stderr
    assert "'m'" in run.stderr

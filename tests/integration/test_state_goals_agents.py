"""State (RFC 7386 merge patch + If-Match), goals and sub-agents over real HTTP."""

from __future__ import annotations

import httpx


def test_state_merge_patch_with_optimistic_concurrency(http: httpx.Client) -> None:
    http.post("/v1/sessions", json={"id": "stateful"})
    r = http.get("/v1/sessions/stateful/state")
    assert r.json()["data"] == {"state": {}, "version": 0}
    assert r.headers["etag"] == '"0"'

    r = http.patch(
        "/v1/sessions/stateful/state",
        json={"plan": {"step": 1, "tmp": True}, "n": 1},
        headers={"If-Match": "0"},
    )
    assert r.status_code == 200
    assert r.json()["data"] == {"state": {"plan": {"step": 1, "tmp": True}, "n": 1}, "version": 1}

    stale = http.patch("/v1/sessions/stateful/state", json={"n": 99}, headers={"If-Match": "0"})
    assert stale.status_code == 412
    assert stale.json()["error"]["details"] == {"expected": 0, "current": 1}

    r = http.patch(
        "/v1/sessions/stateful/state",
        content=b'{"plan": {"tmp": null, "step": 2}}',
        headers={"If-Match": '"1"', "content-type": "application/merge-patch+json"},
    )
    assert r.json()["data"] == {"state": {"plan": {"step": 2}, "n": 1}, "version": 2}
    # Unconditional patch (no If-Match) applies to the latest version.
    assert http.patch("/v1/sessions/stateful/state", json={"n": 2}).json()["data"]["version"] == 3
    assert http.get("/v1/sessions/stateful/state").json()["data"]["state"] == {
        "plan": {"step": 2},
        "n": 2,
    }


def test_state_rejects_bad_patches_without_changing_anything(http: httpx.Client) -> None:
    http.post("/v1/sessions", json={"id": "state-bad"})
    http.patch("/v1/sessions/state-bad/state", json={"keep": 1})
    bad = [
        http.patch("/v1/sessions/state-bad/state", json=[1, 2]),
        http.patch(
            "/v1/sessions/state-bad/state",
            content=b"{nope",
            headers={"content-type": "application/json"},
        ),
        http.patch("/v1/sessions/state-bad/state", json={"x": 1}, headers={"If-Match": "banana"}),
    ]
    assert [r.status_code for r in bad] == [422, 422, 422]
    assert http.get("/v1/sessions/state-bad/state").json()["data"] == {
        "state": {"keep": 1},
        "version": 1,
    }
    assert http.patch("/v1/sessions/nobody/state", json={"a": 1}).status_code == 404


def test_goals_are_created_updated_and_listed_in_the_session(http: httpx.Client) -> None:
    http.post("/v1/sessions", json={"id": "goaly"})
    r = http.post("/v1/sessions/goaly/goals", json={"description": "book a flight", "priority": 2})
    assert r.status_code == 201
    goal = r.json()["data"]
    assert goal["status"] == "open"
    r = http.patch(
        f"/v1/sessions/goaly/goals/{goal['id']}", json={"status": "in_progress", "progress": 0.5}
    )
    assert r.json()["data"]["progress"] == 0.5
    r = http.patch(f"/v1/sessions/goaly/goals/{goal['id']}", json={"status": "done", "progress": 1})
    assert r.json()["data"]["completed_at"] is not None

    fixed = {"id": "g-fixed", "description": "pay"}
    assert http.post("/v1/sessions/goaly/goals", json=fixed).status_code == 201
    assert http.post("/v1/sessions/goaly/goals", json=fixed).status_code == 200
    assert (
        http.post("/v1/sessions/goaly/goals", json={**fixed, "description": "other"}).status_code
        == 409
    )

    detail = http.get("/v1/sessions/goaly").json()["data"]
    assert [(g["id"], g["status"]) for g in detail["goals"]] == [
        (goal["id"], "done"),
        ("g-fixed", "open"),
    ]

    assert http.post("/v1/sessions/goaly/goals", json={"description": ""}).status_code == 422
    assert (
        http.post("/v1/sessions/goaly/goals", json={"description": "x", "progress": 2}).status_code
        == 422
    )
    assert http.patch("/v1/sessions/goaly/goals/nope", json={"progress": 0.1}).status_code == 404
    assert (
        http.patch(f"/v1/sessions/goaly/goals/{goal['id']}", json={"status": None}).status_code
        == 422
    )


def test_sub_agent_lifecycle_is_logged_in_the_parent(http: httpx.Client) -> None:
    http.post("/v1/sessions", json={"id": "boss", "agent": "orchestrator"})
    r = http.post("/v1/sessions/boss/agents", json={"id": "worker-1", "agent": "researcher"})
    assert r.status_code == 201
    child = r.json()["data"]
    assert child["parent_id"] == "boss"
    # Retrying the spawn neither duplicates the child nor the parent's event.
    assert (
        http.post(
            "/v1/sessions/boss/agents", json={"id": "worker-1", "agent": "researcher"}
        ).status_code
        == 200
    )

    assert (
        http.post(
            "/v1/sessions/worker-1/end", json={"status": "failed", "summary": "no data"}
        ).status_code
        == 200
    )
    events = http.get("/v1/sessions/boss/events", params={"kind": "agent"}).json()["data"]["items"]
    assert [(e["name"], e["status"]) for e in events] == [
        ("agent.spawned", "ok"),
        ("agent.completed", "error"),
    ]
    assert events[0]["input"]["child_id"] == "worker-1"
    assert events[1]["input"]["summary"] == "no data"
    assert all(e["attributes"] == {"origin": "server"} for e in events)

    detail = http.get("/v1/sessions/boss").json()["data"]
    assert detail["children"] == [{"id": "worker-1", "agent": "researcher", "status": "failed"}]
    children = http.get("/v1/sessions", params={"parent_id": "boss"}).json()["data"]["items"]
    assert [c["id"] for c in children] == ["worker-1"]
    assert http.post("/v1/sessions/ghost/agents", json={"agent": "x"}).status_code == 404

"""Sessions over real HTTP: create, list filters and paging, detail, patch, end, delete."""

from __future__ import annotations

import httpx


def _create(http: httpx.Client, **body: object) -> httpx.Response:
    return http.post("/v1/sessions", json=body)


def test_create_returns_201_then_200_for_same_body_and_409_for_another(http: httpx.Client) -> None:
    first = _create(http, id="sess-a", agent="planner", user_id="u1", tags=["x"])
    assert first.status_code == 201
    data = first.json()["data"]
    assert data["id"] == "sess-a"
    assert data["status"] == "active"
    assert data["counters"]["event_count"] == 0

    again = _create(http, id="sess-a", agent="planner", user_id="u1", tags=["x"])
    assert again.status_code == 200
    assert again.json()["data"]["created_at"] == data["created_at"]

    other = _create(http, id="sess-a", agent="someone-else")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict"


def test_create_without_id_makes_a_ulid(http: httpx.Client) -> None:
    r = _create(http, agent="gen")
    assert r.status_code == 201
    assert len(r.json()["data"]["id"]) == 26


def test_list_filters_and_cursor_pagination(http: httpx.Client) -> None:
    for i in range(7):
        assert (
            _create(
                http, id=f"page-{i}", agent="pager", user_id=f"u{i % 2}", tags=[f"t{i % 3}"]
            ).status_code
            == 201
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"agent": "pager", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/v1/sessions", params=params).json()["data"]
        seen.extend(s["id"] for s in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"page-{i}" for i in reversed(range(7))]

    by_user = http.get("/v1/sessions", params={"agent": "pager", "user_id": "u1"}).json()["data"]
    assert sorted(s["id"] for s in by_user["items"]) == ["page-1", "page-3", "page-5"]
    by_tag = http.get("/v1/sessions", params={"agent": "pager", "tag": "t0"}).json()["data"]
    assert sorted(s["id"] for s in by_tag["items"]) == ["page-0", "page-3", "page-6"]
    created = http.get("/v1/sessions/page-3").json()["data"]["created_at"]
    since = http.get("/v1/sessions", params={"agent": "pager", "since": created}).json()["data"]
    assert {"page-3", "page-4", "page-5", "page-6"} <= {s["id"] for s in since["items"]}
    until = http.get("/v1/sessions", params={"agent": "pager", "until": "2000-01-01T00:00:00Z"})
    assert until.json()["data"]["items"] == []

    http.post("/v1/sessions/page-0/end", json={"status": "failed"})
    failed = http.get("/v1/sessions", params={"agent": "pager", "status": "failed"}).json()["data"]
    assert [s["id"] for s in failed["items"]] == ["page-0"]


def test_list_rejects_bad_filters(http: httpx.Client) -> None:
    assert http.get("/v1/sessions", params={"status": "sleeping"}).status_code == 422
    assert http.get("/v1/sessions", params={"limit": 0}).status_code == 422
    assert http.get("/v1/sessions", params={"cursor": "not-a-cursor"}).status_code == 422
    assert http.get("/v1/sessions", params={"since": "yesterday-ish"}).status_code == 422


def test_patch_replaces_fields_and_merges_metadata(http: httpx.Client) -> None:
    _create(http, id="patchme", metadata={"a": 1, "b": {"c": 2}})
    r = http.patch(
        "/v1/sessions/patchme",
        json={
            "title": "T",
            "phase": "plan",
            "current_step": "s1",
            "metadata": {"b": {"c": None, "d": 3}},
        },
    )
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["title"] == "T"
    assert data["phase"] == "plan"
    assert data["metadata"] == {"a": 1, "b": {"d": 3}}
    assert http.patch("/v1/sessions/patchme", json={"status": "done"}).status_code == 422
    assert http.patch("/v1/sessions/nope", json={"title": "x"}).status_code == 404


def test_end_is_idempotent_and_conflicts_on_another_status(http: httpx.Client) -> None:
    _create(http, id="ender")
    r = http.post("/v1/sessions/ender/end", json={"status": "completed", "summary": "all good"})
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "completed"
    assert r.json()["data"]["summary"] == "all good"
    assert r.json()["data"]["ended_at"] is not None
    assert http.post("/v1/sessions/ender/end", json={"status": "completed"}).status_code == 200
    assert http.post("/v1/sessions/ender/end", json={"status": "failed"}).status_code == 409
    assert http.post("/v1/sessions/ender/end", json={"status": "paused"}).status_code == 422


def test_delete_removes_session_and_its_events(http: httpx.Client) -> None:
    _create(http, id="doomed")
    http.post("/v1/sessions/doomed/events", json={"kind": "log", "input": "bye"})
    r = http.delete("/v1/sessions/doomed")
    assert r.status_code == 200
    assert r.json()["data"] == {"deleted_events": 1}
    assert http.get("/v1/sessions/doomed").status_code == 404
    assert http.get("/v1/sessions/doomed/events").status_code == 404
    assert http.delete("/v1/sessions/doomed").status_code == 404


def test_unknown_session_is_404_in_the_envelope(http: httpx.Client) -> None:
    r = http.get("/v1/sessions/missing")
    assert r.status_code == 404
    body = r.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "not_found"
    assert body["operation"] == "sessions.get"

"""Memory over real HTTP: remember/dedupe/idempotency, 422s, patch/history, tombstones,
purge, expiry, the change feed, browse, search filters, access statistics, export/import."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tether.testing import TetherServer, wait_until


def _remember(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/v1/memories", json=body)


def _search(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/v1/memories/search", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def _texts(data: dict[str, Any]) -> list[str]:
    return [r["memory"]["text"] for r in data["results"]]


def _stats(http: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = http.get("/v1/memory/stats").json()["data"]
    return data


def test_remember_dedupes_by_normalised_text_within_a_namespace(http: httpx.Client) -> None:
    first = _remember(http, namespace="dd/a", text="Alice  likes green tea", tags=["t"])
    assert first.status_code == 201
    body = first.json()["data"]
    assert body["created"] is True
    assert body["deduplicated"] is False
    assert body["memory"]["metadata"] == {}
    assert body["memory"]["version"] == 1
    again = _remember(http, namespace="dd/a", text=" Alice likes green\ttea ")
    assert again.status_code == 200
    assert again.json()["data"]["deduplicated"] is True
    assert again.json()["data"]["memory"]["id"] == body["memory"]["id"]
    elsewhere = _remember(http, namespace="dd/b", text="Alice likes green tea")
    assert elsewhere.status_code == 201
    assert elsewhere.json()["data"]["memory"]["id"] != body["memory"]["id"]
    # A dedupe hit writes nothing: one "add" per memory in the feed.
    feed = http.get("/v1/memory/changes", params={"limit": 1000}).json()["data"]["items"]
    assert [c["op"] for c in feed if c["memory_id"] == body["memory"]["id"]] == ["add"]


def test_idempotency_key_replays_the_original_result(http: httpx.Client) -> None:
    r1 = http.post(
        "/v1/memories", json={"namespace": "idem", "text": "one"}, headers={"Idempotency-Key": "k1"}
    )
    r2 = http.post(
        "/v1/memories", json={"namespace": "idem", "text": "one"}, headers={"Idempotency-Key": "k1"}
    )
    assert r1.status_code == 201
    assert r2.status_code == 200
    assert r2.json()["data"]["replayed"] is True
    assert r2.json()["data"]["id"] == r1.json()["data"]["id"]
    other = http.post(
        "/v1/memories", json={"namespace": "idem", "text": "two"}, headers={"Idempotency-Key": "k1"}
    )
    assert other.status_code == 409


def test_batch_retries_are_idempotent_and_store_nothing_twice(http: httpx.Client) -> None:
    items = [
        {"namespace": "batch", "text": f"batch memory {i}", "idempotency_key": f"b-{i}"}
        for i in range(20)
    ]
    before = _stats(http)["count"]
    first = http.post("/v1/memories/batch", json={"items": items})
    assert first.status_code == 200, first.text
    assert first.json()["data"]["created"] == 20
    lsn = http.get("/v1/memory/changes", params={"after": 0, "limit": 1000}).json()["data"]
    retry = http.post("/v1/memories/batch", json={"items": items})
    assert retry.status_code == 200
    data = retry.json()["data"]
    assert data["created"] == 0
    assert all(i["replayed"] for i in data["items"])
    assert [i["id"] for i in data["items"]] == [i["id"] for i in first.json()["data"]["items"]]
    assert _stats(http)["count"] == before + 20
    after = http.get("/v1/memory/changes", params={"after": lsn["next_after"]}).json()["data"]
    assert not [c for c in after["items"] if c["namespace"] == "batch"]


def test_a_bad_batch_item_is_422_and_nothing_is_written(http: httpx.Client) -> None:
    before = _stats(http)["count"]
    items: list[dict[str, Any]] = [
        {"namespace": "bad-batch", "text": f"fine {i}"} for i in range(5)
    ]
    items.append({"namespace": "bad-batch", "text": "   "})
    r = http.post("/v1/memories/batch", json={"items": items})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"][:3] == ["body", "items", 5]
    too_many = [{"namespace": "bad-batch", "text": f"x{i}"} for i in range(1001)]
    assert http.post("/v1/memories/batch", json={"items": too_many}).status_code == 422
    assert _stats(http)["count"] == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/memories", {"text": "no namespace"}),
        ("/v1/memories", {"namespace": "n", "text": ""}),
        ("/v1/memories", {"namespace": "n", "text": "x", "importance": 2}),
        ("/v1/memories", {"namespace": "bad namespace!", "text": "x"}),
        ("/v1/memories", {"namespace": "n", "text": "x", "colour": "red"}),
        ("/v1/memories", {"namespace": "n", "text": "x", "occurred_at": "last tuesday"}),
        ("/v1/memories/search", {"namespace": "n", "query": "x", "limit": 101}),
        ("/v1/memories/search", {"namespace": "n", "query": "x", "mode": "magic"}),
        ("/v1/memories/search", {"namespace": [], "query": "x"}),
        ("/v1/memories/search", {"namespace": "n", "query": "  "}),
        (
            "/v1/memories/search",
            {"namespace": "n", "query": "x", "filters": {"metadata": {"a": [1]}}},
        ),
        ("/v1/memories/search", {"namespace": "n", "query": "x", "filters": {"tags": "t"}}),
        ("/v1/memories/batch", {"items": []}),
    ],
)
def test_bad_input_is_422_in_the_envelope(http: httpx.Client, path: str, body: Any) -> None:
    r = http.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["ok"] is False
    assert r.json()["error"]["code"] == "invalid_input"


def test_other_bad_requests_are_enveloped_not_500(http: httpx.Client) -> None:
    r = http.post("/v1/memories", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert http.get("/v1/memories", params={"cursor": "zzz"}).status_code == 422
    assert http.get("/v1/memory/changes", params={"after": -1}).status_code == 422
    assert http.get("/v1/memories/NOPE").status_code == 404
    assert http.patch("/v1/memories/NOPE", json={"text": "x"}).status_code == 404
    assert http.delete("/v1/memories/NOPE").status_code == 404
    assert http.get("/v1/memories/NOPE/history").status_code == 404
    assert http.get("/v1/admin/outbox", params={"state": "weird"}).status_code == 422


def test_patch_makes_a_new_version_and_history_keeps_every_one(http: httpx.Client) -> None:
    mem = _remember(
        http, namespace="hist", text="Bob lives in Porto", metadata={"a": 1, "b": 2}
    ).json()["data"]["memory"]
    r = http.patch(
        f"/v1/memories/{mem['id']}",
        json={"text": "Bob lives in Madrid", "metadata": {"b": None, "c": 3}, "importance": 0.9},
    )
    assert r.status_code == 200, r.text
    new = r.json()["data"]
    assert new["version"] == 2
    assert new["text"] == "Bob lives in Madrid"
    assert new["metadata"] == {"a": 1, "c": 3}
    assert new["importance"] == 0.9
    hist = http.get(f"/v1/memories/{mem['id']}/history").json()["data"]["items"]
    assert [(h["op"], h["version"]) for h in hist] == [("add", 1), ("update", 2)]
    assert hist[0]["memory"]["text"] == "Bob lives in Porto"
    assert hist[1]["memory"]["text"] == "Bob lives in Madrid"
    assert hist[0]["lsn"] < hist[1]["lsn"]
    # The keyword index follows the text.
    found = _search(http, namespace="hist", query="Madrid", mode="bm25")
    assert _texts(found) == ["Bob lives in Madrid"]
    assert _search(http, namespace="hist", query="Porto", mode="bm25")["results"] == []
    # Patching to another memory's text in the namespace is a conflict.
    _remember(http, namespace="hist", text="Bob likes chess")
    assert (
        http.patch(f"/v1/memories/{mem['id']}", json={"text": "Bob likes chess"}).status_code == 409
    )
    assert http.patch(f"/v1/memories/{mem['id']}", json={"version": 7}).status_code == 422


def test_delete_tombstones_and_purge_hard_deletes(http: httpx.Client) -> None:
    mem = _remember(http, namespace="tomb", text="The locker code is 4512").json()["data"]["memory"]
    assert _texts(_search(http, namespace="tomb", query="locker code", mode="bm25"))
    r = http.delete(f"/v1/memories/{mem['id']}")
    assert r.status_code == 200
    assert r.json()["data"]["deleted_at"] is not None
    assert http.get(f"/v1/memories/{mem['id']}").status_code == 404
    tomb = http.get(f"/v1/memories/{mem['id']}", params={"include_deleted": "true"})
    assert tomb.status_code == 200
    assert tomb.json()["data"]["version"] == 2
    assert _search(http, namespace="tomb", query="locker code")["results"] == []
    assert http.patch(f"/v1/memories/{mem['id']}", json={"kind": "x"}).status_code == 404
    assert http.get(f"/v1/memories/{mem['id']}/history").status_code == 404
    kept = http.get(f"/v1/memories/{mem['id']}/history", params={"include_deleted": "true"})
    assert [h["op"] for h in kept.json()["data"]["items"]] == ["add", "delete"]
    # The same text may be remembered again: a new memory.
    again = _remember(http, namespace="tomb", text="The locker code is 4512")
    assert again.status_code == 201
    assert again.json()["data"]["memory"]["id"] != mem["id"]

    purged = http.delete(f"/v1/memories/{mem['id']}", params={"purge": "true"})
    assert purged.status_code == 200
    assert purged.json()["data"] == {"id": mem["id"], "purged": True}
    assert (
        http.get(f"/v1/memories/{mem['id']}", params={"include_deleted": True}).status_code == 404
    )
    assert http.get(f"/v1/memories/{mem['id']}/history").status_code == 404
    feed = http.get("/v1/memory/changes", params={"limit": 1000}).json()["data"]["items"]
    mine = [c for c in feed if c["memory_id"] == mem["id"]]
    assert [c["op"] for c in mine] == ["add", "delete", "purge"]
    assert all(c["memory"] is None for c in mine)  # the text is gone from history too


def test_expiry_hides_from_search_and_browse_but_never_deletes(http: httpx.Client) -> None:
    past = _remember(
        http,
        namespace="exp",
        text="The promo code SPRING expires",
        expires_at="2001-01-01T00:00:00Z",
    ).json()["data"]["memory"]
    _remember(
        http,
        namespace="exp",
        text="The promo code AUTUMN is valid",
        expires_at="2999-01-01T00:00:00Z",
    )
    assert _texts(_search(http, namespace="exp", query="promo code", mode="bm25")) == [
        "The promo code AUTUMN is valid"
    ]
    both = _search(http, namespace="exp", query="promo code", mode="bm25", include_expired=True)
    assert len(both["results"]) == 2
    listed = http.get("/v1/memories", params={"namespace": "exp"}).json()["data"]["items"]
    assert [m["text"] for m in listed] == ["The promo code AUTUMN is valid"]
    listed = http.get("/v1/memories", params={"namespace": "exp", "include_expired": True})
    assert len(listed.json()["data"]["items"]) == 2
    assert http.get(f"/v1/memories/{past['id']}").status_code == 200


def test_change_feed_is_in_lsn_order_and_pages_by_cursor(http: httpx.Client) -> None:
    start = http.get("/v1/memory/changes", params={"after": 0, "limit": 1000}).json()["data"]
    a = _remember(http, namespace="feed", text="feed one").json()["data"]["memory"]["id"]
    b = _remember(http, namespace="feed", text="feed two").json()["data"]["memory"]["id"]
    http.patch(f"/v1/memories/{a}", json={"tags": ["x"]})
    http.delete(f"/v1/memories/{b}")
    seen: list[dict[str, Any]] = []
    after = start["next_after"]
    while True:
        page = http.get("/v1/memory/changes", params={"after": after, "limit": 2}).json()["data"]
        if not page["items"]:
            break
        seen.extend(page["items"])
        after = page["next_after"]
    lsns = [c["lsn"] for c in seen]
    assert lsns == sorted(lsns)
    assert len(set(lsns)) == len(lsns)
    assert [(c["memory_id"], c["op"]) for c in seen if c["namespace"] == "feed"] == [
        (a, "add"),
        (b, "add"),
        (a, "update"),
        (b, "delete"),
    ]


def test_browse_filters_and_cursor_pagination(http: httpx.Client) -> None:
    for i in range(7):
        _remember(
            http,
            namespace="browse",
            text=f"browse item {i}",
            kind="episode" if i % 2 else "fact",
            tags=[f"t{i % 3}"],
            source_session_id="s1" if i < 3 else "s2",
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"namespace": "browse", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/v1/memories", params=params).json()["data"]
        seen.extend(m["text"] for m in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"browse item {i}" for i in reversed(range(7))]

    def texts(**params: Any) -> list[str]:
        items = http.get("/v1/memories", params={"namespace": "browse", **params}).json()["data"]
        return sorted(m["text"] for m in items["items"])

    assert texts(kind="episode") == ["browse item 1", "browse item 3", "browse item 5"]
    assert texts(tag="t0") == ["browse item 0", "browse item 3", "browse item 6"]
    assert texts(session="s1") == ["browse item 0", "browse item 1", "browse item 2"]
    assert texts(q="ITEM 4") == ["browse item 4"]


def test_search_filters_namespaces_and_metadata(http: httpx.Client) -> None:
    rows = [
        (
            "flt/a",
            "Dinner with Maria at the harbour",
            "episode",
            ["food"],
            {"city": "Porto"},
            "2023-05-01",
        ),
        (
            "flt/a",
            "Maria recommends the harbour seafood",
            "fact",
            ["food", "tip"],
            {"city": "Porto"},
            "2023-06-01",
        ),
        (
            "flt/b",
            "Maria moved to the harbour district",
            "fact",
            ["move"],
            {"city": "Lisbon"},
            "2023-07-01",
        ),
    ]
    for ns, text, kind, tags, meta, when in rows:
        assert (
            _remember(
                http,
                namespace=ns,
                text=text,
                kind=kind,
                tags=tags,
                metadata=meta,
                occurred_at=f"{when}T12:00:00Z",
            ).status_code
            == 201
        )
    q = {"query": "Maria harbour", "mode": "bm25"}
    assert len(_search(http, namespace="flt/a", **q)["results"]) == 2
    assert len(_search(http, namespace=["flt/a", "flt/b"], **q)["results"]) == 3
    assert _texts(
        _search(http, namespace=["flt/a", "flt/b"], filters={"kind": "episode"}, **q)
    ) == ["Dinner with Maria at the harbour"]
    assert _texts(_search(http, namespace="flt/a", filters={"tags": ["food", "tip"]}, **q)) == [
        "Maria recommends the harbour seafood"
    ]
    assert _texts(
        _search(http, namespace=["flt/a", "flt/b"], filters={"metadata": {"city": "Lisbon"}}, **q)
    ) == ["Maria moved to the harbour district"]
    window = {"since": "2023-05-15T00:00:00Z", "until": "2023-06-15T00:00:00Z"}
    assert _texts(_search(http, namespace=["flt/a", "flt/b"], filters=window, **q)) == [
        "Maria recommends the harbour seafood"
    ]
    # Each result carries its memory's metadata and the score breakdown.
    hit = _search(http, namespace="flt/b", **q)["results"][0]
    assert hit["memory"]["metadata"] == {"city": "Lisbon"}
    assert {"bm25", "vector", "fused", "recency", "importance", "final"} <= set(hit["scores"])


def test_a_new_memory_becomes_vector_searchable_and_search_counts_access(
    http: httpx.Client,
) -> None:
    _remember(http, namespace="vec", text="The quarterly budget review moved to Thursday")
    mem = _remember(http, namespace="vec", text="Caroline adopted a golden retriever puppy")
    mem_id = mem.json()["data"]["memory"]["id"]
    query = {"namespace": "vec", "query": "Does she have a dog?"}
    assert _search(http, mode="bm25", **query)["results"] == []  # no shared keyword

    def found() -> bool:
        results = _search(http, mode="vector", limit=1, **query)["results"]
        return bool(results) and results[0]["memory"]["id"] == mem_id

    wait_until(found)
    assert _stats(http)["index_backlog"] == 0
    hybrid = _search(http, **query)
    assert hybrid["degraded"] is False
    assert hybrid["results"][0]["memory"]["id"] == mem_id

    def accessed() -> bool:
        data = http.get(f"/v1/memories/{mem_id}").json()["data"]
        return bool(data["access_count"] >= 2 and data["last_accessed_at"])

    wait_until(accessed)


def test_export_import_round_trip(
    http: httpx.Client, server_factory: Callable[..., TetherServer], tmp_path: Any
) -> None:
    for i in range(30):
        _remember(
            http,
            namespace="rt/x",
            text=f"round trip memory number {i}",
            tags=[f"t{i % 2}"],
            metadata={"i": i},
            occurred_at="2024-01-02T03:04:05Z",
            importance=0.25,
        )
    exported = http.get("/v1/memories/export", params={"namespace": "rt/x"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = exported.content.splitlines()
    assert len(lines) == 30

    other = server_factory(db=tmp_path / "other.db")
    with httpx.Client(base_url=other.url, timeout=30) as dest:
        headers = {"content-type": "application/x-ndjson"}
        r = dest.post("/v1/memories/import", content=exported.content, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["imported"] == 30
        again = dest.post("/v1/memories/import", content=exported.content, headers=headers)
        assert again.json()["data"] == {**again.json()["data"], "imported": 0, "skipped": 30}
        back = dest.get("/v1/memories/export", params={"namespace": "rt/x"}).content.splitlines()
        stable = (
            "id",
            "namespace",
            "text",
            "kind",
            "tags",
            "metadata",
            "importance",
            "occurred_at",
            "created_at",
            "content_hash",
        )

        def key(line: bytes) -> tuple[Any, ...]:
            d = orjson.loads(line)
            return tuple(orjson.dumps(d[k]) for k in stable)

        assert [key(x) for x in back] == [key(x) for x in lines]
        bad = dest.post(
            "/v1/memories/import", content=b'{"namespace": "n"}\nnot json\n', headers=headers
        )
        assert bad.status_code == 422
        assert {tuple(d["loc"][:2]) for d in bad.json()["error"]["details"]} == {
            ("body", 1),
            ("body", 2),
        }


def test_export_with_vectors_restores_without_the_embedder(
    http: httpx.Client, server_factory: Callable[..., TetherServer], tmp_path: Any
) -> None:
    """Vectors exported with ``vectors=true`` are stored by the import (no outbox job),
    searchable by vector at once; a vector of another model, or none, is embedded as usual;
    a malformed vector is a 422 that stores nothing."""
    texts = [f"the {c} lighthouse keeper logs the tide" for c in ("red", "blue", "green")]
    for text in texts:
        assert _remember(http, namespace="vx/a", text=text).status_code == 201
    wait_until(lambda: _stats(http)["index_backlog"] == 0)
    model = _stats(http)["embedding_model"]
    exported = http.get("/v1/memories/export", params={"namespace": "vx/a", "vectors": "true"})
    lines = [orjson.loads(line) for line in exported.content.splitlines()]
    assert len(lines) == 3
    assert all(line["embedding"]["model"] == model for line in lines)
    assert all(line["embedding"]["dim"] == 384 for line in lines)
    plain = http.get("/v1/memories/export", params={"namespace": "vx/a"}).content
    assert b'"embedding"' not in plain

    # Line 0 carries its vector negated: re-embedding the text would give the original,
    # so finding the negated vector on the other side proves it was stored as sent.
    v0 = np.frombuffer(base64.b64decode(lines[0]["embedding"]["vector"]), dtype="<f4")
    negated = base64.b64encode((-v0).astype("<f4").tobytes()).decode()
    first = {**lines[0], "embedding": {**lines[0]["embedding"], "vector": negated}}
    foreign = {**lines[2], "embedding": {**lines[2]["embedding"], "model": "another-model"}}
    body = b"".join(orjson.dumps(x) + b"\n" for x in [first, lines[1], foreign])
    headers = {"content-type": "application/x-ndjson"}
    other = server_factory(db=tmp_path / "vx.db")
    with httpx.Client(base_url=other.url, timeout=30) as dest:
        broken = {**lines[2], "embedding": {**lines[2]["embedding"], "dim": 3}}
        bad = dest.post("/v1/memories/import", content=orjson.dumps(broken), headers=headers)
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["loc"][:3] == ["body", 1, "embedding"]
        assert _stats(dest)["count"] == 0

        r = dest.post("/v1/memories/import", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["imported"] == 3
        assert r.json()["data"]["vectors"] == 2  # the foreign-model line is embedded here
        wait_until(lambda: _stats(dest)["index_backlog"] == 0)
        assert _stats(dest)["indexed"] == 3
        back = dest.get("/v1/memories/export", params={"vectors": "true"}).content.splitlines()
        got = {
            d["id"]: np.frombuffer(base64.b64decode(d["embedding"]["vector"]), dtype="<f4")
            for d in map(orjson.loads, back)
        }
        assert np.allclose(got[lines[0]["id"]], -v0, atol=1e-6)
        for line in lines[1:]:
            sent = np.frombuffer(base64.b64decode(line["embedding"]["vector"]), dtype="<f4")
            assert np.allclose(got[line["id"]], sent, atol=1e-4)


def test_cli_reindex_re_embeds_and_waits_for_the_backlog(
    http: httpx.Client, server: TetherServer
) -> None:
    import subprocess
    import sys

    _remember(http, namespace="cli", text="reindex me please")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "memory",
            "reindex",
            "--url",
            server.url,
            "--all",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome = orjson.loads(out.stdout)
    assert outcome["queued"] >= 1
    assert outcome["index_backlog"] == 0
    assert outcome["new_dead_letters"] == 0


def test_access_statistics_not_yet_flushed_are_written_at_shutdown(
    server_factory: Callable[..., TetherServer], fresh_store: str
) -> None:
    """Searches coalesce access statistics for up to a second; a graceful stop (SIGTERM)
    writes what is pending, so a restart sees every access."""
    srv = server_factory(db=fresh_store)
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        mem_id = _remember(client, namespace="acc", text="the harbour pilot boards at dawn").json()[
            "data"
        ]["id"]
        for _ in range(3):
            found = _search(client, namespace="acc", query="harbour pilot", mode="bm25")
            assert found["results"][0]["memory"]["id"] == mem_id
    srv.restart()  # typically inside the 1 s flush window: the shutdown drain writes them
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        data = client.get(f"/v1/memories/{mem_id}").json()["data"]
    assert data["access_count"] == 3
    assert data["last_accessed_at"] is not None


def test_search_reports_stage_timings_in_server_timing(http: httpx.Client) -> None:
    assert _remember(http, namespace="st", text="the glacier moved a metre").status_code == 201
    wait_until(lambda: _stats(http)["index_backlog"] == 0)
    r = http.post("/v1/memories/search", json={"namespace": "st", "query": "glacier metre"})
    assert r.status_code == 200
    stages = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
    assert set(stages) == {"embed", "keyword", "vector", "rank"}
    assert all(float(v) >= 0 for v in stages.values())
    bm25 = http.post(
        "/v1/memories/search", json={"namespace": "st", "query": "glacier", "mode": "bm25"}
    )
    assert set(p.split(";")[0].strip() for p in bm25.headers["server-timing"].split(",")) == {
        "keyword",
        "rank",
    }


def test_namespaces_list_counts_and_pages(http: httpx.Client) -> None:
    for ns, text in (("nslist/b", "b one"), ("nslist/a", "a one"), ("nslist/a", "a two")):
        assert _remember(http, namespace=ns, text=text).status_code == 201
    gone = _remember(http, namespace="nslist/c", text="soon forgotten").json()["data"]
    assert http.delete(f"/v1/memories/{gone['memory']['id']}").status_code == 200
    seen: list[tuple[str, int]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"after": after} if after else {})}
        r = http.get("/v1/memory/namespaces", params=params)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        seen += [(i["namespace"], i["count"]) for i in data["items"]]
        after = data["next_after"]
        if after is None:
            break
    mine = [s for s in seen if s[0].startswith("nslist/")]
    assert mine == [("nslist/a", 2), ("nslist/b", 1)]
    assert seen == sorted(seen)
    r = http.get("/v1/memory/namespaces", params={"limit": 0})
    assert r.status_code == 422

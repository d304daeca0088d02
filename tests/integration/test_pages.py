"""Pages are capped in bytes as well as rows, and the cursor continues exactly.

A server with ``TETHER_MAX_PAGE_BYTES=65536`` (the smallest allowed) holds large events,
sessions and memories; every list asked for its largest ``limit`` answers a page whose
size stays near the cap, and following the cursor returns every item exactly once, in
order. (Before the cap, one ``GET .../events?limit=1000`` of large events answered 200 MB.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from tests.services import BACKENDS, store_url
from tether.testing import TetherServer

pytestmark = pytest.mark.slow

CAP = 65_536
# A page may pass the cap by its last item and by rendering (envelope, field names,
# JSON escapes); it must never come near what the rows would add up to.
SLACK = 2


@pytest.fixture(scope="module", params=BACKENDS)
def http(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("pages")
    srv = TetherServer(
        store_url(request, request.param, home),
        home=home,
        env={"TETHER_MAX_PAGE_BYTES": str(CAP)},
    ).start()
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        yield client
    srv.stop()


def _pages(
    http: httpx.Client, path: str, cursor_param: str, next_key: str, **params: Any
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    cursor: Any = None
    while True:
        query = dict(params)
        if cursor is not None:
            query[cursor_param] = cursor
        r = http.get(path, params=query)
        assert r.status_code == 200, r.text[:300]
        data = r.json()["data"]
        yield data["items"], len(r.content)
        cursor = data[next_key]
        if cursor is None or not data["items"]:
            return


def _check(
    pages: Iterable[tuple[list[dict[str, Any]], int]],
    expected: list[Any],
    key: Callable[[dict[str, Any]], Any],
) -> None:
    seen: list[Any] = []
    sizes: list[int] = []
    for items, size in pages:
        seen.extend(key(i) for i in items)
        sizes.append(size)
    assert seen == expected
    assert len(sizes) > 2, "the cap should have cut the list into several pages"
    assert max(sizes) < SLACK * CAP + 30_000, sizes


def test_event_pages(http: httpx.Client) -> None:
    http.post("/v1/sessions", json={"id": "big-events"})
    blob = "e" * 20_000
    for i in range(20):
        r = http.post(
            "/v1/sessions/big-events/events", json={"kind": "log", "input": blob + str(i)}
        )
        assert r.status_code == 201
    pages = _pages(http, "/v1/sessions/big-events/events", "after_seq", "next_cursor", limit=1000)
    _check(pages, list(range(1, 21)), lambda e: e["seq"])


def test_session_pages(http: httpx.Client) -> None:
    ids = []
    for i in range(12):
        sid = f"big-session-{i:02d}"
        meta = {"notes": "m" * 30_000}
        r = http.post("/v1/sessions", json={"id": sid, "agent": "pager", "metadata": meta})
        assert r.status_code == 201
        ids.append(sid)
    pages = _pages(http, "/v1/sessions", "cursor", "next_cursor", limit=500, agent="pager")
    _check(pages, list(reversed(ids)), lambda s: s["id"])


def test_memory_browse_changes_history_and_export(http: httpx.Client) -> None:
    ids = []
    for i in range(12):
        r = http.post("/v1/memories", json={"namespace": "pages", "text": f"{i} " + "w" * 19_000})
        assert r.status_code == 201
        ids.append(r.json()["data"]["memory"]["id"])
    browse = _pages(http, "/v1/memories", "cursor", "next_cursor", limit=500, namespace="pages")
    _check(browse, list(reversed(ids)), lambda m: m["id"])

    first = http.get("/v1/memory/changes", params={"limit": 1000}).json()["data"]
    assert 0 < len(first["items"]) < 12
    lsns: list[int] = []
    after = 0
    while True:
        data = http.get("/v1/memory/changes", params={"after": after, "limit": 1000}).json()["data"]
        if not data["items"]:
            break
        lsns.extend(c["lsn"] for c in data["items"])
        after = data["next_after"]
    assert lsns == sorted(set(lsns))
    assert len(lsns) == 12

    target = ids[0]
    for v in range(8):
        r = http.patch(f"/v1/memories/{target}", json={"text": f"v{v} " + "h" * 19_000})
        assert r.status_code == 200
    history = _pages(http, f"/v1/memories/{target}/history", "after", "next_after", limit=1000)
    _check(history, list(range(1, 10)), lambda c: c["version"])

    lines = http.get("/v1/memories/export", params={"namespace": "pages"}).content.splitlines()
    assert len(lines) == 12

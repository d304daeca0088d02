"""Two ``tether serve`` replicas on one PostgreSQL database and one Redis.

What a load balancer in front of N replicas must be able to count on: appends to one
session through both replicas get gapless seqs with no duplicate; a memory written
through one replica is found by semantic search on the other once indexed; a change-feed
reader polling one replica while both write sees every change once, in lsn order, never
a lower lsn after a higher one; and SIGKILL of one replica during ingest loses no
acknowledged event while the other keeps serving.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

_LOAD_SECONDS = 2.5


@pytest.fixture
def replicas(
    replica_factory: Callable[..., list[TetherServer]],
) -> tuple[TetherServer, TetherServer]:
    one, two = replica_factory(2)
    return one, two


def _post_events(client: httpx.Client, sid: str, keys: list[str]) -> httpx.Response:
    body = {"events": [{"kind": "log", "idempotency_key": k, "input": k} for k in keys]}
    return client.post(f"/v1/sessions/{sid}/events", json=body)


def _all_events(srv: TetherServer, sid: str) -> list[dict[str, Any]]:
    return srv.events(sid)


def _assert_gapless(events: list[dict[str, Any]], sid: str) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"{sid}: seqs not gapless: {seqs[:20]}"
    keys = [e["idempotency_key"] for e in events]
    assert len(keys) == len(set(keys)), f"{sid}: an event was stored twice"


def test_appends_alternating_between_replicas_get_gapless_seqs(
    replicas: tuple[TetherServer, TetherServer],
) -> None:
    """Four writers per session, two on each replica, all appending to the same sessions
    at once (each event sent twice: the retry must come back with the first seq)."""
    sessions = ["alt-1", "alt-2"]
    with httpx.Client(base_url=replicas[0].url) as c:
        for sid in sessions:
            assert c.post("/v1/sessions", json={"id": sid}).status_code == 201
    seqs_by_key: dict[str, set[int]] = {}
    lock = threading.Lock()
    failures: list[str] = []

    def writer(sid: str, name: str, first: int) -> None:
        clients = [httpx.Client(base_url=s.url, timeout=30) for s in replicas]
        try:
            for n in range(60):
                keys = [f"{name}-{n}-{i}" for i in range(1 + n % 4)]
                for attempt in range(2):  # the same batch through the other replica too
                    r = _post_events(clients[(first + n + attempt) % 2], sid, keys)
                    if r.status_code not in (200, 201):
                        failures.append(f"{r.status_code} {r.text[:200]}")
                        return
                    with lock:
                        for key, seq in zip(keys, r.json()["data"]["seqs"], strict=True):
                            seqs_by_key.setdefault(key, set()).add(seq)
        finally:
            for c in clients:
                c.close()

    threads = [
        threading.Thread(target=writer, args=(sid, f"{sid}-w{w}", w))
        for sid in sessions
        for w in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    assert all(len(seqs) == 1 for seqs in seqs_by_key.values()), "a retry got a new seq"
    for sid in sessions:
        for srv in replicas:  # both replicas serve the same, complete history
            events = _all_events(srv, sid)
            _assert_gapless(events, sid)
            stored = {e["idempotency_key"]: e["seq"] for e in events}
            mine = {k: next(iter(v)) for k, v in seqs_by_key.items() if k.startswith(sid)}
            assert stored == mine


def test_a_memory_written_on_one_replica_is_found_by_meaning_on_the_other(
    replicas: tuple[TetherServer, TetherServer],
) -> None:
    one, two = replicas
    with (
        httpx.Client(base_url=one.url, timeout=30) as c1,
        httpx.Client(base_url=two.url, timeout=30) as c2,
    ):
        # Replica 2 builds its indexes first, so the new memory must reach it as a change.
        query = {"namespace": "pets", "query": "Does she have a dog?", "mode": "vector"}
        assert c2.post("/v1/memories/search", json=query).status_code == 200
        made = c1.post(
            "/v1/memories",
            json={"namespace": "pets", "text": "Caroline adopted a golden retriever puppy"},
        )
        assert made.status_code == 201, made.text
        mem_id = made.json()["data"]["memory"]["id"]
        c1.post(
            "/v1/memories",
            json={"namespace": "pets", "text": "The quarterly budget review moved to Thursday"},
        )

        def found() -> bool:
            results = c2.post("/v1/memories/search", json={**query, "limit": 1}).json()["data"]
            return bool(results["results"]) and results["results"][0]["memory"]["id"] == mem_id

        wait_until(found)
        # And a forget through replica 2 hides it from searches on replica 1.
        assert c2.delete(f"/v1/memories/{mem_id}").status_code == 200
        hits = c1.post("/v1/memories/search", json=query).json()["data"]["results"]
        assert mem_id not in [h["memory"]["id"] for h in hits]


def test_a_change_feed_reader_sees_every_change_once_in_lsn_order(
    replicas: tuple[TetherServer, TetherServer],
) -> None:
    """Writers on both replicas add, update and forget memories while a reader polls the
    feed on replica 2; what it read, in order, must be exactly the final feed."""
    stop = threading.Event()
    written = threading.Event()  # every writer has returned
    polled: list[int] = []
    errors: list[str] = []

    def writer(srv: TetherServer, name: str) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for n in itertools.count():
                if stop.is_set():
                    return
                r = c.post("/v1/memories", json={"namespace": "feed", "text": f"{name} fact {n}"})
                if r.status_code != 201:
                    errors.append(r.text[:200])
                    return
                mem_id = r.json()["data"]["memory"]["id"]
                if n % 3 == 1:
                    c.patch(f"/v1/memories/{mem_id}", json={"importance": 0.9})
                if n % 5 == 2:
                    c.delete(f"/v1/memories/{mem_id}")

    def reader() -> None:
        after = 0
        with httpx.Client(base_url=replicas[1].url, timeout=30) as c:
            while True:
                done = written.is_set()  # before polling: the last poll follows every write
                page = c.get("/v1/memory/changes", params={"after": after, "limit": 50})
                data = page.json()["data"]
                polled.extend(item["lsn"] for item in data["items"])
                after = data["next_after"]
                if done and not data["items"]:
                    return

    writers = [
        threading.Thread(target=writer, args=(srv, f"w{i}-{j}"))
        for i, srv in enumerate(replicas)
        for j in range(2)
    ]
    poller = threading.Thread(target=reader)
    poller.start()
    for t in writers:
        t.start()
    time.sleep(_LOAD_SECONDS)
    stop.set()
    for t in writers:
        t.join(timeout=60)
    written.set()
    poller.join(timeout=60)
    assert errors == []
    final: list[int] = []
    after = 0
    with httpx.Client(base_url=replicas[0].url, timeout=30) as c:
        while True:
            data = c.get("/v1/memory/changes", params={"after": after, "limit": 1000}).json()
            items = data["data"]["items"]
            if not items:
                break
            final.extend(item["lsn"] for item in items)
            after = data["data"]["next_after"]
    assert len(final) > 50, "the writers did not get going"
    assert polled == final  # each once, in lsn order, and none turned up behind the reader


def test_sigkill_of_one_replica_loses_no_acknowledged_event(
    replicas: tuple[TetherServer, TetherServer],
) -> None:
    one, two = replicas
    sessions = [f"kill-{i}" for i in range(4)]
    with httpx.Client(base_url=two.url) as c:
        for sid in sessions:
            assert c.post("/v1/sessions", json={"id": sid}).status_code == 201
    acked: dict[str, list[str]] = {sid: [] for sid in sessions}
    after_kill = [0]
    killed = threading.Event()
    stop = threading.Event()

    def writer(sid: str) -> None:
        clients = [httpx.Client(base_url=s.url, timeout=10) for s in replicas]
        try:
            for n in itertools.count():
                if stop.is_set():
                    return
                keys = [f"{sid}-{n}-{i}" for i in range(1 + n % 5)]
                target = clients[n % 2]
                try:
                    r = _post_events(target, sid, keys)
                except httpx.TransportError:
                    continue  # replica 1 died: this batch was never acknowledged
                if r.status_code in (200, 201):
                    acked[sid].extend(keys)
                    if killed.is_set() and target is clients[1]:
                        after_kill[0] += 1
        finally:
            for c in clients:
                c.close()

    threads = [threading.Thread(target=writer, args=(sid,)) for sid in sessions]
    for t in threads:
        t.start()
    time.sleep(_LOAD_SECONDS / 2)
    one.kill()
    killed.set()
    time.sleep(_LOAD_SECONDS / 2)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert sum(len(v) for v in acked.values()) > 100, "the load generator did not get going"
    assert after_kill[0] > 0, "the surviving replica stopped serving"
    for sid in sessions:
        events = _all_events(two, sid)
        _assert_gapless(events, sid)
        stored = {e["idempotency_key"] for e in events}
        missing = set(acked[sid]) - stored
        assert not missing, f"{sid}: {len(missing)} acknowledged events lost"

"""Hung embedder drill (issue 10), against a real server process.

The server is configured with an OpenAI-compatible embedder pointing at a socket in this
test: a **stand-in for a third-party embeddings API** (OpenAI, TEI, vLLM...) that accepts
TCP connections and never reads or writes a byte, as a wedged inference server or load
balancer does. Nothing in the server knows it is under test.

The issue's acceptance criterion is a timing one, so this drill asserts wall times (and
only these): with the embedder hung, hybrid searches answer from BM25 with p95 under 1 s
(the query budget is 300 ms, then the breaker skips the embedder), and ``/readyz`` answers
in well under a second. ``pytest -s`` prints the measured percentiles.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer

pytestmark = pytest.mark.slow

MEMORIES = {
    "Caroline adopted a golden retriever puppy last spring": [
        "golden retriever puppy",
        "when did Caroline adopt the puppy?",
    ],
    "The quarterly budget meeting moved to Thursday": [
        "quarterly budget meeting",
        "which day is the budget meeting?",
    ],
    "Paris is the capital of France": ["capital of France", "what is Paris the capital of?"],
    "The harbour pilot boards incoming ships at dawn": [
        "harbour pilot",
        "when does the pilot board ships?",
    ],
}
QUERIES = [(q, text) for text, queries in MEMORIES.items() for q in queries]
SEQUENTIAL = 16
CONCURRENT_THREADS = 4
CONCURRENT_EACH = 6  # 16 + 4 x 6 = 40 searches


class HungEmbeddingsAPI:
    """A listening socket on 127.0.0.1 whose connections are accepted and held open,
    never read from or written to."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # so the accept loop sees ``close``
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections.append(conn)

    def close(self) -> None:
        """Stop accepting and drop every held connection (the server's hung requests end)."""
        self._closed.set()
        self._thread.join()
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def hung() -> Iterator[HungEmbeddingsAPI]:
    api = HungEmbeddingsAPI()
    yield api
    api.close()


def _search(http: httpx.Client, query: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    r = http.post("/v1/memories/search", json={"namespace": "hang", "query": query})
    return time.perf_counter() - started, r


def _percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100)."""
    ordered = sorted(values)
    return ordered[max(0, round(p / 100 * len(ordered)) - 1)]


def test_hung_embedder_searches_degrade_fast_and_readiness_answers_at_once(
    server_factory: Callable[..., TetherServer], hung: HungEmbeddingsAPI
) -> None:
    # server_factory is set up first, so `hung` is torn down first: the held connections
    # close and the indexer's hung batch request ends before the server is stopped.
    srv = server_factory(env={"TETHER_EMBEDDER": f"openai:minilm@{hung.url}"})
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        # Writes do not wait for the embedder: stored, keyword-searchable at once.
        for text in MEMORIES:
            r = http.post("/v1/memories", json={"namespace": "hang", "text": text})
            assert r.status_code == 201, r.text

        results: list[tuple[float, httpx.Response, str]] = []
        for i in range(SEQUENTIAL):
            query, expected = QUERIES[i % len(QUERIES)]
            wall, r = _search(http, query)
            results.append((wall, r, expected))

        def worker(offset: int) -> list[tuple[float, httpx.Response, str]]:
            out = []
            with httpx.Client(base_url=srv.url, timeout=30) as client:
                for j in range(CONCURRENT_EACH):
                    query, expected = QUERIES[(offset + j) % len(QUERIES)]
                    wall, r = _search(client, query)
                    out.append((wall, r, expected))
            return out

        with ThreadPoolExecutor(CONCURRENT_THREADS) as pool:
            for batch in pool.map(worker, range(CONCURRENT_THREADS)):
                results.extend(batch)

        assert len(results) == SEQUENTIAL + CONCURRENT_THREADS * CONCURRENT_EACH
        for _, r, expected in results:
            assert r.status_code == 200, r.text
            data = r.json()["data"]
            assert data["degraded"] is True
            assert data["results"][0]["memory"]["text"] == expected
        timing = [r.headers["server-timing"] for _, r, _ in results]
        # The first search waited for the embedder until the budget cut it, and says so;
        # once the breaker opened, searches skip the embedder and say that instead.
        assert 'embed;desc="timeout"' in timing[0]
        # (How long it waited is printed below, not asserted: no timed assertions.)
        assert any('embed;desc="breaker open"' in t for t in timing)

        walls = [wall for wall, _, _ in results]
        p50, p95 = statistics.median(walls), _percentile(walls, 95)
        print(
            f"\nhung embedder, {len(walls)} hybrid searches: p50 {p50 * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms, max {max(walls) * 1000:.1f} ms"
        )
        assert p95 < 1.0

        # Readiness never waits on the embedder: 200 (the store is fine), degraded.
        started = time.perf_counter()
        ready = http.get("/readyz")
        ready_s = time.perf_counter() - started
        print(f"/readyz with the embedder hung: {ready_s * 1000:.1f} ms")
        assert ready.status_code == 200, ready.text
        assert ready.json()["data"]["status"] == "degraded"
        checks = {c["name"]: c for c in ready.json()["data"]["checks"]}
        assert checks["store"]["status"] == "ok"
        assert checks["embedder"]["status"] == "down"
        assert ready_s < 1.0
        deps = {d["name"]: d for d in http.get("/v1/deps").json()["data"]["dependencies"]}
        assert deps["embedder"]["status"] == "down"

        # Vector-only search has nothing to fall back on: 503 as before.
        r = http.post(
            "/v1/memories/search",
            json={"namespace": "hang", "query": "harbour pilot", "mode": "vector"},
        )
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "embedder_unavailable"
        stats: dict[str, Any] = http.get("/v1/memory/stats").json()["data"]
        assert stats["count"] == len(MEMORIES)
        assert stats["indexed"] == 0

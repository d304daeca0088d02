"""Embedder outage drill and dead letters, against a real server process.

The server is configured with an OpenAI-compatible embedder pointing at a tiny HTTP
server in this test. That endpoint is a **stand-in for a third-party embeddings API**
(OpenAI, TEI, vLLM...): it really fails (HTTP 503, then HTTP 400 for a "poison" text) and,
when healthy, serves real all-MiniLM-L6-v2 vectors computed by the ONNX embedder, so
vector search after recovery is genuine. Nothing in the server knows it is under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from tether.memory.embedders import OnnxMiniLMEmbedder
from tether.testing import TetherServer, wait_until

pytestmark = pytest.mark.slow


class FakeEmbeddingsAPI:
    """``POST /v1/embeddings`` on 127.0.0.1: 503 while ``down``, 400 for inputs containing
    ``poison`` while ``poison`` is set, else real MiniLM vectors."""

    def __init__(self) -> None:
        self.down = True
        self.poison = True
        self.requests = 0
        self.embedder = OnnxMiniLMEmbedder()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                api.requests += 1
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                texts = body["input"]
                if api.down:
                    self._reply(503, {"error": {"message": "service unavailable"}})
                elif api.poison and any("POISON" in t for t in texts):
                    self._reply(400, {"error": {"message": "input rejected"}})
                else:
                    vectors = api.embedder.embed(texts)
                    data = [
                        {"index": i, "embedding": v.tolist(), "object": "embedding"}
                        for i, v in enumerate(vectors)
                    ]
                    self._reply(200, {"data": data, "model": body["model"]})

            def _reply(self, status: int, payload: Any) -> None:
                raw = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api() -> Iterator[FakeEmbeddingsAPI]:
    fake = FakeEmbeddingsAPI()
    yield fake
    fake.close()


def _stats(http: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = http.get("/v1/memory/stats").json()["data"]
    return data


def _embedder_check(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/readyz")
    assert r.status_code == 200, r.text
    checks = r.json()["data"]["checks"]
    check: dict[str, Any] = next(c for c in checks if c["name"] == "embedder")
    return check


def _search(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/v1/memories/search", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def test_outage_then_recovery_then_poison_job_dead_letter_and_replay(
    api: FakeEmbeddingsAPI, server_factory: Callable[..., TetherServer], fresh_store: str
) -> None:
    srv = server_factory(
        db=fresh_store,
        env={
            "TETHER_EMBEDDER": f"openai:minilm@{api.url}",
            "TETHER_INDEXER_RETRY_BASE_MS": "50",
            "TETHER_INDEXER_RETRY_MAX_MS": "400",
            "TETHER_INDEXER_MAX_ATTEMPTS": "3",
        },
    )
    texts = [
        "Caroline adopted a golden retriever puppy last spring",
        "The quarterly budget meeting moved to Thursday",
        "Paris is the capital of France",
    ]
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        # 1. The embedder is down: remember still answers 2xx, keyword search works.
        for text in texts:
            r = http.post("/v1/memories", json={"namespace": "drill", "text": text})
            assert r.status_code == 201, r.text
        found = _search(http, namespace="drill", query="budget meeting")
        assert found["degraded"] is True
        assert found["results"][0]["memory"]["text"] == texts[1]
        # Readiness answers from the last known state: the store is fine, so 200, and
        # the embedder is reported down (the indexer's outage backoff, or the probe).
        wait_until(lambda: _embedder_check(http)["status"] == "down")
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["data"]["status"] == "degraded"
        time.sleep(1.0)  # several failed probes later: still queued, never dead-lettered
        stats = _stats(http)
        assert stats["index_backlog"] == 3
        assert stats["dead_letters"] == 0
        assert stats["indexed"] == 0
        assert api.requests >= 2

        # 2. It recovers: the backlog drains and a vector-only paraphrase finds the memory.
        api.down = False
        wait_until(lambda: _stats(http)["index_backlog"] == 0)
        assert _stats(http)["indexed"] == 3
        query = {"namespace": "drill", "query": "Does she own a dog?"}
        assert _search(http, mode="bm25", **query)["results"] == []  # no shared keyword
        vector = _search(http, mode="vector", **query)
        assert vector["degraded"] is False
        assert vector["results"][0]["memory"]["text"] == texts[0]
        assert vector["embedding_model"] == "openai:minilm"

        # 3. A poison text (rejected while the service is healthy) is dead-lettered after
        #    max_attempts; the others are unaffected; replay requeues it.
        poison = http.post("/v1/memories", json={"namespace": "drill", "text": "POISON pill"})
        fine = http.post("/v1/memories", json={"namespace": "drill", "text": "Tea at five"})
        assert poison.status_code == 201
        assert fine.status_code == 201
        wait_until(lambda: _stats(http)["dead_letters"] == 1)
        assert _stats(http)["index_backlog"] == 0
        dead = http.get("/v1/admin/outbox", params={"state": "dead"}).json()["data"]["items"]
        assert [d["memory_id"] for d in dead] == [poison.json()["data"]["memory"]["id"]]
        assert dead[0]["attempts"] == 3
        assert "400" in dead[0]["last_error"]
        fine_id = fine.json()["data"]["memory"]["id"]
        assert http.get(f"/v1/memories/{fine_id}").json()["data"]["embedding_model"]

        api.poison = False
        r = http.post("/v1/admin/outbox/replay", json={"ids": [dead[0]["id"]]})
        assert r.json()["data"]["replayed"] == 1
        wait_until(lambda: _stats(http)["dead_letters"] == 0 and _stats(http)["index_backlog"] == 0)
        assert _stats(http)["indexed"] == 5

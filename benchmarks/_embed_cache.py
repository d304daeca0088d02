"""Real embeddings cached on disk for the large runs of ``memory_latency.py``.

Embedding 100k texts with the int8 MiniLM takes tens of minutes on the reference CPU, so
``memory_latency.py`` computes each corpus text's vector once (the default ONNX embedder,
the same model and code the server runs), keeps it in
``~/.cache/tether-bench/embeddings.sqlite3`` (outside the repo; key: model name + SHA-256
of the text), and loads large runs through ``POST /v1/memories/import`` with each line
carrying its vector (the shape ``GET /v1/memories/export?vectors=true`` writes). The
benchmark's questions are kept out of the corpus, so the server computes every query
vector itself.

``python benchmarks/_embed_cache.py`` fills the cache for the whole corpus (one intra-op
thread, texts sorted by token count, batches of 32, committed as it goes: it can be
stopped and resumed).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CACHE_DIR = Path(os.environ.get("TETHER_BENCH_CACHE", Path.home() / ".cache" / "tether-bench"))
MODEL = "all-MiniLM-L6-v2/onnx-int8"  # OnnxMiniLMEmbedder.name
DIM = 384


def _key(text: str) -> bytes:
    return hashlib.sha256(f"{MODEL}\0{text}".encode()).digest()


class EmbeddingCache:
    """``text -> float32[384]`` for :data:`MODEL`, in one SQLite file (WAL: one writer,
    readers alongside)."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or CACHE_DIR / "embeddings.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
        self._lock = threading.Lock()

    def get_many(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        keys = [_key(t) for t in texts]
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(self._db.execute(f"SELECT k, v FROM vec WHERE k IN ({marks})", chunk))
        return [None if k not in found else np.frombuffer(found[k], dtype=np.float32) for k in keys]

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (_key(t), np.asarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", rows)

    def missing(self, texts: Sequence[str]) -> list[str]:
        return [t for t, v in zip(texts, self.get_many(texts), strict=True) if v is None]


def precompute(texts: Sequence[str], *, batch: int = 32, log: Any = print) -> None:
    """Embed every uncached text (1 thread, sorted by token count, ``batch`` at a time)."""
    from tether.memory.embedders import OnnxMiniLMEmbedder

    cache = EmbeddingCache()
    todo = cache.missing(list(dict.fromkeys(texts)))
    embedder = OnnxMiniLMEmbedder(threads=1, batch_size=batch)
    _session, tokenizer = embedder._load()
    tokenizer.no_padding()
    lengths = [len(e.ids) for e in tokenizer.encode_batch(todo)]
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    todo = [t for _, t in sorted(zip(lengths, todo, strict=True), key=lambda p: p[0])]
    log(f"{len(todo)} texts to embed ({sum(lengths)} tokens)")
    t0 = time.perf_counter()
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        cache.put_many(chunk, embedder.embed(chunk))
        done = start + len(chunk)
        if done % (batch * 50) < batch or done == len(todo):
            rate = done / (time.perf_counter() - t0)
            log(f"{done}/{len(todo)} embedded, {rate:.0f}/s", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from memory_latency import DEFAULT_DATA, corpus

    texts, _questions = corpus(DEFAULT_DATA)
    precompute(texts)

"""The query embedder's small vector cache: a repeated question is embedded once, per model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from tether.memory.embedders import Embedder, FloatMatrix
from tether.memory.query_embedder import _QUERY_CACHE, QueryEmbedder


class _Counting(Embedder):
    name = "counting"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[str] = []

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        self.calls.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def test_repeated_queries_are_embedded_once_and_the_cache_is_bounded() -> None:
    embedder = _Counting()
    queries = QueryEmbedder(embedder)

    async def run() -> None:
        await queries.embed("where did we go?")
        await queries.embed("where did we go?")
        assert embedder.calls == ["where did we go?"]
        for i in range(_QUERY_CACHE + 1):
            await queries.embed(f"q{i}")
        await queries.embed("where did we go?")  # evicted (least recently used)
        assert embedder.calls.count("where did we go?") == 2
        embedder.name = "other-model"  # another model never reuses a vector
        await queries.embed("where did we go?")
        assert embedder.calls.count("where did we go?") == 3

    try:
        asyncio.run(run())
    finally:
        queries.close()

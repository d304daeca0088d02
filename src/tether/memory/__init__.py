"""Long-term memory: embedders, hybrid ranking, the in-process indexes that follow the
store's memory feed, and the indexer that drains the embedding outbox. No SQL here: the
store contract (``tether.store.base``) is the only way in. See docs/memory.md."""

from tether.memory.embedders import (
    DEFAULT_EMBEDDER_SPEC,
    Embedder,
    OnnxMiniLMEmbedder,
    OpenAICompatibleEmbedder,
    build_embedder,
)
from tether.memory.follower import IndexFollower
from tether.memory.indexer import Indexer
from tether.memory.postings import KeywordIndex
from tether.memory.ranking import DEFAULT_PARAMS, MemoryFeatures, RankedMemory, RankingParams, rank
from tether.memory.recall import Recall
from tether.memory.vectors import VectorIndex

__all__ = [
    "DEFAULT_EMBEDDER_SPEC",
    "DEFAULT_PARAMS",
    "Embedder",
    "IndexFollower",
    "Indexer",
    "KeywordIndex",
    "MemoryFeatures",
    "OnnxMiniLMEmbedder",
    "OpenAICompatibleEmbedder",
    "RankedMemory",
    "RankingParams",
    "Recall",
    "VectorIndex",
    "build_embedder",
    "rank",
]

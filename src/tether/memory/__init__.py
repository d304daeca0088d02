"""Long-term memory: embedders, keyword queries, hybrid ranking, the vector index and the
indexer that drains the embedding outbox. See docs/memory.md."""

from tether.memory.embedders import (
    DEFAULT_EMBEDDER_SPEC,
    Embedder,
    OnnxMiniLMEmbedder,
    OpenAICompatibleEmbedder,
    build_embedder,
)
from tether.memory.fts import FTS_TABLE_DDL, build_match_query
from tether.memory.indexer import Indexer
from tether.memory.ranking import DEFAULT_PARAMS, MemoryFeatures, RankedMemory, RankingParams, rank
from tether.memory.recall import Recall
from tether.memory.schemas import (
    MemoryBatchIn,
    MemoryImport,
    MemoryIn,
    MemoryPatch,
    SearchFilters,
    SearchIn,
    content_hash,
)
from tether.memory.vectors import VectorIndex

__all__ = [
    "DEFAULT_EMBEDDER_SPEC",
    "DEFAULT_PARAMS",
    "FTS_TABLE_DDL",
    "Embedder",
    "Indexer",
    "MemoryBatchIn",
    "MemoryFeatures",
    "MemoryImport",
    "MemoryIn",
    "MemoryPatch",
    "OnnxMiniLMEmbedder",
    "OpenAICompatibleEmbedder",
    "RankedMemory",
    "RankingParams",
    "Recall",
    "SearchFilters",
    "SearchIn",
    "VectorIndex",
    "build_embedder",
    "build_match_query",
    "content_hash",
    "rank",
]

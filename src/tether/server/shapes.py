"""Response shapes the routes send beyond the domain records: pages and small results.

Each route declares what its envelope's ``data`` holds (:func:`returns`), so
``/openapi.json`` carries a response schema for every JSON route, and schemathesis checks
every answer against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, create_model

from tether.domain.records import (
    ApiKey,
    AuditEntry,
    Event,
    Memory,
    MemoryChange,
    ModelPrice,
    NamespaceCount,
    OutboxJob,
    Remembered,
    Session,
    StateVersion,
)
from tether.server.envelope import Envelope, documented


@dataclass(frozen=True, slots=True)
class SessionPage:
    items: list[Session]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[Event]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class Appended:
    seqs: list[int]
    duplicates: int


@dataclass(frozen=True, slots=True)
class Deleted:
    deleted_events: int


@dataclass(frozen=True, slots=True)
class MemoryCreated:
    id: str
    created: bool
    deduplicated: bool
    replayed: bool
    memory: Memory


@dataclass(frozen=True, slots=True)
class MemoryBatchResult:
    items: list[Remembered]
    created: int
    deduplicated: int


@dataclass(frozen=True, slots=True)
class MemoryPage:
    items: list[Memory]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class NamespacePage:
    items: list[NamespaceCount]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class ChangePage:
    items: list[MemoryChange]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class MemoryStatsOut:
    count: int
    deleted: int
    index_backlog: int
    dead_letters: int
    embedding_model: str
    indexed: int
    vector_search: Literal["exact", "hnsw"]


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[OutboxJob]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class Replayed:
    replayed: int


@dataclass(frozen=True, slots=True)
class Reindexing:
    queued: int
    embedding_model: str


@dataclass(frozen=True, slots=True)
class KeyList:
    items: list[ApiKey]


@dataclass(frozen=True, slots=True)
class PriceList:
    """Every model's effective prices for the tenant (USD per million tokens)."""

    models: list[ModelPrice]


@dataclass(frozen=True, slots=True)
class PriceDeleted:
    model: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class StateVersionPage:
    items: list[StateVersion]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditEntry]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class Alive:
    status: Literal["ok"]
    version: str


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency's readiness (latency in ms; ``hint``: what to do when not ``ok``;
    ``breaker``: the embedder's only)."""

    name: str
    kind: str
    status: Literal["ok", "degraded", "down", "unknown"]
    latency_ms: float | None
    detail: str | None
    hint: str | None = None
    breaker: str | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    status: Literal["ready", "degraded"]
    checks: list[Check]


@dataclass(frozen=True, slots=True)
class Dependencies:
    dependencies: list[Check]


@cache
def enveloped(model: Any) -> type[BaseModel]:
    """The envelope whose ``data`` is ``model`` (one schema component per model)."""
    name = getattr(model, "__name__", "Data").replace("[", "_").replace("]", "")
    return create_model(f"{name}Envelope", __base__=Envelope, data=(model, ...))


def returns(model: Any, *, status: int = 200, also: tuple[int, ...] = ()) -> dict[int | str, Any]:
    """``responses=`` for a route answering an envelope of ``model`` with ``status`` (and
    ``also`` those statuses with the same body, e.g. 200 beside 201 for a replay)."""
    out: dict[int | str, Any] = {s: {"model": enveloped(model)} for s in (status, *also)}
    return out


def with_errors(responses: dict[int | str, Any], *statuses: int) -> dict[int | str, Any]:
    """``responses`` plus the error statuses beyond what every route of its kind has."""
    return {**documented(*statuses), **responses}

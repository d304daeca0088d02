"""Output records: what the store returns and the API renders (ARCHITECTURE §2, §9).

Frozen dataclasses with slots: cheap to build from rows, rendered by orjson natively (no
intermediate dicts), and described in the OpenAPI document through pydantic. Every
backend builds these from its rows, so a record looks the same whichever store served it.

Conventions: times are RFC 3339 strings in UTC with millisecond precision
(``2026-01-02T03:04:05.678Z``, see :func:`tether.domain.time.iso`); durations are
milliseconds; costs US dollars; ``metadata``, ``input``, ``output``, ``attributes`` and
``state`` are JSON values as the client sent them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

__all__ = [
    "AppendResult",
    "BatchResult",
    "Child",
    "Counters",
    "Created",
    "Event",
    "Goal",
    "ImportResult",
    "Memory",
    "MemoryChange",
    "MemoryStats",
    "ModelPrice",
    "NamespaceCount",
    "OutboxJob",
    "Purged",
    "Remembered",
    "SearchResult",
    "SearchResults",
    "Session",
    "SessionDetail",
    "StateDoc",
    "StateVersion",
    "Stats",
]


@dataclass(frozen=True, slots=True)
class Counters:
    """A session's running totals over its events (tokens; ``cost_usd`` in US dollars).

    As on events (OpenTelemetry GenAI usage): ``input_tokens`` includes
    ``cache_read_tokens`` and ``cache_write_tokens``; ``output_tokens`` includes
    ``reasoning_tokens``."""

    event_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True, slots=True)
class Session:
    """A session (an OpenTelemetry trace): status is ``active``, ``completed``,
    ``failed`` or ``abandoned``; ``state_version`` counts state patches."""

    id: str
    parent_id: str | None
    user_id: str | None
    agent: str | None
    title: str | None
    status: str
    phase: str | None
    current_step: str | None
    summary: str | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    ended_at: str | None
    counters: Counters
    state_version: int


@dataclass(frozen=True, slots=True)
class Goal:
    """A goal of a session; ``progress`` in [0, 1]; ``completed_at`` set on entering
    ``done``, ``failed`` or ``cancelled``."""

    id: str
    description: str
    priority: int
    status: str
    progress: float
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    completed_at: str | None


@dataclass(frozen=True, slots=True)
class Child:
    """A sub-agent session, as its parent lists it."""

    id: str
    agent: str | None
    status: str


@dataclass(frozen=True, slots=True)
class SessionDetail(Session):
    """``GET /v1/sessions/{id}``: the session, its goals (creation order) and children."""

    goals: list[Goal]
    children: list[Child]


@dataclass(frozen=True, slots=True)
class StateDoc:
    """A session's state document (a JSON object) and its version."""

    state: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class NamespaceCount:
    """A memory namespace and how many live (not forgotten, not expired) memories it holds."""

    namespace: str
    count: int


@dataclass(frozen=True, slots=True)
class StateVersion:
    """One version of a session's state document: the JSON Merge Patch (RFC 7386) that
    made it from the version before, and the document after it; ``at`` is RFC 3339."""

    version: int
    state: dict[str, Any]
    patch: dict[str, Any]
    at: str


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's prices in US dollars per million tokens (``None``: falls back, see
    docs/cost.md); ``source`` is where they come from: ``default`` (shipped), ``file``
    (``TETHER_PRICES_FILE``) or ``tenant`` (``PUT /v1/admin/prices/{model}``)."""

    model: str
    input: float | None
    cached_input: float | None
    cache_write: float | None
    output: float | None
    reasoning: float | None
    source: Literal["default", "file", "tenant"]
    updated_at: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """An event (a span/observation), immutable once stored; ``seq`` is gapless per
    session (1..N), the resume cursor."""

    id: str
    session_id: str
    seq: int
    kind: str
    name: str | None
    role: str | None
    status: str
    level: str | None
    started_at: str | None
    ended_at: str | None
    duration_ms: float | None
    parent_id: str | None
    span_id: str | None
    trace_id: str | None
    input: Any
    output: Any
    attributes: dict[str, Any] | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    idempotency_key: str | None
    correlation_id: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Created(Generic[T]):
    """A create's outcome: the record, and whether this call made it (201) or found the
    identical one made before (200)."""

    record: T
    created: bool


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Seqs aligned with the appended events, and how many were idempotent replays."""

    seqs: list[int]
    duplicates: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """``POST /v1/events/batch``: seqs aligned with its events, replays, sessions made."""

    seqs: list[int]
    duplicates: int
    created_sessions: list[str]


@dataclass(frozen=True, slots=True)
class StatusCount:
    total: int
    by_status: dict[str, int]


@dataclass(frozen=True, slots=True)
class KindCount:
    total: int
    by_kind: dict[str, int]


@dataclass(frozen=True, slots=True)
class Recent:
    sessions: int
    events: int
    errors: int


@dataclass(frozen=True, slots=True)
class Stats:
    """``GET /v1/stats``: sessions by status, events by kind, and the last 24 h."""

    sessions: StatusCount
    events: KindCount
    last_24h: Recent


@dataclass(frozen=True, slots=True)
class Memory:
    """A memory (ARCHITECTURE §2); ``importance`` in [0, 1]; ``occurred_at`` is event
    time, ``created_at`` ingest time; ``deleted_at`` marks a tombstone."""

    id: str
    namespace: str
    text: str
    kind: str
    tags: list[str]
    metadata: dict[str, Any]
    importance: float
    source_session_id: str | None
    source_event_id: str | None
    occurred_at: str | None
    created_at: str
    updated_at: str
    last_accessed_at: str | None
    access_count: int
    expires_at: str | None
    deleted_at: str | None
    content_hash: str
    embedding_model: str | None
    version: int


@dataclass(frozen=True, slots=True)
class Purged:
    """A memory purged for good: its row is gone and its history's texts blanked."""

    id: str
    purged: bool = True


@dataclass(frozen=True, slots=True)
class MemoryChange:
    """One entry of the memory change feed: ``op`` is ``add``, ``update``, ``delete`` or
    ``purge``; ``lsn`` is global and increasing in commit order; ``memory`` is the memory
    as of the change (``None`` once purged)."""

    lsn: int
    op: str
    memory_id: str
    namespace: str
    version: int
    at: str
    memory: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One recalled memory: its final score and the breakdown of every feature that moved
    it (``bm25``, ``vector``, ``fused``, ``recency``, ``importance``, ``final``, and the raw
    ``bm25_raw`` and ``cosine``; ``None`` where a retriever did not find it)."""

    memory: Memory
    score: float
    scores: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class SearchResults:
    """A search's results best first; ``degraded``: ranked without vectors (BM25 only)."""

    results: list[SearchResult]
    degraded: bool
    mode: Literal["hybrid", "bm25", "vector"]
    embedding_model: str


@dataclass(frozen=True, slots=True)
class Remembered:
    """One remembered item: its id, whether it was new, a dedupe hit, or a replay of an
    idempotency key."""

    id: str
    created: bool
    deduplicated: bool
    replayed: bool


@dataclass(frozen=True, slots=True)
class ImportResult:
    """An import: lines stored, lines skipped (existing id or text), vectors stored
    instead of embedding, and the ids aligned with the lines."""

    imported: int
    skipped: int
    vectors: int
    ids: list[str]


@dataclass(frozen=True, slots=True)
class MemoryStats:
    """A tenant's memories: live, tombstoned, embedding jobs pending and dead."""

    count: int
    deleted: int
    index_backlog: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """An embedding job of the outbox: ``pending`` until its vector is stored, ``dead``
    after too many failed attempts."""

    id: int
    memory_id: str | None
    state: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as listed (never its secret). ``namespaces``: the prefixes its memory
    calls are limited to (empty: every namespace). Times RFC 3339; ``revoked_at`` and
    ``expires_at`` set once it stops working, or will."""

    id: str
    tenant_id: str
    name: str | None
    scope: str
    namespaces: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    created_by: str | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: the record, and the whole key (``tk_…``), shown this once."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who (``key_id``; ``None`` for local mode or the CLI),
    what (``action``, e.g. ``key.created``, ``memory.purged``, ``auth.failed``) on what
    (``target``), when (RFC 3339), with the request's correlation id."""

    seq: int
    tenant_id: str
    at: str
    key_id: str | None
    action: str
    target: str | None
    detail: dict[str, Any] | None
    correlation_id: str | None

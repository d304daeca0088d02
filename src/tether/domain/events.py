"""Event records: the append-only spans/observations of a session (ARCHITECTURE §2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from tether.domain.common import (
    Attributes,
    ClientId,
    JsonValue,
    Metadata,
    NonNegative,
    SessionId,
    ShortText,
    Strict,
    Tag,
    Timestamp,
    TokenCount,
    Usd,
)


class EventKind(StrEnum):
    message = "message"
    action = "action"
    response = "response"
    llm = "llm"
    tool = "tool"
    retrieval = "retrieval"
    embedding = "embedding"
    agent = "agent"
    goal = "goal"
    state = "state"
    memory = "memory"
    vad = "vad"
    stt = "stt"
    tts = "tts"
    error = "error"
    log = "log"
    custom = "custom"


EVENT_KINDS = frozenset(k.value for k in EventKind)

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
SpanRef = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class EventIn(Strict):
    """One event as a client sends it. The server adds ``id``, ``seq`` and ``created_at``.

    ``started_at``/``ended_at`` are RFC 3339 times (or epoch seconds); ``duration_ms`` is
    milliseconds; ``cost_usd`` US dollars. A stage that starts and ends sends a ``running``
    event, then the final one with the same ``span_id``.
    """

    kind: EventKind
    name: ShortText | None = None
    role: ShortText | None = None
    status: Literal["ok", "error", "running"] = "ok"
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    duration_ms: NonNegative | None = None
    parent_id: SpanRef | None = None
    span_id: SpanRef | None = None
    trace_id: SpanRef | None = None
    input: JsonValue = None
    output: JsonValue = None
    attributes: Attributes | None = None
    model: ShortText | None = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    cost_usd: Usd | None = None
    idempotency_key: IdempotencyKey | None = None


class EventsIn(Strict):
    """``POST /v1/sessions/{id}/events`` with several events (1..1,000)."""

    events: Annotated[list[EventIn], Field(min_length=1, max_length=1000)]


class BatchEventIn(EventIn):
    """An event in ``POST /v1/events/batch``: it names its session."""

    session_id: SessionId


class BatchSessionIn(Strict):
    """A session to create on first sight in ``POST /v1/events/batch`` (first write wins)."""

    id: SessionId
    parent_id: ClientId | None = None
    user_id: ShortText | None = None
    agent: ShortText | None = None
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class BatchEndIn(Strict):
    """A session to end after the batch's events are appended."""

    session_id: ClientId
    status: Literal["completed", "failed", "abandoned"] = "completed"
    summary: Annotated[str, StringConstraints(max_length=20000)] | None = None


class EventBatchIn(Strict):
    """``POST /v1/events/batch``: the SDK's flush path (see docs/dev/contracts.md)."""

    sessions: Annotated[list[BatchSessionIn], Field(max_length=1000)] = Field(default_factory=list)
    events: Annotated[list[BatchEventIn], Field(max_length=1000)] = Field(default_factory=list)
    ends: Annotated[list[BatchEndIn], Field(max_length=1000)] = Field(default_factory=list)

"""Event records: the append-only spans/observations of a session (ARCHITECTURE §2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

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
#: A price in US dollars per million tokens (at most $1M per million tokens).
PerMillion = Annotated[float, Field(strict=True, ge=0.0, le=1e6)]

PRICE_FIELDS = ("input", "cached_input", "cache_write", "output", "reasoning")
#: The 422 error type of usage whose part exceeds its whole (a rule JSON Schema cannot
#: state: ``cache_read_tokens + cache_write_tokens <= input_tokens``,
#: ``reasoning_tokens <= output_tokens``).
USAGE_PARTS = "usage_parts"


class PriceIn(Strict):
    """A model's prices in US dollars per million tokens; a missing one falls back:
    ``cached_input`` and ``cache_write`` to ``input``, ``reasoning`` to ``output``
    (docs/cost.md). At least one must be given; none may be ``null``."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    input: PerMillion | SkipJsonSchema[None] = None
    cached_input: PerMillion | SkipJsonSchema[None] = None
    cache_write: PerMillion | SkipJsonSchema[None] = None
    output: PerMillion | SkipJsonSchema[None] = None
    reasoning: PerMillion | SkipJsonSchema[None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null (leave the price out to fall back)")
        return value

    @model_validator(mode="after")
    def _some_price(self) -> PriceIn:
        if all(getattr(self, f) is None for f in PRICE_FIELDS):
            raise ValueError(f"give at least one of {', '.join(PRICE_FIELDS)}")
        return self


SpanRef = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class EventIn(Strict):
    """One event as a client sends it. The server adds ``id``, ``seq`` and ``created_at``.

    ``started_at``/``ended_at`` are RFC 3339 times (or epoch seconds); ``duration_ms`` is
    milliseconds; ``cost_usd`` US dollars. A stage that starts and ends sends a ``running``
    event, then the final one with the same ``span_id``.

    Token usage follows the OpenTelemetry GenAI conventions: ``input_tokens`` includes
    ``cache_read_tokens`` and ``cache_write_tokens``, ``output_tokens`` includes
    ``reasoning_tokens`` (422 when a part exceeds its whole). Without ``cost_usd`` the
    server computes it at ingest from ``price`` (this event's prices), else the tenant's
    price table for ``model`` (docs/cost.md); ``price`` itself is not stored.
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
    cache_read_tokens: TokenCount | None = None
    cache_write_tokens: TokenCount | None = None
    reasoning_tokens: TokenCount | None = None
    cost_usd: Usd | None = None
    price: PriceIn | None = None
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _parts_within_totals(self) -> EventIn:
        cached = (self.cache_read_tokens or 0) + (self.cache_write_tokens or 0)
        if cached and self.input_tokens is not None and cached > self.input_tokens:
            raise PydanticCustomError(
                USAGE_PARTS,
                "cache_read_tokens + cache_write_tokens exceed input_tokens "
                "(input_tokens includes cached tokens)",
            )
        reasoning = self.reasoning_tokens or 0
        if reasoning and self.output_tokens is not None and reasoning > self.output_tokens:
            raise PydanticCustomError(
                USAGE_PARTS,
                "reasoning_tokens exceed output_tokens (output_tokens includes reasoning)",
            )
        return self


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

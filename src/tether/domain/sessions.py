"""Session, goal and sub-agent request records (ARCHITECTURE §2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from tether.domain.common import (
    ClientId,
    Fraction,
    Metadata,
    SessionId,
    ShortText,
    Strict,
    Tags,
    json_number,
)

#: "Not sent" in a PATCH body whose fields may not be null: the default is ``None`` so
#: ``model_fields_set`` tells what was sent, but the schema does not offer ``null``.
Unset = SkipJsonSchema[None]

#: A goal's priority (higher first); strict: ``true`` is not a priority.
Priority = Annotated[int, Field(ge=-1000, le=1000), BeforeValidator(json_number)]


class SessionStatus(StrEnum):
    active = "active"
    completed = "completed"
    failed = "failed"
    abandoned = "abandoned"


class GoalStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class SessionIn(Strict):
    """``POST /v1/sessions``. ``id`` is optional; the server makes a ULID when absent."""

    id: SessionId | None = None
    parent_id: ClientId | None = None
    user_id: ShortText | None = None
    agent: ShortText | None = None
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    tags: Tags = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class SessionPatch(Strict):
    """``PATCH /v1/sessions/{id}``: only the fields sent change; ``metadata`` is merged
    as a JSON Merge Patch (RFC 7386), the others replaced."""

    user_id: ShortText | None = None
    agent: ShortText | None = None
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    phase: ShortText | None = None
    current_step: Annotated[str, StringConstraints(max_length=1000)] | None = None
    tags: Tags | None = None
    metadata: Metadata | None = None


class SessionEnd(Strict):
    """``POST /v1/sessions/{id}/end``."""

    status: SessionStatus = SessionStatus.completed
    summary: Annotated[str, StringConstraints(max_length=20000)] | None = None


class AgentSpawnIn(Strict):
    """``POST /v1/sessions/{id}/agents``: a child session whose ``parent_id`` is the path id."""

    id: SessionId | None = None
    agent: ShortText | None = None
    user_id: ShortText | None = None
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    tags: Tags = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class GoalIn(Strict):
    """``POST /v1/sessions/{id}/goals``."""

    id: ClientId | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    priority: Priority = 0
    status: GoalStatus = GoalStatus.open
    progress: Fraction = 0.0
    metadata: Metadata = Field(default_factory=dict)


class GoalPatch(Strict):
    """``PATCH /v1/sessions/{id}/goals/{goal_id}``: only the fields sent change; none of
    them may be ``null`` (a goal always has each of them)."""

    description: Annotated[str, StringConstraints(min_length=1, max_length=5000)] | Unset = None
    priority: Priority | Unset = None
    status: GoalStatus | Unset = None
    progress: Fraction | Unset = None
    metadata: Metadata | Unset = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value

"""Session, goal and sub-agent request records (ARCHITECTURE §2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from tether.domain.common import ClientId, Metadata, ShortText, Strict, Tags


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

    id: ClientId | None = None
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

    id: ClientId | None = None
    agent: ShortText | None = None
    user_id: ShortText | None = None
    title: Annotated[str, StringConstraints(max_length=1000)] | None = None
    tags: Tags = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class GoalIn(Strict):
    """``POST /v1/sessions/{id}/goals``."""

    id: ClientId | None = None
    description: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    priority: int = Field(default=0, ge=-1000, le=1000)
    status: GoalStatus = GoalStatus.open
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    metadata: Metadata = Field(default_factory=dict)


class GoalPatch(Strict):
    """``PATCH /v1/sessions/{id}/goals/{goal_id}``: only the fields sent change."""

    description: Annotated[str, StringConstraints(min_length=1, max_length=5000)] | None = None
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    status: GoalStatus | None = None
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    metadata: Metadata | None = None

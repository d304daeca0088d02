"""Typed records and their rules (pydantic). No I/O here."""

from tether.domain.events import EVENT_KINDS, EventIn, EventKind, EventsIn
from tether.domain.sessions import (
    AgentSpawnIn,
    GoalIn,
    GoalPatch,
    GoalStatus,
    SessionEnd,
    SessionIn,
    SessionPatch,
    SessionStatus,
)

__all__ = [
    "EVENT_KINDS",
    "AgentSpawnIn",
    "EventIn",
    "EventKind",
    "EventsIn",
    "GoalIn",
    "GoalPatch",
    "GoalStatus",
    "SessionEnd",
    "SessionIn",
    "SessionPatch",
    "SessionStatus",
]

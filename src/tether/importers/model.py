"""The normalised shape every import format is read into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    """One utterance. ``at`` is its time (or its session's, when only that is known)."""

    id: str
    speaker: str
    text: str
    at: datetime | None = None
    role: str = "user"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conversation:
    """One session of turns, imported as a Tether session and, turn by turn, as memories.

    ``session_id`` must be a valid Tether session id (no ``/``); ``namespace`` is the memory
    namespace its turns go to (several sessions of one conversation share it).
    """

    session_id: str
    namespace: str
    turns: list[Turn]
    agent: str | None = None
    user_id: str | None = None
    title: str | None = None
    started_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

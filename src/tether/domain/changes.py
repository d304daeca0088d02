"""Change records: what a committed write tells the rest of the system (ARCHITECTURE §9).

Every committed write yields change records; the bus carries them to other replicas and
to live subscribers, and derived state (keyword postings, the vector index, caches, live
streams) follows them by cursor. A change is a notification with a cursor, not the source
of truth: a subscriber that misses one (a dropped connection, an overflow) reads the gap
back from the store by cursor, so nothing here needs delivery guarantees of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["MEMORY_TOPIC", "METRICS_TOPIC", "SESSIONS_TOPIC", "Change", "session_topic"]

#: The memory change feed (cursor: the global ``lsn``).
MEMORY_TOPIC: Final = "memory"
#: Session summaries for live lists: created, updated, ended (cursor: the session's
#: ``updated_at`` in ms; a list reads its gap back from the store by time).
SESSIONS_TOPIC: Final = "sessions"
#: Each replica's activity report, once a second per tenant (cursor: ms; not a feed, no
#: backlog: services/live_metrics.py).
METRICS_TOPIC: Final = "metrics"


def session_topic(session_id: str) -> str:
    """The topic of one session's events (cursor: the event ``seq``)."""
    return f"session:{session_id}"


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change.

    Attributes:
        topic: What it belongs to: :data:`MEMORY_TOPIC`, :data:`SESSIONS_TOPIC` or
            :func:`session_topic`.
        tenant_id: Whose data it is; a subscriber only ever receives its own tenant's.
        kind: What happened, e.g. ``"event"``, ``"session.updated"``, ``"memory.add"``.
        cursor: Where a subscriber resumes from in the topic (``seq``, ``lsn``, ms).
        data: A small JSON-ready payload (a summary or the record itself), or empty.
    """

    topic: str
    tenant_id: str
    kind: str
    cursor: int
    data: Mapping[str, Any] = field(default_factory=dict)

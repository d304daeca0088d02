"""List and search filters: plain values the services build and every store applies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MemoryFilter", "SessionFilter"]


@dataclass(slots=True)
class SessionFilter:
    """``GET /v1/sessions`` filters (all optional; ANDed). ``since_ms``/``until_ms`` bound
    ``created_at`` in ms since the epoch (``until`` exclusive). ``words``: each must occur,
    case-insensitively, in the session's id, title, agent or user id."""

    status: str | None = None
    agent: str | None = None
    user_id: str | None = None
    tag: str | None = None
    parent_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    words: Sequence[str] = ()


@dataclass(slots=True)
class MemoryFilter:
    """Filters shared by browse, export and search (all optional; ANDed).

    Attributes:
        namespaces: Any of these namespaces (empty: all of the tenant's).
        namespace_prefixes: The namespace starts with any of these (empty: no limit): a
            namespace-limited API key's reach, applied by the service.
        kinds: Any of these kinds.
        tags: All of these tags.
        metadata: Top-level metadata key equals the scalar (``None``: JSON null).
        since_ms / until_ms: Inclusive bounds on ``occurred_at`` (``created_at`` when the
            memory has no event time), ms since the epoch.
        session: ``source_session_id`` equals.
        q: Case-insensitive substring of the text (browse only).
        include_expired: Also memories whose ``expires_at`` has passed.
        include_deleted: Also tombstones.
    """

    namespaces: Sequence[str] = ()
    namespace_prefixes: Sequence[str] = ()
    kinds: Sequence[str] = ()
    tags: Sequence[str] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    since_ms: int | None = None
    until_ms: int | None = None
    session: str | None = None
    q: str | None = None
    include_expired: bool = False
    include_deleted: bool = False

    @property
    def selective(self) -> bool:
        """Whether it can reject many of an index's candidates beyond namespace and
        expiry (recall then over-fetches by a factor rather than a margin)."""
        return bool(self.kinds or self.tags or self.metadata or self.session or self.q) or (
            self.since_ms is not None or self.until_ms is not None
        )

"""tether-client: the Python SDK for Tether.

Logging (sessions, events, spans, sub-agents, ``end``) is queued in memory and sent
by background threads in batches; it never blocks the agent and never raises for
network reasons. Unsent batches wait in a SQLite spool file and are replayed, with
their idempotency keys, when the server answers again (also after a restart).
Direct calls (state, goals, memory, and the reads: sessions, events, diagnostics,
analytics, stats, memory administration) raise a :class:`TetherError` subclass.
See ``docs/sdk.md``.
"""

from __future__ import annotations

from ._api import UNSET, RecallResult, StateSnapshot
from ._batcher import BatcherStats
from ._breaker import BreakerState, CircuitBreaker
from ._client import AsyncClient, Client
from ._config import Config, default_spool_dir
from ._deadletter import DeadLetter
from ._errors import (
    APIError,
    AuthenticationError,
    CircuitOpenError,
    ClientClosedError,
    ConfigError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    ServerUnreachableError,
    TetherError,
    ValidationError,
)
from ._ids import new_id
from ._reads import EventQuery, Page
from ._session import (
    EVENT_KINDS,
    AsyncSession,
    BaseSession,
    Session,
    Span,
    current_session,
    current_span,
)
from ._tracing import traced

__version__ = "0.1.0"

__all__ = [
    "EVENT_KINDS",
    "UNSET",
    "APIError",
    "AsyncClient",
    "AsyncSession",
    "AuthenticationError",
    "BaseSession",
    "BatcherStats",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "ClientClosedError",
    "Config",
    "ConfigError",
    "ConflictError",
    "DeadLetter",
    "EventQuery",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "RateLimitedError",
    "RecallResult",
    "ServerError",
    "ServerUnreachableError",
    "Session",
    "Span",
    "StateSnapshot",
    "TetherError",
    "ValidationError",
    "__version__",
    "current_session",
    "current_span",
    "default_spool_dir",
    "new_id",
    "traced",
]

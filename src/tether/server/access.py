"""Who may call which route: the scope each operation needs, checked for every route in
one place (:func:`authorize`, called by FastAPI's route class and by the fast lane).

``None`` means public (health checks). An operation missing from :data:`ACCESS` needs
``admin`` (fail closed), and a test fails on it. Scopes are ordered (read < write <
admin). Another tenant's resources are never reached at all: every store call is
scoped by the caller's tenant, so they answer 404, not 403.

Finer rules in the services (``RequestContext.require``): a purge and an export of every namespace
need ``admin``; a key limited to namespace prefixes reaches only memories under them.
"""

from __future__ import annotations

from typing import Final

from starlette.types import Scope as ASGIScope

from tether.domain.keys import Scope
from tether.errors import Unauthorized
from tether.services.context import RequestContext

__all__ = ["ACCESS", "CONTEXT_KEY", "authorize", "needs_key"]

#: ASGI scope key of the caller's :class:`RequestContext` (``None``: no key), set by
#: :class:`tether.server.auth.AuthMiddleware`.
CONTEXT_KEY: Final = "tether.context"

R, W, A = Scope.read, Scope.write, Scope.admin

ACCESS: Final[dict[str, Scope | None]] = {
    "health.alive": None,
    "health.ready": None,
    "dashboard.index": None,  # static files, no tenant data (routes/dashboard.py)
    "dashboard.asset": None,
    "metrics.scrape": None,  # its own token (TETHER_METRICS_TOKEN; server/metrics.py)
    "health.deps": R,
    "stats.get": R,
    "sessions.create": W,
    "sessions.list": R,
    "sessions.get": R,
    "sessions.update": W,
    "sessions.delete": W,
    "sessions.end": W,
    "sessions.state.get": R,
    "sessions.state.versions": R,
    "sessions.state.patch": W,
    "sessions.goals.create": W,
    "sessions.goals.update": W,
    "sessions.agents.spawn": W,
    "sessions.stream": R,
    "sessions.list.stream": R,
    "events.append": W,
    "events.list": R,
    "events.batch": W,
    "events.query": R,
    "sessions.diagnostics": R,
    "diagnostics.get": R,
    "analytics.tools": R,
    "analytics.timeseries": R,
    "analytics.anomalies": R,
    "memories.create": W,
    "memories.batch": W,
    "memories.list": R,
    "memories.get": R,
    "memories.update": W,
    "memories.delete": W,  # a purge needs admin (the route checks)
    "memories.history": R,
    "memories.search": R,
    "memories.export": R,  # every namespace at once needs admin (the route checks)
    "memories.import": W,
    "memory.changes": R,
    "memory.changes.stream": R,
    "memory.stats": R,
    "memory.namespaces": R,
    "admin.outbox.list": A,
    "admin.outbox.replay": A,
    "admin.memory.reindex": A,
    "admin.keys.create": A,
    "admin.keys.list": A,
    "admin.keys.revoke": A,
    "admin.audit.list": A,
    "admin.prices.list": A,
    "admin.prices.put": A,
    "admin.prices.delete": A,
}


def needs_key(operation_id: str) -> bool:
    """True unless the operation is public (an unknown one needs a key: fail closed)."""
    return ACCESS.get(operation_id, Scope.admin) is not None


def authorize(scope: ASGIScope, operation_id: str | None) -> RequestContext | None:
    """Check the caller may call ``operation_id``; its context (``None`` for a public
    route called without a key).

    Raises:
        Unauthorized: the route needs a key and none was given (and this is not local
            mode on loopback).
        Forbidden: the key's scope is below the route's.
    """
    need = ACCESS.get(operation_id or "", Scope.admin)
    ctx: RequestContext | None = scope.get(CONTEXT_KEY)
    if need is None:
        return ctx
    if ctx is None:
        raise Unauthorized(
            "an API key is required: send Authorization: Bearer tk_... "
            "(create one with `tether keys create`)"
        )
    ctx.require(need)
    return ctx

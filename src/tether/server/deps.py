"""Request dependencies: the services bundle and the caller's context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from tether.config import Settings
from tether.server.envelope import correlation_id
from tether.services import EventService, RequestContext, SessionService
from tether.services.memory import MemoryService
from tether.store.sqlite import SQLiteStore

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Services:
    """Everything a route may call, built once per app by :func:`create_app`.

    ``checks`` are extra readiness probes (e.g. the embedder); each returns
    ``{name, status: "ok"|"down"|..., latency_ms, detail}``.
    """

    settings: Settings
    store: SQLiteStore
    sessions: SessionService
    events: EventService
    memory: MemoryService
    checks: list[HealthCheck] = field(default_factory=list)

    async def extra_checks(self) -> list[dict[str, Any]]:
        return [await check() for check in self.checks]


def services_of(request: Request) -> Services:
    """The app's services (plain function for hot routes that skip dependency injection)."""
    services: Services = request.app.state.services
    return services


def context_of(request: Request) -> RequestContext:
    """The caller's tenant (``default`` in local mode) and correlation id."""
    return RequestContext(correlation_id=correlation_id(request.scope))


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_context(request: Request) -> RequestContext:
    return context_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
ContextDep = Annotated[RequestContext, Depends(get_context)]

"""Request dependencies: the services bundle and the caller's context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from tether.container import Container
from tether.domain.keys import Scope
from tether.server.access import CONTEXT_KEY
from tether.server.envelope import correlation_id
from tether.services import RequestContext

#: What routes reach: the process's :class:`~tether.container.Container`.
Services = Container


def services_of(request: Request) -> Services:
    """The app's services (plain function for hot routes that skip dependency injection)."""
    services: Services = request.app.state.services
    return services


def context_of(request: Request) -> RequestContext:
    """The caller, as :func:`tether.server.access.authorize` admitted it for this route
    (tenant, key, scope, namespace prefixes, correlation id)."""
    ctx: RequestContext | None = request.scope.get(CONTEXT_KEY)
    if ctx is None:  # a public route called without a key: no tenant's data to reach
        return RequestContext(
            tenant_id="", correlation_id=correlation_id(request.scope), scope=Scope.read
        )
    return ctx


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_context(request: Request) -> RequestContext:
    return context_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
ContextDep = Annotated[RequestContext, Depends(get_context)]

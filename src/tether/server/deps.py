"""Request dependencies: the services bundle and the caller's context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from tether.container import Container
from tether.server.envelope import correlation_id
from tether.services import RequestContext

#: What routes reach: the process's :class:`~tether.container.Container`.
Services = Container


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

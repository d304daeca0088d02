"""Who is asking: the tenant (decided by the server, never by the client) and the
request's correlation id."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class RequestContext:
    tenant_id: str = DEFAULT_TENANT
    correlation_id: str | None = None

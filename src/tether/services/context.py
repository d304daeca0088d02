"""Who is asking: the tenant (decided by the server from the API key, never by the
client), the key and its scope, the namespace prefixes the key is limited to, and the
request's correlation id."""

from __future__ import annotations

from dataclasses import dataclass

from tether.domain.keys import Scope, scope_allows, under_prefixes
from tether.errors import Forbidden

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The caller of one request.

    Attributes:
        tenant_id: Every store call is scoped by it.
        key_id: The API key's id; ``None`` in local mode (no keys) and for the CLI.
        scope: What the key may do (local mode: ``admin``).
        namespaces: Prefixes the key's memory calls are limited to; empty: every namespace.
    """

    tenant_id: str = DEFAULT_TENANT
    correlation_id: str | None = None
    key_id: str | None = None
    scope: Scope = Scope.admin
    namespaces: tuple[str, ...] = ()

    def require(self, need: Scope) -> None:
        """Raise :class:`~tether.errors.Forbidden` unless this caller's scope allows
        ``need`` (read < write < admin)."""
        if not scope_allows(self.scope, need):
            raise Forbidden(
                f"this needs a key of scope {need.value}; this key's scope is {self.scope.value}",
                details={"needed": need.value, "scope": self.scope.value},
            )

    def may_use(self, namespace: str) -> bool:
        """True when the key may read and write memories of ``namespace``."""
        return under_prefixes(namespace, self.namespaces)

"""API keys and the audit log: creating, listing and revoking keys, authenticating a
presented key, and recording who did what.

Authentication reads a key from the store at most every ``KEY_CACHE_S`` per replica, so a
key revoked (or expired) on any replica stops working everywhere within that time; the
replica that revoked it forgets it at once. Whether the server is in local mode (no live
key anywhere and ``TETHER_REQUIRE_AUTH`` off) is re-read as often.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tether.config import Settings
from tether.domain.keys import KeyIn, Scope, new_key, parse_key, secret_matches
from tether.domain.records import ApiKey, AuditEntry, NewApiKey
from tether.domain.time import iso_ms, now_ms, to_ms
from tether.errors import Unauthorized
from tether.services.context import DEFAULT_TENANT, RequestContext
from tether.store.base import Store

__all__ = ["AuditLog", "Authenticator", "KeyService"]

log = logging.getLogger("tether.services.keys")

#: How long (s) a replica trusts what it read of a key (or of whether any key exists):
#: the most a revocation elsewhere takes to reach it.
KEY_CACHE_S: Final = 0.5
#: Last-used times and failure counts are written in batches this often (s).
FLUSH_EVERY_S: Final = 5.0
#: Failed authentications of one key (or of unknown keys) within a flush interval that
#: make an ``auth.failed`` audit entry.
FAILURE_BURST: Final = 5
#: Audit entries of keys that are not ours (no tenant is known) go to this tenant name,
#: which no key can have (tenant names are letters, digits and ``._:@+-=``).
UNKNOWN_TENANT: Final = "*"


class AuditLog:
    """Appends audit entries (awaited: an admin action is recorded before it answers)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self,
        ctx: RequestContext | None,
        action: str,
        *,
        tenant_id: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record ``action`` by the caller (``ctx``; ``None`` for the CLI) in its tenant
        (or ``tenant_id``)."""
        await self.store.append_audit(
            [
                {
                    "tenant_id": tenant_id or (ctx.tenant_id if ctx else DEFAULT_TENANT),
                    "at": now_ms(),
                    "key_id": ctx.key_id if ctx else None,
                    "action": action,
                    "target": target,
                    "detail": dict(detail) if detail is not None else None,
                    "correlation_id": ctx.correlation_id if ctx else None,
                }
            ]
        )

    async def page(
        self, tenant_id: str | None, *, after: int, limit: int
    ) -> tuple[list[AuditEntry], int | None]:
        """A tenant's entries (``None``: every tenant's), oldest first."""
        return await self.store.audit_page(tenant_id, after=after, limit=limit)


@dataclass(slots=True)
class _Cached:
    at: float  # time.monotonic() of the read
    key: ApiKey | None
    secret_hash: str | None


class Authenticator:
    """Turns a presented ``Authorization: Bearer`` key into the caller's context."""

    def __init__(self, store: Store, settings: Settings, audit: AuditLog) -> None:
        self.store = store
        self.require_auth = settings.require_auth
        self.audit = audit
        self._keys: dict[str, _Cached] = {}
        self._live: tuple[float, int] | None = None
        self._used: dict[str, int] = {}
        self._failures: dict[tuple[str, str | None], int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="tether-keys-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def local_mode(self) -> bool:
        """No key is live anywhere and auth is not required: the one ``default`` tenant,
        every scope, for loopback callers."""
        if self.require_auth:
            return False
        now = time.monotonic()
        if self._live is None or now - self._live[0] >= KEY_CACHE_S:
            self._live = (now, await self.store.live_key_count(now=now_ms()))
        return self._live[1] == 0

    async def authenticate(self, presented: str, *, correlation_id: str | None) -> RequestContext:
        """The context of a presented key.

        Raises:
            Unauthorized: not a Tether key, unknown, wrong secret, revoked or expired.
        """
        parsed = parse_key(presented)
        if parsed is None:
            self._failed(None, None)
            raise Unauthorized("the API key is not valid")
        cached = self._keys.get(parsed.key_id)
        now = time.monotonic()
        if cached is None or now - cached.at >= KEY_CACHE_S:
            found = await self.store.find_key(parsed.key_id)
            cached = _Cached(now, *(found or (None, None)))
            self._keys[parsed.key_id] = cached
        key = cached.key
        if key is None or cached.secret_hash is None:
            self._failed(None, None)
            raise Unauthorized("the API key is not valid")
        if not secret_matches(parsed.secret, cached.secret_hash):
            self._failed(key.tenant_id, key.id)
            raise Unauthorized("the API key is not valid")
        ms = now_ms()
        if key.revoked_at is not None:
            self._failed(key.tenant_id, key.id)
            raise Unauthorized("the API key was revoked")
        if key.expires_at is not None and iso_ms(key.expires_at) <= ms:
            self._failed(key.tenant_id, key.id)
            raise Unauthorized("the API key has expired")
        self._used[key.id] = ms
        return RequestContext(
            tenant_id=key.tenant_id,
            correlation_id=correlation_id,
            key_id=key.id,
            scope=Scope(key.scope),
            namespaces=tuple(key.namespaces),
        )

    def forget(self, key_id: str) -> None:
        """Drop what this replica knows of a key (it was just revoked here)."""
        self._keys.pop(key_id, None)
        self._live = None

    def _failed(self, tenant_id: str | None, key_id: str | None) -> None:
        slot = (tenant_id or UNKNOWN_TENANT, key_id)
        self._failures[slot] = self._failures.get(slot, 0) + 1

    async def flush(self) -> None:
        """Write last-used times, and an ``auth.failed`` entry per burst of failures; drop
        cached reads that are stale anyway (so made-up key ids cannot grow the cache)."""
        now = time.monotonic()
        self._keys = {k: c for k, c in self._keys.items() if now - c.at < KEY_CACHE_S}
        used, self._used = self._used, {}
        failures, self._failures = self._failures, {}
        try:
            await self.store.touch_keys(used)
            for (tenant_id, key_id), count in failures.items():
                if count >= FAILURE_BURST:
                    await self.audit.record(
                        None,
                        "auth.failed",
                        tenant_id=tenant_id,
                        target=key_id,
                        detail={"failures": count, "within_s": FLUSH_EVERY_S},
                    )
        except Exception:  # the store is down: last-used times are statistics
            log.warning("could not record key use and failed authentications", exc_info=True)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            await self.flush()


class KeyService:
    """Creating, listing and revoking keys (the HTTP admin routes and ``tether keys``)."""

    def __init__(self, store: Store, audit: AuditLog, authenticator: Authenticator) -> None:
        self.store = store
        self.audit = audit
        self.authenticator = authenticator

    async def create(self, ctx: RequestContext | None, tenant_id: str, body: KeyIn) -> NewApiKey:
        """A new key of ``tenant_id``; the whole key is in the result, and nowhere else."""
        key_id, digest, whole = new_key()
        now = now_ms()
        key = await self.store.create_key(
            {
                "id": key_id,
                "tenant_id": tenant_id,
                "name": body.name,
                "scope": body.scope.value,
                "namespaces": list(getattr(body, "namespaces", ())),
                "secret_hash": digest,
                "created_at": now,
                "expires_at": to_ms(body.expires_at),
                "created_by": ctx.key_id if ctx else None,
            }
        )
        self.authenticator.forget(key_id)
        await self.audit.record(
            ctx,
            "key.created",
            tenant_id=tenant_id,
            target=key_id,
            detail={"scope": key.scope, "namespaces": key.namespaces, "name": key.name},
        )
        return NewApiKey(key=key, secret=whole)

    async def list(self, tenant_id: str | None) -> list[ApiKey]:
        return await self.store.list_keys(tenant_id)

    async def revoke(
        self, ctx: RequestContext | None, tenant_id: str | None, key_id: str
    ) -> ApiKey:
        """Revoke a key (of ``tenant_id``; ``None``: any, for the CLI).

        Raises:
            NotFound: no such key (of that tenant).
        """
        key = await self.store.revoke_key(tenant_id, key_id, now=now_ms())
        self.authenticator.forget(key_id)
        await self.audit.record(ctx, "key.revoked", tenant_id=key.tenant_id, target=key_id)
        return key

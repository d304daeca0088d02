"""Per-key rate limits: a token bucket per API key (``pyrate-limiter``'s ``TokenBucket``,
GCRA under its usual name), shared through Redis when one is configured so that N
replicas enforce one limit, else kept in this process.

A key of scope ``s`` may make ``TETHER_RATE_LIMIT_<S>`` requests per second on average
and up to ``TETHER_RATE_LIMIT_BURST_S`` seconds' worth at once (the bucket's size); a
request over it gets :class:`~tether.errors.RateLimited` with the seconds until the
bucket has a token again (HTTP 429 and ``Retry-After``). Local mode (no keys) is not
limited. If Redis cannot be reached the limit is checked in this process instead, and
that is logged: a limiter outage never refuses a request.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from inspect import isawaitable
from typing import Any, Final

from pyrate_limiter import InMemoryStateStore, Rate, RedisStateStore, TokenBucket

from tether.config import Settings
from tether.domain.keys import Scope
from tether.errors import RateLimited

__all__ = ["RateLimiter"]

log = logging.getLogger("tether.services.ratelimit")

#: Local buckets kept (least recently used dropped first): one per key seen lately.
_MAX_LOCAL: Final = 10_000
_ALGORITHM: Final = TokenBucket()
_PREFIX: Final = "tether:ratelimit:"


class RateLimiter:
    """Checks one request of a key against its scope's bucket.

    Args:
        settings: the per-scope rates (requests per second; 0: unlimited) and burst.
        redis: an async redis client shared by the replicas, or ``None``.
    """

    def __init__(self, settings: Settings, redis: Any | None = None) -> None:
        per_s = {
            Scope.read: settings.rate_limit_read,
            Scope.write: settings.rate_limit_write,
            Scope.admin: settings.rate_limit_admin,
        }
        self._rates = {
            scope: [Rate(n, 1000, burst=max(1, round(n * settings.rate_limit_burst_s)))]
            for scope, n in per_s.items()
            if n > 0
        }
        self._redis = redis
        self._local: OrderedDict[str, InMemoryStateStore] = OrderedDict()
        self._warned = False

    async def check(self, key_id: str, scope: Scope) -> None:
        """Spend one token of the key's bucket.

        Raises:
            RateLimited: the bucket is empty; ``retry_after_s`` says for how long.
        """
        rates = self._rates.get(scope)
        if rates is None:
            return
        now = int(time.time() * 1000)
        decision: Any = None
        if self._redis is not None:
            try:
                store: Any = RedisStateStore(self._redis, f"{_PREFIX}{key_id}", ttl_ms=60_000)
                decision = store.check(_ALGORITHM, rates, now, 1)
                if isawaitable(decision):
                    decision = await decision
            except Exception:
                if not self._warned:
                    log.warning("rate limits fall back to this process", exc_info=True)
                    self._warned = True
                decision = None
        if decision is None:
            local: Any = self._local_store(key_id)  # pyrate-limiter's check() is untyped
            decision = local.check(_ALGORITHM, rates, now, 1)
        if not decision.allowed:
            wait_ms = decision.retry_after_ms or 1000
            raise RateLimited(
                f"rate limit of the {scope.value} scope reached; retry after {wait_ms} ms",
                retry_after_s=wait_ms / 1000,
            )

    def _local_store(self, key_id: str) -> InMemoryStateStore:
        store = self._local.get(key_id)
        if store is None:
            store = self._local[key_id] = InMemoryStateStore()
            if len(self._local) > _MAX_LOCAL:
                self._local.popitem(last=False)
        else:
            self._local.move_to_end(key_id)
        return store

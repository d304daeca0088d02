"""The change bus: committed changes fanned out to live subscribers (see ``docs/bus.md``).

``build_bus(None)`` is the in-process bus of the embedded default; ``build_bus(url)`` the
Redis one (``TETHER_REDIS_URL``). The Redis backend, and so the ``redis`` package, is
imported only when a URL is given.
"""

from __future__ import annotations

from tether.bus.base import (
    DEFAULT_MAX_QUEUE,
    Bus,
    BusGap,
    BusMissed,
    BusOverflow,
    Subscription,
)
from tether.bus.local import LocalBus

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "Bus",
    "BusGap",
    "BusMissed",
    "BusOverflow",
    "LocalBus",
    "Subscription",
    "build_bus",
]


def build_bus(redis_url: str | None) -> Bus:
    """The bus for a deployment: Redis pub/sub when ``redis_url`` is set, else in-process.

    Not started: the caller awaits :meth:`Bus.start` (and later :meth:`Bus.close`).

    Raises:
        ValueError: ``redis_url`` is not a ``redis://``, ``rediss://`` or ``unix://`` URL.
    """
    if not redis_url:
        return LocalBus()
    from tether.bus.redis import RedisBus  # lazy: the embedded default never imports redis

    return RedisBus(redis_url)

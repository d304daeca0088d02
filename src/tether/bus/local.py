"""The in-process bus: the embedded default (one process, no Redis).

Publishing appends each change to the queue of every subscription of its topic, on the
event loop's thread, and returns: no task, no thread, no await on a consumer. A consumer
that falls ``max_queue`` changes behind is dropped (:class:`~tether.bus.base.BusOverflow`).
Nothing is lost otherwise, so this backend never raises :class:`~tether.bus.base.BusGap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.bus.base import Bus
from tether.domain.changes import Change

__all__ = ["LocalBus"]


class LocalBus(Bus):
    """Fan-out to subscriptions in this process. All methods run on the event loop."""

    name = "local"

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """End every subscription's iteration; later publishes are dropped."""
        self._closed = True
        self._end_all()

    def publish_nowait(self, changes: Sequence[Change]) -> None:
        """Queue each change on its topic's subscriptions, in order; never raises."""
        if self._closed:
            return
        for change in changes:
            self._fan_out(change)

    async def check(self) -> dict[str, Any]:
        """Always ``ok``: there is nothing to be down."""
        return {"name": "bus", "kind": self.name, "status": "ok", "latency_ms": 0.0, "detail": None}

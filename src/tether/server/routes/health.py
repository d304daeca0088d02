"""Health, readiness, dependency status and stats."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from tether import __version__
from tether.domain.records import Stats
from tether.server.bodies import JSONRoute
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import fail, ok
from tether.server.shapes import Alive, Dependencies, Ready, returns
from tether.services.doctor import backlog_check, disk_check, with_hint

router = APIRouter(tags=["health"], route_class=JSONRoute)


async def _store_check(svc: ServicesDep) -> dict[str, Any]:
    """``{name: "store", kind, status: "ok"|"down", latency_ms, detail}``.

    ``down`` while the last write failed for a storage reason (disk full, read-only
    filesystem...; ``detail`` names it) and no write has succeeded since, or when a read or
    the write probe fails. See :meth:`tether.store.base.Store.check`: bounded in time, never raises.
    """
    t0 = time.perf_counter()
    health = await svc.store.check()
    return with_hint(
        {
            "name": "store",
            "kind": svc.store.backend,
            "status": health.status,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
            "detail": health.detail,
        }
    )


@router.get("/healthz", operation_id="health.alive", responses=returns(Alive))
async def healthz(request: Request) -> Response:
    """The process is up and serving."""
    return ok(request, {"status": "ok", "version": __version__})


@router.get("/readyz", operation_id="health.ready", responses=returns(Ready))
async def readyz(request: Request, svc: ServicesDep) -> Response:
    """503 only when the store is not ready; otherwise 200 with ``status`` ``"ready"``, or
    ``"degraded"`` when another dependency (the embedder) is ``down``.

    Writes and keyword search work without the embedder (ARCHITECTURE §3), so a load
    balancer must not pull every replica because a shared embeddings API is down. The
    embedder check answers from its last known state and never waits on the embedder
    (see :meth:`MemoryService.embedder_check`).
    """
    store = await _store_check(svc)
    checks = [store, *(await svc.checks())]
    if store["status"] != "ok":
        return fail(request.scope, 503, "unavailable", "not ready", {"checks": checks})
    degraded = any(c["status"] == "down" for c in checks)
    return ok(request, {"status": "degraded" if degraded else "ready", "checks": checks})


@router.get("/v1/deps", operation_id="health.deps", responses=returns(Dependencies))
async def deps(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Each dependency's status (``ok``, ``degraded``, ``down``, ``unknown``), probe
    latency (ms), detail and a fix ``hint`` when not ``ok``: the store, the bus, the
    embedder (from its last known state, without waiting on it, as ``/readyz``), the
    caller's tenant's embedding backlog (``degraded`` with dead letters), and the free
    space of the data directory's disk. What ``tether doctor`` prints."""
    checks = [await _store_check(svc)]
    checks.extend(await svc.checks())
    t0 = time.perf_counter()
    try:
        stats = await svc.store.memory_stats(ctx.tenant_id)
    except Exception as exc:  # the store check above already says why
        checks.append(
            {
                "name": "index_backlog",
                "kind": "outbox",
                "status": "unknown",
                "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
                "detail": f"{type(exc).__name__}: {exc}",
                "hint": "the store did not answer: see the store check",
            }
        )
    else:
        checks.append(backlog_check(stats, (time.perf_counter() - t0) * 1000))
    checks.append(disk_check(svc.settings.home))
    return ok(request, {"dependencies": checks})


@router.get("/v1/stats", operation_id="stats.get", responses=returns(Stats))
async def stats(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Sessions by status, events by kind, and counts over the last 24 h."""
    return ok(request, await svc.events.stats(ctx))

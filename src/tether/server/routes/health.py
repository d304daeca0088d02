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

router = APIRouter(tags=["health"], route_class=JSONRoute)


async def _store_check(svc: ServicesDep) -> dict[str, Any]:
    """``{name: "store", kind, status: "ok"|"down", latency_ms, detail}``.

    ``down`` while the last write failed for a storage reason (disk full, read-only
    filesystem...; ``detail`` names it) and no write has succeeded since, or when a read or
    the write probe fails. See :meth:`tether.store.base.Store.check`: bounded in time, never raises.
    """
    t0 = time.perf_counter()
    health = await svc.store.check()
    return {
        "name": "store",
        "kind": svc.store.backend,
        "status": health.status,
        "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
        "detail": health.detail,
    }


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
async def deps(request: Request, svc: ServicesDep) -> Response:
    """Each dependency's status and probe latency (ms); the embedder's from its last known
    state, without waiting on it (as ``/readyz``)."""
    checks = [await _store_check(svc)]
    checks.extend(await svc.checks())
    return ok(request, {"dependencies": checks})


@router.get("/v1/stats", operation_id="stats.get", responses=returns(Stats))
async def stats(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Sessions by status, events by kind, and counts over the last 24 h."""
    return ok(request, await svc.events.stats(ctx))

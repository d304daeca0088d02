"""Health, readiness, dependency status and stats."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from tether import __version__
from tether.server.bodies import JSONRoute
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import fail, ok

router = APIRouter(tags=["health"], route_class=JSONRoute)


async def _store_check(svc: ServicesDep) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        await svc.store.read(lambda c: c.execute("SELECT 1").fetchone())
        status = "ok"
        detail = None
    except Exception as exc:  # reported, not raised: this is the health endpoint
        status = "down"
        detail = str(exc)
    return {
        "name": "store",
        "kind": "sqlite",
        "status": status,
        "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
        "detail": detail,
    }


@router.get("/healthz", operation_id="health.alive")
async def healthz(request: Request) -> Response:
    """The process is up and serving."""
    return ok(request, {"status": "ok", "version": __version__})


@router.get("/readyz", operation_id="health.ready")
async def readyz(request: Request, svc: ServicesDep) -> Response:
    """Ready when every dependency is: 200, else 503 with the failing checks."""
    checks = [await _store_check(svc)]
    checks.extend(await svc.extra_checks())
    if all(c["status"] == "ok" for c in checks):
        return ok(request, {"status": "ready", "checks": checks})
    return fail(request.scope, 503, "unavailable", "not ready", {"checks": checks})


@router.get("/v1/deps", operation_id="health.deps")
async def deps(request: Request, svc: ServicesDep) -> Response:
    """Each dependency's status and probe latency (ms)."""
    checks = [await _store_check(svc)]
    checks.extend(await svc.extra_checks())
    return ok(request, {"dependencies": checks})


@router.get("/v1/stats", operation_id="stats.get")
async def stats(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Sessions by status, events by kind, and counts over the last 24 h."""
    return ok(request, await svc.events.stats(ctx))

"""The app factory. Nothing is built at import time (CONVENTIONS §1)."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from tether import __version__
from tether.config import Settings
from tether.container import Container
from tether.server import errors
from tether.server.auth import AuthMiddleware, is_loopback
from tether.server.bodies import install_openapi
from tether.server.envelope import RequestMiddleware
from tether.server.fastlane import FastLane
from tether.server.metrics import METRICS_PATH, response_recorder
from tether.server.metrics import router as metrics_router
from tether.server.routes import (
    admin,
    analytics,
    dashboard,
    events,
    health,
    live,
    memories,
    sessions,
)

log = logging.getLogger("tether.server")

# CPython runs a young-generation collection whenever tracked allocations outnumber frees
# by 700 (its default). A batched ingest request keeps ~900 containers (parsed JSON,
# models, rows) alive per 100 events while in flight, so at 700 nearly every request
# collected, promoted its live objects and cascaded into full collections of the whole
# heap: 12 us of event-loop CPU per event, a third of all of it (in-process, gc
# callbacks, 16 concurrent 100-event requests). At 10,000 (about what one 1,000-event request keeps
# alive) collections become rare; cyclic garbage is still collected, just in bigger steps.
_GC_YOUNG_THRESHOLD = 10_000


@asynccontextmanager
async def _gc_tuned() -> AsyncIterator[None]:
    """Raise the young-generation threshold and freeze the objects built at startup.

    Freezing (``gc.freeze``, after a collection so no startup garbage is kept) moves the
    app, its modules and schemas out of the heap that full collections walk; a full
    collection of ~120k startup objects took ~90 ms of event-loop time. Both are undone
    on exit, so apps started and stopped in one process (tests) leak nothing.
    """
    previous = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *previous[1:])
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    """Build the ASGI app.

    Args:
        settings: configuration; read from ``TETHER_*`` env vars when omitted.
        container: an already-built container (tests); otherwise one is built from
            ``settings`` and started and stopped with the app.
    """
    settings = settings or Settings()
    container = container if container is not None else Container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The writer thread drops the GIL on every SQLite call and must win it back from
        # the busy event-loop thread; at CPython's default 5 ms switch interval it can wait
        # in a convoy. When the writer made one SQLite call per event row, 0.1 ms measured
        # 1.6x single-event and 1.9x batched ingest with other processes loading the box
        # (no difference on a quiet box). Since rows go in as multi-row statements, 0.1 ms
        # and 5 ms were within noise of each other, loaded or quiet; 0.1 ms stays.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        await container.start()
        try:
            await _refuse_open_local_mode(settings, container)
            async with _gc_tuned():
                yield
        finally:
            await container.stop()
            sys.setswitchinterval(previous)

    app = FastAPI(
        title="Tether",
        version=__version__,
        description="Self-hosted backend for AI agents: sessions, events, state and memory.",
        lifespan=lifespan,
    )
    app.state.services = container
    errors.install(app)
    # Hot ingest routes first: FastAPI matches included routers in order.
    # live before sessions: GET /v1/sessions/stream must not be read as a session id.
    for module in (events, memories, live, analytics, sessions, health, admin, dashboard):
        app.include_router(module.router)
    app.include_router(metrics_router)
    install_openapi(app, [*events.BODY_MODELS, *memories.BODY_MODELS, *admin.BODY_MODELS])
    # The request pipeline, innermost first (each add_middleware wraps what is there):
    # the fast lane dispatches the hot ingest routes after everything else has run;
    # AuthMiddleware (host, origin, API key, rate limit) and CORS (when origins are set)
    # wrap it; RequestMiddleware (correlation id, timing, URL and body limits) is
    # outermost. Every route passes all of them.
    app.add_middleware(FastLane, routes=list(events.FAST_ROUTES), metrics=container.metrics)
    app.add_middleware(
        AuthMiddleware,
        authenticator=container.authenticator,
        limiter=container.limiter,
        settings=settings,
        token_paths=frozenset({METRICS_PATH}),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "X-Correlation-ID",
            ],
            expose_headers=["X-Correlation-ID", "Retry-After", "Server-Timing"],
        )
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        on_response=None if container.metrics is None else response_recorder(container.metrics),
    )
    return app


async def _refuse_open_local_mode(settings: Settings, container: Container) -> None:
    """Refuse to serve a non-loopback address in local mode (no live key, auth not
    required): anyone who can reach it could read and write everything.

    Raises:
        RuntimeError: that is the case; uvicorn then exits non-zero (code 3).
    """
    if is_loopback(settings.host) or not await container.authenticator.local_mode():
        return
    message = (
        f"refusing to serve {settings.host} without auth: create an API key "
        "(`tether keys create --tenant NAME --scope admin`) or set TETHER_REQUIRE_AUTH=true, "
        "or bind 127.0.0.1"
    )
    log.error(message)
    raise RuntimeError(message)

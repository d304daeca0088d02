"""The app factory. Nothing is built at import time (CONVENTIONS §1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tether import __version__
from tether.config import Settings
from tether.server import errors
from tether.server.deps import Services
from tether.server.envelope import RequestMiddleware
from tether.server.routes import events, health, sessions
from tether.services import EventService, SessionService
from tether.store.sqlite import SQLiteStore


def create_app(settings: Settings | None = None, *, store: SQLiteStore | None = None) -> FastAPI:
    """Build the ASGI app.

    Args:
        settings: configuration; read from ``TETHER_*`` env vars when omitted.
        store: an already-built store (tests); otherwise one is opened on
            ``settings.db_path`` at startup and closed at shutdown.
    """
    settings = settings or Settings()
    store = store or SQLiteStore(
        settings.db_path, synchronous=settings.sqlite_synchronous, readers=settings.reader_pool_size
    )
    services = Services(
        settings=settings,
        store=store,
        sessions=SessionService(store),
        events=EventService(store),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.start()
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(
        title="Tether",
        version=__version__,
        description="Self-hosted backend for AI agents: sessions, events, state and memory.",
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)
    for module in (health, sessions, events):
        app.include_router(module.router)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    return app

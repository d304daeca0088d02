"""Contract suites: one set of tests per contract, run on every backend (CONVENTIONS §3).

``store`` is parametrised over ``sqlite`` (a file per test) and ``postgres`` (a database
per test on the session's server, ``conftest.py`` at the root).
``bus`` is parametrised over ``local`` and ``redis``; the Redis case runs on one
``redis-server`` per session (``tests/services.py``) and is skipped with the reason when it
cannot start, or fails under ``TETHER_REQUIRE_SERVICES=1``. Each test gets its own channel
prefix, so tests sharing that server never hear each other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from conftest import BACKENDS, store_url

from tests.services import RedisService, ServiceUnavailable, skip_or_fail, start_redis
from tether.bus import Bus, LocalBus
from tether.store.base import Store

BusFactory = Callable[[], Bus]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def open_store(url: str) -> Store:
    """An unstarted store of the URL's backend."""
    if url.startswith("postgresql://"):
        from tether.store.postgres import PostgresStore

        return PostgresStore(url, readers=2)
    from tether.store.sqlite import SQLiteStore

    return SQLiteStore(Path(url))


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Fresh storage of the backend under test: a SQLite file or a PostgreSQL URL."""
    return store_url(request, request.param, tmp_path)


@pytest.fixture
async def store(storage: str) -> AsyncIterator[Store]:
    """A started store of the backend under test, on fresh storage."""
    s = open_store(storage)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def replica(store: Store, storage: str) -> AsyncIterator[Store]:
    """A second store on the same storage, as another replica (or, for SQLite, another
    process on the same file) would open it."""
    s = open_store(storage)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisService]:
    """A ``redis-server`` for one test, to kill and restart."""
    try:
        svc = start_redis(tmp_path)
    except ServiceUnavailable as exc:
        skip_or_fail(exc)
    yield svc
    svc.stop()


@pytest.fixture
def channel_prefix() -> str:
    return f"tether-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("redis", id="redis", marks=[pytest.mark.redis]),
    ]
)
def bus_factory(request: pytest.FixtureRequest, channel_prefix: str) -> BusFactory:
    """Makes unstarted buses of the backend under test; Redis ones share one server and
    this test's channel prefix, as replicas of one deployment do."""
    if request.param == "local":
        return LocalBus
    from tether.bus.redis import RedisBus

    url = request.getfixturevalue("redis_service").url
    return lambda: RedisBus(url, channel_prefix=channel_prefix)


@pytest.fixture
async def bus(bus_factory: BusFactory) -> AsyncIterator[Bus]:
    """A started bus of the backend under test."""
    b = bus_factory()
    await b.start()
    yield b
    await b.close()


@pytest.fixture
async def peer(bus: Bus, bus_factory: BusFactory) -> AsyncIterator[Bus]:
    """Another replica's bus: a second instance on the same Redis; for the local bus (one
    process by definition) the same instance."""
    if isinstance(bus, LocalBus):
        yield bus
        return
    other = bus_factory()
    await other.start()
    yield other
    await other.close()

"""Fixtures shared by every test tree: real ``tether serve`` processes, on SQLite and on
PostgreSQL, and the PostgreSQL and Redis services they use.

Integration tests (ours and the SDK's) talk to the server over real HTTP; the server runs
as a subprocess (:class:`tether.testing.TetherServer`) so SIGKILL drills kill exactly
what a crash would. ``server`` is parametrised over the store backends: every test that
uses it (or ``http``) runs on a SQLite file and on a PostgreSQL database (``[postgres]``,
marked ``postgres``: ``pytest -m "not postgres"`` runs the SQLite half alone).

PostgreSQL and Redis are started once per session (``tests/services.py``); where one
cannot start, its tests are skipped with the reason, or fail under
``TETHER_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.services import (
    BACKENDS,
    PostgresService,
    RedisService,
    ServiceUnavailable,
    new_database,
    skip_or_fail,
    start_postgres,
    start_redis,
    store_url,
)

from tether.testing import TetherServer

ServerFactory = Callable[..., TetherServer]


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisService]:
    """One ``redis-server`` for the session."""
    try:
        svc = start_redis(tmp_path_factory.mktemp("redis"))
    except ServiceUnavailable as exc:
        skip_or_fail(exc)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def postgres_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresService]:
    """One PostgreSQL 18 (with pgvector) for the session; tests take a database each."""
    try:
        svc = start_postgres(tmp_path_factory.mktemp("postgres"))
    except ServiceUnavailable as exc:
        skip_or_fail(exc)
    yield svc
    svc.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers on demand: ``server_factory(db=None, env=None)`` (``db``: a SQLite
    file or a store URL); all stop at teardown."""
    made: list[TetherServer] = []

    def make(db: Path | str | None = None, env: dict[str, str] | None = None) -> TetherServer:
        srv = TetherServer(db or tmp_path / "tether.db", env=env, home=tmp_path)
        made.append(srv)
        return srv.start()

    yield make
    for srv in made:
        srv.stop()


ReplicaFactory = Callable[..., list[TetherServer]]


@pytest.fixture
def replica_factory(
    postgres_service: PostgresService, redis_service: RedisService, tmp_path: Path
) -> Iterator[ReplicaFactory]:
    """Start replicas on demand: ``replica_factory(n=2, env=None)`` starts ``n`` servers
    on one new PostgreSQL database and the session's Redis (``TETHER_REDIS_URL``), each
    with its own home; all stop at teardown."""
    made: list[TetherServer] = []

    def make(n: int = 2, env: dict[str, str] | None = None) -> list[TetherServer]:
        url = new_database(postgres_service)
        env = {"TETHER_REDIS_URL": redis_service.url, **(env or {})}
        group = [TetherServer(url, home=tmp_path / f"r{len(made) + i}", env=env) for i in range(n)]
        made.extend(group)
        return [srv.start() for srv in group]

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture(params=BACKENDS)
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Fresh storage on the backend under test: a SQLite file path, or the URL of a new
    PostgreSQL database (for tests that start their own servers)."""
    return store_url(request, request.param, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TetherServer]:
    """One running server per test module and backend, on a fresh store."""
    home = tmp_path_factory.mktemp("tether")
    srv = TetherServer(store_url(request, request.param, home), home=home).start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server: TetherServer) -> Iterator[httpx.Client]:
    """An httpx client pointed at the module's server."""
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client

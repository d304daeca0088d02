"""The PostgreSQL backend of the Store contract (several replicas, one database).

:class:`PostgresStore` is the engine (:class:`~tether.store.postgres.engine.PostgresEngine`:
a group-commit writer per process, a reader pool) under the contract's methods
(:class:`~tether.store.backend.BackendStore`), with this package's SQL modules.
"""

from __future__ import annotations

from tether.store.backend import BackendStore, SqlModules
from tether.store.postgres import (
    analytics,
    copy,
    events,
    feed,
    keys,
    memories,
    outbox,
    prices,
    recall,
    sessions,
)
from tether.store.postgres.engine import PostgresEngine
from tether.store.shared.analytics import AnalyticsStore

__all__ = ["PostgresStore"]

_SQL = SqlModules(
    sessions=sessions,
    events=events,
    memories=memories,
    outbox=outbox,
    recall=recall,
    feed=feed,
    copy=copy,
    keys=keys,
    prices=prices,
)


class PostgresStore(PostgresEngine, AnalyticsStore, BackendStore):
    """A PostgreSQL database as a Tether store.

    Args:
        url: a libpq URL (``postgresql://user:password@host:port/dbname``).
        readers: the most pooled read connections.
    """

    backend = "postgres"
    sql = _SQL
    analytics = analytics

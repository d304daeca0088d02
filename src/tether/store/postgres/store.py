"""The PostgreSQL backend of the Store contract (several replicas, one database).

:class:`PostgresStore` is the engine (:class:`~tether.store.postgres.engine.PostgresEngine`:
a group-commit writer per process, a reader pool) under the contract's methods
(:class:`~tether.store.backend.BackendStore`), with this package's SQL modules.
"""

from __future__ import annotations

from tether.store.backend import BackendStore, SqlModules
from tether.store.postgres import copy, events, feed, keys, memories, outbox, recall, sessions
from tether.store.postgres.engine import PostgresEngine

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
)


class PostgresStore(PostgresEngine, BackendStore):
    """A PostgreSQL database as a Tether store.

    Args:
        url: a libpq URL (``postgresql://user:password@host:port/dbname``).
        readers: the most pooled read connections.
    """

    backend = "postgres"
    sql = _SQL

"""The PostgreSQL backend: the Store contract for several replicas on one database
(``pip install 'tether[postgres]'``). See :mod:`tether.store.postgres.engine`."""

from tether.store.postgres.engine import check_reachable
from tether.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "check_reachable"]

"""Persistence behind one contract (:class:`Store`, ``base.py``): the SQLite backend
(``sqlite/``, the embedded default) and the PostgreSQL backend (``postgres/``). Services
import only this package's contract; each backend owns its SQL and migrations."""

from tether.store.base import Store, StoreHealth

__all__ = ["Store", "StoreHealth"]

"""The SQLite backend (the embedded default): a database file, one group-commit writer,
a reader pool. See :mod:`tether.store.sqlite.engine` for the write path."""

from tether.store.sqlite.engine import check_writable
from tether.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "check_writable"]

"""Persistence. ``SQLiteStore`` is the embedded default (see ``sqlite.py``)."""

from tether.store.sqlite import SQLiteStore, StoreHealth, check_writable

__all__ = ["SQLiteStore", "StoreHealth", "check_writable"]

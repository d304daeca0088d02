"""Persistence. ``SQLiteStore`` is the embedded default (see ``sqlite.py``)."""

from tether.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore"]

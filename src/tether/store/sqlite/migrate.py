"""Schema migrations (Alembic), applied at start by :class:`SQLiteStore`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_SCRIPTS = Path(__file__).parent / "migrations"


def alembic_config(db_path: Path) -> Config:
    """An Alembic ``Config`` for the SQLite file ``db_path`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{db_path}")
    return cfg


def upgrade(db_path: Path, revision: str = "head") -> None:
    """Bring the database at ``db_path`` up to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(db_path), revision)

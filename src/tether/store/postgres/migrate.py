"""Schema migrations (Alembic), applied at start by :class:`PostgresStore`.

Several replicas may start at once: the Alembic environment serialises upgrades with an
advisory lock (``migrations/env.py``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_SCRIPTS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` (libpq form) as SQLAlchemy's psycopg 3 URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL")
    return f"postgresql+psycopg://{rest}"


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for the database at ``url`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    # ConfigParser interpolates "%": a percent-encoded URL needs it doubled.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)

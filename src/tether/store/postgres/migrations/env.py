"""Alembic environment: plain SQL migrations against the configured PostgreSQL URL.

Replicas starting together each try to migrate: a session-level advisory lock makes one
do it while the others wait, and they then find the schema current.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

#: pg_advisory_lock key of schema upgrades ("tether" in ASCII, as a bigint).
MIGRATION_LOCK = 0x746574686572

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url)
with engine.connect() as connection:
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    connection.commit()
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
engine.dispose()

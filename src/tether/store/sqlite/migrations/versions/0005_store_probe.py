"""A one-row table that the store's readiness check writes (``SQLiteStore.check``).

Readiness must know that writes reach the disk, not only that a read works: after a
storage error, or when no write has succeeded for a while, the check upserts this row
through the writer (see ``_PROBE_AFTER_S`` in ``store/sqlite/engine.py``).

Revision ID: 0005_store_probe
Revises: 0004_drop_bm25_tables
"""

from alembic import op

revision = "0005_store_probe"
down_revision = "0004_drop_bm25_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "probed_at INTEGER NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE store_probe")

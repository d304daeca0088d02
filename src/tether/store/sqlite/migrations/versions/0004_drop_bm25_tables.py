"""Drop the per-namespace BM25 statistics tables of 0003.

Recall's BM25 now runs over in-process postings built from ``memories.terms``
(:mod:`tether.memory.postings`), which compute each namespace's statistics themselves, so
``memory_ns_stats`` and ``memory_term_df`` are no longer kept in the write transaction.
``memories.terms`` stays.

Revision ID: 0004_drop_bm25_tables
Revises: 0003_bm25_stats
"""

from alembic import op

revision = "0004_drop_bm25_tables"
down_revision = "0003_bm25_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS memory_term_df")
    op.execute("DROP TABLE IF EXISTS memory_ns_stats")


def downgrade() -> None:
    # Recreated as 0003 made them, but empty: 0003's backfill is not repeated here.
    op.execute(
        "CREATE TABLE memory_ns_stats (tenant_id TEXT NOT NULL, namespace TEXT NOT NULL, "
        "docs INTEGER NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (tenant_id, namespace)) "
        "WITHOUT ROWID"
    )
    op.execute(
        "CREATE TABLE memory_term_df (tenant_id TEXT NOT NULL, namespace TEXT NOT NULL, "
        "term TEXT NOT NULL, df INTEGER NOT NULL, PRIMARY KEY (tenant_id, namespace, term)) "
        "WITHOUT ROWID"
    )
    op.execute("CREATE INDEX memory_term_df_term ON memory_term_df (tenant_id, term, df)")

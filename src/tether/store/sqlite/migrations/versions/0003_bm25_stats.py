"""Per-namespace BM25 statistics for the keyword index (see store/sql_keyword.py).

- ``memory_ns_stats``: documents and total length (analyzer terms) per namespace.
- ``memory_term_df``: documents containing each term, per namespace.
- ``memories.terms``: the memory's analyzer terms, space-separated, so recall rescoring
  reads them instead of re-analyzing every candidate's text.

Both count the memories in the FTS5 index (live, including expired ones). Existing rows'
``terms`` are filled in by the store at start (rows whose ``terms`` is NULL).

Revision ID: 0003_bm25_stats
Revises: 0002_memory
"""

from alembic import op

revision = "0003_bm25_stats"
down_revision = "0002_memory"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE memory_ns_stats (
        tenant_id TEXT    NOT NULL,
        namespace TEXT    NOT NULL,
        docs      INTEGER NOT NULL,
        tokens    INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, namespace)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE memory_term_df (
        tenant_id TEXT    NOT NULL,
        namespace TEXT    NOT NULL,
        term      TEXT    NOT NULL,
        df        INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, namespace, term)
    ) WITHOUT ROWID
    """,
    # Tenant-wide document frequency per term (query pruning); covering, so no table lookup.
    "CREATE INDEX memory_term_df_term ON memory_term_df (tenant_id, term, df)",
    "ALTER TABLE memories ADD COLUMN terms TEXT",
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)
    # Existing memories' terms are filled in by the store when it starts (a migration
    # imports no live code, and the analyzer is live code).


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS memory_term_df")
    op.execute("DROP TABLE IF EXISTS memory_ns_stats")

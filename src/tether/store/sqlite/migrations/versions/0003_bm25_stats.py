"""Per-namespace BM25 statistics for the keyword index (see store/sql_keyword.py).

- ``memory_ns_stats``: documents and total length (analyzer terms) per namespace.
- ``memory_term_df``: documents containing each term, per namespace.
- ``memories.terms``: the memory's analyzer terms, space-separated, so recall rescoring
  reads them instead of re-analyzing every candidate's text.

Both count the memories in the FTS5 index (live, including expired ones). The upgrade
backfills them from the memories already stored.

Revision ID: 0003_bm25_stats
Revises: 0002_memory
"""

from collections import Counter

from alembic import op

from tether.memory.analyzer import analyze

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
    bind = op.get_bind()
    docs: Counter[tuple[str, str]] = Counter()
    tokens: Counter[tuple[str, str]] = Counter()
    df: Counter[tuple[str, str, str]] = Counter()
    rows = bind.exec_driver_sql(
        "SELECT pk, tenant_id, namespace, text FROM memories WHERE deleted_at IS NULL"
    ).fetchall()
    updates = []
    for pk, tenant_id, namespace, text in rows:
        terms = analyze(text)
        updates.append((" ".join(terms), pk))
        docs[tenant_id, namespace] += 1
        tokens[tenant_id, namespace] += len(terms)
        for term in set(terms):
            df[tenant_id, namespace, term] += 1
    if updates:
        bind.exec_driver_sql("UPDATE memories SET terms=? WHERE pk=?", updates)
    if docs:
        bind.exec_driver_sql(
            "INSERT INTO memory_ns_stats (tenant_id, namespace, docs, tokens) VALUES (?,?,?,?)",
            [(t, ns, n, tokens[t, ns]) for (t, ns), n in docs.items()],
        )
    if df:
        bind.exec_driver_sql(
            "INSERT INTO memory_term_df (tenant_id, namespace, term, df) VALUES (?,?,?,?)",
            [(t, ns, term, n) for (t, ns, term), n in df.items()],
        )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS memory_term_df")
    op.execute("DROP TABLE IF EXISTS memory_ns_stats")

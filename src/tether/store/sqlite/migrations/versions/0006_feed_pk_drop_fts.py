"""The change log names each memory's row key; the unread FTS5 index goes.

- ``memory_changes.memory_pk``: the memory's row key, so the vector index (keyed by row
  key) can drop the vector of a purged memory when it reads the purge from the feed.
  Filled for existing rows from the memories still stored.
- ``memories_fts`` is dropped: recall ranks on in-process BM25 postings built from
  ``memories.terms``, and browse's ``q`` is a substring match; nothing read it.

Revision ID: 0006_feed_pk_drop_fts
Revises: 0005_store_probe
"""

from alembic import op

revision = "0006_feed_pk_drop_fts"
down_revision = "0005_store_probe"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS memories_fts")
    op.execute("ALTER TABLE memory_changes ADD COLUMN memory_pk INTEGER")
    op.execute(
        "UPDATE memory_changes SET memory_pk = (SELECT m.pk FROM memories m "
        "WHERE m.tenant_id = memory_changes.tenant_id AND m.id = memory_changes.memory_id)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE memory_changes DROP COLUMN memory_pk")
    op.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(text, content='memories', "
        "content_rowid='rowid', tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")

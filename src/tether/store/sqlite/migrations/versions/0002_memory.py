"""Memory tables: memories + FTS5 keyword index, change log, outbox, vectors, idempotency.

Times are integer milliseconds since the Unix epoch (UTC); JSON columns are TEXT.

- ``memories``: one row per memory; ``pk`` is the FTS5 content rowid. A live memory's
  ``(tenant_id, namespace, content_hash)`` is unique (dedupe); a tombstone
  (``deleted_at``) frees its hash so the same text can be remembered again.
- ``memories_fts``: external-content FTS5 index over ``memories.text``
  maintained by the writer in the same transaction (dropped again by 0006).
- ``memory_changes``: the change log; ``lsn`` is global and strictly increasing
  (AUTOINCREMENT: never reused, even after a purge). ``snapshot`` is the memory after the
  change (NULL once the memory is purged).
- ``memory_outbox``: embedding jobs written with the memory; ``state`` is ``pending`` or
  ``dead``; the indexer deletes a job once its vector is committed.
- ``memory_vectors``: float32 vectors (little-endian blob) per memory and model, with the
  ``content_hash`` of the text they embed (a stale vector is never served).
- ``memory_idempotency``: results of creates made with an idempotency key.

Revision ID: 0002_memory
Revises: 0001_core
"""

from alembic import op

revision = "0002_memory"
down_revision = "0001_core"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE memories (
        pk                INTEGER PRIMARY KEY,
        tenant_id         TEXT    NOT NULL,
        id                TEXT    NOT NULL,
        namespace         TEXT    NOT NULL,
        text              TEXT    NOT NULL,
        kind              TEXT    NOT NULL DEFAULT 'fact',
        tags              TEXT    NOT NULL DEFAULT '[]',
        metadata          TEXT    NOT NULL DEFAULT '{}',
        importance        REAL    NOT NULL DEFAULT 0.5,
        source_session_id TEXT,
        source_event_id   TEXT,
        occurred_at       INTEGER,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        last_accessed_at  INTEGER,
        access_count      INTEGER NOT NULL DEFAULT 0,
        expires_at        INTEGER,
        deleted_at        INTEGER,
        content_hash      TEXT    NOT NULL,
        embedding_model   TEXT,
        version           INTEGER NOT NULL DEFAULT 1,
        UNIQUE (tenant_id, id)
    )
    """,
    """CREATE UNIQUE INDEX memories_live_hash ON memories (tenant_id, namespace, content_hash)
       WHERE deleted_at IS NULL""",
    "CREATE INDEX memories_ns ON memories (tenant_id, namespace, pk)",
    "CREATE INDEX memories_session ON memories (tenant_id, source_session_id)",
    # The FTS5 DDL as it was (migrations import no live code).
    """CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
        text, content='memories', content_rowid='rowid',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """
    CREATE TABLE memory_changes (
        lsn        INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id  TEXT    NOT NULL,
        memory_id  TEXT    NOT NULL,
        namespace  TEXT    NOT NULL,
        op         TEXT    NOT NULL,
        version    INTEGER NOT NULL,
        at         INTEGER NOT NULL,
        snapshot   TEXT
    )
    """,
    "CREATE INDEX memory_changes_tenant ON memory_changes (tenant_id, lsn)",
    "CREATE INDEX memory_changes_memory ON memory_changes (tenant_id, memory_id, lsn)",
    """
    CREATE TABLE memory_outbox (
        id              INTEGER PRIMARY KEY,
        tenant_id       TEXT    NOT NULL,
        memory_pk       INTEGER NOT NULL,
        state           TEXT    NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    )
    """,
    "CREATE INDEX memory_outbox_due ON memory_outbox (state, next_attempt_at, id)",
    "CREATE INDEX memory_outbox_tenant ON memory_outbox (tenant_id, state)",
    "CREATE INDEX memory_outbox_memory ON memory_outbox (memory_pk)",
    """
    CREATE TABLE memory_vectors (
        memory_pk    INTEGER NOT NULL,
        model        TEXT    NOT NULL,
        tenant_id    TEXT    NOT NULL,
        content_hash TEXT    NOT NULL,
        dim          INTEGER NOT NULL,
        vector       BLOB    NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (memory_pk, model)
    )
    """,
    "CREATE INDEX memory_vectors_model ON memory_vectors (model, tenant_id)",
    """
    CREATE TABLE memory_idempotency (
        tenant_id  TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        body_hash  TEXT    NOT NULL,
        result     TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, key)
    )
    """,
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "memory_idempotency",
        "memory_vectors",
        "memory_outbox",
        "memory_changes",
        "memories_fts",
        "memories",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")

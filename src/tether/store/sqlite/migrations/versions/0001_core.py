"""Core tables: sessions (with state), events, goals.

Times are integer milliseconds since the Unix epoch (UTC); JSON columns are TEXT.

Revision ID: 0001_core
Revises:
"""

from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE sessions (
        pk            INTEGER PRIMARY KEY,
        tenant_id     TEXT    NOT NULL,
        id            TEXT    NOT NULL,
        parent_id     TEXT,
        user_id       TEXT,
        agent         TEXT,
        title         TEXT,
        status        TEXT    NOT NULL DEFAULT 'active',
        phase         TEXT,
        current_step  TEXT,
        summary       TEXT,
        tags          TEXT    NOT NULL DEFAULT '[]',
        metadata      TEXT    NOT NULL DEFAULT '{}',
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        ended_at      INTEGER,
        event_count   INTEGER NOT NULL DEFAULT 0,
        error_count   INTEGER NOT NULL DEFAULT 0,
        input_tokens  INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd      REAL    NOT NULL DEFAULT 0,
        state         TEXT    NOT NULL DEFAULT '{}',
        state_version INTEGER NOT NULL DEFAULT 0,
        create_hash   TEXT,
        UNIQUE (tenant_id, id)
    )
    """,
    "CREATE INDEX sessions_status ON sessions (tenant_id, status, pk)",
    "CREATE INDEX sessions_parent ON sessions (tenant_id, parent_id)",
    "CREATE INDEX sessions_created ON sessions (tenant_id, created_at)",
    """
    CREATE TABLE events (
        pk              INTEGER PRIMARY KEY,
        tenant_id       TEXT    NOT NULL,
        session_pk      INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        id              TEXT    NOT NULL,
        kind            TEXT    NOT NULL,
        name            TEXT,
        role            TEXT,
        status          TEXT    NOT NULL,
        level           TEXT,
        started_at      INTEGER,
        ended_at        INTEGER,
        duration_ms     REAL,
        parent_id       TEXT,
        span_id         TEXT,
        trace_id        TEXT,
        input           TEXT,
        output          TEXT,
        attributes      TEXT,
        model           TEXT,
        input_tokens    INTEGER,
        output_tokens   INTEGER,
        cost_usd        REAL,
        idempotency_key TEXT,
        correlation_id  TEXT,
        created_at      INTEGER NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX events_seq ON events (session_pk, seq)",
    """CREATE UNIQUE INDEX events_idempotency ON events (session_pk, idempotency_key)
       WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX events_created ON events (tenant_id, created_at)",
    """
    CREATE TABLE goals (
        pk           INTEGER PRIMARY KEY,
        tenant_id    TEXT    NOT NULL,
        session_pk   INTEGER NOT NULL,
        id           TEXT    NOT NULL,
        description  TEXT    NOT NULL,
        priority     INTEGER NOT NULL DEFAULT 0,
        status       TEXT    NOT NULL DEFAULT 'open',
        progress     REAL    NOT NULL DEFAULT 0,
        metadata     TEXT    NOT NULL DEFAULT '{}',
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        completed_at INTEGER,
        create_hash  TEXT,
        UNIQUE (session_pk, id)
    )
    """,
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for table in ("goals", "events", "sessions"):
        op.execute(f"DROP TABLE IF EXISTS {table}")

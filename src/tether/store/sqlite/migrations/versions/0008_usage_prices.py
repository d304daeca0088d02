"""Token usage of cached and reasoning tokens, per-tenant model prices, state history.

- ``events`` and ``sessions`` gain ``cache_read_tokens``, ``cache_write_tokens`` and
  ``reasoning_tokens`` (OpenTelemetry GenAI meaning: ``input_tokens`` includes cache
  reads and writes, ``output_tokens`` includes reasoning tokens). A session's columns are
  running sums (0 on existing rows).
- ``model_prices``: a tenant's price overrides, US dollars per million tokens; NULL
  leaves that price to the settings file or the shipped defaults.
- ``state_versions``: every version of a session's state document after version 0, with
  the merge patch (RFC 7386) that made it; deleted with its session.

Revision ID: 0008_usage_prices
Revises: 0007_keys_audit
"""

from alembic import op

revision = "0008_usage_prices"
down_revision = "0007_keys_audit"
branch_labels = None
depends_on = None

_TOKENS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")

_UP = [
    *(f"ALTER TABLE events ADD COLUMN {c} INTEGER" for c in _TOKENS),
    *(f"ALTER TABLE sessions ADD COLUMN {c} INTEGER NOT NULL DEFAULT 0" for c in _TOKENS),
    """
    CREATE TABLE model_prices (
        tenant_id    TEXT    NOT NULL,
        model        TEXT    NOT NULL,
        input        REAL,
        cached_input REAL,
        cache_write  REAL,
        output       REAL,
        reasoning    REAL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, model)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE state_versions (
        session_pk INTEGER NOT NULL,
        version    INTEGER NOT NULL,
        tenant_id  TEXT    NOT NULL,
        patch      TEXT    NOT NULL,
        state      TEXT    NOT NULL,
        at         INTEGER NOT NULL,
        PRIMARY KEY (session_pk, version)
    ) WITHOUT ROWID
    """,
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS state_versions")
    op.execute("DROP TABLE IF EXISTS model_prices")
    for table in ("sessions", "events"):
        for column in _TOKENS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")

"""Cached and reasoning token usage, per-tenant model prices, state history (as SQLite's
0008).

Revision ID: 0003_usage_prices
Revises: 0002_keys_audit
"""

from alembic import op

revision = "0003_usage_prices"
down_revision = "0002_keys_audit"
branch_labels = None
depends_on = None

_TOKENS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")

_UP = [
    *(f"ALTER TABLE events ADD COLUMN {c} bigint" for c in _TOKENS),
    *(f"ALTER TABLE sessions ADD COLUMN {c} bigint NOT NULL DEFAULT 0" for c in _TOKENS),
    """
    CREATE TABLE model_prices (
        tenant_id    text    NOT NULL,
        model        text    NOT NULL,
        input        double precision,
        cached_input double precision,
        cache_write  double precision,
        output       double precision,
        reasoning    double precision,
        updated_at   bigint  NOT NULL,
        PRIMARY KEY (tenant_id, model)
    )
    """,
    """
    CREATE TABLE state_versions (
        session_pk bigint  NOT NULL,
        version    bigint  NOT NULL,
        tenant_id  text    NOT NULL,
        patch      text    NOT NULL,
        state      text    NOT NULL,
        at         bigint  NOT NULL,
        PRIMARY KEY (session_pk, version)
    )
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

"""API keys and the audit log.

- ``api_keys``: one row per key: its public id, tenant, scope, namespace prefixes (JSON
  array), the SHA-256 of its secret (never the secret), and its life (created, expires,
  revoked, last used; ms since the epoch).
- ``audit_log``: what was done, by which key, when, with the request's correlation id.

Revision ID: 0007_keys_audit
Revises: 0006_feed_pk_drop_fts
"""

from alembic import op

revision = "0007_keys_audit"
down_revision = "0006_feed_pk_drop_fts"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE api_keys (
        id           TEXT    PRIMARY KEY,
        tenant_id    TEXT    NOT NULL,
        name         TEXT,
        scope        TEXT    NOT NULL,
        namespaces   TEXT    NOT NULL DEFAULT '[]',
        secret_hash  TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        revoked_at   INTEGER,
        last_used_at INTEGER,
        created_by   TEXT
    )
    """,
    "CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at)",
    """
    CREATE TABLE audit_log (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id      TEXT    NOT NULL,
        at             INTEGER NOT NULL,
        key_id         TEXT,
        action         TEXT    NOT NULL,
        target         TEXT,
        detail         TEXT,
        correlation_id TEXT
    )
    """,
    "CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq)",
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.execute("DROP TABLE IF EXISTS api_keys")

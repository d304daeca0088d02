"""Indexes for reads across a tenant's events (as SQLite's 0009).

- ``events_tenant_pk (tenant_id, pk)``: the cross-session event query's cursor.
- ``events_tenant_time (tenant_id, (coalesce(started_at, created_at)))``: windows of event
  time; queries spell the expression exactly so (``store/postgres/analytics.py``).

Revision ID: 0004_event_queries
Revises: 0003_usage_prices
"""

from alembic import op

revision = "0004_event_queries"
down_revision = "0003_usage_prices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS events_tenant_pk ON events (tenant_id, pk)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS events_tenant_time "
        "ON events (tenant_id, (coalesce(started_at, created_at)))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_tenant_time")
    op.execute("DROP INDEX IF EXISTS events_tenant_pk")

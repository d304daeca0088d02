"""Indexes for reads across a tenant's events (``GET /v1/events``, diagnostics, analytics).

- ``events_tenant_pk (tenant_id, pk)``: the cross-session event query walks a tenant's
  events by row key (its cursor) without touching other tenants' rows.
- ``events_tenant_time (tenant_id, coalesce(started_at, created_at))``: windows of event
  time (an event's time is ``started_at``, else ``created_at``) for diagnostics, tool
  analytics, time series and anomalies. Queries spell the expression exactly so
  (``store/sqlite/analytics.py``), or SQLite would not use the index.

Revision ID: 0009_event_queries
Revises: 0008_usage_prices
"""

from alembic import op

revision = "0009_event_queries"
down_revision = "0008_usage_prices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS events_tenant_pk ON events (tenant_id, pk)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS events_tenant_time "
        "ON events (tenant_id, coalesce(started_at, created_at))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_tenant_time")
    op.execute("DROP INDEX IF EXISTS events_tenant_pk")

"""A tenant's model price overrides (``model_prices``): plain reads and writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tether.store.postgres.engine import Conn, one
from tether.store.rows import Row

_PRICES = ("input", "cached_input", "cache_write", "output", "reasoning")


def list_rows(conn: Conn, tenant_id: str) -> list[Row]:
    return list(
        conn.execute("SELECT * FROM model_prices WHERE tenant_id = %s ORDER BY model", (tenant_id,))
    )


def upsert(conn: Conn, tenant_id: str, model: str, prices: Mapping[str, Any], now: int) -> Row:
    """Set every price of the model (those not given to NULL)."""
    values = [prices.get(name) for name in _PRICES]
    row: Row = one(
        conn.execute(
            "INSERT INTO model_prices (tenant_id, model, input, cached_input, cache_write, output, "
            "reasoning, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, model) DO UPDATE SET input = excluded.input, "
            "cached_input = excluded.cached_input, cache_write = excluded.cache_write, "
            "output = excluded.output, reasoning = excluded.reasoning, "
            "updated_at = excluded.updated_at RETURNING *",
            (tenant_id, model, *values, now),
        )
    )
    return row


def delete(conn: Conn, tenant_id: str, model: str) -> bool:
    cur = conn.execute(
        "DELETE FROM model_prices WHERE tenant_id = %s AND model = %s", (tenant_id, model)
    )
    return bool(cur.rowcount)

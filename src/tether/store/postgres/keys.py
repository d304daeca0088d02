"""API key and audit log SQL for PostgreSQL (plain reads and writes, no shared logic)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tether.domain.records import ApiKey, AuditEntry
from tether.store.common import dumps
from tether.store.postgres.engine import Conn, one
from tether.store.rows import AUDIT_COLUMNS, audit_params, key_record, page_of_audit


def create(conn: Conn, values: Mapping[str, Any]) -> ApiKey:
    """Insert a key (``namespaces`` a list, stored as JSON text)."""
    values = {**values, "namespaces": dumps(list(values["namespaces"]))}
    row = one(
        conn.execute(
            f"INSERT INTO api_keys ({', '.join(values)}) "
            f"VALUES ({', '.join(['%s'] * len(values))}) RETURNING *",
            list(values.values()),
        )
    )
    return key_record(row)


def find(conn: Conn, key_id: str) -> tuple[ApiKey, str] | None:
    """The key and its secret's hash, any tenant."""
    row = conn.execute("SELECT * FROM api_keys WHERE id = %s", (key_id,)).fetchone()
    return None if row is None else (key_record(row), row["secret_hash"])


def list_keys(conn: Conn, tenant_id: str | None) -> list[ApiKey]:
    if tenant_id is None:
        rows = conn.execute("SELECT * FROM api_keys ORDER BY tenant_id, created_at, id")
    else:
        rows = conn.execute(
            "SELECT * FROM api_keys WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
        )
    return [key_record(r) for r in rows]


def revoke(conn: Conn, tenant_id: str | None, key_id: str, now: int) -> ApiKey | None:
    """Revoke (once: a revoked key keeps its first revocation time)."""
    sql = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
    params: list[Any] = [now, key_id]
    if tenant_id is not None:
        sql += " AND tenant_id = %s"
        params.append(tenant_id)
    row = conn.execute(sql + " RETURNING *", params).fetchone()
    return None if row is None else key_record(row)


def touch(conn: Conn, used: Mapping[str, int]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE api_keys SET last_used_at = greatest(coalesce(last_used_at, 0), %s) "
            "WHERE id = %s",
            [(at, key_id) for key_id, at in used.items()],
        )


def live_count(conn: Conn, now: int) -> int:
    (n,) = one(
        conn.execute(
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > %s)",
            (now,),
        )
    )
    return int(n)


def append_audit(conn: Conn, entries: Sequence[Mapping[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(AUDIT_COLUMNS))})",
            audit_params(entries),
        )


def audit_page(
    conn: Conn, tenant_id: str | None, *, after: int, limit: int
) -> tuple[list[AuditEntry], int | None]:
    """Entries with ``seq > after`` of a tenant (``None``: every tenant), oldest first."""
    where, params = (
        ("seq > %s", [after])
        if tenant_id is None
        else ("tenant_id = %s AND seq > %s", [tenant_id, after])
    )
    rows = conn.execute(
        f"SELECT * FROM audit_log WHERE {where} ORDER BY seq LIMIT %s", (*params, limit + 1)
    ).fetchall()
    return page_of_audit(rows, limit)

"""``tether keys`` and ``tether audit``: the operator's tools on the store itself.

They open the configured store (``TETHER_DB``, or ``--db``) directly, like ``tether
migrate``, so the first admin key can be made before any server runs, and any tenant's
keys can be managed (the HTTP routes act on the caller's tenant only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table

from tether.config import Settings
from tether.container import open_store
from tether.domain.keys import Scope, TenantName, key_body_model
from tether.errors import TetherError
from tether.services.keys import AuditLog, Authenticator, KeyService

app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)

T = TypeVar("T")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="The store (default: TETHER_DB, else $TETHER_HOME/tether.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")]

_DURATION = re.compile(r"^(\d{1,4})d$")


def _run(db: str | None, work: Callable[[Any, KeyService, AuditLog], Awaitable[T]]) -> T:
    settings = Settings(db=db) if db else Settings()

    async def main() -> T:
        store = open_store(settings)
        await store.start()
        try:
            audit = AuditLog(store)
            keys = KeyService(store, audit, Authenticator(store, settings, audit))
            return await work(store, keys, audit)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except TetherError as exc:
        typer.echo(f"tether: {exc.message}", err=True)
        raise typer.Exit(code=1) from None


def _print(rows: list[Any], as_json: bool, columns: list[str], title: str) -> None:
    if as_json:
        typer.echo(orjson.dumps([dataclasses.asdict(r) for r in rows]).decode())
        return
    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        values = dataclasses.asdict(row)
        table.add_row(*(_cell(values[name]) for name in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")],
    scope: Annotated[Scope, typer.Option(help="read, write or admin.")],
    name: Annotated[str | None, typer.Option(help="A label to recognise it by.")] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(help="Limit memory calls to namespaces starting with this (repeatable)."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Stop working after this long, e.g. 30d.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key and print it once (the store keeps only its SHA-256)."""
    days = None
    if expires is not None:
        m = _DURATION.match(expires)
        if m is None:
            typer.echo("tether: --expires takes days, e.g. 30d", err=True)
            raise typer.Exit(code=2)
        days = int(m.group(1))
    try:
        if scope is Scope.admin and namespace:
            raise ValueError(
                "an admin key acts on the whole tenant: --namespace is for read and write keys"
            )
        expires_at = None if days is None else datetime.now(UTC) + timedelta(days=days)
        fields: dict[str, Any] = {"scope": scope, "name": name, "expires_at": expires_at}
        if namespace:
            fields["namespaces"] = namespace
        body = key_body_model(fields).model_validate(fields)
        tenant = _tenant(tenant)
    except ValueError as exc:
        typer.echo(f"tether: {exc}", err=True)
        raise typer.Exit(code=2) from None
    made = _run(db, lambda _s, keys, _a: keys.create(None, tenant, body))
    if as_json:
        typer.echo(orjson.dumps(made).decode())
        return
    typer.echo(f"key {made.key.id} for tenant {made.key.tenant_id}, scope {made.key.scope}")
    typer.echo("the key (shown this once; send it as Authorization: Bearer ...):")
    typer.echo(made.secret)


def _tenant(value: str) -> str:
    """The tenant name, checked as the API checks it (raises ``ValueError``)."""
    name: str = TypeAdapter(TenantName).validate_python(value)
    return name


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (never their secrets), revoked ones too."""
    keys = _run(db, lambda _s, svc, _a: svc.list(tenant))
    columns = ["id", "tenant_id", "scope", "name", "namespaces", "created_at", "expires_at"]
    _print(keys, as_json, [*columns, "revoked_at", "last_used_at"], "API keys")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after tk_).")],
    db: DbOption = None,
) -> None:
    """Revoke a key: every replica refuses it within a second."""
    key = _run(db, lambda _s, svc, _a: svc.revoke(None, None, key_id))
    typer.echo(f"revoked {key.id} (tenant {key.tenant_id}) at {key.revoked_at}")


def audit_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's entries.")] = None,
    after: Annotated[int, typer.Option(help="Entries after this seq.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the audit log: keys created and revoked, purges, reindexing, exports, outbox
    replays, bursts of failed authentication (tenant "*": keys that are not ours)."""
    items, _ = _run(db, lambda _s, _k, audit: audit.page(tenant, after=after, limit=limit))
    columns = ["seq", "at", "tenant_id", "key_id", "action", "target", "detail"]
    _print(items, as_json, [*columns, "correlation_id"], "audit log")

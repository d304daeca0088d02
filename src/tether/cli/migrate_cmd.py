"""``tether migrate``: copy a deployment to another store and prove the copy."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tether.config import Settings
from tether.container import open_store
from tether.errors import NotFound, TetherError
from tether.services.migrate import TableCopy, migrate


def _describe(url: str) -> str:
    """The URL without a password, for the report."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        creds, host = rest.split("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


async def _run(source_url: str, target_url: str, console: Console) -> list[TableCopy]:
    settings = Settings(db=source_url)
    if settings.store_url.startswith("sqlite:") and not settings.db_path.is_file():
        raise NotFound(f"no SQLite database at {settings.db_path} (sqlite:////abs/path)")
    source = open_store(settings)
    target = open_store(Settings(db=target_url))
    await source.start()
    try:
        await target.start()
        try:
            with console.status("copying") as status:

                def progress(table: str, rows: int) -> None:
                    status.update(f"copying {table}: {rows:,} rows")

                return await migrate(source, target, progress=progress)
        finally:
            await target.close()
    finally:
        await source.close()


def migrate_command(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The store to copy: sqlite:///PATH (or a path) or postgresql://...",
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to", help="An empty store to copy into: postgresql://... or sqlite:///PATH"
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Copy a deployment (sessions, events, state, goals, memories with vectors, the
    change feed) into an empty store, then print each table's rows and SHA-256 on both
    sides. Stop the servers on the source first.

    Exits 0 when every table matches, 1 when one does not or the copy failed. With
    ``--json``: ``{"tables": [{table, source_rows, target_rows, source_sha256,
    target_sha256, matches}], "matches"}`` on stdout, progress and errors on stderr.
    """
    console = Console(stderr=as_json)
    try:
        report = asyncio.run(_run(source, target, console))
    except TetherError as exc:
        console.print(f"tether migrate: {exc.message}", style="red", highlight=False)
        raise typer.Exit(code=1) from None
    matches = all(row.matches for row in report)
    if as_json:
        tables = [{**dataclasses.asdict(row), "matches": row.matches} for row in report]
        typer.echo(orjson.dumps({"tables": tables, "matches": matches}).decode())
        raise typer.Exit(code=0 if matches else 1)
    table = Table(title=f"{_describe(source)} -> {_describe(target)}")
    for name in ("table", "rows from", "rows to", "sha256 from", "sha256 to", ""):
        table.add_column(name, justify="right" if name.startswith("rows") else "left", no_wrap=True)
    for row in report:
        table.add_row(
            row.table,
            f"{row.source_rows:,}",
            f"{row.target_rows:,}",
            row.source_sha256[:11],
            row.target_sha256[:11],
            "ok" if row.matches else "DIFFERENT",
        )
    console.print(table)
    if not matches:
        console.print("tether migrate: the copy differs from the source", style="red")
        raise typer.Exit(code=1)

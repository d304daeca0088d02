"""``tether``: the command-line entry point (thin over the server and the SDK)."""

from __future__ import annotations

from typing import Annotated

import typer

from tether import __version__
from tether.cli import (
    import_cmd,
    keys_cmd,
    logs_cmd,
    monitor_cmd,
    ops_cmd,
    replay_cmd,
    sessions_cmd,
)
from tether.cli import memory as memory_cmd
from tether.cli.migrate_cmd import migrate_command
from tether.config import Settings
from tether.errors import Unavailable

app = typer.Typer(
    name="tether",
    help="Tether: a self-hosted backend for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    # Markdown: the docstrings are hard-wrapped; single newlines join into paragraphs.
    rich_markup_mode="markdown",
)


app.add_typer(import_cmd.app, name="import")
app.add_typer(memory_cmd.app, name="memory")
app.command(name="migrate")(migrate_command)
app.add_typer(keys_cmd.app, name="keys")
app.command(name="audit")(keys_cmd.audit_command)
# Operator commands over a running server (the SDK): see docs/cli.md.
app.add_typer(sessions_cmd.app, name="sessions")
app.command(name="monitor")(monitor_cmd.monitor)
app.command(name="logs")(logs_cmd.logs)
app.command(name="replay")(replay_cmd.replay)
app.command(name="diagnostics")(ops_cmd.diagnostics)
app.command(name="stats")(ops_cmd.stats)
app.command(name="doctor")(ops_cmd.doctor)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: 7117).")] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="The store: a SQLite file or sqlite:///PATH (default: $TETHER_HOME/tether.db), "
            "or postgresql://..."
        ),
    ] = None,
) -> None:
    """Run the Tether server (HTTP API) until interrupted.

    Exits with code 1 and one line on stderr when the store cannot be opened (a SQLite
    file or folder that cannot be written, a PostgreSQL server that does not answer or
    refuses the login; checked before anything starts). The app refuses to start (exit
    code 3, the reason logged) on a non-loopback address without auth: no live API key
    and ``TETHER_REQUIRE_AUTH`` off.
    """
    import uvicorn

    from tether.container import preflight
    from tether.server.app import create_app
    from tether.server.routes.live import MAX_CLIENT_MESSAGE

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if db is not None:
        overrides["db"] = db
    settings = Settings(**overrides)  # type: ignore[arg-type]
    try:
        preflight(settings)
    except Unavailable as exc:
        sqlite = settings.store_url.startswith("sqlite:")
        hint = "; set TETHER_HOME or --db to a writable path" if sqlite else ""
        typer.echo(f"tether: {exc.message}{hint}", err=True)
        raise typer.Exit(code=1) from None
    from tether.logs import configure_logging

    configure_logging(settings)  # JSON (or text) lines on stderr, secrets redacted
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        # No logging config of uvicorn's own: its loggers propagate to configure_logging's
        # handler (same format, correlation id and redaction as Tether's).
        log_config=None,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",  # WS /v1/ws (server/routes/live.py)
        ws_max_size=MAX_CLIENT_MESSAGE,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


@app.command()
def version() -> None:
    """Print Tether's version."""
    typer.echo(__version__)

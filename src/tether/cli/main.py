"""``tether``: the command-line entry point (thin over the server and the SDK)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from tether import __version__
from tether.cli import import_cmd
from tether.cli import memory as memory_cmd
from tether.cli.migrate_cmd import migrate_command
from tether.config import Settings
from tether.errors import Unavailable

app = typer.Typer(
    name="tether",
    help="Tether: a self-hosted backend for AI agents.",
    no_args_is_help=True,
    add_completion=False,
)


app.add_typer(import_cmd.app, name="import")
app.add_typer(memory_cmd.app, name="memory")
app.command(name="migrate")(migrate_command)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    refuses the login; checked before anything starts), 2 for a non-loopback address.
    """
    import uvicorn

    from tether.container import preflight
    from tether.server.app import create_app

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if db is not None:
        overrides["db"] = db
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if not _is_loopback(settings.host) and not settings.trust_network:
        typer.echo(
            "refusing to bind a non-loopback address: API-key auth is not available yet; "
            "bind 127.0.0.1 (the default), or set TETHER_TRUST_NETWORK=true on a private "
            "network nothing untrusted reaches",
            err=True,
        )
        raise typer.Exit(code=2)
    try:
        preflight(settings)
    except Unavailable as exc:
        sqlite = settings.store_url.startswith("sqlite:")
        hint = "; set TETHER_HOME or --db to a writable path" if sqlite else ""
        typer.echo(f"tether: {exc.message}{hint}", err=True)
        raise typer.Exit(code=1) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not _is_loopback(settings.host):
        logging.getLogger("tether.server").warning(
            "serving %s without authentication (TETHER_TRUST_NETWORK): whoever reaches this "
            "address can read and write every session and memory",
            settings.host,
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


@app.command()
def version() -> None:
    """Print Tether's version."""
    typer.echo(__version__)

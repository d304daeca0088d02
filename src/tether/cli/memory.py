"""``tether memory``: memory maintenance against a running server (thin over the HTTP API)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(name="memory", help="Long-term memory maintenance.", no_args_is_help=True)

# How often the progress bar polls GET /v1/memory/stats (s).
_POLL_S = 0.5


def _data(response: httpx.Response) -> Any:
    body = response.json()
    if not body.get("ok"):
        error = body.get("error") or {}
        raise typer.BadParameter(f"{error.get('code')}: {error.get('message')}")
    return body["data"]


@app.command()
def reindex(
    url: Annotated[
        str, typer.Option(envvar="TETHER_URL", help="Server base URL.")
    ] = "http://127.0.0.1:7117",
    everything: Annotated[
        bool, typer.Option("--all", help="Re-embed every memory, not only stale ones.")
    ] = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="TETHER_API_KEY", help="An admin key (not needed in local mode)."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the backlog to drain.")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many s.")] = 3600,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Re-embed memories after an embedding-model change, with a progress bar.

    Queues an embedding job for each memory without a vector of the server's current
    model (or every memory with --all); the server's indexer does the work.
    """
    console = Console(stderr=as_json)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        queued = _data(client.post("/v1/admin/memory/reindex", json={"all": everything}))
        stats = _data(client.get("/v1/memory/stats"))
        total = max(stats["index_backlog"], 1)
        dead_before = stats["dead_letters"]
        if wait and stats["index_backlog"]:
            columns = (
                TextColumn(f"embedding with {queued['embedding_model']}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            deadline = time.monotonic() + timeout
            with Progress(*columns, console=console, disable=as_json) as bar:
                task = bar.add_task("reindex", total=total)
                while stats["index_backlog"] and time.monotonic() < deadline:
                    time.sleep(_POLL_S)
                    stats = _data(client.get("/v1/memory/stats"))
                    total = max(total, stats["index_backlog"])
                    bar.update(task, total=total, completed=total - stats["index_backlog"])
    outcome = {
        "queued": queued["queued"],
        "embedding_model": queued["embedding_model"],
        "index_backlog": stats["index_backlog"],
        "new_dead_letters": stats["dead_letters"] - dead_before,
    }
    if as_json:
        typer.echo(json.dumps(outcome))
    else:
        console.print(
            f"queued {outcome['queued']} memories for {outcome['embedding_model']}; "
            f"backlog {outcome['index_backlog']}, new dead letters {outcome['new_dead_letters']}"
        )
    if stats["index_backlog"] and wait:
        raise typer.Exit(code=1)

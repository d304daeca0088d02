"""``tether import conversations``: load conversation files into a running server.

Each conversation becomes a session of ``message`` events (via ``POST /v1/events/batch``)
and each turn a memory (via ``POST /v1/memories/batch``). Every write carries an
idempotency key derived from the turn, so importing the same file again adds nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.errors import InvalidInput
from tether.importers import FORMATS, Conversation, read_conversations

app = typer.Typer(help="Load data into a running Tether server.", no_args_is_help=True)

# Requests stay well under the 1,000-item API limits and the 5 MiB body limit.
_EVENTS_PER_REQUEST = 500
_MEMORIES_PER_REQUEST = 250
_DEFAULT_URL = "http://127.0.0.1:7117"


@dataclass
class ImportReport:
    """What an import did; ``*_new`` counts rows this run created."""

    sessions: int = 0
    sessions_new: int = 0
    events: int = 0
    events_new: int = 0
    memories: int = 0
    memories_new: int = 0


def _iso(conv_at: Any) -> str | None:
    return conv_at.isoformat() if conv_at is not None else None


def _check(resp: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = resp.json() if resp.content else {}
    if resp.status_code >= 400 or not body.get("ok"):
        err = body.get("error") or {}
        raise InvalidInput(
            f"{resp.request.method} {resp.request.url.path}: {resp.status_code} "
            f"{err.get('code', '')}: {err.get('message', resp.text[:300])}",
            details=err.get("details"),
        )
    data: dict[str, Any] = body["data"]
    return data


def import_conversation(http: httpx.Client, conv: Conversation, report: ImportReport) -> None:
    """Send one conversation: its session and events, then its turns as memories.

    Raises:
        InvalidInput: the server rejected a request (message includes its error).
        httpx.TransportError: the server could not be reached.
    """
    session = {
        "id": conv.session_id,
        "agent": conv.agent,
        "user_id": conv.user_id,
        "title": conv.title,
        "tags": conv.tags,
        "metadata": conv.metadata,
    }
    events = [
        {
            "session_id": conv.session_id,
            "kind": "message",
            "role": t.role,
            "name": t.speaker,
            "started_at": _iso(t.at),
            "input": {"speaker": t.speaker, "text": t.text, **t.metadata},
            "idempotency_key": f"import:{t.id}",
        }
        for t in conv.turns
    ]
    report.sessions += 1
    for start in range(0, max(len(events), 1), _EVENTS_PER_REQUEST):
        chunk = events[start : start + _EVENTS_PER_REQUEST]
        last = start + _EVENTS_PER_REQUEST >= len(events)
        body = {
            "sessions": [session] if start == 0 else [],
            "events": chunk,
            "ends": [{"session_id": conv.session_id, "status": "completed"}] if last else [],
        }
        data = _check(http.post("/v1/events/batch", json=body))
        report.sessions_new += int(conv.session_id in data["created_sessions"])
        report.events += len(chunk)
        report.events_new += len(chunk) - int(data["duplicates"])
    items = [
        {
            "namespace": conv.namespace,
            "text": f"{t.speaker}: {t.text}",
            "kind": "episode",
            "occurred_at": _iso(t.at),
            "metadata": {**t.metadata, "speaker": t.speaker, "session_id": conv.session_id},
            "idempotency_key": f"import:{conv.namespace}:{t.id}",
        }
        for t in conv.turns
    ]
    for start in range(0, len(items), _MEMORIES_PER_REQUEST):
        chunk = items[start : start + _MEMORIES_PER_REQUEST]
        data = _check(http.post("/v1/memories/batch", json={"items": chunk}))
        results = data.get("items") or data.get("results") or []
        report.memories += len(chunk)
        report.memories_new += sum(
            1 for r in results if not (r.get("deduplicated") or r.get("replayed"))
        )


@app.command("conversations")
def conversations(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="File to import.")],
    fmt: Annotated[
        str, typer.Option("--format", help=f"Input format: {', '.join(sorted(FORMATS))}.")
    ] = "tether",
    url: Annotated[
        str | None, typer.Option(help=f"Server URL (default: $TETHER_URL or {_DEFAULT_URL}).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import conversations as sessions (message events) and memories (one per turn).

    Idempotent: running it again on the same file adds nothing.
    """
    console = Console()
    base = url or os.environ.get("TETHER_URL", _DEFAULT_URL)
    headers = {}
    if key := os.environ.get("TETHER_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    try:
        convs = read_conversations(file, fmt)
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    report = ImportReport()
    turns = sum(len(c.turns) for c in convs)
    try:
        with (
            httpx.Client(base_url=base, timeout=120.0, headers=headers) as http,
            Progress(
                TextColumn("[bold]importing[/bold] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                disable=json_out,
            ) as progress,
        ):
            task = progress.add_task(file.name, total=turns)
            for conv in convs:
                import_conversation(http, conv, report)
                progress.advance(task, len(conv.turns))
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        console.print(f"[red]error:[/red] cannot reach {base}: {exc}")
        raise typer.Exit(1) from None
    if json_out:
        console.print_json(orjson.dumps(report.__dict__).decode())
        return
    table = Table(title=f"imported {file.name} into {base}")
    for col in ("", "total", "new", "already there"):
        table.add_column(col, justify="right" if col else "left")
    for name, total, new in (
        ("sessions", report.sessions, report.sessions_new),
        ("events", report.events, report.events_new),
        ("memories", report.memories, report.memories_new),
    ):
        table.add_row(name, str(total), str(new), str(total - new))
    console.print(table)

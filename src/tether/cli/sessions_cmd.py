"""``tether sessions``: list, show, end, delete and export sessions (over the SDK)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

if TYPE_CHECKING:
    from tether_client import Client

from tether.cli.common import (
    ApiKeyOption,
    JsonOption,
    SinceOption,
    UntilOption,
    UrlOption,
    cell,
    connect,
    fmt_cost,
    output,
    print_json,
    print_ndjson,
    table,
)

app = typer.Typer(help="Sessions: list, show, end, delete, export.", no_args_is_help=True)

SessionArg = Annotated[str, typer.Argument(help="The session id.")]

#: The columns of ``sessions list`` (docs/cli.md).
LIST_COLUMNS = ["id", "agent", "status", "events", "errors", "tokens", "cost", "created_at"]


def session_row(s: dict[str, Any]) -> list[str]:
    """One ``sessions list`` row: tokens are input + output."""
    c = s.get("counters") or {}
    tokens = int(c.get("input_tokens") or 0) + int(c.get("output_tokens") or 0)
    return [
        s["id"],
        cell(s.get("agent")),
        s["status"],
        str(c.get("event_count", 0)),
        str(c.get("error_count", 0)),
        str(tokens),
        fmt_cost(c.get("cost_usd")),
        s["created_at"],
    ]


@app.command("list")
def list_sessions(
    status: Annotated[
        str | None, typer.Option(help="active, completed, failed or abandoned.")
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user_id's.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only sessions with this tag.")] = None,
    parent: Annotated[str | None, typer.Option(help="Only children of this session.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    search: Annotated[
        str | None,
        typer.Option(help="Words that must each occur in the id, title, agent or user (any case)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (newest first).")] = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List sessions, newest first: id, agent, status, events, errors, tokens (input +
    output), cost (US dollars), created_at."""
    rows: list[dict[str, Any]] = []
    with connect(url, api_key) as client:
        cursor = None
        while len(rows) < limit:
            page = client.list_sessions(
                status=status,
                agent=agent,
                user_id=user,
                tag=tag,
                parent_id=parent,
                since=since,
                until=until,
                q=search,
                cursor=cursor,
                limit=min(limit - len(rows), 500),
            )
            rows.extend(page.items)
            if page.next_cursor is None or not page.items:
                break
            cursor = page.next_cursor
    if as_json:
        print_json(rows)
        return
    out = output().out
    out.print(table(LIST_COLUMNS, [session_row(s) for s in rows], right=_NUMBERS))
    out.print(f"{len(rows)} session{'s' if len(rows) != 1 else ''}")


_NUMBERS = ("events", "errors", "tokens", "cost")


@app.command("show")
def show(
    session_id: SessionArg,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One session: fields, counters, goals, sub-agents and its state document."""
    with connect(url, api_key) as client:
        session = client.get_session(session_id)
        state = client.get_state(session_id)
    session["state"] = {"state": state.state, "version": state.version}
    if as_json:
        print_json(session)
        return
    output().out.print(render_session(session))


def render_session(s: dict[str, Any]) -> Group:
    """The human view of ``sessions show``."""
    c = s.get("counters") or {}
    fields = [
        ("id", s["id"]),
        ("agent", s.get("agent")),
        ("user_id", s.get("user_id")),
        ("title", s.get("title")),
        ("status", s.get("status")),
        ("phase", s.get("phase")),
        ("current_step", s.get("current_step")),
        ("parent_id", s.get("parent_id")),
        ("tags", s.get("tags") or None),
        ("created_at", s.get("created_at")),
        ("updated_at", s.get("updated_at")),
        ("ended_at", s.get("ended_at")),
        ("summary", s.get("summary")),
        ("events", c.get("event_count")),
        ("errors", c.get("error_count")),
        ("input_tokens", c.get("input_tokens")),
        ("output_tokens", c.get("output_tokens")),
        ("cost", fmt_cost(c.get("cost_usd"))),
    ]
    parts: list[Any] = [
        table(["field", "value"], [[k, cell(v)] for k, v in fields if v is not None])
    ]
    goals = s.get("goals") or []
    if goals:
        parts.append(
            table(
                ["goal", "description", "status", "priority", "progress"],
                [
                    [
                        g["id"],
                        g["description"],
                        g["status"],
                        str(g["priority"]),
                        f"{g['progress']:g}",
                    ]
                    for g in goals
                ],
                title="goals",
            )
        )
    children = s.get("children") or []
    if children:
        parts.append(
            table(
                ["sub-agent", "agent", "status"],
                [[ch["id"], cell(ch.get("agent")), ch["status"]] for ch in children],
                title="sub-agents",
            )
        )
    state = s.get("state") or {}
    parts.append(f"state (version {state.get('version', 0)}):")
    parts.append(Text(json.dumps(state.get("state") or {}, indent=2, ensure_ascii=False)))
    return Group(*parts)


@app.command("end")
def end(
    session_id: SessionArg,
    status: Annotated[str, typer.Option(help="completed, failed or abandoned.")] = "completed",
    summary: Annotated[str | None, typer.Option(help="A closing summary.")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a session (ending it again with the same status changes nothing)."""
    with connect(url, api_key) as client:
        session = client.end_session(session_id, status, summary=summary)
    if as_json:
        print_json(session)
        return
    output().out.print(f"ended {session['id']}: {session['status']}", markup=False)


@app.command("delete")
def delete(
    session_id: SessionArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a session with its events and goals (asks first unless --yes)."""
    if not yes and not typer.confirm(f"delete session {session_id} and its events?", err=True):
        raise typer.Exit(code=1)
    with connect(url, api_key) as client:
        deleted = client.delete_session(session_id)
    if as_json:
        print_json({"id": session_id, "deleted_events": deleted})
        return
    output().out.print(f"deleted {session_id} ({deleted} events)", markup=False)


@app.command("export")
def export(
    session_id: SessionArg,
    to: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Export a session as NDJSON: a "session" line, then its "goal", "state_version" and
    "event" lines (each with its "type"), with a progress bar on stderr."""
    with connect(url, api_key) as client:
        if to is None:
            _export(client, session_id, output().out.file)
        else:
            with to.open("w", encoding="utf-8") as file:
                _export(client, session_id, file)


def _export(client: Client, session_id: str, file: IO[str]) -> None:
    session = client.get_session(session_id)
    goals = session.pop("goals", []) or []
    print_ndjson({"type": "session", **session}, file)
    for goal in goals:
        print_ndjson({"type": "goal", **goal}, file)
    for version in client.iter_state_versions(session_id):
        print_ndjson({"type": "state_version", **version}, file)
    total = int((session.get("counters") or {}).get("event_count") or 0)
    columns = (TextColumn("events"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=output().err, transient=True) as bar:
        task = bar.add_task("export", total=total or None)
        for event in client.iter_events(session_id):
            print_ndjson({"type": "event", **event}, file, flush=False)
            bar.advance(task)

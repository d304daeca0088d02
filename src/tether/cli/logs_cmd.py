"""``tether logs``: events across sessions as log lines, filtered, optionally followed."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from tether.cli.common import (
    ApiKeyOption,
    JsonOption,
    SinceOption,
    UntilOption,
    UrlOption,
    connect,
    fmt_ms,
    output,
    print_ndjson,
)

#: Longest event text shown on a log line (characters).
TEXT_MAX = 200
#: Events per request while following (the server's largest page).
_FOLLOW_PAGE = 1000

_TEXT_KEYS = ("error", "message", "text", "content")
_ATTRIBUTE_KEYS = ("error.message", "error", "message")


def event_text(event: dict[str, Any]) -> str:
    """The text a log line shows for an event: the first string among ``output`` and
    ``input`` (themselves, or their ``error``, ``message``, ``text`` or ``content``),
    then ``attributes["error.message"]``/``error``/``message``; one line, at most
    :data:`TEXT_MAX` characters."""
    found = ""
    for value in (event.get("output"), event.get("input")):
        if isinstance(value, str):
            found = value
        elif isinstance(value, dict):
            found = next((value[k] for k in _TEXT_KEYS if isinstance(value.get(k), str)), "")
        if found:
            break
    if not found:
        attributes = event.get("attributes") or {}
        found = next(
            (attributes[k] for k in _ATTRIBUTE_KEYS if isinstance(attributes.get(k), str)), ""
        )
    text = " ".join(found.split())
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1] + "…"


def log_line(event: dict[str, Any]) -> str:
    """One event as a log line (docs/cli.md)::

        <time> <session>#<seq> <LEVEL> <kind>[/<name>] <status>[ <duration>ms][ <text>]

    ``time`` is ``started_at``, else ``created_at``; an event without a level is INFO.
    """
    when = event.get("started_at") or event.get("created_at") or ""
    what = event["kind"] + (f"/{event['name']}" if event.get("name") else "")
    parts = [
        when,
        f"{event.get('session_id', '')}#{event['seq']}",
        (event.get("level") or "info").upper(),
        what,
        event.get("status") or "ok",
    ]
    if event.get("duration_ms") is not None:
        parts.append(f"{fmt_ms(event['duration_ms'])}ms")
    text = event_text(event)
    if text:
        parts.append(text)
    return " ".join(parts)


def print_line(event: dict[str, Any], as_json: bool) -> None:
    """An event on stdout: an NDJSON line, or a log line."""
    if as_json:
        print_ndjson(event)
    else:
        output().out.print(
            log_line(event), markup=False, highlight=False, emoji=False, soft_wrap=True
        )


def logs(
    session: Annotated[str | None, typer.Option(help="Only this session's events.")] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="Only these kinds (repeatable: any of them).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only events with this name.")] = None,
    level: Annotated[
        str | None,
        typer.Option(help="At least this level: debug, info, warning, error, critical."),
    ] = None,
    status: Annotated[str | None, typer.Option(help="ok, error or running.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=1, max=1000, help="The last N matching events.")
    ] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C stops).")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="While following: seconds between polls.")
    ] = 0.5,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Events across sessions (or one), oldest first, as log lines
    (`TIME SESSION#SEQ LEVEL KIND/NAME STATUS DURATIONms TEXT`); with --json one event per
    line (NDJSON)."""
    filters: dict[str, Any] = {
        "session_id": session,
        "kind": kind or None,
        "name": name,
        "level": level,
        "status": status,
        "since": since,
        "until": until,
    }
    try:
        with connect(url, api_key) as client:
            page = client.query_events(**filters, tail=lines)
            for event in page.items:
                print_line(event, as_json)
            cursor = page.cursor
            while follow:
                page = client.query_events(**filters, after=cursor, limit=_FOLLOW_PAGE)
                for event in page.items:
                    print_line(event, as_json)
                if page.next_after is not None:
                    cursor = page.next_after
                    continue
                cursor = max(cursor, page.cursor)
                time.sleep(interval)
    except KeyboardInterrupt:
        raise typer.Exit(code=0) from None

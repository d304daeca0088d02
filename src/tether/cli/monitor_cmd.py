"""``tether monitor``: a live view of one session, or of every active session.

With a session id it follows the session's event stream (the SDK's ``client.stream()``,
SSE with reconnect by ``seq``): the latest events as they arrive, the spans still
running (a ``running`` event whose ``span_id`` has no final event yet) with their elapsed
time, the session's counters, goals, sub-agents and state document. Those come from
``GET /v1/sessions/{id}`` and its state, read again when a ``state``, ``goal`` or
``agent`` event arrives and at most every :data:`REFRESH_S` otherwise. Without an id it
follows the tenant's session feed (``client.stream_sessions()``) and lists the active
sessions. Without ``--follow`` it prints one snapshot and exits.

The stream is read by a background thread with its own client (one HTTP connection each),
which hands items to the drawing loop through a queue; the view is redrawn on every
batch and :data:`FPS` times a second (elapsed times move).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from tether.cli.common import (
    ApiKeyOption,
    JsonOption,
    UrlOption,
    cell,
    connect,
    fmt_cost,
    fmt_ms,
    new_client,
    output,
    print_json,
    print_ndjson,
    stamp_of,
    table,
)
from tether.cli.logs_cmd import event_text

if TYPE_CHECKING:
    from tether_client import Client

#: Redraws per second (running spans' elapsed times move).
FPS = 4
#: Longest time between two reads of the session (counters, goals, state) while events
#: arrive (s).
REFRESH_S = 2.0
#: Lines of the state document shown.
STATE_LINES = 20
#: How far before its first read the session list's feed starts (ms; clock skew).
_FEED_MARGIN_MS = 5000
#: Event kinds that change what GET /v1/sessions/{id} or its state shows.
_REFRESHING = frozenset({"state", "goal", "agent"})


@dataclass
class SessionView:
    """What the session monitor shows; fed one event at a time."""

    session: dict[str, Any]
    state: dict[str, Any]
    events: deque[dict[str, Any]]
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    def add(self, event: dict[str, Any]) -> bool:
        """Take one event; ``True`` when the session or state should be read again."""
        span = event.get("span_id")
        if span:
            if event.get("status") == "running":
                self.running[span] = event
                self.seen.setdefault(span, time.monotonic())
            else:
                self.running.pop(span, None)
                self.seen.pop(span, None)
        self.events.append(event)
        return event.get("kind") in _REFRESHING

    def elapsed(self, span: str, event: dict[str, Any], now: datetime) -> float:
        """Seconds since a running span started (its ``started_at``, else since seen)."""
        started = stamp_of(event.get("started_at"))
        if started is not None:
            return max((now - started).total_seconds(), 0.0)
        return time.monotonic() - self.seen.get(span, time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        """The ``--json`` document of a snapshot."""
        now = datetime.now(UTC)
        return {
            "session": self.session,
            "state": self.state,
            "running": [
                {**e, "elapsed_s": round(self.elapsed(s, e, now), 3)}
                for s, e in self.running.items()
            ],
            "events": list(self.events),
        }

    def render(self) -> RenderableType:
        s, c = self.session, self.session.get("counters") or {}
        now = datetime.now(UTC)
        header = (
            f"session {s.get('id')}  agent {s.get('agent') or '-'}  status {s.get('status')}  "
            f"events {c.get('event_count', 0)}  errors {c.get('error_count', 0)}  tokens "
            f"{int(c.get('input_tokens') or 0) + int(c.get('output_tokens') or 0)}  cost "
            f"{fmt_cost(c.get('cost_usd') or 0.0)}"
        )
        parts: list[RenderableType] = [header]
        running = [
            [
                span,
                e.get("kind", ""),
                cell(e.get("name")),
                f"{self.elapsed(span, e, now):.1f}s",
            ]
            for span, e in self.running.items()
        ]
        parts.append(
            table(["span", "kind", "name", "elapsed"], running, title="running", right=("elapsed",))
        )
        rows = [
            [
                str(e.get("seq", "")),
                e.get("started_at") or e.get("created_at") or "",
                e.get("kind", ""),
                cell(e.get("name")),
                e.get("status", ""),
                fmt_ms(e.get("duration_ms")),
                event_text(e),
            ]
            for e in self.events
        ]
        columns = ["seq", "time", "kind", "name", "status", "ms", "text"]
        parts.append(table(columns, rows, title="events", right=("seq", "ms")))
        goals = s.get("goals") or []
        if goals:
            parts.append(
                table(
                    ["goal", "description", "status", "progress"],
                    [[g["id"], g["description"], g["status"], f"{g['progress']:g}"] for g in goals],
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
        lines = json.dumps(self.state.get("state") or {}, indent=2, ensure_ascii=False).split("\n")
        if len(lines) > STATE_LINES:
            lines = [*lines[:STATE_LINES], f"... ({len(lines) - STATE_LINES} more lines)"]
        parts.append(f"state (version {self.state.get('version', 0)}):")
        parts.append(Text("\n".join(lines)))
        return Group(*parts)


@dataclass
class SessionsView:
    """The active sessions, fed by the sessions feed."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, change: dict[str, Any]) -> None:
        session = change.get("session") or {}
        sid = session.get("id")
        if not sid:
            return
        if change.get("change") == "deleted" or session.get("status", "active") != "active":
            self.sessions.pop(sid, None)
        else:
            self.sessions[sid] = session

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.sessions.values(), key=lambda s: s.get("updated_at") or "", reverse=True)

    def render(self) -> RenderableType:
        columns = ["id", "agent", "events", "errors", "tokens", "cost", "updated_at"]
        rows = []
        for s in self.ordered():
            c = s.get("counters") or {}
            rows.append(
                [
                    s["id"],
                    cell(s.get("agent")),
                    str(c.get("event_count", 0)),
                    str(c.get("error_count", 0)),
                    str(int(c.get("input_tokens") or 0) + int(c.get("output_tokens") or 0)),
                    fmt_cost(c.get("cost_usd") or 0.0),
                    s.get("updated_at") or "",
                ]
            )
        title = f"active sessions ({len(rows)})"
        return table(columns, rows, title=title, right=("events", "errors", "tokens", "cost"))


def monitor(
    session_id: Annotated[
        str | None, typer.Argument(help="One session; all active sessions without it.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stay live (Ctrl-C stops).")
    ] = False,
    events: Annotated[int, typer.Option(min=1, max=1000, help="Latest events shown.")] = 15,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A live view of one session (events as they arrive, running spans with elapsed
    time, state, goals, sub-agents) or of all active sessions. Without --follow: one
    snapshot. --json: the snapshot as JSON; with --follow, NDJSON of what arrives."""
    try:
        with connect(url, api_key) as client:
            if session_id is None:
                _sessions(client, url, api_key, follow=follow, as_json=as_json)
            else:
                _session(client, session_id, url, api_key, follow, events, as_json)
    except KeyboardInterrupt:
        raise typer.Exit(code=0) from None


def _session(
    client: Client,
    session_id: str,
    url: str | None,
    api_key: str | None,
    follow: bool,
    keep: int,
    as_json: bool,
) -> None:
    view = SessionView(_detail(client, session_id), {}, deque(maxlen=keep))
    view.state = _state(client, session_id)
    if not follow:
        for event in client.iter_events(session_id):
            view.add(event)
        if as_json:
            print_json(view.snapshot())
        else:
            output().out.print(view.render())
        return
    items = _pump(lambda c: c.stream(session_id), url, api_key)
    if as_json:
        for event in _items(items):
            print_ndjson(event)
        return
    refreshed = time.monotonic()
    with Live(view.render(), console=output().out, refresh_per_second=FPS) as live:
        while True:
            batch = _drain(items)
            stale = False
            for event in batch:
                stale = view.add(event) or stale
            if stale or (batch and time.monotonic() - refreshed > REFRESH_S):
                view.session = _detail(client, session_id)
                view.state = _state(client, session_id)
                refreshed = time.monotonic()
            live.update(view.render(), refresh=bool(batch))


def _sessions(
    client: Client, url: str | None, api_key: str | None, *, follow: bool, as_json: bool
) -> None:
    view = SessionsView()
    if follow:
        # From a little before the first read: whatever changes while the list is read
        # comes again from the feed (an upsert, so twice is harmless).
        since_ms = int(time.time() * 1000) - _FEED_MARGIN_MS
        items = _pump(lambda c: c.stream_sessions(after=since_ms), url, api_key)
    for session in client.iter_sessions(status="active"):
        view.sessions[session["id"]] = session
    if not follow:
        if as_json:
            print_json(view.ordered())
        else:
            output().out.print(view.render())
        return
    if as_json:
        for change in _items(items):
            print_ndjson(change)
        return
    with Live(view.render(), console=output().out, refresh_per_second=FPS) as live:
        while True:
            batch = _drain(items)
            for change in batch:
                view.add(change)
            live.update(view.render(), refresh=bool(batch))


def _detail(client: Client, session_id: str) -> dict[str, Any]:
    return client.get_session(session_id)


def _state(client: Client, session_id: str) -> dict[str, Any]:
    snap = client.get_state(session_id)
    return {"state": snap.state, "version": snap.version}


_Item = tuple[str, Any]


def _pump(open_stream: Any, url: str | None, api_key: str | None) -> queue.Queue[_Item]:
    """Read a stream in a daemon thread with its own client; items (or the error that
    ended it) go into the returned queue."""
    items: queue.Queue[_Item] = queue.Queue()
    reader = new_client(url, api_key)

    def run() -> None:
        try:
            for item in open_stream(reader):
                items.put(("item", item))
        except BaseException as exc:  # handed to the drawing loop, which raises it
            items.put(("error", exc))

    threading.Thread(target=run, name="tether-monitor-stream", daemon=True).start()
    return items


def _drain(items: queue.Queue[_Item]) -> list[Any]:
    """What arrived within one frame (1/FPS s), at least waiting for the frame."""
    batch: list[Any] = []
    try:
        batch.append(_take(items.get(timeout=1 / FPS)))
        while True:
            batch.append(_take(items.get_nowait()))
    except queue.Empty:
        return batch


def _items(items: queue.Queue[_Item]) -> Iterator[Any]:
    while True:
        yield _take(items.get())


def _take(item: _Item) -> Any:
    kind, value = item
    if kind == "error":
        raise value
    return value

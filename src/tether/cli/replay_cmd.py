"""``tether replay``: play a session's timeline back with its original pacing.

Events come in ``seq`` order. Each event's time is its ``started_at``, else its
``created_at``; the wait before an event is the gap since the previous event's time
divided by ``--speed``, at most :data:`MAX_WAIT_S` of real time (an agent idle for an
hour does not stall the replay), and 0 when the gap is negative (a span's final event
carries the span's start, earlier than the events logged inside it). The first event
plays at once. Each event is shown at its *scheduled offset* (seconds since the replay
started, the sum of the waits before it); ``--json`` prints that offset with the event.
Waits are taken against a monotonic clock from the replay's start, so printing never
makes the replay drift.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any

import typer

from tether.cli.common import (
    ApiKeyOption,
    JsonOption,
    UrlOption,
    connect,
    output,
    print_ndjson,
    stamp_of,
)
from tether.cli.logs_cmd import log_line

#: The longest single wait, in seconds of real time (after dividing by --speed).
MAX_WAIT_S = 10.0


def event_time(event: dict[str, Any]) -> datetime | None:
    """When an event happened: ``started_at``, else ``created_at``."""
    return stamp_of(event.get("started_at") or event.get("created_at"))


def schedule(
    events: Iterable[dict[str, Any]], speed: float, max_wait: float = MAX_WAIT_S
) -> Iterator[tuple[float, dict[str, Any]]]:
    """``(offset_s, event)`` pairs: each event's scheduled offset from the replay's start
    (see the module docstring for the rule)."""
    offset = 0.0
    previous: datetime | None = None
    for event in events:
        at = event_time(event)
        if previous is not None and at is not None:
            gap = (at - previous).total_seconds()
            offset += min(max(gap, 0.0) / speed, max_wait)
        if at is not None:
            previous = at
        yield offset, event


def replay(
    session_id: Annotated[str, typer.Argument(help="The session to play back.")],
    speed: Annotated[
        float, typer.Option(min=0.001, help="Time scale: 2 plays twice as fast, 0.5 half.")
    ] = 1.0,
    from_seq: Annotated[
        int, typer.Option("--from", min=1, help="Start at this seq (default: the first).")
    ] = 1,
    step_by_step: Annotated[
        bool,
        typer.Option("--step-by-step", help="Wait for Enter before each event (no timing)."),
    ] = False,
    max_wait: Annotated[
        float, typer.Option(min=0.0, help="Longest single wait in seconds of real time.")
    ] = MAX_WAIT_S,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Play a session's events back in seq order with their original gaps divided by
    --speed (a single wait is capped at --max-wait, 10 s); --step-by-step waits for Enter
    before each event instead. --json prints {"offset_s", "event"} per event (NDJSON)."""
    out = output()
    try:
        with connect(url, api_key) as client:
            events = client.iter_events(session_id, after_seq=from_seq - 1)
            started = time.monotonic()
            for offset, event in schedule(events, speed, max_wait):
                if step_by_step:
                    out.err.print(f"[Enter] seq {event['seq']}", markup=False, end="")
                    if not out.stdin.readline():
                        break  # end of input: stop
                else:
                    delay = started + offset - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                if as_json:
                    print_ndjson({"offset_s": round(offset, 6), "event": event})
                else:
                    out.out.print(
                        f"+{offset:8.3f}s {log_line(event)}",
                        markup=False,
                        highlight=False,
                        emoji=False,
                        soft_wrap=True,
                    )
    except KeyboardInterrupt:
        raise typer.Exit(code=0) from None

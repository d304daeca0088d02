"""Turning queued operations into ``POST /v1/events/batch`` bodies (no I/O).

The agent's thread appends operations to a queue; the background thread turns them
into bodies here. Each body is *self-contained*: it carries the descriptor of every
session its events or ends refer to (parents before children). The server creates
sessions on first sight and ignores a known id ("first write wins"), so repeating a
descriptor is free, and a body never depends on an earlier one having been accepted.

Body shape (docs/dev/contracts.md, "Ingest API used by the SDK")::

    {"sessions": [{"id", "parent_id"?, "agent"?, ...}],
     "events":   [{"session_id", "kind", "idempotency_key", ...}],
     "ends":     [{"session_id", "status", "summary"?}]}

The server applies sessions, then events, then ends. So a body is cut before an
event (or a re-creation) of a session that the body already ends.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any, Literal

Op = tuple[Literal["s", "e", "x"], dict[str, Any]]
"""A queued operation: ``("s", session)``, ``("e", event)`` or ``("x", end)``."""

TS_FIELD = "_ts"
"""Private event field: Unix time in seconds, formatted to ``started_at`` off the hot path."""


def _json_default(value: Any) -> Any:
    """Encode what ``json`` cannot, so a strange value never poisons a batch."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, PurePath):
        return str(value)
    model_dump = getattr(value, "model_dump", None)  # pydantic models, without importing it
    if callable(model_dump):
        return model_dump(mode="json")
    return repr(value)


def encode(body: Mapping[str, Any]) -> bytes:
    """Serialise a body to compact JSON bytes (non-JSON values become strings).

    Raises:
        ValueError: A float is NaN or infinite (JSON has no such numbers); the caller
            falls back to :func:`encode_lenient`.
    """
    return json.dumps(body, default=_json_default, separators=(",", ":"), allow_nan=False).encode()


def encode_lenient(body: Mapping[str, Any]) -> bytes:
    """Like :func:`encode` but with NaN/infinity turned into strings."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return encode(clean(dict(body)))


def iso(ts: float) -> str:
    """ISO 8601 UTC timestamp (microseconds) of a Unix time in seconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def finish_event(event: dict[str, Any]) -> dict[str, Any]:
    """Turn a queued event into its wire form: ``_ts`` becomes ``started_at``."""
    ts = event.pop(TS_FIELD, None)
    if ts is not None and "started_at" not in event:
        event["started_at"] = iso(ts)
    return event


class _Body:
    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.ends: list[dict[str, Any]] = []
        self.ended: set[str] = set()

    def empty(self) -> bool:
        return not (self.sessions or self.events or self.ends)

    def to_dict(self) -> dict[str, Any]:
        return {"sessions": list(self.sessions.values()), "events": self.events, "ends": self.ends}


class BatchBuilder:
    """Cuts an ordered list of operations into self-contained bodies.

    Args:
        registry: Session descriptors by id, as the client registered them (read
            only; shared with the agent's thread, where inserts are atomic).
        batch_size: Most events in one body.
    """

    def __init__(self, registry: Mapping[str, dict[str, Any]], batch_size: int) -> None:
        self._registry = registry
        self._batch_size = batch_size

    def _add_session(
        self, body: _Body, session_id: str, spec: dict[str, Any] | None = None
    ) -> None:
        if session_id in body.sessions:
            return
        spec = spec if spec is not None else self._registry.get(session_id)
        if spec is None:  # not made here (e.g. an id from elsewhere): the server decides
            return
        parent = spec.get("parent_id")
        if parent is not None and parent not in body.sessions:
            self._add_session(body, parent)
        body.sessions[session_id] = spec

    def build(self, ops: Iterable[Op]) -> list[tuple[bytes, int]]:
        """Return ``(json_bytes, event_count)`` bodies for ``ops``, in order."""
        bodies: list[tuple[bytes, int]] = []
        body = _Body()

        def cut() -> _Body:
            if not body.empty():
                data = body.to_dict()
                try:
                    raw = encode(data)
                except ValueError:
                    raw = encode_lenient(data)
                bodies.append((raw, len(body.events)))
            return _Body()

        for kind, item in ops:
            if kind == "e":
                sid = item["session_id"]
                if sid in body.ended or len(body.events) >= self._batch_size:
                    body = cut()
                self._add_session(body, sid)
                body.events.append(finish_event(item))
            elif kind == "s":
                sid = item["id"]
                if sid in body.ended:
                    body = cut()
                self._add_session(body, sid, item)
            else:
                sid = item["session_id"]
                self._add_session(body, sid)
                body.ends.append(item)
                body.ended.add(sid)
        cut()
        return bodies


def merge(raw_bodies: list[bytes]) -> tuple[bytes, int]:
    """Merge consecutive stored bodies into one request, as far as order allows.

    Returns:
        ``(json_bytes, n)``: the merged body and how many of ``raw_bodies`` (a prefix,
        at least one) it contains.
    """
    if len(raw_bodies) == 1:
        return raw_bodies[0], 1
    merged = _Body()
    used = 0
    for raw in raw_bodies:
        data = json.loads(raw)
        touched = {e["session_id"] for e in data.get("events", ())}
        touched.update(s["id"] for s in data.get("sessions", ()))
        if used and touched & merged.ended:
            break
        for spec in data.get("sessions", ()):
            merged.sessions.setdefault(spec["id"], spec)
        merged.events.extend(data.get("events", ()))
        for end in data.get("ends", ()):
            merged.ends.append(end)
            merged.ended.add(end["session_id"])
        used += 1
    if used == 1:
        return raw_bodies[0], 1
    return encode_lenient(merged.to_dict()), used


def split(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Split a refused body in two halves to find the bad item.

    The items of a body are, in the order the server applies them: the session
    descriptors that no event or end of the body needs ("orphans": a session created
    with nothing logged in it yet), the events, then the ends. The first half takes the
    first ``n // 2`` items, the second the rest, so ends stay after the events they
    follow. Each half keeps the session descriptors its items need, parents first.

    Returns:
        The two halves, or ``None`` for a body of one item or none (a *leaf*: one
        event, one end or one orphan descriptor, with the descriptors it needs).
    """
    specs = {s["id"]: s for s in body.get("sessions", ())}

    def with_parents(ids: set[str]) -> set[str]:
        needed = set(ids)
        for sid in list(needed):
            parent = specs.get(sid, {}).get("parent_id")
            while parent is not None and parent in specs and parent not in needed:
                needed.add(parent)
                parent = specs[parent].get("parent_id")
        return needed

    events = list(body.get("events", ()))
    ends = list(body.get("ends", ()))
    used = with_parents({e["session_id"] for e in events} | {x["session_id"] for x in ends})
    items: list[tuple[str, Any]] = [("s", sid) for sid in specs if sid not in used]
    items += [("e", e) for e in events] + [("x", x) for x in ends]
    if len(items) < 2:
        return None

    def half(part: list[tuple[str, Any]]) -> dict[str, Any]:
        ids = {item if kind == "s" else item["session_id"] for kind, item in part}
        needed = with_parents(ids)
        return {
            "sessions": [s for sid, s in specs.items() if sid in needed],
            "events": [item for kind, item in part if kind == "e"],
            "ends": [item for kind, item in part if kind == "x"],
        }

    middle = len(items) // 2
    return half(items[:middle]), half(items[middle:])

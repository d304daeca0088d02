"""Read calls as data (sans-I/O), like :mod:`~tether_client._api`: sessions, events, state
history, diagnostics, analytics, stats, dependencies and memory administration.

Each function returns a :class:`~tether_client._api.Call` that both
:class:`~tether_client.Client` and :class:`~tether_client.AsyncClient` run (see
:mod:`~tether_client._read_methods`), so a path or a parameter is written once.
Times may be given as a ``datetime``, an RFC 3339 string, or a ``timedelta`` meaning
"that long before now" (``since=timedelta(minutes=10)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import quote

from ._api import Call

T = TypeVar("T")

When = datetime | timedelta | str
"""A time argument: a ``datetime`` (naive means UTC), an RFC 3339 string, or a
``timedelta`` counted back from now."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list.

    Attributes:
        items: The records, as the server returns them (dicts).
        next_cursor: Pass it back (``cursor=``, ``after_seq=`` or ``after=``, as the
            method says) for the next page; ``None`` on the last page. A page may hold
            fewer than ``limit`` items and still not be the last: follow the cursor.
    """

    items: list[T]
    next_cursor: Any


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What :meth:`Client.query_events` returns (``GET /v1/events``).

    Attributes:
        items: Events of any of the tenant's sessions (each with ``session_id`` and
            ``seq``), oldest first by the server's global cursor.
        next_after: Pass as ``after`` for the next page; ``None`` when nothing more
            matches now.
        cursor: The position of the last item (the current head when there is none):
            poll with ``after=cursor`` to follow new events.
    """

    items: list[dict[str, Any]]
    next_after: int | None
    cursor: int


class SessionFilters(TypedDict, total=False):
    """The filters of :meth:`Client.list_sessions` (keyword arguments)."""

    status: str | None
    agent: str | None
    user_id: str | None
    tag: str | None
    parent_id: str | None
    since: When | None
    until: When | None
    q: str | None


class EventFilters(TypedDict, total=False):
    """The arguments of :meth:`Client.query_events` (keyword arguments)."""

    session_id: str | None
    kind: str | Sequence[str] | None
    name: str | None
    level: str | None
    status: str | None
    since: When | None
    until: When | None
    after: int | None
    limit: int | None
    tail: int | None


class MemoryFilters(TypedDict, total=False):
    """The filters of :meth:`Client.list_memories` and the export (keyword arguments)."""

    namespace: str | Sequence[str] | None
    kind: str | Sequence[str] | None
    tag: str | Sequence[str] | None
    session: str | None
    q: str | None
    since: When | None
    until: When | None
    include_expired: bool
    include_deleted: bool


def when(value: When | None) -> str | None:
    """A time argument as the RFC 3339 string the server takes (``None`` stays)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = datetime.now(UTC) - value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    return value


def _params(**fields: Any) -> dict[str, Any]:
    """Query parameters without the ``None`` ones; times converted, lists kept."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, datetime | timedelta):
            value = when(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str | int | float):
            pass
        else:
            value = list(value)
            if not value:
                continue
        out[key] = value
    return out


def _seg(value: str) -> str:
    """A path segment, percent-encoded (ids may hold ``:``, ``@``, ``+``, ``=``)."""
    return quote(value, safe="")


def _dict(data: Any) -> dict[str, Any]:
    return dict(data) if isinstance(data, Mapping) else {}


def _page(cursor_key: str) -> Any:
    def parse(data: Any) -> Page[dict[str, Any]]:
        data = _dict(data)
        return Page(list(data.get("items") or []), data.get(cursor_key))

    return parse


# -- sessions ---------------------------------------------------------------------------


def list_sessions(
    *,
    status: str | None = None,
    agent: str | None = None,
    user_id: str | None = None,
    tag: str | None = None,
    parent_id: str | None = None,
    since: When | None = None,
    until: When | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Call[Page[dict[str, Any]]]:
    """``GET /v1/sessions`` (newest first; ``since``/``until`` bound ``created_at``)."""
    params = _params(
        status=status,
        agent=agent,
        user_id=user_id,
        tag=tag,
        parent_id=parent_id,
        since=when(since),
        until=when(until),
        q=q,
        cursor=cursor,
        limit=limit,
    )
    return Call("GET", "/v1/sessions", _page("next_cursor"), params=params)


def get_session(session_id: str) -> Call[dict[str, Any]]:
    """``GET /v1/sessions/{id}``: the session with ``counters``, ``goals``, ``children``."""
    return Call("GET", f"/v1/sessions/{_seg(session_id)}", _dict)


def end_session(session_id: str, status: str, summary: str | None) -> Call[dict[str, Any]]:
    """``POST /v1/sessions/{id}/end`` (the same status again is a no-op)."""
    body: dict[str, Any] = {"status": status}
    if summary is not None:
        body["summary"] = summary
    return Call("POST", f"/v1/sessions/{_seg(session_id)}/end", _dict, json=body)


def delete_session(session_id: str) -> Call[int]:
    """``DELETE /v1/sessions/{id}``: returns the number of events deleted."""
    return Call(
        "DELETE",
        f"/v1/sessions/{_seg(session_id)}",
        lambda data: int(_dict(data).get("deleted_events") or 0),
    )


def state_versions(
    session_id: str, *, after: int = 0, limit: int = 100
) -> Call[Page[dict[str, Any]]]:
    """``GET /v1/sessions/{id}/state/versions``: ``{version, state, patch, at}`` items."""
    return Call(
        "GET",
        f"/v1/sessions/{_seg(session_id)}/state/versions",
        _page("next_after"),
        params=_params(after=after, limit=limit),
    )


# -- events -----------------------------------------------------------------------------


def list_events(
    session_id: str,
    *,
    after_seq: int = 0,
    kind: str | Sequence[str] | None = None,
    limit: int = 100,
) -> Call[Page[dict[str, Any]]]:
    """``GET /v1/sessions/{id}/events``: ``seq > after_seq`` in order."""
    kinds = [kind] if isinstance(kind, str) else kind
    return Call(
        "GET",
        f"/v1/sessions/{_seg(session_id)}/events",
        _page("next_cursor"),
        params=_params(after_seq=after_seq, kind=kinds, limit=limit),
    )


def _event_query(data: Any) -> EventQuery:
    data = _dict(data)
    nxt = data.get("next_after")
    return EventQuery(
        list(data.get("items") or []),
        None if nxt is None else int(nxt),
        int(data.get("cursor") or 0),
    )


def query_events(
    *,
    session_id: str | None = None,
    kind: str | Sequence[str] | None = None,
    name: str | None = None,
    level: str | None = None,
    status: str | None = None,
    since: When | None = None,
    until: When | None = None,
    after: int | None = None,
    limit: int | None = None,
    tail: int | None = None,
) -> Call[EventQuery]:
    """``GET /v1/events``: events across the tenant's sessions."""
    kinds = [kind] if isinstance(kind, str) else kind
    params = _params(
        session_id=session_id,
        kind=kinds,
        name=name,
        level=level,
        status=status,
        since=when(since),
        until=when(until),
        after=after,
        limit=limit,
        tail=tail,
    )
    return Call("GET", "/v1/events", _event_query, params=params)


# -- diagnostics, analytics, stats, health ----------------------------------------------


def diagnostics(
    session_id: str | None = None,
    *,
    since: When | None = None,
    until: When | None = None,
    agent: str | None = None,
) -> Call[dict[str, Any]]:
    """``GET /v1/sessions/{id}/diagnostics`` or, without an id, ``GET /v1/diagnostics``."""
    if session_id is not None:
        path = f"/v1/sessions/{_seg(session_id)}/diagnostics"
        params = _params(since=when(since), until=when(until))
    else:
        path = "/v1/diagnostics"
        params = _params(since=when(since), until=when(until), agent=agent)
    return Call("GET", path, _dict, params=params)


def tool_analytics(*, since: When | None = None, until: When | None = None) -> Call[dict[str, Any]]:
    """``GET /v1/analytics/tools``."""
    params = _params(since=when(since), until=when(until))
    return Call("GET", "/v1/analytics/tools", _dict, params=params)


def timeseries(
    metric: str,
    *,
    bucket: str | None = None,
    since: When | None = None,
    until: When | None = None,
    kind: str | Sequence[str] | None = None,
    name: str | None = None,
) -> Call[dict[str, Any]]:
    """``GET /v1/analytics/timeseries``."""
    params = _params(
        metric=metric, bucket=bucket, since=when(since), until=when(until), kind=kind, name=name
    )
    return Call("GET", "/v1/analytics/timeseries", _dict, params=params)


def anomalies(
    *,
    window: int | str | None = None,
    baseline: int | None = None,
    min_samples: int | None = None,
    until: When | None = None,
) -> Call[dict[str, Any]]:
    """``GET /v1/analytics/anomalies`` (``window``: seconds, or ``"1h"``-style)."""
    params = _params(window=window, baseline=baseline, min_samples=min_samples, until=when(until))
    return Call("GET", "/v1/analytics/anomalies", _dict, params=params)


def stats() -> Call[dict[str, Any]]:
    """``GET /v1/stats``."""
    return Call("GET", "/v1/stats", _dict)


def deps() -> Call[list[dict[str, Any]]]:
    """``GET /v1/deps``: the list of dependency checks."""
    return Call("GET", "/v1/deps", lambda data: list(_dict(data).get("dependencies") or []))


# -- memory administration --------------------------------------------------------------


def memory_filter(
    *,
    namespace: str | Sequence[str] | None = None,
    kind: str | Sequence[str] | None = None,
    tag: str | Sequence[str] | None = None,
    session: str | None = None,
    q: str | None = None,
    since: When | None = None,
    until: When | None = None,
    include_expired: bool = False,
    include_deleted: bool = False,
) -> dict[str, Any]:
    """The filter query parameters shared by the memory list and the export."""

    def many(value: str | Sequence[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else (list(value) if value else None)

    return _params(
        namespace=many(namespace),
        kind=many(kind),
        tag=many(tag),
        session=session,
        q=q,
        since=when(since),
        until=when(until),
        include_expired=include_expired or None,
        include_deleted=include_deleted or None,
    )


def list_memories(
    filters: Mapping[str, Any], *, cursor: str | None = None, limit: int = 50
) -> Call[Page[dict[str, Any]]]:
    """``GET /v1/memories`` (newest first)."""
    params = {**filters, **_params(cursor=cursor, limit=limit)}
    return Call("GET", "/v1/memories", _page("next_cursor"), params=params)


def get_memory(memory_id: str, *, include_deleted: bool = False) -> Call[dict[str, Any]]:
    """``GET /v1/memories/{id}``."""
    params = _params(include_deleted=include_deleted or None)
    return Call("GET", f"/v1/memories/{_seg(memory_id)}", _dict, params=params)


def import_memories(lines: Iterable[Mapping[str, Any] | str | bytes]) -> Call[dict[str, Any]]:
    """``POST /v1/memories/import`` with an NDJSON body (all or nothing)."""
    chunks: list[bytes] = []
    for line in lines:
        if isinstance(line, bytes):
            chunk = line.strip()
        elif isinstance(line, str):
            chunk = line.strip().encode()
        else:
            chunk = json.dumps(dict(line), separators=(",", ":"), ensure_ascii=False).encode()
        if chunk:
            chunks.append(chunk)
    return Call(
        "POST",
        "/v1/memories/import",
        _dict,
        content=b"\n".join(chunks) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
    )


def memory_stats() -> Call[dict[str, Any]]:
    """``GET /v1/memory/stats``."""
    return Call("GET", "/v1/memory/stats", _dict)


def reindex_memories(everything: bool) -> Call[dict[str, Any]]:
    """``POST /v1/admin/memory/reindex`` (an admin key)."""
    return Call("POST", "/v1/admin/memory/reindex", _dict, json={"all": everything})

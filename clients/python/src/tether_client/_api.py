"""Direct calls as data (sans-I/O): one definition, run by both clients.

Each public direct call (state, goals, memory) is a function here returning a
:class:`Call`: method, path, body, and how to read the envelope's ``data``.
:class:`~tether_client.Client` runs a ``Call`` with ``httpx.Client`` and
:class:`~tether_client.AsyncClient` with ``httpx.AsyncClient``; neither restates a
path or a body, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx

from ._errors import error_for_status
from ._ids import new_id
from ._retry import retry_after_of

T = TypeVar("T")


class _Unset:
    """Type of :data:`UNSET`."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()
"""Sentinel for "leave this field alone" in updates, where ``None`` means "clear it"."""


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """A session's state document.

    Attributes:
        state: The JSON document.
        version: Its version, for ``if_match`` (optimistic concurrency).
    """

    state: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class RecallResult:
    """One memory found by :meth:`Client.recall`.

    Attributes:
        memory: The memory record (``id``, ``namespace``, ``text``, ``kind``, ``tags``,
            ``metadata``, ``importance``, timestamps, ...), as the server returns it.
        score: The final ranking score (higher is better).
        scores: Its breakdown (``bm25``, ``vector``, ``recency``, ``importance``, ...).
    """

    memory: dict[str, Any]
    score: float
    scores: dict[str, Any] = field(default_factory=dict)


def _identity(data: Any) -> Any:
    return data


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP request and how to read its reply.

    Attributes:
        method: HTTP method.
        path: Path under the base URL.
        parse: Turns the envelope's ``data`` into the return value.
        json: JSON body, or ``None``.
        params: Query parameters, or ``None``.
        headers: Extra headers (``If-Match``, ``Idempotency-Key``), or ``None``.
        content: A raw body (NDJSON) instead of ``json``, or ``None``.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    content: bytes | None = None


def unwrap(response: httpx.Response) -> Any:
    """Return the envelope's ``data`` of a 2xx reply, or raise its error.

    Raises:
        APIError: A subclass chosen by status (see :mod:`tether_client._errors`), with the
            envelope's ``error.code``, ``message``, ``details``, the correlation id and
            ``Retry-After``.
    """
    try:
        payload = response.json() if response.content else None
    except ValueError:
        payload = None
    if response.is_success:
        if isinstance(payload, dict) and "ok" in payload and "data" in payload:
            return payload["data"]
        return payload
    error: Mapping[str, Any] = {}
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
    cls = error_for_status(response.status_code)
    correlation = response.headers.get("x-correlation-id")
    if correlation is None and isinstance(payload, dict):
        correlation = payload.get("correlation_id")
    raise cls(
        str(error.get("message") or response.reason_phrase or "error"),
        status=response.status_code,
        code=str(error.get("code") or f"http_{response.status_code}"),
        details=error.get("details"),
        correlation_id=correlation,
        retry_after=retry_after_of(response),
    )


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v is not UNSET}


def _stamp(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


# -- sessions: state and goals ----------------------------------------------------------


def _snapshot(data: Any) -> StateSnapshot:
    return StateSnapshot(state=dict(data.get("state") or {}), version=int(data.get("version", 0)))


def get_state(session_id: str) -> Call[StateSnapshot]:
    """``GET /v1/sessions/{id}/state``."""
    return Call("GET", f"/v1/sessions/{session_id}/state", _snapshot)


def update_state(
    session_id: str, patch: Mapping[str, Any], if_match: int | None
) -> Call[StateSnapshot]:
    """``PATCH /v1/sessions/{id}/state`` with a JSON Merge Patch (RFC 7386)."""
    headers = {"Content-Type": "application/merge-patch+json"}
    if if_match is not None:
        headers["If-Match"] = str(if_match)
    return Call(
        "PATCH", f"/v1/sessions/{session_id}/state", _snapshot, json=dict(patch), headers=headers
    )


def add_goal(
    session_id: str,
    description: str,
    priority: int | None,
    status: str | None,
    progress: float | None,
) -> Call[dict[str, Any]]:
    """``POST /v1/sessions/{id}/goals``; retried safely with an ``Idempotency-Key``."""
    body = _drop_none(description=description, priority=priority, status=status, progress=progress)
    return Call(
        "POST",
        f"/v1/sessions/{session_id}/goals",
        _identity,
        json=body,
        headers={"Idempotency-Key": new_id()},
    )


def update_goal(session_id: str, goal_id: str, fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """``PATCH /v1/sessions/{id}/goals/{goal_id}`` with the fields that are not UNSET."""
    body = {k: v for k, v in fields.items() if v is not UNSET}
    return Call("PATCH", f"/v1/sessions/{session_id}/goals/{goal_id}", _identity, json=body)


# -- memory -----------------------------------------------------------------------------


def memory_item(
    namespace: str,
    text: str,
    *,
    kind: str | None = None,
    tags: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    importance: float | None = None,
    occurred_at: datetime | str | None = None,
    expires_at: datetime | str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Build one memory body for ``/v1/memories`` (an idempotency key is always set)."""
    return _drop_none(
        namespace=namespace,
        text=text,
        kind=kind,
        tags=list(tags) if tags is not None else None,
        metadata=dict(metadata) if metadata is not None else None,
        importance=importance,
        occurred_at=_stamp(occurred_at),
        expires_at=_stamp(expires_at),
        idempotency_key=idempotency_key or new_id(),
    )


def remember(item: dict[str, Any]) -> Call[dict[str, Any]]:
    """``POST /v1/memories``."""
    return Call("POST", "/v1/memories", _identity, json=item)


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return data
    for key in ("items", "results", "memories"):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            return list(data[key])
    return []


def remember_many(items: list[dict[str, Any]]) -> Call[list[dict[str, Any]]]:
    """``POST /v1/memories/batch`` (the server takes up to 1,000 items)."""
    return Call("POST", "/v1/memories/batch", _items, json={"items": items})


def _results(data: Any) -> list[RecallResult]:
    results = data.get("results", []) if isinstance(data, dict) else []
    return [
        RecallResult(
            memory=dict(r.get("memory") or {}),
            score=float(r.get("score") or 0.0),
            scores=dict(r.get("scores") or {}),
        )
        for r in results
    ]


def recall(
    namespace: str | list[str],
    query: str,
    limit: int,
    filters: Mapping[str, Any] | None,
    include_expired: bool,
) -> Call[list[RecallResult]]:
    """``POST /v1/memories/search``."""
    body: dict[str, Any] = {"namespace": namespace, "query": query, "limit": limit}
    if filters:
        body["filters"] = dict(filters)
    if include_expired:
        body["include_expired"] = True
    return Call("POST", "/v1/memories/search", _results, json=body)


def forget(memory_id: str) -> Call[None]:
    """``DELETE /v1/memories/{id}`` (a tombstone: hidden, kept in history)."""
    return Call("DELETE", f"/v1/memories/{memory_id}", lambda _data: None)

"""Sessions and spans.

:class:`Session` (for :class:`~tether_client.Client`) and :class:`AsyncSession` (for
:class:`~tether_client.AsyncClient`) share everything in :class:`BaseSession`: the
logging calls, spans, sub-agents and ``end``, which only queue work for the batcher
and never block or raise for network reasons. They differ only in the four direct
calls (state and goals), which are plain methods on one and coroutines on the other;
both run the same :mod:`~tether_client._api` call definitions.
"""

from __future__ import annotations

import contextvars
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from . import _api
from ._api import UNSET, StateSnapshot
from ._batch import TS_FIELD, iso
from ._ids import new_id

if TYPE_CHECKING:
    from ._client import AsyncClient, Client
    from ._core import _ClientCore

EVENT_KINDS = frozenset(
    {
        "message", "action", "response", "llm", "tool", "retrieval", "embedding", "agent",
        "goal", "state", "memory", "vad", "stt", "tts", "error", "log", "custom",
    }
)  # fmt: skip
"""Event kinds the server accepts (ARCHITECTURE §2)."""

EVENT_STATUSES = frozenset({"ok", "error", "running"})
END_STATUSES = frozenset({"completed", "failed", "abandoned"})

_EVENT_FIELDS = frozenset(
    {
        "name", "role", "status", "level", "started_at", "ended_at", "duration_ms",
        "parent_id", "span_id", "trace_id", "input", "output", "attributes", "model",
        "input_tokens", "output_tokens", "cost_usd", "idempotency_key",
        "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "price",
    }
)  # fmt: skip
_MAX_KEY_LENGTH = 200  # the server's limit on idempotency keys
_MAX_TRACE_CHARS = 4_000  # keep a stack trace in an event reasonably small

_current_session: contextvars.ContextVar[BaseSession | None] = contextvars.ContextVar(
    "tether_session", default=None
)
_current_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "tether_span", default=None
)


def current_session() -> BaseSession | None:
    """The session of the innermost ``with client.session(...)`` block in this context."""
    return _current_session.get()


def current_span() -> Span | None:
    """The innermost open span in this context (threads and asyncio tasks each have theirs)."""
    return _current_span.get()


class BaseSession:
    """A session (a trace): what an agent does for one task, seen by the server.

    Do not build one directly: use ``client.session(...)`` or ``session.spawn_agent(...)``.

    Attributes:
        id: The session id (client-made unless given).
        parent_id: The parent session's id for a sub-agent, else ``None``.
        agent: The agent's name, or ``None``.
    """

    def __init__(self, core: _ClientCore, session_id: str, spec: dict[str, Any]) -> None:
        self._core = core
        self.id = session_id
        self.parent_id: str | None = spec.get("parent_id")
        self.agent: str | None = spec.get("agent")
        self._spec = spec
        self._ended = False
        self._token: contextvars.Token[BaseSession | None] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id!r} agent={self.agent!r}>"

    # -- events (queued; never block) --------------------------------------------------

    def log_event(
        self,
        kind: str,
        *,
        name: str | None = None,
        input: Any = None,
        output: Any = None,
        status: str = "ok",
        attributes: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> str:
        """Queue one event. Returns immediately; the batcher sends it.

        Args:
            kind: One of :data:`EVENT_KINDS` (``action``, ``tool``, ``llm``, ``stt``, ...).
            name: Short label (tool name, model stage, ...).
            input: Any JSON-able value (others are stored as their ``repr``). It is
                serialised in the background within ``flush_interval``: do not mutate
                it after logging.
            output: Like ``input``.
            status: ``ok`` (default), ``error`` or ``running``.
            attributes: Free-form JSON object.
            idempotency_key: Your own key (≤ 200 chars) to make a re-logged event a
                no-op on the server, e.g. after an agent restart; a new id otherwise.
            **fields: Other event fields: ``role``, ``level``, ``started_at``,
                ``ended_at`` (datetime or ISO 8601), ``duration_ms`` (ms),
                ``parent_id``, ``span_id``, ``trace_id``, ``model``, ``input_tokens``,
                ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
                ``reasoning_tokens`` (tokens), ``cost_usd`` (US dollars), ``price``
                (this event's prices, USD per million tokens; docs/cost.md).

        Returns:
            The event's idempotency key.

        Raises:
            ValueError: Unknown ``kind`` or ``status``, or a key over 200 characters.
            TypeError: An unknown keyword field.
        """
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {sorted(EVENT_KINDS)}")
        if status not in EVENT_STATUSES:
            raise ValueError(f"unknown event status {status!r}; expected ok, error or running")
        if fields and not _EVENT_FIELDS.issuperset(fields):
            raise TypeError(f"unknown event field(s): {sorted(set(fields) - _EVENT_FIELDS)}")
        if idempotency_key is None:
            idempotency_key = new_id()
        elif len(idempotency_key) > _MAX_KEY_LENGTH:
            raise ValueError("idempotency_key is longer than 200 characters")
        event: dict[str, Any] = {
            "session_id": self.id,
            "kind": kind,
            "idempotency_key": idempotency_key,
            TS_FIELD: time.time(),
        }
        if status != "ok":
            event["status"] = status
        if name is not None:
            event["name"] = name
        if input is not None:
            event["input"] = input
        if output is not None:
            event["output"] = output
        if attributes is not None:
            event["attributes"] = attributes
        for key, value in fields.items():
            if value is not None:
                event[key] = value
        if "parent_id" not in event:
            span = _current_span.get()
            if span is not None and span.session is self:
                event["parent_id"] = span.span_id
        self._core._batcher.put(("e", event))
        return idempotency_key

    def log_action(self, name: str, *, input: Any = None, output: Any = None, **fields: Any) -> str:
        """Queue an ``action`` event (something the agent did). See :meth:`log_event`."""
        return self.log_event("action", name=name, input=input, output=output, **fields)

    def log_response(self, output: Any, *, name: str | None = None, **fields: Any) -> str:
        """Queue a ``response`` event (what the agent answered). See :meth:`log_event`."""
        return self.log_event("response", name=name, output=output, **fields)

    def log_message(self, content: Any, *, role: str = "user", **fields: Any) -> str:
        """Queue a ``message`` event; ``content`` is stored as its ``input``.

        Args:
            content: The message text (or any JSON-able value).
            role: ``user``, ``assistant``, ``system``, ``tool``, ...
            **fields: See :meth:`log_event`.
        """
        return self.log_event("message", input=content, role=role, **fields)

    def span(
        self,
        kind: str,
        name: str | None = None,
        *,
        input: Any = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Span:
        """A timed stage: a ``running`` event on entry, the final event on exit.

        Both events share a ``span_id``; the final one has ``duration_ms`` (ms,
        monotonic clock), ``ended_at``, and ``status`` ``error`` with
        ``attributes["exception.type" | "exception.message" | "exception.stacktrace"]``
        if the block raised (the exception propagates). Spans nest through
        ``parent_id``. Works with ``with`` and ``async with``.

        Raises:
            ValueError: Unknown ``kind``.
        """
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        return Span(self, kind, name, input, attributes)

    # -- sub-agents and end (queued) ---------------------------------------------------

    def spawn_agent(
        self,
        *,
        id: str | None = None,
        agent: str | None = None,
        user_id: str | None = None,
        title: str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Self:
        """Start a sub-agent: a child session with ``parent_id`` = this session.

        Queued like events, so it works while the server is down; the server logs an
        ``agent`` event in this session when it first sees the child. ``user_id``
        defaults to this session's.

        Returns:
            The child session (same class as this one).

        Raises:
            ValueError: ``id`` is not a valid session id.
        """
        return self._core._new_session(
            type(self),
            id=id,
            agent=agent,
            user_id=user_id if user_id is not None else self._spec.get("user_id"),
            title=title,
            tags=tags,
            metadata=metadata,
            parent_id=self.id,
        )

    def complete_agent(
        self,
        child: BaseSession | str,
        status: Literal["completed", "failed", "abandoned"] = "completed",
        summary: str | None = None,
    ) -> None:
        """End a sub-agent's session (the server logs an ``agent`` event here)."""
        if isinstance(child, BaseSession):
            child.end(status, summary)
        else:
            self._core._batcher.put(("x", _end_body(child, status, summary)))

    def end(
        self,
        status: Literal["completed", "failed", "abandoned"] = "completed",
        summary: str | None = None,
    ) -> None:
        """End this session; later calls are ignored. Queued, never blocks.

        Raises:
            ValueError: Unknown ``status``.
        """
        if status not in END_STATUSES:
            raise ValueError(
                f"unknown end status {status!r}; expected one of {sorted(END_STATUSES)}"
            )
        if self._ended:
            return
        self._ended = True
        self._core._batcher.put(("x", _end_body(self.id, status, summary)))

    # -- context manager ---------------------------------------------------------------

    def _enter(self) -> Self:
        self._token = _current_session.set(self)
        return self

    def _exit(self, exc: BaseException | None) -> None:
        if self._token is not None:
            _current_session.reset(self._token)
            self._token = None
        if exc is None:
            self.end("completed")
        else:
            self.end("failed", f"{type(exc).__name__}: {exc}"[:500])


def _end_body(session_id: str, status: str, summary: str | None) -> dict[str, Any]:
    body = {"session_id": session_id, "status": status}
    if summary is not None:
        body["summary"] = summary
    return body


class Session(BaseSession):
    """A session of a :class:`~tether_client.Client` (blocking direct calls).

    ``with client.session(...) as s:`` ends it ``completed``, or ``failed`` if the
    block raised.
    """

    _core: Client

    def __enter__(self) -> Self:
        return self._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    def get_state(self) -> StateSnapshot:
        """Read the state document and its version.

        Raises:
            ServerUnreachableError: The server is down (``CircuitOpenError`` if the
                breaker is open: no request was made).
            NotFoundError: The session is not on the server yet (its creation is still
                queued: call ``client.flush()`` first) or does not exist.
        """
        return self._core._call(_api.get_state(self.id))

    def update_state(
        self, patch: Mapping[str, Any], *, if_match: int | None = None
    ) -> StateSnapshot:
        """Apply a JSON Merge Patch (RFC 7386: ``None`` deletes a key) to the state.

        Args:
            patch: The merge patch.
            if_match: Apply only if the state is still at this version.

        Returns:
            The new state and version.

        Raises:
            PreconditionFailedError: ``if_match`` is stale (412).
            ServerUnreachableError: See :meth:`get_state`.
            NotFoundError: See :meth:`get_state`.
        """
        return self._core._call(_api.update_state(self.id, patch, if_match))

    def add_goal(
        self,
        description: str,
        *,
        priority: int | None = None,
        status: str | None = None,
        progress: float | None = None,
    ) -> dict[str, Any]:
        """Add a goal (``status``: open, in_progress, done, failed, cancelled;
        ``progress``: 0-1). Returns the goal record (with its ``id``).

        Raises:
            ValidationError: Bad field (422).
            ServerUnreachableError: See :meth:`get_state`.
            NotFoundError: See :meth:`get_state`.
        """
        return self._core._call(_api.add_goal(self.id, description, priority, status, progress))

    def update_goal(
        self,
        goal_id: str,
        *,
        description: str = UNSET,
        priority: int | None = UNSET,
        status: str = UNSET,
        progress: float | None = UNSET,
    ) -> dict[str, Any]:
        """Change a goal's fields (those left ``UNSET`` are kept). Returns the goal.

        Raises:
            NotFoundError: Unknown goal or session.
            ValidationError: Bad field (422).
            ServerUnreachableError: See :meth:`get_state`.
        """
        fields = {
            "description": description,
            "priority": priority,
            "status": status,
            "progress": progress,
        }
        return self._core._call(_api.update_goal(self.id, goal_id, fields))


class AsyncSession(BaseSession):
    """A session of an :class:`~tether_client.AsyncClient`: like :class:`Session`, with
    ``async with`` and awaitable direct calls (``get_state``, ``update_state``,
    ``add_goal``, ``update_goal``; same errors). Logging calls stay plain methods: they
    never wait.
    """

    _core: AsyncClient

    async def __aenter__(self) -> Self:
        return self._enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    async def get_state(self) -> StateSnapshot:
        """See :meth:`Session.get_state`."""
        return await self._core._acall(_api.get_state(self.id))

    async def update_state(
        self, patch: Mapping[str, Any], *, if_match: int | None = None
    ) -> StateSnapshot:
        """See :meth:`Session.update_state`."""
        return await self._core._acall(_api.update_state(self.id, patch, if_match))

    async def add_goal(
        self,
        description: str,
        *,
        priority: int | None = None,
        status: str | None = None,
        progress: float | None = None,
    ) -> dict[str, Any]:
        """See :meth:`Session.add_goal`."""
        return await self._core._acall(
            _api.add_goal(self.id, description, priority, status, progress)
        )

    async def update_goal(
        self,
        goal_id: str,
        *,
        description: str = UNSET,
        priority: int | None = UNSET,
        status: str = UNSET,
        progress: float | None = UNSET,
    ) -> dict[str, Any]:
        """See :meth:`Session.update_goal`."""
        fields = {
            "description": description,
            "priority": priority,
            "status": status,
            "progress": progress,
        }
        return await self._core._acall(_api.update_goal(self.id, goal_id, fields))


class Span:
    """A timed stage in a session; see :meth:`BaseSession.span`.

    Attributes:
        session: The session it belongs to.
        span_id: Shared by its ``running`` and final events.
        kind: Event kind.
        name: Event name.
    """

    def __init__(
        self,
        session: BaseSession,
        kind: str,
        name: str | None,
        input: Any,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self.session = session
        self.kind = kind
        self.name = name
        self.span_id = new_id()
        self.parent_id: str | None = None
        self._input = input
        self._output: Any = None
        self._attributes: dict[str, Any] = dict(attributes or {})
        self._usage: dict[str, Any] = {}
        self._start = 0.0
        self._t0 = 0.0
        self._token: contextvars.Token[Span | None] | None = None

    def set_output(self, value: Any) -> None:
        """Record the stage's output (sent with the final event)."""
        self._output = value

    def set_attribute(self, key: str, value: Any) -> None:
        """Add one attribute to the final event."""
        self._attributes[key] = value

    def set_usage(
        self,
        *,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Record model usage on the final event.

        Token counts follow OpenTelemetry GenAI: ``input_tokens`` includes
        ``cache_read_tokens`` and ``cache_write_tokens``, ``output_tokens`` includes
        ``reasoning_tokens``. ``cost_usd`` (US dollars) left out is computed by the server
        from its price table for ``model`` (docs/cost.md).
        """
        self._usage.update(
            {
                k: v
                for k, v in {
                    "model": model,
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cost_usd": cost_usd,
                    "cache_read_tokens": cache_read_tokens,
                    "cache_write_tokens": cache_write_tokens,
                    "reasoning_tokens": reasoning_tokens,
                }.items()
                if v is not None
            }
        )

    def __enter__(self) -> Self:
        parent = _current_span.get()
        if parent is not None and parent.session is self.session:
            self.parent_id = parent.span_id
        self._start = time.time()
        self._t0 = time.perf_counter()
        self.session.log_event(
            self.kind,
            name=self.name,
            input=self._input,
            status="running",
            attributes=dict(self._attributes) or None,
            span_id=self.span_id,
            parent_id=self.parent_id,
        )
        self._token = _current_span.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = (time.perf_counter() - self._t0) * 1000.0
        if self._token is not None:
            _current_span.reset(self._token)
            self._token = None
        fields: dict[str, Any] = {}
        status = "ok"
        if exc is not None:
            status = "error"
            fields["level"] = "error"
            self._attributes["exception.type"] = type(exc).__qualname__
            self._attributes["exception.message"] = str(exc)
            trace = "".join(traceback.format_exception(exc))
            self._attributes["exception.stacktrace"] = trace[-_MAX_TRACE_CHARS:]
        self.session.log_event(
            self.kind,
            name=self.name,
            input=self._input,
            output=self._output,
            status=status,
            attributes=self._attributes or None,
            span_id=self.span_id,
            parent_id=self.parent_id,
            duration_ms=round(duration_ms, 3),
            started_at=iso(self._start),
            ended_at=iso(time.time()),
            **fields,
            **self._usage,
        )

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

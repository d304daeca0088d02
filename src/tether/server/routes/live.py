"""Live streams over Server-Sent Events (``GET /v1/sessions/{session_id}/stream``,
``GET /v1/memory/changes/stream``) and a WebSocket (``WS /v1/ws``).

Each stored event of the session after the cursor is one SSE message, ``event: event``,
``id: <seq>``, ``data: <the event as JSON>``: first the backlog, then live, each event
once and in ``seq`` order (:class:`tether.services.live.LiveService`). The cursor is
``Last-Event-ID`` (what an ``EventSource`` sends when it reconnects) or else ``after``;
``0`` by default (from the first event). A comment line is sent every 15 s so proxies keep
the connection. A client that falls ``TETHER_LIVE_MAX_QUEUE`` (10,000) events behind gets
``event: overflow`` with ``data: {"cursor": <seq>}`` (the last one it was sent) and the
stream ends: reconnect with that cursor. The memory feed is the same with ``event:
change`` and ``id: <lsn>``.

``WS /v1/ws`` carries the same streams as channels (``session:<id>``, ``memory``), and a
``metrics`` channel (a snapshot a second), several per connection; the protocol is in
docs/live.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Final, Literal

import orjson
from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.common import MAX_SAFE_INT
from tether.domain.records import Event, MemoryChange
from tether.errors import NotFound, RateLimited, TetherError, Unauthorized
from tether.server.access import CONTEXT_KEY
from tether.server.bodies import DECIMAL_PATTERN, JSONRoute, parse_decimal
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import correlation_id
from tether.server.errors import field_errors
from tether.server.metrics import counted_stream
from tether.services.context import RequestContext
from tether.services.live import LiveEnded, LiveOverflow

router = APIRouter(tags=["live"], route_class=JSONRoute)

#: Seconds between keep-alive comments on an idle stream.
PING_S: Final = 15

_STREAM = {
    200: {
        "description": "Server-Sent Events (text/event-stream), one per stored event; not "
        "enveloped.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


#: ``Last-Event-ID``: what an ``EventSource`` sends when it reconnects.
LastEventId = Annotated[
    str | None,
    Header(
        pattern=DECIMAL_PATTERN,
        description="The id (seq or lsn) of the last message received (an EventSource "
        "reconnecting); wins over `after`.",
    ),
]


def _cursor(after: int, last_event_id: str | None) -> int:
    """The stream's cursor: ``Last-Event-ID`` when sent, else ``after``.

    Raises:
        InvalidInput: ``Last-Event-ID`` is not a cursor this server issued (422).
    """
    if last_event_id is None:
        return after
    return parse_decimal(
        last_event_id, ["header", "Last-Event-ID"], "Last-Event-ID is not a cursor"
    )


@router.get(
    "/v1/sessions/{session_id}/stream",
    operation_id="sessions.stream",
    responses=_STREAM,  # type: ignore[arg-type]
    response_class=EventSourceResponse,
)
async def stream_session(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT, description="Events after this seq.")] = 0,
    last_event_id: LastEventId = None,
) -> Response:
    """The session's events after the cursor as Server-Sent Events, backlog then live."""
    cursor = _cursor(after, last_event_id)
    batches = await svc.live.follow_session(ctx, session_id, after=cursor)
    stream = counted_stream(svc.metrics, _messages(batches, "event", _seq))
    return EventSourceResponse(stream, ping=PING_S)


@router.get(
    "/v1/sessions/stream",
    operation_id="sessions.list.stream",
    responses=_STREAM,  # type: ignore[arg-type]
    response_class=EventSourceResponse,
)
async def stream_sessions(
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INT,
            description="First the sessions changed at or after this updated_at (ms since "
            "the epoch); absent: live changes only.",
        ),
    ] = None,
    last_event_id: LastEventId = None,
) -> Response:
    """The tenant's sessions as they are created, updated, ended and deleted, for live
    lists: ``event: session.created`` (``.updated``, ``.ended``, ``.deleted``), ``id:
    <updated_at ms>``, ``data:`` the session (``{"id"}`` when deleted)."""
    cursor = after if last_event_id is None else _cursor(0, last_event_id)
    batches = await svc.live.follow_sessions(ctx, after=cursor)
    return EventSourceResponse(counted_stream(svc.metrics, _session_messages(batches)), ping=PING_S)


async def _session_messages(
    batches: AsyncIterator[list[dict[str, Any]]],
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for batch in batches:
            for item in batch:
                yield ServerSentEvent(
                    orjson.dumps(item["session"]).decode(),
                    event=item["change"],
                    id=str(item["cursor"]),
                )
    except LiveOverflow as exc:
        yield ServerSentEvent(orjson.dumps({"cursor": exc.cursor}).decode(), event="overflow")
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


@router.get(
    "/v1/memory/changes/stream",
    operation_id="memory.changes.stream",
    responses=_STREAM,  # type: ignore[arg-type]
    response_class=EventSourceResponse,
)
async def stream_memory_changes(
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT, description="Changes after this lsn.")] = 0,
    last_event_id: LastEventId = None,
) -> Response:
    """The tenant's memory change feed after the cursor as Server-Sent Events (``event:
    change``, ``id: <lsn>``, the shape of ``GET /v1/memory/changes`` items), backlog then
    live; a key limited to namespace prefixes gets only the changes under them."""
    cursor = _cursor(after, last_event_id)
    batches = await svc.live.follow_memory(ctx, after=cursor)
    stream = counted_stream(svc.metrics, _messages(batches, "change", _lsn))
    return EventSourceResponse(stream, ping=PING_S)


#: A WebSocket message carries items until its JSON passes this many bytes (at least one).
MESSAGE_BYTES: Final = 256 * 1024


#: Messages made lately, by the batch's ``id()`` and the message head: the followers of
#: one feed receive the same list object from its tail, so N subscribers of a session cost
#: one serialisation. An entry keeps its list alive, so the ``id`` is not reused meanwhile.
_ENCODED: OrderedDict[tuple[int, bytes], tuple[list[Any], list[str]]] = OrderedDict()
_ENCODED_MAX: Final = 256


def _encoded(batch: list[Any], head: bytes, cursor_of: Callable[[Any], int]) -> list[str]:
    """The WebSocket messages of a batch: ``head`` + cursor + items, cut at about
    ``MESSAGE_BYTES`` (cached for the other subscribers of the same batch)."""
    key = (id(batch), head)
    cached = _ENCODED.get(key)
    if cached is not None and cached[0] is batch:
        return cached[1]
    messages = [
        (
            head
            + b',"cursor":%d,"data":[%b]}'
            % (cursor_of(chunk[-1][0]), b",".join(raw for _, raw in chunk))
        ).decode()
        for chunk in _serialise(batch)
    ]
    _ENCODED[key] = (batch, messages)
    if len(_ENCODED) > _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    return messages


def _serialise(batch: list[Any]) -> list[list[tuple[Any, bytes]]]:
    """The batch's items with their JSON, in chunks of about ``MESSAGE_BYTES``."""
    out: list[list[tuple[Any, bytes]]] = [[]]
    size = 0
    for item in batch:
        raw = orjson.dumps(item)
        if out[-1] and size + len(raw) > MESSAGE_BYTES:
            out.append([])
            size = 0
        out[-1].append((item, raw))
        size += len(raw)
    return out if out[0] else []


def _item_cursor(item: dict[str, Any]) -> int:
    cursor: int = item["cursor"]
    return cursor


def _seq(event: Event) -> int:
    return event.seq


def _lsn(change: MemoryChange) -> int:
    return change.lsn


async def _messages(
    batches: AsyncIterator[list[Any]], name: str, cursor_of: Callable[[Any], int]
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for batch in batches:
            for item in batch:
                yield ServerSentEvent(
                    orjson.dumps(item).decode(), event=name, id=str(cursor_of(item))
                )
    except LiveOverflow as exc:
        yield ServerSentEvent(orjson.dumps({"cursor": exc.cursor}).decode(), event="overflow")
    except LiveEnded as exc:
        yield ServerSentEvent(orjson.dumps({"cursor": exc.cursor}).decode(), event="deleted")
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


# -- WebSocket ----------------------------------------------------------------------------
#: Seconds between server heartbeats; and how long a connection without a key may take
#: to send its ``auth`` message.
HEARTBEAT_S: Final = 15.0
AUTH_WAIT_S: Final = 10.0
#: Close codes (RFC 6455 §7.4.2 leaves 4000-4999 to applications).
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_OVERFLOW: Final = 4008
#: Channels one connection may follow at once.
MAX_CHANNELS: Final = 100
#: The largest client message (bytes); client messages are small JSON commands.
MAX_CLIENT_MESSAGE: Final = 64 * 1024


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["auth"]
    key: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["subscribe", "unsubscribe"]
    channels: Annotated[
        list[Annotated[str, StringConstraints(max_length=300)]], Field(min_length=1, max_length=100)
    ]
    cursor: dict[str, Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]] = Field(default_factory=dict)


class _Ping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["ping"]


_CLIENT_MESSAGE: Final = TypeAdapter(
    Annotated[_Auth | _Subscribe | _Ping, Field(discriminator="op")]
)


@router.websocket("/v1/ws")
async def websocket(ws: WebSocket) -> None:
    """``WS /v1/ws``: subscribe to channels, receive what is committed (see docs/live.md)."""
    await ws.accept()
    conn = _Connection(ws, services_of_ws(ws))
    await conn.run()


def services_of_ws(ws: WebSocket) -> Any:
    return ws.app.state.services


class _Connection:
    """One WebSocket client: its identity, its channels and their pump tasks."""

    def __init__(self, ws: WebSocket, svc: Any) -> None:
        self.ws = ws
        self.svc = svc
        self.ctx: RequestContext | None = ws.scope.get(CONTEXT_KEY)
        self.pumps: dict[str, asyncio.Task[None]] = {}
        self.send_lock = asyncio.Lock()
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(orjson.dumps(message).decode())

    async def send_raw(self, message: str) -> None:
        """Send one JSON text frame (already serialised)."""
        async with self.send_lock:
            if not self.closed:
                await self.ws.send_text(message)

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason[:120])

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        counted: str | None = None
        try:
            if self.ctx is None and not await self._authenticate():
                return
            assert self.ctx is not None
            counted = self.ctx.tenant_id
            self.svc.live_metrics.connected(counted)
            if self.svc.metrics is not None:
                self.svc.metrics.connection("ws", 1)
            while not self.closed:
                try:
                    raw = await self.ws.receive_text()
                except WebSocketDisconnect:
                    return
                await self._handle(raw)
        except WebSocketDisconnect:
            return
        finally:
            if counted is not None:
                self.svc.live_metrics.disconnected(counted)
                if self.svc.metrics is not None:
                    self.svc.metrics.connection("ws", -1)
            self.closed = True
            heartbeat.cancel()
            for task in self.pumps.values():
                task.cancel()
            await asyncio.gather(heartbeat, *self.pumps.values(), return_exceptions=True)

    async def _authenticate(self) -> bool:
        """Without a key in the handshake, the first message must be ``auth``."""
        try:
            raw = await asyncio.wait_for(self.ws.receive_text(), AUTH_WAIT_S)
            message = _CLIENT_MESSAGE.validate_json(raw)
            if not isinstance(message, _Auth):
                raise Unauthorized('send {"op": "auth", "key": "tk_..."} first')
            self.ctx = await self.svc.authenticator.authenticate(
                message.key, correlation_id=correlation_id(self.ws.scope)
            )
            await self.svc.limiter.check(self.ctx.key_id or "", self.ctx.scope)
        except (TimeoutError, ValidationError, Unauthorized, RateLimited) as exc:
            text = exc.message if isinstance(exc, TetherError) else "an auth message is required"
            await self.send({"type": "error", "code": "unauthorized", "message": text})
            await self.close(CLOSE_UNAUTHORIZED, text)
            return False
        await self.send({"type": "authenticated", "tenant": self.ctx.tenant_id})
        return True

    async def _handle(self, raw: str) -> None:
        try:
            message = _CLIENT_MESSAGE.validate_json(raw)
        except ValidationError as exc:
            await self.send(
                {
                    "type": "error",
                    "code": "invalid_input",
                    "message": "not a client message",
                    "details": field_errors(exc.errors()),
                }
            )
            return
        if isinstance(message, _Ping):
            await self.send({"type": "pong"})
        elif isinstance(message, _Auth):
            await self.send(
                {"type": "error", "code": "invalid_input", "message": "already authenticated"}
            )
        elif message.op == "subscribe":
            for channel in message.channels:
                await self._subscribe(channel, message.cursor.get(channel))
        else:
            for channel in message.channels:
                task = self.pumps.pop(channel, None)
                if task is not None:
                    task.cancel()
                await self.send({"type": "unsubscribed", "channel": channel})

    async def _subscribe(self, channel: str, given: int | None) -> None:
        """Start following ``channel`` from the cursor ``given`` (absent: from the start
        of a session or of the memory feed; for ``sessions``, live changes only)."""
        cursor = given or 0
        assert self.ctx is not None
        if channel in self.pumps:
            await self.send({"type": "subscribed", "channel": channel})
            return
        if len(self.pumps) >= MAX_CHANNELS:
            await self.send(
                {
                    "type": "error",
                    "channel": channel,
                    "code": "too_many_channels",
                    "message": f"at most {MAX_CHANNELS} channels per connection",
                }
            )
            return
        kind, _, ident = channel.partition(":")
        cursor_of: Callable[[Any], int]
        try:
            if kind == "session" and ident:
                batches: AsyncIterator[list[Any]] = await self.svc.live.follow_session(
                    self.ctx, ident, after=cursor
                )
                name, cursor_of = "events", _seq
            elif channel == "memory":
                batches = await self.svc.live.follow_memory(self.ctx, after=cursor)
                name, cursor_of = "changes", _lsn
            elif channel == "sessions":
                batches = await self.svc.live.follow_sessions(self.ctx, after=given)
                name, cursor_of = "sessions", _item_cursor
            elif channel == "metrics":
                snapshots = self.svc.live_metrics.follow(self.ctx)
                self.pumps[channel] = asyncio.create_task(self._snapshots(snapshots))
                await self.send({"type": "subscribed", "channel": channel})
                return
            else:
                await self.send(
                    {
                        "type": "error",
                        "channel": channel,
                        "code": "invalid_input",
                        "message": "channels: session:<id>, sessions, memory, metrics",
                    }
                )
                return
        except NotFound as exc:
            await self.send(
                {"type": "error", "channel": channel, "code": "not_found", "message": exc.message}
            )
            return
        self.pumps[channel] = asyncio.create_task(self._pump(channel, batches, name, cursor_of))
        await self.send({"type": "subscribed", "channel": channel, "cursor": cursor})

    async def _pump(
        self,
        channel: str,
        batches: AsyncIterator[list[Any]],
        name: str,
        cursor_of: Callable[[Any], int],
    ) -> None:
        head = b'{"channel":' + orjson.dumps(channel) + b',"type":' + orjson.dumps(name)
        try:
            async for batch in batches:
                for message in _encoded(batch, head, cursor_of):
                    await self.send_raw(message)
        except LiveEnded as exc:
            await self.send({"channel": channel, "type": "deleted", "cursor": exc.cursor})
            self.pumps.pop(channel, None)
        except LiveOverflow as exc:
            if self.svc.metrics is not None:
                self.svc.metrics.overflowed("ws")
            await self.send({"channel": channel, "type": "overflow", "cursor": exc.cursor})
            await self.close(CLOSE_OVERFLOW, f"{channel} fell behind; resume after {exc.cursor}")
        except (WebSocketDisconnect, RuntimeError):
            self.closed = True
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _snapshots(self, snapshots: AsyncIterator[dict[str, Any]]) -> None:
        """The ``metrics`` channel: a snapshot a second (no cursor to resume from)."""
        try:
            async for snapshot in snapshots:
                message = {"channel": "metrics", "type": "snapshot", "data": snapshot}
                await self.send({**message, "cursor": snapshot["cursor"]})
        except (WebSocketDisconnect, RuntimeError):
            self.closed = True
        finally:
            aclose = getattr(snapshots, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _heartbeat(self) -> None:
        while not self.closed:
            await asyncio.sleep(HEARTBEAT_S)
            with contextlib.suppress(Exception):
                await self.send({"type": "heartbeat"})

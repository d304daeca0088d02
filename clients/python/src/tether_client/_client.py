"""``Client`` and ``AsyncClient``: one core, two ways to wait.

:class:`~tether_client._core._ClientCore` holds everything both share (configuration,
breaker, batcher, sessions, dead letters, request definitions; the failure model of
direct calls is in its module docstring). The two subclasses add only the HTTP
executor (``httpx.Client`` under tenacity's ``Retrying``, or ``httpx.AsyncClient``
under ``AsyncRetrying``) and the one-line public methods that run a definition.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from tenacity import AsyncRetrying, Retrying

from . import _api
from ._api import Call, RecallResult
from ._aread_methods import AsyncReads
from ._core import _ClientCore
from ._read_methods import SyncReads
from ._session import AsyncSession, Session
from ._stream import SSEParser, StreamState

T = TypeVar("T")


class Client(_ClientCore, SyncReads):
    """Blocking client. Logging never blocks; direct calls do (with retries).

    Args:
        url: Server URL; else ``TETHER_URL``; else ``http://127.0.0.1:7117``.
        api_key: Sent as ``Authorization: Bearer``; else ``TETHER_API_KEY``. Never logged.
        session_id: Default id for :meth:`session`; else ``TETHER_SESSION_ID``.
        spool_dir: Spool directory; else ``TETHER_SPOOL_DIR``; else the user cache dir.
        spool_max_bytes: Spool cap in bytes; else ``TETHER_SPOOL_MAX_BYTES``; 64 MiB.
        transport: An httpx transport instead of the network (tests).
        **options: Any other :class:`~tether_client.Config` field, e.g.
            ``flush_interval=0.2``, ``spool=False``, ``breaker_open_max=5.0``.

    Raises:
        ConfigError: Bad URL, cap or option.

    Example:
        >>> with Client() as client, client.session(agent="demo") as s:  # doctest: +SKIP
        ...     s.log_action("search", input={"q": "weather"})
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        session_id: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int | None = None,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            url,
            api_key=api_key,
            session_id=session_id,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            transport=transport,
            **options,
        )
        self._http = httpx.Client(
            base_url=self.config.url,
            headers=self.config.headers(),
            timeout=self._timeout,
            transport=transport,
        )

    def session(
        self,
        id: str | None = None,
        *,
        agent: str | None = None,
        user_id: str | None = None,
        title: str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> Session:
        """Start (or attach to) a session. Queued: works while the server is down.

        Args:
            id: Session id; else the client's ``session_id`` (``TETHER_SESSION_ID``);
                else a new id. An id the server already has is reused as is.
            agent: Agent name.
            user_id: End user the agent works for.
            title: Human-readable title.
            tags: Labels.
            metadata: Free-form JSON object.
            parent_id: Parent session (prefer :meth:`Session.spawn_agent`).

        Returns:
            A :class:`Session`; as a context manager it ends ``completed`` or ``failed``.

        Raises:
            ValueError: ``id`` or ``parent_id`` is not a valid session id (1-200 of
                ``A-Z a-z 0-9 . _ : @ + - =``).
        """
        return self._new_session(
            Session,
            id=id or self.config.session_id,
            agent=agent,
            user_id=user_id,
            title=title,
            tags=tags,
            metadata=metadata,
            parent_id=parent_id,
        )

    def _call(self, call: Call[T]) -> T:
        result: T = Retrying(**self._retry_options())(self._once, call)
        return result

    def _once(self, call: Call[T]) -> T:
        self._before()
        try:
            response = self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                content=call.content,
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._after(call, response)

    # -- live ------------------------------------------------------------------------------

    def stream(self, session_id: str, *, after: int = 0) -> Iterator[dict[str, Any]]:
        """Follow a session live: every event with ``seq > after``, in order, each once,
        the stored ones first, then each as it is committed; without end (break out of the
        loop to stop). Reconnects with the last ``seq`` after any interruption, waiting
        with the client's backoff (see ``tether_client._stream``).

        Yields:
            Events as ``GET /v1/sessions/{id}/events`` returns them (``seq``, ``kind``,
            ``name``, ``status``, ``span_id``, ...). A stage still running arrives with
            ``status: "running"``; its final event carries the same ``span_id``.

        Raises:
            NotFoundError: No such session (or another tenant's).
            AuthenticationError: The key is missing or not live (401, 403).

        Example:
            >>> for event in client.stream("run-42"):  # doctest: +SKIP
            ...     print(event["seq"], event["kind"], event.get("name"))
        """
        self._check_open()
        cfg = self.config
        return self._sse(StreamState.session(session_id, after, cfg.retry_base, cfg.retry_max))

    def stream_sessions(self, *, after: int | None = None) -> Iterator[dict[str, Any]]:
        """Follow the tenant's sessions live (``GET /v1/sessions/stream``): each session
        as it is created, updated (every append updates it), ended or deleted; without
        end, reconnecting like :meth:`stream`.

        Args:
            after: ``updated_at`` in ms since the epoch: first every session changed at or
                after it, in its current state. ``None``: live changes only (load the
                list with :meth:`list_sessions` first).

        Yields:
            ``{"change": "created"|"updated"|"ended"|"deleted", "session": {...}}``,
            the session as :meth:`list_sessions` lists it (``{"id"}`` when deleted).
            Sessions are state, not a log: changes that come together may arrive as one
            summary, and a reconnect may repeat one.

        Raises:
            AuthenticationError: The key is missing or not live (401, 403).
        """
        self._check_open()
        return self._sse(StreamState.sessions(after, self.config.retry_base, self.config.retry_max))

    def _sse(self, state: StreamState) -> Iterator[dict[str, Any]]:
        while True:
            wait = None
            try:
                with self._http.stream(
                    "GET", state.path, headers=state.headers(), timeout=state.timeout(self._timeout)
                ) as response:
                    wait = state.opened(response)
                    if wait is None:
                        parser = SSEParser()
                        for line in response.iter_lines():
                            message = parser.feed(line)
                            if message is None:
                                continue
                            if state.overflowed(message):
                                break
                            item = state.message(message)
                            if item is not None:
                                yield item
            except httpx.HTTPError:
                wait = state.backoff()
            time.sleep(wait if wait is not None else 0.0)

    # -- memory ----------------------------------------------------------------------------

    def remember(
        self,
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
        """Store a memory (``POST /v1/memories``). Direct call.

        Args:
            namespace: e.g. ``"user/alice"``.
            text: The memory text.
            kind: ``fact``, ``preference``, ``episode``, ``summary`` or your own.
            tags: Labels.
            metadata: Free-form JSON object.
            importance: 0-1.
            occurred_at: When it happened (event time).
            expires_at: When it stops being recalled (it is hidden, not deleted).
            idempotency_key: Makes retries store it once; generated if omitted.

        Returns:
            The memory record (``deduplicated: true`` if the same text was already in
            the namespace).

        Raises:
            ValidationError: Bad field (422).
            ServerUnreachableError: Down or unreachable (``CircuitOpenError`` if the
                breaker is open).
        """
        item = _api.memory_item(
            namespace,
            text,
            kind=kind,
            tags=tags,
            metadata=metadata,
            importance=importance,
            occurred_at=occurred_at,
            expires_at=expires_at,
            idempotency_key=idempotency_key,
        )
        return self._call(_api.remember(item))

    def remember_many(
        self, items: Iterable[str | Mapping[str, Any]], *, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Store up to 1,000 memories in one request (``POST /v1/memories/batch``).

        Args:
            items: Texts, or mappings with ``text`` and any :meth:`remember` field.
            namespace: Namespace for items that do not name one.

        Returns:
            The stored records, in order.

        Raises:
            ValueError: An item has no namespace.
            ValidationError, ServerUnreachableError: As :meth:`remember`.
        """
        return self._call(self._many_call(items, namespace))

    def recall(
        self,
        namespace: str | list[str],
        query: str,
        *,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        include_expired: bool = False,
    ) -> list[RecallResult]:
        """Search memories by meaning and keyword (``POST /v1/memories/search``).

        Args:
            namespace: One namespace or several.
            query: Free text.
            limit: Results, 1-100.
            filters: ``{"kind", "tags", "metadata", "since", "until"}``.
            include_expired: Also return expired memories.

        Returns:
            Best first, each with its score breakdown.

        Raises:
            ValidationError, ServerUnreachableError: As :meth:`remember`.
        """
        return self._call(_api.recall(namespace, query, limit, filters, include_expired))

    def forget(self, memory_id: str) -> None:
        """Tombstone a memory (``DELETE /v1/memories/{id}``).

        Raises:
            NotFoundError: Unknown id.
            ServerUnreachableError: As :meth:`remember`.
        """
        self._call(_api.forget(memory_id))

    # -- batching and lifetime -------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every event logged before this call is acknowledged by the server.

        Args:
            timeout: Seconds at most (``None``: no limit).

        Returns:
            ``True`` if delivered; ``False`` on timeout (events stay spooled).
        """
        return self._batcher.flush(timeout)

    def checkpoint(self, timeout: float | None = 5.0) -> bool:
        """Block until every event logged before this call is in the spool file.

        After ``True``, those events survive a crash of this process (``kill -9``) and
        are replayed by the next client on the same spool. Typically ≤ 200 ms.

        Returns:
            ``True`` when durable; ``False`` on timeout or after :meth:`close`.
        """
        return self._batcher.checkpoint(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush for up to ``timeout`` s (default ``close_timeout``, 2 s), then stop the
        background threads. What is left stays in the spool. Idempotent; also runs at
        interpreter exit.
        """
        if self._closed:
            return
        self._closed = True
        self._batcher.close(timeout)
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_ClientCore, AsyncReads):
    """Asyncio client with the surface of :class:`Client`.

    Logging calls and :meth:`session` are plain (non-blocking) methods; direct calls,
    :meth:`flush`, :meth:`checkpoint` and :meth:`aclose` are coroutines. Arguments,
    returns and errors are those of :class:`Client`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        session_id: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int | None = None,
        transport: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        sync_transport = transport if isinstance(transport, httpx.BaseTransport) else None
        super().__init__(
            url,
            api_key=api_key,
            session_id=session_id,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            transport=sync_transport,
            **options,
        )
        async_transport = transport if isinstance(transport, httpx.AsyncBaseTransport) else None
        self._http = httpx.AsyncClient(
            base_url=self.config.url,
            headers=self.config.headers(),
            timeout=self._timeout,
            transport=async_transport,
        )

    def session(
        self,
        id: str | None = None,
        *,
        agent: str | None = None,
        user_id: str | None = None,
        title: str | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> AsyncSession:
        """See :meth:`Client.session`; use with ``async with``."""
        return self._new_session(
            AsyncSession,
            id=id or self.config.session_id,
            agent=agent,
            user_id=user_id,
            title=title,
            tags=tags,
            metadata=metadata,
            parent_id=parent_id,
        )

    async def _acall(self, call: Call[T]) -> T:
        result: T = await AsyncRetrying(**self._retry_options())(self._aonce, call)
        return result

    async def _aonce(self, call: Call[T]) -> T:
        self._before()
        try:
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                content=call.content,
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._after(call, response)

    async def stream(self, session_id: str, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`Client.stream`: ``async for event in client.stream(...)``."""
        self._check_open()
        cfg = self.config
        state = StreamState.session(session_id, after, cfg.retry_base, cfg.retry_max)
        async for item in self._asse(state):
            yield item

    async def stream_sessions(self, *, after: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`Client.stream_sessions`: ``async for change in ...``."""
        self._check_open()
        state = StreamState.sessions(after, self.config.retry_base, self.config.retry_max)
        async for item in self._asse(state):
            yield item

    async def _asse(self, state: StreamState) -> AsyncIterator[dict[str, Any]]:
        while True:
            wait = None
            try:
                async with self._http.stream(
                    "GET", state.path, headers=state.headers(), timeout=state.timeout(self._timeout)
                ) as response:
                    if not response.is_success:
                        await response.aread()
                    wait = state.opened(response)
                    if wait is None:
                        parser = SSEParser()
                        async for line in response.aiter_lines():
                            message = parser.feed(line)
                            if message is None:
                                continue
                            if state.overflowed(message):
                                break
                            item = state.message(message)
                            if item is not None:
                                yield item
            except httpx.HTTPError:
                wait = state.backoff()
            await asyncio.sleep(wait if wait is not None else 0.0)

    async def remember(
        self,
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
        """See :meth:`Client.remember`."""
        item = _api.memory_item(
            namespace,
            text,
            kind=kind,
            tags=tags,
            metadata=metadata,
            importance=importance,
            occurred_at=occurred_at,
            expires_at=expires_at,
            idempotency_key=idempotency_key,
        )
        return await self._acall(_api.remember(item))

    async def remember_many(
        self, items: Iterable[str | Mapping[str, Any]], *, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """See :meth:`Client.remember_many`."""
        return await self._acall(self._many_call(items, namespace))

    async def recall(
        self,
        namespace: str | list[str],
        query: str,
        *,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        include_expired: bool = False,
    ) -> list[RecallResult]:
        """See :meth:`Client.recall`."""
        return await self._acall(_api.recall(namespace, query, limit, filters, include_expired))

    async def forget(self, memory_id: str) -> None:
        """See :meth:`Client.forget`."""
        await self._acall(_api.forget(memory_id))

    async def flush(self, timeout: float | None = 10.0) -> bool:  # noqa: ASYNC109
        """See :meth:`Client.flush`; waits in a worker thread, not the event loop."""
        return await asyncio.to_thread(self._batcher.flush, timeout)

    async def checkpoint(self, timeout: float | None = 5.0) -> bool:  # noqa: ASYNC109
        """See :meth:`Client.checkpoint`."""
        return await asyncio.to_thread(self._batcher.checkpoint, timeout)

    async def aclose(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """See :meth:`Client.close`."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._batcher.close, timeout)
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

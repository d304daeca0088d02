"""The read methods of :class:`~tether_client.AsyncClient`: :class:`AsyncReads`, the
asyncio twin of :class:`~tether_client._read_methods.SyncReads` (same request definitions,
same arguments, returns and errors; see that module's docstring).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

import httpx

from . import _api, _reads
from ._api import Call, StateSnapshot, unwrap
from ._errors import ServerUnreachableError
from ._read_methods import _PAGE, Item
from ._reads import EventFilters, EventQuery, MemoryFilters, Page, SessionFilters, When

T = TypeVar("T")


class AsyncReads:
    """Read methods of :class:`~tether_client.AsyncClient`; arguments, returns and errors
    are those of :class:`SyncReads` (``Client``)."""

    _http: httpx.AsyncClient

    if TYPE_CHECKING:  # provided by AsyncClient and its core

        async def _acall(self, call: Call[T]) -> T: ...
        def _check_open(self) -> None: ...
        def _unreachable(self, exc: httpx.HTTPError) -> ServerUnreachableError: ...

    async def _pages(
        self, first: Any, make: Callable[[Any], Call[Page[Item]]]
    ) -> AsyncIterator[Item]:
        cursor = first
        while True:
            page = await self._acall(make(cursor))
            for item in page.items:
                yield item
            if page.next_cursor is None or not page.items:
                return
            cursor = page.next_cursor

    async def list_sessions(
        self,
        *,
        cursor: str | None = None,
        limit: int = 50,
        **filters: Unpack[SessionFilters],
    ) -> Page[Item]:
        """See :meth:`Client.list_sessions`."""
        return await self._acall(_reads.list_sessions(**filters, cursor=cursor, limit=limit))

    def iter_sessions(self, **filters: Unpack[SessionFilters]) -> AsyncIterator[Item]:
        """See :meth:`Client.iter_sessions`: ``async for session in ...``."""
        return self._pages(
            None, lambda c: _reads.list_sessions(**filters, cursor=c, limit=_PAGE["sessions"])
        )

    async def get_session(self, session_id: str) -> Item:
        """See :meth:`Client.get_session`."""
        return await self._acall(_reads.get_session(session_id))

    async def end_session(
        self, session_id: str, status: str = "completed", *, summary: str | None = None
    ) -> Item:
        """See :meth:`Client.end_session`."""
        return await self._acall(_reads.end_session(session_id, status, summary))

    async def delete_session(self, session_id: str) -> int:
        """See :meth:`Client.delete_session`."""
        return await self._acall(_reads.delete_session(session_id))

    async def get_state(self, session_id: str) -> StateSnapshot:
        """See :meth:`Client.get_state`."""
        return await self._acall(_api.get_state(session_id))

    async def state_versions(
        self, session_id: str, *, after: int = 0, limit: int = 100
    ) -> Page[Item]:
        """See :meth:`Client.state_versions`."""
        return await self._acall(_reads.state_versions(session_id, after=after, limit=limit))

    def iter_state_versions(self, session_id: str, *, after: int = 0) -> AsyncIterator[Item]:
        """See :meth:`Client.iter_state_versions`."""
        return self._pages(
            after,
            lambda c: _reads.state_versions(session_id, after=c, limit=_PAGE["versions"]),
        )

    async def list_events(
        self,
        session_id: str,
        *,
        after_seq: int = 0,
        kind: str | Sequence[str] | None = None,
        limit: int = 100,
    ) -> Page[Item]:
        """See :meth:`Client.list_events`."""
        return await self._acall(
            _reads.list_events(session_id, after_seq=after_seq, kind=kind, limit=limit)
        )

    def iter_events(
        self, session_id: str, *, after_seq: int = 0, kind: str | Sequence[str] | None = None
    ) -> AsyncIterator[Item]:
        """See :meth:`Client.iter_events`."""
        return self._pages(
            after_seq,
            lambda c: _reads.list_events(session_id, after_seq=c, kind=kind, limit=_PAGE["events"]),
        )

    async def query_events(self, **filters: Unpack[EventFilters]) -> EventQuery:
        """See :meth:`Client.query_events`."""
        return await self._acall(_reads.query_events(**filters))

    async def diagnostics(
        self,
        session_id: str | None = None,
        *,
        since: When | None = None,
        until: When | None = None,
        agent: str | None = None,
    ) -> Item:
        """See :meth:`Client.diagnostics`."""
        return await self._acall(
            _reads.diagnostics(session_id, since=since, until=until, agent=agent)
        )

    async def tool_analytics(self, *, since: When | None = None, until: When | None = None) -> Item:
        """See :meth:`Client.tool_analytics`."""
        return await self._acall(_reads.tool_analytics(since=since, until=until))

    async def timeseries(
        self,
        metric: str,
        *,
        bucket: str | None = None,
        since: When | None = None,
        until: When | None = None,
        kind: str | Sequence[str] | None = None,
        name: str | None = None,
    ) -> Item:
        """See :meth:`Client.timeseries`."""
        return await self._acall(
            _reads.timeseries(metric, bucket=bucket, since=since, until=until, kind=kind, name=name)
        )

    async def anomalies(
        self,
        *,
        window: int | str | None = None,
        baseline: int | None = None,
        min_samples: int | None = None,
        until: When | None = None,
    ) -> Item:
        """See :meth:`Client.anomalies`."""
        return await self._acall(
            _reads.anomalies(window=window, baseline=baseline, min_samples=min_samples, until=until)
        )

    async def server_stats(self) -> Item:
        """See :meth:`Client.server_stats`."""
        return await self._acall(_reads.stats())

    async def deps(self) -> list[Item]:
        """See :meth:`Client.deps`."""
        return await self._acall(_reads.deps())

    async def list_memories(
        self, *, cursor: str | None = None, limit: int = 50, **filters: Unpack[MemoryFilters]
    ) -> Page[Item]:
        """See :meth:`Client.list_memories`."""
        query = _reads.memory_filter(**filters)
        return await self._acall(_reads.list_memories(query, cursor=cursor, limit=limit))

    def iter_memories(self, **filters: Unpack[MemoryFilters]) -> AsyncIterator[Item]:
        """See :meth:`Client.iter_memories`."""
        query = _reads.memory_filter(**filters)
        return self._pages(
            None, lambda c: _reads.list_memories(query, cursor=c, limit=_PAGE["memories"])
        )

    async def get_memory(self, memory_id: str, *, include_deleted: bool = False) -> Item:
        """See :meth:`Client.get_memory`."""
        return await self._acall(_reads.get_memory(memory_id, include_deleted=include_deleted))

    def export_memories(
        self, *, vectors: bool = False, **filters: Unpack[MemoryFilters]
    ) -> AsyncIterator[Item]:
        """See :meth:`Client.export_memories`: ``async for memory in ...``."""
        self._check_open()
        params = {**_reads.memory_filter(**filters), **({"vectors": "true"} if vectors else {})}
        return self._ndjson("/v1/memories/export", params)

    async def _ndjson(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[Item]:
        try:
            async with self._http.stream("GET", path, params=params) as response:
                if not response.is_success:
                    await response.aread()
                    unwrap(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    async def import_memories(self, lines: Iterable[Mapping[str, Any] | str | bytes]) -> Item:
        """See :meth:`Client.import_memories`."""
        return await self._acall(_reads.import_memories(lines))

    async def memory_stats(self) -> Item:
        """See :meth:`Client.memory_stats`."""
        return await self._acall(_reads.memory_stats())

    async def reindex_memories(self, *, everything: bool = False) -> Item:
        """See :meth:`Client.reindex_memories`."""
        return await self._acall(_reads.reindex_memories(everything))

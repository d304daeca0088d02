"""The read methods of :class:`~tether_client.Client` and :class:`~tether_client.AsyncClient`.

Each is one line over a request definition of :mod:`~tether_client._reads` (or
:mod:`~tether_client._api`), so the two clients cannot drift apart: :class:`SyncReads`
runs it with ``Client._call`` and ``AsyncReads`` (:mod:`~tether_client._aread_methods`)
with ``AsyncClient._acall``. They
are direct calls: retried and guarded by the circuit breaker like ``recall`` (see
:mod:`~tether_client._core`), raising a :class:`~tether_client.TetherError` subclass.

Lists return a :class:`Page` (``items``, ``next_cursor``); each has an ``iter_*``
companion that follows the cursor through every page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

import httpx

from . import _api, _reads
from ._api import Call, StateSnapshot, unwrap
from ._errors import ServerUnreachableError
from ._reads import EventQuery, MemoryFilters, Page, SessionFilters, When

T = TypeVar("T")
Item = dict[str, Any]

#: Items per request of the ``iter_*`` methods (the server's largest pages).
_PAGE = {"sessions": 500, "events": 1000, "versions": 500, "memories": 500}


class SyncReads:
    """Read methods of :class:`~tether_client.Client` (see the module docstring)."""

    _http: httpx.Client

    if TYPE_CHECKING:  # provided by Client and its core

        def _call(self, call: Call[T]) -> T: ...
        def _check_open(self) -> None: ...
        def _unreachable(self, exc: httpx.HTTPError) -> ServerUnreachableError: ...

    def _pages(self, first: Any, make: Callable[[Any], Call[Page[Item]]]) -> Iterator[Item]:
        cursor = first
        while True:
            page = self._call(make(cursor))
            yield from page.items
            if page.next_cursor is None or not page.items:
                return
            cursor = page.next_cursor

    # -- sessions --------------------------------------------------------------------------

    def list_sessions(
        self,
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
    ) -> Page[Item]:
        """One page of sessions, newest first (``GET /v1/sessions``).

        Args:
            status: ``active``, ``completed``, ``failed`` or ``abandoned``.
            agent, user_id, tag, parent_id: Exact matches (``tag``: carries it).
            since, until: Bounds on ``created_at`` (``until`` exclusive): a datetime,
                an RFC 3339 string, or a ``timedelta`` before now.
            q: Words (up to 10) that must each occur, in any case, in the session's id,
                title, agent or user id.
            cursor: The previous page's ``next_cursor``.
            limit: 1-500.

        Returns:
            A :class:`Page` of sessions (``id``, ``agent``, ``status``, ``created_at``,
            ``counters``: ``event_count``, ``error_count``, tokens, ``cost_usd`` in US
            dollars, ...).

        Raises:
            ValidationError: A bad filter (422).
            ServerUnreachableError: Down or unreachable after the retries.
        """
        return self._call(
            _reads.list_sessions(
                status=status,
                agent=agent,
                user_id=user_id,
                tag=tag,
                parent_id=parent_id,
                since=since,
                until=until,
                q=q,
                cursor=cursor,
                limit=limit,
            )
        )

    def iter_sessions(self, **filters: Unpack[SessionFilters]) -> Iterator[Item]:
        """Every session matching the :meth:`list_sessions` filters, newest first, page
        after page (500 per request). Raises as :meth:`list_sessions`."""
        return self._pages(
            None, lambda c: _reads.list_sessions(**filters, cursor=c, limit=_PAGE["sessions"])
        )

    def get_session(self, session_id: str) -> Item:
        """One session with ``counters``, ``goals`` and ``children`` (``GET /v1/sessions/{id}``).

        Raises:
            NotFoundError: No such session (or another tenant's).
        """
        return self._call(_reads.get_session(session_id))

    def end_session(
        self, session_id: str, status: str = "completed", *, summary: str | None = None
    ) -> Item:
        """End a session (``POST /v1/sessions/{id}/end``); returns it.

        Args:
            status: ``completed``, ``failed`` or ``abandoned``.
            summary: Optional text.

        Raises:
            NotFoundError: No such session.
            ConflictError: It already ended with another status (409).
        """
        return self._call(_reads.end_session(session_id, status, summary))

    def delete_session(self, session_id: str) -> int:
        """Delete a session, its events and goals (``DELETE /v1/sessions/{id}``).

        Returns:
            The number of events deleted.

        Raises:
            NotFoundError: No such session.
        """
        return self._call(_reads.delete_session(session_id))

    def get_state(self, session_id: str) -> StateSnapshot:
        """A session's state document and version (``GET /v1/sessions/{id}/state``).

        Raises:
            NotFoundError: No such session.
        """
        return self._call(_api.get_state(session_id))

    def state_versions(self, session_id: str, *, after: int = 0, limit: int = 100) -> Page[Item]:
        """One page of a session's state history (``GET /v1/sessions/{id}/state/versions``).

        Args:
            after: Versions after this one.
            limit: Versions per page.

        Returns:
            A :class:`Page` of ``{version, state, patch, at}``, oldest first;
            ``next_cursor`` is the next ``after``.

        Raises:
            NotFoundError: No such session.
        """
        return self._call(_reads.state_versions(session_id, after=after, limit=limit))

    def iter_state_versions(self, session_id: str, *, after: int = 0) -> Iterator[Item]:
        """Every state version after ``after``, oldest first. Raises as
        :meth:`state_versions`."""
        return self._pages(
            after,
            lambda c: _reads.state_versions(session_id, after=c, limit=_PAGE["versions"]),
        )

    # -- events ----------------------------------------------------------------------------

    def list_events(
        self,
        session_id: str,
        *,
        after_seq: int = 0,
        kind: str | Sequence[str] | None = None,
        limit: int = 100,
    ) -> Page[Item]:
        """One page of a session's events with ``seq > after_seq``, in order
        (``GET /v1/sessions/{id}/events``).

        Args:
            after_seq: The cursor (``next_cursor`` of the previous page).
            kind: One kind or several (any of them).
            limit: 1-1000.

        Returns:
            A :class:`Page` of events (``seq``, ``kind``, ``name``, ``status``,
            ``started_at``, ``duration_ms`` in ms, tokens, ``cost_usd``, ...).

        Raises:
            NotFoundError: No such session.
        """
        return self._call(
            _reads.list_events(session_id, after_seq=after_seq, kind=kind, limit=limit)
        )

    def iter_events(
        self, session_id: str, *, after_seq: int = 0, kind: str | Sequence[str] | None = None
    ) -> Iterator[Item]:
        """Every event of a session after ``after_seq``, in ``seq`` order (1,000 per
        request). Raises as :meth:`list_events`."""
        return self._pages(
            after_seq,
            lambda c: _reads.list_events(session_id, after_seq=c, kind=kind, limit=_PAGE["events"]),
        )

    def query_events(
        self,
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
    ) -> EventQuery:
        """Events across the tenant's sessions (``GET /v1/events``), oldest first.

        Args:
            session_id: Only this session's.
            kind: One kind or several (any of them).
            name: Exact event name.
            level: At least this level (``debug`` < ``info`` < ``warning`` < ``error``
                < ``critical``; events without a level count as ``info``).
            status: ``ok``, ``error`` or ``running``.
            since, until: Bounds on the event's time (``started_at``, else
                ``created_at``).
            after: A cursor: only events after it (``EventQuery.cursor`` or
                ``next_after`` of an earlier call).
            limit: Most items in this page.
            tail: The last ``tail`` matching events instead (still oldest first).

        Returns:
            An :class:`EventQuery` (``items``, ``next_after``, ``cursor``).

        Raises:
            ValidationError: A bad filter (422).
        """
        return self._call(
            _reads.query_events(
                session_id=session_id,
                kind=kind,
                name=name,
                level=level,
                status=status,
                since=since,
                until=until,
                after=after,
                limit=limit,
                tail=tail,
            )
        )

    # -- diagnostics, analytics, stats, health ---------------------------------------------

    def diagnostics(
        self,
        session_id: str | None = None,
        *,
        since: When | None = None,
        until: When | None = None,
        agent: str | None = None,
    ) -> Item:
        """Per component (``kind``, ``name``) counts, durations and costs of one session
        (``GET /v1/sessions/{id}/diagnostics``) or of every session
        (``GET /v1/diagnostics``; the server's default window is the last 24 h).

        Args:
            session_id: One session, or ``None`` for all.
            since, until: Bounds on the event time.
            agent: Only sessions of this agent (without ``session_id``).

        Returns:
            ``{session_id, since, until, sessions, components, totals}``; each component
            ``{kind, name, count, running, errors, error_rate (0-1), p50_ms, p95_ms,
            max_ms, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
            reasoning_tokens, cost_usd (US dollars), last_errors: [{message, at,
            session_id, seq}]}``.

        Raises:
            NotFoundError: No such session.
        """
        return self._call(_reads.diagnostics(session_id, since=since, until=until, agent=agent))

    def tool_analytics(self, *, since: When | None = None, until: When | None = None) -> Item:
        """Per tool name across sessions (``GET /v1/analytics/tools``):
        ``{since, until, tools: [{name, invocations, ok, errors, success_rate, p50_ms,
        p95_ms, max_ms, last_at, last_error}]}``."""
        return self._call(_reads.tool_analytics(since=since, until=until))

    def timeseries(
        self,
        metric: str,
        *,
        bucket: str | None = None,
        since: When | None = None,
        until: When | None = None,
        kind: str | Sequence[str] | None = None,
        name: str | None = None,
    ) -> Item:
        """One metric in time buckets (``GET /v1/analytics/timeseries``).

        Args:
            metric: ``events``, ``errors``, ``error_rate``, ``latency_p50``,
                ``latency_p95`` (ms), ``tokens`` or ``cost_usd``.
            bucket: ``1m``, ``5m``, ``15m``, ``1h`` or ``1d``.
            kind: Only events of these kinds (one or several).
            name: Only events of this name.

        Returns:
            ``{metric, bucket, bucket_s, since, until, points: [{at, value}]}``.

        Raises:
            ValidationError: An unknown metric or bucket, or too many buckets (422).
        """
        return self._call(
            _reads.timeseries(metric, bucket=bucket, since=since, until=until, kind=kind, name=name)
        )

    def anomalies(
        self,
        *,
        window: int | str | None = None,
        baseline: int | None = None,
        min_samples: int | None = None,
        until: When | None = None,
    ) -> Item:
        """Tools whose latency or failure rate in the latest window is far above their
        rolling baseline (``GET /v1/analytics/anomalies``).

        Args:
            window: Window width: seconds, or ``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``
                (server default 1 h).
            baseline: Windows before the latest one to compare with (default 24).
            min_samples: Final events a window needs to count.
            until: End of the latest window (exclusive); default now.

        Returns:
            ``{window_s, baseline_windows, threshold, method, anomalies: [{kind, name,
            metric, value, baseline_mean, baseline_std, z, window_start, samples}]}``.
        """
        return self._call(
            _reads.anomalies(window=window, baseline=baseline, min_samples=min_samples, until=until)
        )

    def server_stats(self) -> Item:
        """Sessions by status, events by kind, and the last 24 h (``GET /v1/stats``).
        (``stats()`` is the client's own batcher counters.)"""
        return self._call(_reads.stats())

    def deps(self) -> list[Item]:
        """The server's dependency checks (``GET /v1/deps``): ``[{name, kind, status
        ("ok"|"degraded"|"down"|"unknown"), latency_ms, detail, hint}]``."""
        return self._call(_reads.deps())

    # -- memory administration -------------------------------------------------------------

    def list_memories(
        self,
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
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Item]:
        """One page of memories, newest first (``GET /v1/memories``).

        Args:
            namespace, kind: Any of these. tag: All of these.
            session: ``source_session_id`` equals.
            q: Case-insensitive substring of the text.
            since, until: Bounds on ``occurred_at`` (else ``created_at``).
            include_expired, include_deleted: Also expired / forgotten ones.
            cursor: The previous page's ``next_cursor``.
            limit: 1-500.
        """
        filters = _reads.memory_filter(
            namespace=namespace,
            kind=kind,
            tag=tag,
            session=session,
            q=q,
            since=since,
            until=until,
            include_expired=include_expired,
            include_deleted=include_deleted,
        )
        return self._call(_reads.list_memories(filters, cursor=cursor, limit=limit))

    def iter_memories(self, **filters: Unpack[MemoryFilters]) -> Iterator[Item]:
        """Every memory matching the :meth:`list_memories` filters, newest first."""
        query = _reads.memory_filter(**filters)
        return self._pages(
            None, lambda c: _reads.list_memories(query, cursor=c, limit=_PAGE["memories"])
        )

    def get_memory(self, memory_id: str, *, include_deleted: bool = False) -> Item:
        """One memory (``GET /v1/memories/{id}``).

        Raises:
            NotFoundError: Unknown id (or forgotten, unless ``include_deleted``).
        """
        return self._call(_reads.get_memory(memory_id, include_deleted=include_deleted))

    def export_memories(
        self, *, vectors: bool = False, **filters: Unpack[MemoryFilters]
    ) -> Iterator[Item]:
        """Stream memories as the server exports them (``GET /v1/memories/export``,
        NDJSON), one dict per memory, in ingest order; not retried once started.

        Args:
            vectors: Include ``embedding: {model, dim, vector}`` (base64 float32).
            **filters: As :meth:`list_memories` (without ``cursor``/``limit``).

        Raises:
            AuthenticationError: Exporting every namespace needs an admin key (403).
            ServerUnreachableError: The server could not be reached.
        """
        self._check_open()
        params = {**_reads.memory_filter(**filters), **({"vectors": "true"} if vectors else {})}
        return self._ndjson("/v1/memories/export", params)

    def _ndjson(self, path: str, params: Mapping[str, Any]) -> Iterator[Item]:
        try:
            with self._http.stream("GET", path, params=params) as response:
                if not response.is_success:
                    response.read()
                    unwrap(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def import_memories(self, lines: Iterable[Mapping[str, Any] | str | bytes]) -> Item:
        """Import memories in the export's shape (``POST /v1/memories/import``), all or
        nothing; idempotent (an existing id, or the same text in the namespace, is
        skipped).

        Args:
            lines: Dicts, or NDJSON lines (``str``/``bytes``).

        Returns:
            ``{imported, skipped, vectors, ids}``.

        Raises:
            ValidationError: A bad line (422; ``details`` name the line number).
        """
        return self._call(_reads.import_memories(lines))

    def memory_stats(self) -> Item:
        """``{count, deleted, index_backlog, dead_letters, embedding_model, indexed}``
        (``GET /v1/memory/stats``)."""
        return self._call(_reads.memory_stats())

    def reindex_memories(self, *, everything: bool = False) -> Item:
        """Queue re-embedding of memories without a vector of the server's current model
        (all with ``everything``) (``POST /v1/admin/memory/reindex``, an admin key):
        ``{queued, embedding_model}``."""
        return self._call(_reads.reindex_memories(everything))

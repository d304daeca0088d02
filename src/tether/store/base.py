"""The Store contract: every backend (``store/sqlite/``, ``store/postgres/``) implements it.

Services call only these methods, with typed records in and out (``tether.domain``); no
SQL, connection or row crosses this line. Every method is scoped by ``tenant_id`` (the
first argument where it applies), decided by the server, never by the client. Times are
integer milliseconds since the Unix epoch (``now``, ``*_ms``) on the way in and RFC 3339
strings in records on the way out.

Writes are acknowledged only after they commit (group commit on every backend: many
requests, one transaction), and each committed write yields :class:`~tether.domain.changes.
Change` records, handed to :attr:`Store.on_commit` after the commit, in commit order:

- ``session:<id>`` (kind ``events``, cursor: the last ``seq`` appended),
- ``sessions`` (kinds ``session.created``, ``session.updated``, ``session.ended``,
  ``session.deleted``; cursor: ``updated_at`` in ms),
- ``memory`` (kinds ``memory.add``, ``memory.update``, ``memory.delete``,
  ``memory.purge``, ``memory.embedded``; cursor: the ``lsn``).

Derived state (keyword postings, the vector index) follows the memory feed through
:meth:`Store.memory_feed`: ``lsn`` values are assigned in commit order, so a reader that
has seen ``lsn = n`` has seen every change at or below it, whichever replica wrote it.

Errors (``tether.errors``): ``NotFound`` for an unknown id or another tenant's,
``Conflict``, ``PreconditionFailed``, ``InvalidInput`` for a request the store itself
refuses (a merged document over its size limit), ``Unavailable`` when the database
cannot be read or written (disk full, read-only, gone).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tether.domain.changes import Change
from tether.domain.events import EventBatchIn, EventIn
from tether.domain.filters import MemoryFilter, SessionFilter
from tether.domain.memories import MemoryImport, MemoryIn
from tether.domain.records import (
    ApiKey,
    AppendResult,
    AuditEntry,
    BatchResult,
    Created,
    Event,
    Goal,
    ImportResult,
    Memory,
    MemoryChange,
    MemoryStats,
    ModelPrice,
    NamespaceCount,
    OutboxJob,
    Purged,
    Remembered,
    Session,
    SessionDetail,
    StateDoc,
    StateVersion,
    Stats,
)
from tether.domain.sessions import GoalIn, GoalPatch, SessionPatch

__all__ = [
    "EmbeddedJob",
    "EventQuery",
    "EventSample",
    "IndexRow",
    "Job",
    "RankingRow",
    "Store",
    "StoreHealth",
]

OnCommit = Callable[[list[Change]], None]


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What :meth:`Store.check` found: ``status`` ``"ok"`` or ``"down"``, and why."""

    status: Literal["ok", "down"]
    detail: str | None = None


# -- records that only the memory engine sees (row keys, raw vectors) -------------------------
@dataclass(frozen=True, slots=True)
class RankingRow:
    """What ranking reads of a candidate memory (``tether.memory.ranking``): its row key
    and times in ms since the epoch, and its importance in [0, 1]."""

    pk: int
    created_at: int
    occurred_at: int | None
    last_accessed_at: int | None
    importance: float


@dataclass(frozen=True, slots=True)
class IndexRow:
    """A memory as the in-process indexes need it (``tether.memory.follower``).

    Attributes:
        lsn: The change that brought it (0 in a snapshot).
        terms: Its analyzer terms, space-separated (``tether.domain.text.analyze``), or
            ``None`` when it is gone (tombstoned or purged): drop it.
        content_hash: The hash of its current text (``None`` when gone).
        vector: Its current vector of the model asked for (little-endian float32 bytes),
            or ``None`` when it has none (not embedded yet, text changed, gone).
    """

    lsn: int
    tenant_id: str
    memory_id: str
    pk: int
    namespace: str
    version: int
    terms: str | None
    content_hash: str | None
    vector: bytes | None


@dataclass(frozen=True, slots=True)
class Job:
    """A due embedding job with the memory's current text (``text is None``: the memory
    is gone and the job is simply dropped)."""

    id: int
    tenant_id: str
    memory_pk: int
    attempts: int
    namespace: str | None
    text: str | None
    content_hash: str | None


@dataclass(frozen=True, slots=True)
class EmbeddedJob:
    """A job's outcome to store: the vector (little-endian float32 bytes) of its text."""

    job: Job
    vector: bytes
    dim: int


# -- records that only analytics sees (tether.services.analytics) -----------------------------
@dataclass(frozen=True, slots=True)
class EventSample:
    """An event as diagnostics and analytics aggregate it: no payloads, one error line.

    Attributes:
        at: The event's time, ms since the epoch: ``started_at``, else ``created_at``.
        duration_ms: ``duration_ms``, else ``ended_at - started_at`` (ms) when both are set
            and not negative, else ``None``.
        input_tokens: Tokens as stored (``None`` counts as 0); ``input_tokens`` includes
            the cache reads and writes, ``output_tokens`` the reasoning tokens.
        cost_usd: US dollars (``None`` counts as 0).
        error: For an error (``status`` or ``kind`` ``"error"``), its message (see
            :func:`tether.store.shared.analytics.error_message`, at most 500 characters),
            else ``None``.
    """

    kind: str
    name: str | None
    status: str
    at: int
    duration_ms: float | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    session_id: str
    seq: int
    span_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of :meth:`Store.query_events`; every one set must hold (empty: any).

    Attributes:
        session_id: Events of this session only.
        kinds: Any of these kinds.
        name: ``name`` equals.
        levels: Any of these levels; an event without a level counts as ``"info"``.
        status: ``ok``, ``error`` or ``running``.
        since_ms: Event time (``started_at``, else ``created_at``) at or after, ms.
        until_ms: Event time before, ms.
    """

    session_id: str | None = None
    kinds: tuple[str, ...] = ()
    name: str | None = None
    levels: tuple[str, ...] = ()
    status: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


class Store(abc.ABC):
    """The persistence contract. See the module docstring for units, changes and errors.

    Attributes:
        backend: ``"sqlite"`` or ``"postgres"``.
        on_commit: Called on the event loop after each group commit with the change
            records of the writes it acknowledged, in commit order (the container sets it
            to publish them on the bus). Must not block.
    """

    backend: str
    on_commit: OnCommit | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Apply migrations and open connections. Idempotent.

        Raises:
            Unavailable: the database cannot be reached or written.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish queued writes, then close every connection."""

    @abc.abstractmethod
    async def check(self) -> StoreHealth:
        """Readiness: can the store read and write? Answered within about a second (a
        write probe while writes are in doubt); never raises."""

    # -- sessions ----------------------------------------------------------------------
    @abc.abstractmethod
    async def create_session(
        self,
        tenant_id: str,
        fields: Mapping[str, Any],
        *,
        now: int,
        correlation_id: str | None,
        strict: bool = True,
    ) -> Created[Session]:
        """Create a session from the fields the client set (``id`` optional: a ULID).

        A ``parent_id`` logs an ``agent.spawned`` event in the parent. With ``strict``,
        the same id with another body raises ``Conflict``; without, first write wins.

        Raises:
            Conflict, NotFound (``parent_id`` names no session).
        """

    @abc.abstractmethod
    async def get_session(self, tenant_id: str, session_id: str) -> SessionDetail:
        """The session with its goals and children. Raises NotFound."""

    @abc.abstractmethod
    async def sessions_by_id(self, tenant_id: str, ids: Sequence[str]) -> list[Session]:
        """The tenant's sessions among ``ids`` (unknown ids left out), in ``ids`` order."""

    @abc.abstractmethod
    async def sessions_changed(
        self, tenant_id: str, *, since_ms: int, after_id: str, limit: int
    ) -> list[Session]:
        """The tenant's sessions by ``(updated_at, id)`` after ``(since_ms, after_id)``
        (``updated_at`` in ms since the epoch), at most ``limit``: the backlog of a live
        list. Deleted sessions are not in it."""

    @abc.abstractmethod
    async def active_sessions(self, tenant_id: str) -> int:
        """How many of the tenant's sessions have status ``active``."""

    @abc.abstractmethod
    async def list_sessions(
        self, tenant_id: str, f: SessionFilter, *, cursor: int | None, limit: int, max_bytes: int
    ) -> tuple[list[Session], str | None]:
        """Sessions newest first: at most ``limit``, stopping before ``max_bytes`` of
        stored JSON (one at least); ``(items, next_cursor or None)``."""

    @abc.abstractmethod
    async def update_session(
        self, tenant_id: str, session_id: str, patch: SessionPatch, *, now: int
    ) -> Session:
        """Replace the fields sent; merge ``metadata`` (RFC 7386). Raises NotFound,
        InvalidInput (merged metadata over its limit)."""

    @abc.abstractmethod
    async def end_session(
        self,
        tenant_id: str,
        session_id: str,
        *,
        status: str,
        summary: str | None,
        now: int,
        correlation_id: str | None,
        strict: bool = True,
    ) -> Session:
        """End a session; again with the same status is a no-op. A child's end logs
        ``agent.completed`` in its parent. Raises NotFound, Conflict (another status)."""

    @abc.abstractmethod
    async def delete_session(self, tenant_id: str, session_id: str, *, now: int) -> int:
        """Delete a session with its events and goals; returns the events deleted.
        Raises NotFound."""

    @abc.abstractmethod
    async def state_versions(
        self, tenant_id: str, session_id: str, *, after: int, limit: int
    ) -> tuple[list[StateVersion], int | None]:
        """The state document's versions ``> after``, oldest first, each with the merge
        patch that made it; ``(items, next after or None)``. Raises NotFound."""

    @abc.abstractmethod
    async def get_state(self, tenant_id: str, session_id: str) -> StateDoc:
        """The state document and its version. Raises NotFound."""

    @abc.abstractmethod
    async def patch_state(
        self,
        tenant_id: str,
        session_id: str,
        patch: dict[str, Any],
        *,
        if_match: int | None,
        now: int,
        max_bytes: int,
    ) -> StateDoc:
        """Apply a JSON Merge Patch (RFC 7386) and bump the version.

        Raises:
            NotFound, PreconditionFailed (``if_match`` is not the current version),
            InvalidInput (the new document over ``max_bytes`` as JSON).
        """

    @abc.abstractmethod
    async def add_goal(
        self, tenant_id: str, session_id: str, goal: GoalIn, *, now: int
    ) -> Created[Goal]:
        """Add a goal; a client-chosen id makes it idempotent. Raises NotFound, Conflict."""

    @abc.abstractmethod
    async def update_goal(
        self, tenant_id: str, session_id: str, goal_id: str, patch: GoalPatch, *, now: int
    ) -> Goal:
        """Change the goal fields sent. Raises NotFound, InvalidInput."""

    # -- events ------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_events(
        self,
        tenant_id: str,
        session_id: str,
        events: Sequence[EventIn],
        *,
        now: int,
        correlation_id: str | None,
    ) -> AppendResult:
        """Append to one session in one transaction: gapless seqs; a stored idempotency
        key returns its original seq and stores nothing. Raises NotFound."""

    @abc.abstractmethod
    async def ingest_batch(
        self, tenant_id: str, batch: EventBatchIn, *, now: int, correlation_id: str | None
    ) -> BatchResult:
        """Sessions on first sight, events, then ends, all or nothing (the SDK's path).
        Raises NotFound (a ``parent_id`` names no session)."""

    @abc.abstractmethod
    async def list_events(
        self,
        tenant_id: str,
        session_id: str,
        *,
        after_seq: int,
        kinds: Sequence[str],
        limit: int,
        max_bytes: int,
    ) -> tuple[list[Event], int | None]:
        """Events with ``seq > after_seq`` in order, paged by ``limit`` and ``max_bytes``;
        ``(items, next after_seq or None)``. Raises NotFound."""

    @abc.abstractmethod
    async def stats(self, tenant_id: str, *, since_ms: int) -> Stats:
        """Sessions by status, events by kind, and counts created since ``since_ms``."""

    # -- memories ----------------------------------------------------------------------
    @abc.abstractmethod
    async def remember(
        self, tenant_id: str, items: Sequence[MemoryIn], *, now: int
    ) -> list[Remembered]:
        """Store memories in one transaction (dedupe by normalised text per namespace;
        idempotency keys), each with its keyword terms, change and embedding job.
        Raises Conflict (an idempotency key reused with another body)."""

    @abc.abstractmethod
    async def get_memory(
        self, tenant_id: str, memory_id: str, *, include_deleted: bool = False
    ) -> Memory:
        """One memory; a tombstone is NotFound unless ``include_deleted``."""

    @abc.abstractmethod
    async def update_memory(
        self, tenant_id: str, memory_id: str, fields: Mapping[str, Any], *, now: int
    ) -> Memory:
        """A new version with the fields sent (``metadata`` merges; a new text is
        re-indexed and queued for embedding). Raises NotFound, Conflict (the new text
        duplicates another memory), InvalidInput."""

    @abc.abstractmethod
    async def forget_memory(
        self, tenant_id: str, memory_id: str, *, purge: bool, now: int
    ) -> Memory | Purged:
        """Tombstone (history kept; returns the tombstone) or purge (row deleted, history
        texts blanked; returns :class:`Purged`). Raises NotFound."""

    @abc.abstractmethod
    async def memory_history(
        self, tenant_id: str, memory_id: str, *, after: int, limit: int, max_bytes: int
    ) -> tuple[list[MemoryChange], int | None]:
        """The memory's changes with ``lsn > after``; ``(items, next_after or None)``.
        Raises NotFound."""

    @abc.abstractmethod
    async def memory_changes(
        self, tenant_id: str, *, after: int, limit: int, max_bytes: int
    ) -> tuple[list[MemoryChange], int]:
        """The tenant's change feed after ``lsn = after``; ``(items, next_after)`` where
        ``next_after`` is the last lsn returned (``after`` when none)."""

    @abc.abstractmethod
    async def browse_memories(
        self,
        tenant_id: str,
        f: MemoryFilter,
        *,
        before: int | None,
        limit: int,
        now: int,
        max_bytes: int,
    ) -> tuple[list[Memory], str | None]:
        """Memories newest first, filtered, paged; ``(items, next_cursor or None)``."""

    @abc.abstractmethod
    async def memory_namespaces(
        self, tenant_id: str, f: MemoryFilter, *, after: str | None, limit: int, now: int
    ) -> tuple[list[NamespaceCount], str | None]:
        """Namespaces with live memories ``f`` matches (its ``namespace_prefixes`` limit
        them), with counts, in code point order after ``after``; ``(items, next after or
        None)``."""

    @abc.abstractmethod
    async def export_memories(
        self,
        tenant_id: str,
        f: MemoryFilter,
        *,
        after: int,
        limit: int,
        now: int,
        max_bytes: int,
        vectors_of: str | None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of an export in ingest order: memories as JSON-ready dicts, each with
        ``embedding: {model, dim, vector (base64)}`` when ``vectors_of`` names a model it
        has a current vector of; ``(items, next_after or None)``."""

    @abc.abstractmethod
    async def import_memories(
        self, tenant_id: str, items: Sequence[MemoryImport], *, now: int, model: str, dim: int
    ) -> ImportResult:
        """Import export lines, all or nothing; existing ids and live twin texts are
        skipped. An embedding of ``model`` (checked by the caller) is stored as the
        vector instead of queueing the text."""

    @abc.abstractmethod
    async def memory_head(self) -> int:
        """The latest ``lsn`` of the change feed, every tenant (0 when empty): a live
        reader that subscribed to the bus first starts here."""

    @abc.abstractmethod
    async def memory_stats(self, tenant_id: str) -> MemoryStats:
        """Live and tombstoned memories; pending and dead embedding jobs."""

    # -- recall: the candidate reader ----------------------------------------------------
    @abc.abstractmethod
    async def ranking_rows(
        self, tenant_id: str, f: MemoryFilter, pks: Sequence[int], *, now: int
    ) -> dict[int, RankingRow]:
        """The ranking columns of the memories among ``pks`` that pass ``f``, by pk."""

    @abc.abstractmethod
    async def memories_by_pk(self, tenant_id: str, pks: Sequence[int]) -> dict[int, Memory]:
        """The tenant's live memories among ``pks``, by pk (one forgotten since is
        absent)."""

    @abc.abstractmethod
    async def touch_memories(self, accesses: Sequence[tuple[str, int, int, int]]) -> None:
        """Record recalls: ``(tenant_id, pk, accessed_ms, times)``; ``last_accessed_at``
        becomes the later of the two, ``access_count`` grows by ``times``. Statistics:
        no version, no change record."""

    # -- derived state: the memory feed for indexes --------------------------------------
    @abc.abstractmethod
    async def memory_snapshot(
        self, *, model: str, after_pk: int, limit: int
    ) -> tuple[int, list[IndexRow]]:
        """Live memories with ``pk > after_pk`` in pk order (a page, every tenant), each
        with its terms and current ``model`` vector, and the feed's current ``lsn``: load
        every page, then follow :meth:`memory_feed` from the first page's lsn (a change
        in between is applied again, harmlessly: rows are current)."""

    @abc.abstractmethod
    async def memory_feed(self, *, model: str, after: int, limit: int) -> list[IndexRow]:
        """For each memory change with ``lsn > after`` (every tenant, lsn order, at most
        ``limit``): the memory as it is now (``terms is None`` when gone)."""

    # -- the embedding outbox ----------------------------------------------------------
    @abc.abstractmethod
    async def claim_jobs(self, *, now: int, limit: int, lease_ms: int) -> list[Job]:
        """Up to ``limit`` pending jobs due at ``now``, oldest first, across tenants, each
        made due again only ``lease_ms`` later: another replica's indexer skips them
        meanwhile, and a job whose claimer died is retried once its lease is over."""

    @abc.abstractmethod
    async def release_jobs(self, job_ids: Sequence[int], *, due_at: int) -> None:
        """Make claimed jobs due at ``due_at`` (ms) instead of when their lease ends
        (their indexer stopped short: the embedder went down)."""

    @abc.abstractmethod
    async def next_due_at(self) -> int | None:
        """When the earliest pending job is due (ms), or None."""

    @abc.abstractmethod
    async def complete_jobs(
        self, model: str, done: Sequence[EmbeddedJob], drop: Sequence[int], *, now: int
    ) -> int:
        """Store vectors whose memory still has the embedded text (a ``memory.embedded``
        change each), delete the jobs (and ``drop``); returns the vectors stored."""

    @abc.abstractmethod
    async def fail_jobs(
        self,
        jobs: Sequence[Job],
        *,
        error: str,
        now: int,
        max_attempts: int,
        backoff_ms: Sequence[int],
    ) -> int:
        """Charge one failed attempt each (retry after ``backoff_ms``, aligned) or move to
        the dead letters at ``max_attempts``; returns how many died."""

    @abc.abstractmethod
    async def list_jobs(
        self, tenant_id: str, *, state: str, after: int, limit: int
    ) -> tuple[list[OutboxJob], int | None]:
        """The tenant's jobs in ``state`` by id; ``(items, next_after or None)``."""

    @abc.abstractmethod
    async def replay_jobs(self, tenant_id: str, ids: Sequence[int] | None, *, now: int) -> int:
        """Requeue dead jobs (all, or ``ids``) with a fresh attempt count."""

    @abc.abstractmethod
    async def enqueue_reindex(
        self, tenant_id: str, *, model: str, everything: bool, now: int
    ) -> int:
        """Queue embedding of live memories lacking a ``model`` vector (or all)."""

    # -- model prices ------------------------------------------------------------------
    @abc.abstractmethod
    async def list_prices(self, tenant_id: str) -> list[ModelPrice]:
        """The tenant's price overrides (``source="tenant"``), by model name."""

    @abc.abstractmethod
    async def put_price(
        self, tenant_id: str, model: str, prices: Mapping[str, float | None], *, now: int
    ) -> ModelPrice:
        """Set the tenant's prices of ``model`` (USD per million tokens; the keys of
        ``prices`` not given become ``None``), replacing any before."""

    @abc.abstractmethod
    async def delete_price(self, tenant_id: str, model: str) -> bool:
        """Drop the tenant's override of ``model``; False when there was none."""

    # -- API keys and the audit log ----------------------------------------------------
    @abc.abstractmethod
    async def create_key(self, values: Mapping[str, Any]) -> ApiKey:
        """Store a key: ``id``, ``tenant_id``, ``scope``, ``secret_hash`` (SHA-256 hex of
        the secret, never the secret), ``namespaces`` (a list of prefixes), ``name``,
        ``created_at``, ``expires_at`` (ms or ``None``), ``created_by``."""

    @abc.abstractmethod
    async def find_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """A key of any tenant with its secret's hash, for authentication."""

    @abc.abstractmethod
    async def list_keys(self, tenant_id: str | None) -> list[ApiKey]:
        """A tenant's keys (``None``: every tenant's), oldest first, revoked ones too."""

    @abc.abstractmethod
    async def revoke_key(self, tenant_id: str | None, key_id: str, *, now: int) -> ApiKey:
        """Revoke a key (of ``tenant_id`` unless ``None``); revoking again keeps the first
        time.

        Raises:
            NotFound: no such key (of that tenant).
        """

    @abc.abstractmethod
    async def touch_keys(self, used: Mapping[str, int]) -> None:
        """Record ``last_used_at`` (ms, the later wins) of keys by id."""

    @abc.abstractmethod
    async def live_key_count(self, *, now: int) -> int:
        """Keys neither revoked nor expired at ``now`` (ms), every tenant."""

    @abc.abstractmethod
    async def append_audit(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append audit entries: ``tenant_id``, ``at`` (ms), ``action``, and optionally
        ``key_id``, ``target``, ``detail`` (JSON-ready), ``correlation_id``."""

    @abc.abstractmethod
    async def audit_page(
        self, tenant_id: str | None, *, after: int, limit: int
    ) -> tuple[list[AuditEntry], int | None]:
        """A tenant's audit entries (``None``: every tenant's) with ``seq > after``,
        oldest first: ``(items, next_after or None)``."""

    # -- analytics: reads across a tenant's events ---------------------------------------
    @abc.abstractmethod
    async def event_samples(
        self,
        tenant_id: str,
        *,
        since_ms: int | None,
        until_ms: int | None,
        session_id: str | None = None,
        agent: str | None = None,
        kinds: Sequence[str] = (),
        names: Sequence[str] = (),
        limit: int,
    ) -> tuple[list[EventSample], bool]:
        """The tenant's events as :class:`EventSample`, newest first by event time
        (``started_at``, else ``created_at``; ``since_ms`` inclusive, ``until_ms``
        exclusive, ms), of ``session_id``, of sessions whose ``agent`` equals, of any of
        ``kinds`` and ``names`` when given; at most ``limit``.

        Returns:
            ``(samples, truncated)``: ``truncated`` is true when more events matched.

        Raises:
            NotFound: ``session_id`` names no session of the tenant.
        """

    @abc.abstractmethod
    async def query_events(
        self, tenant_id: str, q: EventQuery, *, after: int, limit: int, tail: bool, max_bytes: int
    ) -> tuple[list[tuple[int, Event]], bool, int]:
        """The tenant's events matching ``q`` with row key ``pk > after``, in ``pk`` order
        (a cursor across sessions: ascending, assigned at insert), each with its ``pk``:
        the first ``limit`` (``tail``: the last ``limit``, still ascending), stopping
        before ``max_bytes`` of stored JSON (at least one).

        Returns:
            ``(items, more, head)``: ``more`` is true when further matching events follow
            the last item (always false for ``tail``); ``head`` is the tenant's latest
            ``pk`` (0 when none), read before the page, which only holds events at or
            below it, so a follower resuming after ``head`` misses nothing committed later.
        """

    # -- copying a deployment (tether migrate) -------------------------------------------
    @abc.abstractmethod
    async def read_table(
        self, table: str, *, after: Sequence[Any] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """A page of a table of :data:`tether.store.tables.TABLES`, every tenant: rows
        as tuples in its spec's column order, with key after ``after`` (``None``: from
        the start), in key order. Values as stored (times in ms, JSON as text, vectors as
        ``bytes``), the same on every backend.

        Raises:
            KeyError: not a table of ``TABLES``.
        """

    @abc.abstractmethod
    async def write_table(self, table: str, rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows read by :meth:`read_table` (of any backend) as they are, keys
        included; returns how many. Emits no change records.

        Raises:
            KeyError: not a table of ``TABLES``.
            Exception: the backend's integrity error for a key that is taken.
        """

    @abc.abstractmethod
    async def is_empty(self) -> bool:
        """True when no table of ``TABLES`` has a row."""

    @abc.abstractmethod
    async def finish_load(self) -> None:
        """After :meth:`write_table`: new rows and changes continue after the copied
        ones (sequences, the feed counter)."""

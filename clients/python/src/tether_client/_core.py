"""The core shared by ``Client`` and ``AsyncClient`` (see :mod:`~tether_client._client`).

:class:`_ClientCore` holds everything both share: configuration, the circuit breaker,
the batcher (queue, spool, background threads), the session registry, the dead
letters, and the request definitions of :mod:`~tether_client._api`.

Failure model of direct calls (state, goals, memory): each is tried up to
``max_retries`` times with exponential backoff and jitter, ``Retry-After`` honoured,
for unreachable servers, 408, 429 and 502-504. If the circuit breaker is open the call
raises :class:`CircuitOpenError` at once, without a request; once retries are used up
it raises :class:`ServerUnreachableError` or the matching :class:`APIError`.

The breaker is shared with the batcher and both feed it by one rule
(:func:`~tether_client._breaker.is_outage`): no response, 408, 502, 503 and 504 are
failures; every other answer, a 500 included, is a success, because a server that
answers is up. So a request the server cannot handle (one bad route, one poison event
that the batcher is busy isolating into the dead letters) raises its own
:class:`APIError` without making every other call fail fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from tenacity import retry_if_exception, stop_after_attempt

from . import _api
from ._api import Call, unwrap
from ._batcher import Batcher, BatcherStats
from ._breaker import CircuitBreaker, is_outage
from ._config import Config
from ._deadletter import DeadLetter
from ._errors import CircuitOpenError, ClientClosedError, ServerUnreachableError
from ._ids import new_id
from ._retry import RetryAfterWait, is_retryable
from ._session import BaseSession

T = TypeVar("T")
S = TypeVar("S", bound=BaseSession)

# The server's ClientId rule; an id it would refuse must fail here, not poison batches.
_SESSION_ID = re.compile(r"[A-Za-z0-9._:@+\-=]{1,200}")


class _ClientCore:
    """State and behaviour shared by :class:`Client` and :class:`AsyncClient`."""

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
        self.config = Config.resolve(
            url=url,
            api_key=api_key,
            session_id=session_id,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            **options,
        )
        cfg = self.config
        self._breaker = CircuitBreaker(
            cfg.breaker_threshold, cfg.breaker_open_base, cfg.breaker_open_max
        )
        self._sessions: dict[str, dict[str, Any]] = {}
        self._batcher = Batcher(cfg, self._sessions, self._breaker, transport)
        self._closed = False
        self._timeout = httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 2.0))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={self.config.url!r}>"

    # -- sessions (queued) -------------------------------------------------------------

    def _new_session(
        self,
        cls: type[S],
        *,
        id: str | None,
        agent: str | None,
        user_id: str | None,
        title: str | None,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
        parent_id: str | None,
    ) -> S:
        session_id = id or new_id()
        for checked in (session_id, parent_id):
            if checked is not None and not _SESSION_ID.fullmatch(checked):
                raise ValueError(
                    f"invalid session id {checked!r}: 1-200 characters of A-Z a-z 0-9 . _ : @ + - ="
                )
        spec: dict[str, Any] = {"id": session_id}
        for key, value in (
            ("parent_id", parent_id),
            ("agent", agent),
            ("user_id", user_id),
            ("title", title),
            ("tags", list(tags) if tags is not None else None),
            ("metadata", dict(metadata) if metadata is not None else None),
        ):
            if value is not None:
                spec[key] = value
        self._sessions[session_id] = spec
        self._batcher.put(("s", spec))
        return cls(self, session_id, spec)

    # -- memory request definitions ------------------------------------------------------

    @staticmethod
    def _many_call(
        items: Iterable[str | Mapping[str, Any]], namespace: str | None
    ) -> Call[list[dict[str, Any]]]:
        bodies = []
        for item in items:
            if isinstance(item, str):
                if namespace is None:
                    raise ValueError("a plain-text item needs the namespace argument")
                bodies.append(_api.memory_item(namespace, item))
            else:
                fields = dict(item)
                ns = fields.pop("namespace", namespace)
                if ns is None:
                    raise ValueError("an item has no namespace and none was given")
                bodies.append(_api.memory_item(ns, fields.pop("text"), **fields))
        return _api.remember_many(bodies)

    # -- batching ------------------------------------------------------------------------

    def stats(self) -> BatcherStats:
        """Counters of the batcher (queued, spooled, sent, dropped, dead letters...)."""
        return self._batcher.stats()

    def dead_letters(self, ids: Sequence[int] | None = None) -> list[DeadLetter]:
        """Events (or session ends/descriptors) the server refused, oldest first.

        Each holds the refused body and the server's error (status, code, message,
        details, correlation id). They stay in the spool file, across restarts, until
        dropped or retried. A local SQLite read: no request, plain method on both
        clients.

        Args:
            ids: Only these :attr:`DeadLetter.id` values; ``None`` for all.

        Returns:
            A list of :class:`DeadLetter`, oldest first.

        Raises:
            ClientClosedError: The client is closed.
        """
        self._check_open()
        return self._batcher.dead_letters(ids)

    def drop_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Delete dead letters for good.

        Args:
            ids: The :attr:`DeadLetter.id` values to delete; ``None`` deletes all.

        Returns:
            How many were deleted (ids that do not exist are ignored).

        Raises:
            ClientClosedError: The client is closed.
        """
        self._check_open()
        return self._batcher.drop_dead_letters(ids)

    def retry_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Send dead letters again, e.g. after the server was fixed.

        They are moved back into the spool, behind what is already waiting, and
        delivered like any batch (the same idempotency keys; a refusal makes them dead
        letters again). ``flush()`` afterwards waits for them.

        Args:
            ids: The :attr:`DeadLetter.id` values to resend; ``None`` resends all.

        Returns:
            How many were moved back into the spool.

        Raises:
            ClientClosedError: The client is closed.
        """
        self._check_open()
        return self._batcher.retry_dead_letters(ids)

    @property
    def spool_path(self) -> str | None:
        """Path of the spool file, or ``None`` when spooling in memory."""
        path = self._batcher.spool.path
        return None if path is None else str(path)

    # -- executing direct calls ------------------------------------------------------------

    def _retry_options(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "stop": stop_after_attempt(max(cfg.max_retries, 1)),
            "wait": RetryAfterWait(cfg.retry_base, cfg.retry_max),
            "retry": retry_if_exception(is_retryable),
            "reraise": True,
        }

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client is closed")

    def _before(self) -> None:
        self._check_open()
        if not self._breaker.allow():
            raise CircuitOpenError(
                f"circuit open: {self.config.url} failed repeatedly; "
                f"next attempt in {self._breaker.retry_in():.1f} s",
                retry_in=self._breaker.retry_in(),
            )

    def _after(self, call: Call[T], response: httpx.Response) -> T:
        if is_outage(response.status_code):
            self._breaker.record_failure()
        else:
            self._breaker.record_success()  # the server is up (see the module docstring)
        return call.parse(unwrap(response))

    def _unreachable(self, exc: httpx.HTTPError) -> ServerUnreachableError:
        self._breaker.record_failure()
        return ServerUnreachableError(
            f"cannot reach {self.config.url}: {type(exc).__name__}: {exc}"
        )

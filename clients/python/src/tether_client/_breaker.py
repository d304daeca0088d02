"""A thread-safe circuit breaker shared by the batcher and direct calls.

States: *closed* (requests flow), *open* (no requests until ``open_until``), *half-open*
(one probe request at a time is let through; success closes, failure re-opens with
the open time doubled up to ``open_max``). ``threshold`` consecutive failures open a
closed circuit. Checking the breaker costs a lock and a clock read: this is what makes
a dead server cost microseconds instead of connect timeouts.

What counts as a failure (:func:`is_outage`, the one rule for the batcher and direct
calls): no answer at all (connect error, timeout), or 408, 502, 503, 504, the answers
of a server, gateway or proxy that is away or overloaded. Any other answer, 500 and
every other 4xx and 5xx included, proves a live server and counts as a success: one
request the server cannot handle (a poison event, a bug on one route) must not make
every other request fail fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

# Statuses that mean "the server is away", not "this request is bad" (see the docstring).
OUTAGE_STATUSES = frozenset({408, 502, 503, 504})


def is_outage(status: int | None) -> bool:
    """Whether an answer counts as a breaker failure.

    Args:
        status: The HTTP status, or ``None`` when no response arrived (transport error).
    """
    return status is None or status in OUTAGE_STATUSES


class BreakerState(StrEnum):
    """Circuit states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and fails fast while the server is down.

    Args:
        threshold: Consecutive failures that open the circuit (≥ 1).
        open_base: Seconds the circuit stays open after it first opens.
        open_max: Largest open time in seconds; each failed probe doubles it.
        clock: Monotonic clock in seconds; for tests.

    Raises:
        ValueError: ``threshold`` < 1 or non-positive times.
    """

    def __init__(
        self,
        threshold: int = 3,
        open_base: float = 0.5,
        open_max: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or open_base <= 0 or open_max < open_base:
            raise ValueError("threshold must be >= 1 and 0 < open_base <= open_max")
        self._threshold = threshold
        self._open_base = open_base
        self._open_max = open_max
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_for = open_base
        self._open_until = 0.0
        self._state = BreakerState.CLOSED
        self._probe_deadline = 0.0

    @property
    def state(self) -> BreakerState:
        """The current state (``open`` turns into ``half_open`` once its time is up)."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
                return BreakerState.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """Return whether a request may be sent now.

        In the half-open state only one caller at a time gets ``True`` (the probe);
        a probe that never reports back frees its slot after the current open time.
        """
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            now = self._clock()
            if self._state is BreakerState.OPEN:
                if now < self._open_until:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_deadline = now + self._open_for
                return True
            if now >= self._probe_deadline:  # half-open, previous probe lost
                self._probe_deadline = now + self._open_for
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until :meth:`allow` may return ``True`` again (0 when closed)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return 0.0
            deadline = (
                self._open_until if self._state is BreakerState.OPEN else self._probe_deadline
            )
            return max(0.0, deadline - self._clock())

    def record_success(self) -> None:
        """Report that the server answered: close the circuit and reset the counters."""
        with self._lock:
            self._failures = 0
            self._open_for = self._open_base
            self._state = BreakerState.CLOSED

    def record_failure(self) -> None:
        """Report a failure (see :func:`is_outage`); may open the circuit."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.HALF_OPEN:
                self._open_for = min(self._open_for * 2, self._open_max)
                self._open(now)
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self._threshold:
                self._open(now)

    def trip(self) -> None:
        """Open the circuit now (used by tests and by a client that knows better)."""
        with self._lock:
            self._open(self._clock())

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._open_until = now + self._open_for

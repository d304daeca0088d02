"""Backoff policy shared by the batcher and by direct calls.

Delays are exponential with jitter ("equal jitter": half fixed, half random, after
the AWS Architecture Blog's "Exponential Backoff and Jitter", 2015), and a server's
``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) wins when present.
Direct calls run this policy through tenacity; the batcher calls :func:`backoff_delay`
between its own attempts.
"""

from __future__ import annotations

import email.utils
import random
import time
from datetime import UTC

import httpx
from tenacity import RetryCallState

from ._errors import (
    APIError,
    CircuitOpenError,
    RateLimitedError,
    ServerError,
    ServerUnreachableError,
)

# Statuses worth retrying: the request was not applied, or was applied idempotently.
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds.

    Args:
        value: The header value: delay-seconds (``"3"``) or an HTTP-date.
        now: Unix time in seconds to measure an HTTP-date against; for tests.

    Returns:
        Seconds to wait (≥ 0), or ``None`` when absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt``.

    Args:
        attempt: 1 for the first retry, 2 for the second, ...
        base: Delay scale in seconds; the un-jittered delay is ``base * 2**(attempt-1)``.
        cap: Largest delay in seconds; also caps ``retry_after``.
        retry_after: The server's ``Retry-After`` in seconds; used instead when given.
        rng: Random source; for tests.

    Returns:
        A delay in ``[d/2, d]`` with ``d = min(cap, base * 2**(attempt-1))``, or
        ``min(retry_after, cap)``.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    ceiling = min(cap, base * (2.0 ** max(attempt - 1, 0)))
    half = ceiling / 2
    jitter = rng.uniform(0, half) if rng is not None else random.uniform(0, half)
    return ceiling / 2 + jitter


def is_retryable(exc: BaseException) -> bool:
    """Whether a direct call that raised ``exc`` should be tried again.

    Unreachable servers, 429 and 502/503/504 are retried; a circuit that is open is
    not (it already says the server is down), nor is any other API error.
    """
    if isinstance(exc, CircuitOpenError):
        return False
    if isinstance(exc, ServerUnreachableError):
        return True
    if isinstance(exc, RateLimitedError | ServerError):
        return exc.status in RETRY_STATUSES
    return isinstance(exc, APIError) and exc.status in RETRY_STATUSES


class RetryAfterWait:
    """A tenacity ``wait`` strategy: :func:`backoff_delay`, honouring ``Retry-After``.

    Args:
        base: See :func:`backoff_delay`.
        cap: See :func:`backoff_delay`.
    """

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return backoff_delay(
            state.attempt_number, base=self.base, cap=self.cap, retry_after=retry_after
        )


def retry_after_of(response: httpx.Response) -> float | None:
    """``Retry-After`` of a response in seconds, or ``None``."""
    return parse_retry_after(response.headers.get("retry-after"))

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

from tether_client._retry import backoff_delay, parse_retry_after


def test_parse_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    when = format_datetime(datetime.fromtimestamp(1_000_010, UTC), usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == 10.0
    assert parse_retry_after(when, now=2_000_000) == 0.0


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (10, 5.0)]:
        delay = backoff_delay(attempt, base=0.1, cap=5.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_wins_but_is_capped() -> None:
    assert backoff_delay(1, base=0.1, cap=5.0, retry_after=2.0) == 2.0
    assert backoff_delay(1, base=0.1, cap=5.0, retry_after=60.0) == 5.0

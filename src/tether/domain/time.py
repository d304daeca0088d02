"""Time helpers. Tether stores times as integer milliseconds since the Unix epoch (UTC)."""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime

from ulid import ULID


def now_ms() -> int:
    """Current wall-clock time in ms since the epoch."""
    return _time.time_ns() // 1_000_000


def to_ms(value: datetime | None) -> int | None:
    """A datetime (naive = UTC) as ms since the epoch; ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """ms since the epoch as RFC 3339 UTC with millisecond precision, e.g. ``2026-01-02T03:04:05.678Z``."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def new_id() -> str:
    """A new ULID string (26 chars, Crockford base32, sortable by creation time)."""
    return str(ULID())

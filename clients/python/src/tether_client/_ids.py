"""Client-made ids: 26-character, time-sortable, ULID-shaped strings.

Layout (as ULID, https://github.com/ulid/spec): 48 bits of Unix time in milliseconds,
then 80 random bits from :func:`os.urandom`, encoded in Crockford base32. Ids made in
different milliseconds sort by time; within one millisecond they are random (the SDK
never relies on that order: the server's per-session ``seq`` is the order).
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LENGTH = 26  # 10 digits of time (48 bits) + 16 of randomness (80 bits), as ULID
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> 2 digits
_last: tuple[int, str] = (-1, "")  # (ms, its 10 digits): ids made in one ms share them


def _time_digits(ms: int) -> str:
    global _last
    cached_ms, digits = _last
    if cached_ms != ms:
        p = _PAIRS
        digits = p[ms >> 40] + p[(ms >> 30) & 1023] + p[(ms >> 20) & 1023]
        digits += p[(ms >> 10) & 1023] + p[ms & 1023]
        _last = (ms, digits)
    return digits


def new_id(now_ms: int | None = None) -> str:
    """Return a new id.

    Args:
        now_ms: Unix time in milliseconds to stamp the id with; the current time if
            ``None``. Must fit in 48 bits.

    Returns:
        A 26-character Crockford base32 string, e.g. ``"01J9ZQ3V8K4M2N6P7R8S9T0VWX"``.

    Raises:
        ValueError: ``now_ms`` is negative or does not fit in 48 bits.
    """
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"timestamp out of range: {ms}")
    r = int.from_bytes(os.urandom(10), "big")
    p = _PAIRS  # unrolled on purpose: this runs on the agent's hot path (~1 us)
    return (
        _time_digits(ms)
        + p[r >> 70]
        + p[(r >> 60) & 1023]
        + p[(r >> 50) & 1023]
        + p[(r >> 40) & 1023]
        + p[(r >> 30) & 1023]
        + p[(r >> 20) & 1023]
        + p[(r >> 10) & 1023]
        + p[r & 1023]
    )


def id_timestamp_ms(value: str) -> int:
    """Return the Unix time in milliseconds encoded in an id made by :func:`new_id`.

    Raises:
        ValueError: ``value`` is not a 26-character Crockford base32 string.
    """
    if len(value) != _LENGTH:
        raise ValueError(f"not an id: {value!r}")
    number = 0
    for char in value.upper():
        digit = _ALPHABET.find(char)
        if digit < 0:
            raise ValueError(f"not an id: {value!r}")
        number = number * 32 + digit
    return number >> 80

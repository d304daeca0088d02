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
_LENGTH = 26  # 130 bits of base32 for 128 bits of id, as ULID


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
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


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

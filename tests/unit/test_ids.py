"""The bulk ULID generator against the python-ulid reference implementation."""

from __future__ import annotations

import pytest
from ulid import ULID

from tether.domain.time import new_id, new_ids


@pytest.mark.parametrize("ms", [0, 1_700_000_000_123, 2**48 - 1])
def test_bulk_ids_parse_share_the_timestamp_and_count_up(ms: int) -> None:
    ids = new_ids(2000, ms=ms)
    parsed = [ULID.from_str(i) for i in ids]
    assert all(p.milliseconds == ms for p in parsed)
    values = [int(p) for p in parsed]
    assert values == list(range(values[0], values[0] + 2000))
    # Our encoding is byte-for-byte the reference encoding of the same 128-bit value.
    assert [str(ULID.from_int(v)) for v in values] == ids


def test_ids_sort_by_time_and_are_unique_across_calls() -> None:
    a = new_ids(50, ms=1000)
    b = new_ids(50, ms=1001)
    assert max(a) < min(b)
    assert len({*a, *b, new_id(), new_id()}) == 102
    assert new_ids(0) == []

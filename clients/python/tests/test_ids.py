from __future__ import annotations

import time

import pytest

from tether_client import new_id
from tether_client._ids import id_timestamp_ms


def test_shape_and_alphabet() -> None:
    value = new_id()
    assert len(value) == 26
    assert set(value) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_ids_are_unique() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_timestamp_round_trip_and_sort_order() -> None:
    now = int(time.time() * 1000)
    assert abs(id_timestamp_ms(new_id()) - now) < 5_000
    earlier, later = new_id(now_ms=1_000), new_id(now_ms=1_001)
    assert earlier < later
    assert id_timestamp_ms(earlier) == 1_000


@pytest.mark.parametrize("bad", [-1, 1 << 48])
def test_timestamp_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        new_id(now_ms=bad)


@pytest.mark.parametrize("bad", ["short", "U" * 26])
def test_id_timestamp_rejects_non_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="not an id"):
        id_timestamp_ms(bad)

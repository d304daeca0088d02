from __future__ import annotations

import pytest

from tether_client import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_fails_fast() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, open_base=1.0, open_max=8.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(1.0)


def test_half_open_lets_one_probe_then_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, open_base=1.0, open_max=8.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probes_double_open_time_up_to_max() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, open_base=1.0, open_max=3.0, clock=clock)
    breaker.record_failure()
    waits = []
    for _ in range(4):
        waits.append(breaker.retry_in())
        clock.now += waits[-1]
        assert breaker.allow()
        breaker.record_failure()
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_lost_probe_frees_its_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, open_base=1.0, open_max=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    clock.now += 1.0  # the probe never reported
    assert breaker.allow()


def test_success_resets_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_trip_and_validation() -> None:
    breaker = CircuitBreaker()
    breaker.trip()
    assert not breaker.allow()
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

import tether_client
from tether_client import Client

from .sdk_helpers import FakeServer

EXPECTED = {
    "EVENT_KINDS", "UNSET", "APIError", "AsyncClient", "AsyncSession", "AuthenticationError",
    "BaseSession", "BatcherStats", "BreakerState", "CircuitBreaker", "CircuitOpenError", "Client",
    "ClientClosedError", "Config", "ConfigError", "ConflictError", "DeadLetter", "EventQuery",
    "NotFoundError", "Page",
    "PayloadTooLargeError", "PreconditionFailedError", "RateLimitedError", "RecallResult",
    "ServerError", "ServerUnreachableError", "Session", "Span", "StateSnapshot", "TetherError",
    "ValidationError", "__version__", "current_session", "current_span", "default_spool_dir",
    "new_id", "traced",
}  # fmt: skip


def test_all_is_the_public_api() -> None:
    assert set(tether_client.__all__) == EXPECTED
    for name in tether_client.__all__:
        assert hasattr(tether_client, name), name


def test_error_tree() -> None:
    assert issubclass(tether_client.CircuitOpenError, tether_client.ServerUnreachableError)
    for name in ("ServerUnreachableError", "APIError", "ConfigError", "ClientClosedError"):
        assert issubclass(getattr(tether_client, name), tether_client.TetherError)
    for name in ("NotFoundError", "ValidationError", "PreconditionFailedError", "ServerError"):
        assert issubclass(getattr(tether_client, name), tether_client.APIError)


def test_api_key_is_never_logged(
    make_client: Callable[..., Client], fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tk_live_DO_NOT_LOG_1234567890"
    with caplog.at_level(logging.DEBUG):  # every logger, httpx's included
        client = make_client(api_key=secret, max_retries=1)
        session = client.session()
        session.log_action("x")
        assert client.flush(5)
        fake.fail_next = [(401, None)]
        session.log_action("y")
        client.flush(0.5)
        fake.down = True
        session.log_action("z")
        client.flush(0.3)
        with pytest.raises(tether_client.TetherError) as info:
            client.recall("user/a", "q")
        fake.down = False
        client.close()
    posted = [headers for _, _, headers, _ in fake.requests]
    assert posted
    assert all(h["authorization"] == f"Bearer {secret}" for h in posted)
    assert caplog.records
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert secret not in caplog.text
    assert secret not in repr(client)
    assert secret not in repr(client.config)
    assert secret not in str(info.value)
    assert all(
        record.name.startswith(("tether_client", "httpx", "httpcore")) for record in caplog.records
    )

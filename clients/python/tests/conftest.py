"""Fixtures for the SDK tests: `fake`, `make_client` (unit) and `tether_server` (integration)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # run from a checkout without `pip install -e clients/python`
    sys.path.insert(0, str(SRC))

from tether.testing import TetherServer  # noqa: E402
from tether_client import Client  # noqa: E402

from .sdk_helpers import FakeServer  # noqa: E402


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def make_client(tmp_path: Path, fake: FakeServer) -> Iterator[Callable[..., Client]]:
    """Factory for clients on the fake server with a temp spool; closed at teardown."""
    clients: list[Client] = []

    def make(**options: Any) -> Client:
        options.setdefault("spool_dir", tmp_path / "spool")
        options.setdefault("transport", fake.transport())
        options.setdefault("flush_interval", 0.02)
        options.setdefault("retry_base", 0.01)
        options.setdefault("retry_max", 0.05)
        options.setdefault("breaker_open_base", 0.05)
        options.setdefault("breaker_open_max", 0.1)
        options.setdefault("close_timeout", 0.5)
        client = Client("http://tether.test", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def tether_server(tmp_path: Path) -> Iterator[TetherServer]:
    server = TetherServer(tmp_path / "tether.db").start()
    yield server
    server.stop()

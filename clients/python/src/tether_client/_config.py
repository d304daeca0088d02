"""Client configuration: explicit arguments first, then ``TETHER_*`` environment variables.

| setting | argument | environment | default |
|---|---|---|---|
| server URL | ``url`` | ``TETHER_URL`` | ``http://127.0.0.1:7117`` |
| API key (sent as ``Authorization: Bearer``) | ``api_key`` | ``TETHER_API_KEY`` | none |
| default session id | ``session_id`` | ``TETHER_SESSION_ID`` | a new id per session |
| spool directory | ``spool_dir`` | ``TETHER_SPOOL_DIR`` | the per-user cache dir |
| spool size cap, bytes | ``spool_max_bytes`` | ``TETHER_SPOOL_MAX_BYTES`` | 64 MiB |
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:7117"
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024


def default_spool_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """Return the per-user cache directory for spools, without platformdirs.

    Linux and other Unix: ``$XDG_CACHE_HOME/tether/spool`` (``~/.cache/tether/spool``);
    macOS: ``~/Library/Caches/tether/spool``; Windows: ``%LOCALAPPDATA%\\tether\\spool``.

    Args:
        env: Environment to read (``os.environ`` if ``None``); for tests.
        platform: ``sys.platform`` value to assume; for tests.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home())
    if platform.startswith("win"):
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "tether" / "spool"


@dataclass(frozen=True)
class Config:
    """Resolved client settings. Build it with :meth:`Config.resolve`.

    Attributes:
        url: Server base URL, without a trailing slash.
        api_key: Bearer token, or ``None`` for a local server without auth. Hidden from
            ``repr`` so it never reaches a log line.
        session_id: Default id for :meth:`Client.session` when no id is passed.
        spool: ``True`` to keep unsent events in a SQLite file (survives restarts);
            ``False`` keeps them in memory only.
        spool_dir: Directory of the spool file.
        spool_max_bytes: Cap on the spool's stored batches in bytes; over it the oldest
            batches are dropped with a warning.
        flush_interval: Seconds between background flushes (the 200 ms of the design).
        batch_size: Queued events that trigger a flush before the interval (100).
        max_batch_events: Most events sent in one request when replaying a backlog.
        max_queue: Most events held in memory before the background thread spools them;
            over it new events are dropped with a warning.
        timeout: Seconds for one HTTP request (connect is capped at 2 s).
        max_retries: Attempts of a direct call before it raises.
        retry_base: First backoff delay in seconds; doubles per failure.
        retry_max: Largest backoff delay in seconds (also caps ``Retry-After``).
        breaker_threshold: Consecutive failures that open the circuit.
        breaker_open_base: Seconds the circuit stays open the first time.
        breaker_open_max: Largest open time in seconds (doubles per failed probe).
        poison_after: 500 answers in a row for the same oldest spooled batch after
            which the sender looks for a poison event in it (≥ 1). Items that keep
            answering 500 while an empty write succeeds become dead letters
            (:meth:`Client.dead_letters`); 502-504 never do.
        close_timeout: Seconds :meth:`Client.close` (and interpreter exit) waits to
            deliver; what is left stays in the spool for the next start.
    """

    url: str = DEFAULT_URL
    api_key: str | None = field(default=None, repr=False)
    session_id: str | None = None
    spool: bool = True
    spool_dir: Path = field(default_factory=default_spool_dir)
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    flush_interval: float = 0.2
    batch_size: int = 100
    max_batch_events: int = 500
    max_queue: int = 100_000
    timeout: float = 10.0
    max_retries: int = 3
    retry_base: float = 0.1
    retry_max: float = 5.0
    breaker_threshold: int = 3
    breaker_open_base: float = 0.5
    breaker_open_max: float = 5.0
    poison_after: int = 3
    close_timeout: float = 2.0

    @classmethod
    def resolve(
        cls,
        *,
        url: str | None = None,
        api_key: str | None = None,
        session_id: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int | None = None,
        env: Mapping[str, str] | None = None,
        **options: float | int | bool,
    ) -> Config:
        """Merge arguments, environment and defaults; arguments win.

        Args:
            url: Server base URL; else ``TETHER_URL``; else ``http://127.0.0.1:7117``.
            api_key: API key; else ``TETHER_API_KEY``; else none.
            session_id: Default session id; else ``TETHER_SESSION_ID``.
            spool_dir: Spool directory; else ``TETHER_SPOOL_DIR``; else the cache dir.
            spool_max_bytes: Spool cap in bytes; else ``TETHER_SPOOL_MAX_BYTES``.
            env: Environment to read (``os.environ`` if ``None``).
            **options: Any other :class:`Config` attribute (e.g. ``flush_interval``).

        Raises:
            ConfigError: A value is malformed (URL without http(s) scheme, non-integer
                or non-positive cap, ``poison_after`` < 1, unknown option).
        """
        env = os.environ if env is None else env
        resolved_url = (url or env.get("TETHER_URL") or DEFAULT_URL).rstrip("/")
        if not resolved_url.startswith(("http://", "https://")):
            raise ConfigError(f"TETHER_URL must start with http:// or https://: {resolved_url!r}")
        raw_cap: int | str | None = spool_max_bytes
        if raw_cap is None:
            raw_cap = env.get("TETHER_SPOOL_MAX_BYTES") or DEFAULT_SPOOL_MAX_BYTES
        try:
            cap = int(raw_cap)
        except ValueError:
            raise ConfigError(f"TETHER_SPOOL_MAX_BYTES must be an integer: {raw_cap!r}") from None
        if cap <= 0:
            raise ConfigError(f"spool_max_bytes must be positive: {cap}")
        directory = spool_dir or env.get("TETHER_SPOOL_DIR")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        if int(options.get("poison_after", 1)) < 1:
            raise ConfigError(f"poison_after must be at least 1: {options['poison_after']}")
        return cls(
            url=resolved_url,
            api_key=api_key or env.get("TETHER_API_KEY") or None,
            session_id=session_id or env.get("TETHER_SESSION_ID") or None,
            spool_dir=Path(directory) if directory else default_spool_dir(env),
            spool_max_bytes=cap,
            **options,  # type: ignore[arg-type]
        )

    @property
    def spool_path(self) -> Path:
        """The spool file: one per (URL, API key), so a restart finds its own backlog.

        The key is part of the name only as a hash: batches replayed from a spool go to
        the tenant they were logged for, never to another key's tenant.
        """
        digest = hashlib.sha256(f"{self.url}\0{self.api_key or ''}".encode()).hexdigest()
        return self.spool_dir / f"spool-{digest[:16]}.sqlite3"

    def headers(self) -> dict[str, str]:
        """HTTP headers for every request (``Authorization`` only when a key is set)."""
        headers = {"User-Agent": "tether-client/0.1", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

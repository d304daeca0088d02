"""Tether's settings: one typed object, read from ``TETHER_*`` environment variables.

Every field carries a one-line help text (its ``description``); ``docs/configuration.md``
lists them all and a test fails when one is missing there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".tether"


class Settings(BaseSettings):
    """Runtime configuration. Build one per process and pass it down; never import a global."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", extra="ignore")

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """A JSON list, or comma-separated text (``a.example,b.example``)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory; the default database lives here as tether.db.",
    )
    db: str | None = Field(
        default=None,
        description=(
            "The store: a SQLite file as a path or sqlite:///relative/path or "
            "sqlite:////absolute/path (SQLAlchemy's form), or postgresql://... (libpq URI, "
            "Unix-socket hosts too); defaults to SQLite at <home>/tether.db."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "Redis for the change bus between replicas (redis://, rediss:// or unix://); "
            "unset: the in-process bus of a single server."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address `tether serve` binds to.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1", "[::1]"],
        description=(
            "Host header values (without port) the server answers; any other Host gets 421, "
            "so a web page cannot reach a local Tether through DNS rebinding. Add your "
            "domain names when serving behind a proxy; `*` allows any host. JSON list or "
            "comma-separated."
        ),
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Browser origins allowed to call the API with CORS (e.g. "
            "`https://dash.example.com`); none by default. JSON list or comma-separated."
        ),
    )
    rate_limit_read: int = Field(
        default=1000,
        ge=0,
        description="Requests per second one read-scope key may make on average (0: no limit).",
    )
    rate_limit_write: int = Field(
        default=1000,
        ge=0,
        description="Requests per second one write-scope key may make on average (0: no limit).",
    )
    rate_limit_admin: int = Field(
        default=100,
        ge=0,
        description="Requests per second one admin-scope key may make on average (0: no limit).",
    )
    rate_limit_burst_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description=(
            "A key may spend this many seconds' worth of its rate at once (the token bucket's "
            "size); with Redis configured the bucket is shared by every replica."
        ),
    )
    require_auth: bool = Field(
        default=False,
        description=(
            "Require an API key on every request (but health checks), even on loopback and "
            "before any key exists. Without it, a server with no live key on a loopback "
            "address runs in local mode (one `default` tenant, every scope); binding any "
            "other address without a live key or this setting refuses to start."
        ),
    )
    port: int = Field(default=7117, ge=0, le=65535, description="TCP port `tether serve` binds to.")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description="SQLite synchronous mode: NORMAL survives a process crash, FULL power loss.",
    )
    reader_pool_size: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Read connections (and reader threads) per process, SQLite or PostgreSQL.",
    )
    prices_file: Path | None = Field(
        default=None,
        description=(
            "Model prices (USD per million tokens) over the shipped defaults: a TOML or JSON "
            'file of `models."NAME"` tables with input, cached_input, cache_write, output, '
            "reasoning (docs/cost.md). Read at start; a bad file stops the server."
        ),
    )
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest accepted request body, in bytes."
    )
    max_state_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest session state document (compact JSON, bytes) a patch may produce.",
    )
    live_max_queue: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description=(
            "Events a live stream (WebSocket channel, SSE) may hold unsent for a slow "
            "client; one more and it gets an overflow message with its cursor and is closed."
        ),
    )
    max_page_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description=(
            "A list page stops before its stored JSON exceeds this many bytes (at least one "
            "item is always returned); next_cursor continues."
        ),
    )
    gil_switch_interval_ms: float = Field(
        default=0.1,
        gt=0,
        description="Python GIL switch interval in ms while serving (see docs/benchmarks.md).",
    )
    metrics_enabled: bool = Field(
        default=True,
        description=(
            "Serve Prometheus metrics at /metrics (docs/metrics.md); off, nothing is counted "
            "and /metrics answers 404."
        ),
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token that opens /metrics when auth is on (API keys do not: metrics are "
            "deployment-wide); unset, /metrics answers 403 outside local mode. Never logged; "
            "must not start with tk_."
        ),
    )
    metrics_max_names: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description=(
            "Distinct tool, model and agent names the metrics label, each, per process; "
            "later names are counted under `other` (label cardinality stays bounded)."
        ),
    )
    log_level: str = Field(default="INFO", description="Log level for the tether loggers.")
    access_log: bool = Field(default=False, description="Log one line per HTTP request.")
    log_format: Literal["json", "text"] = Field(
        default="json",
        description=(
            "Log lines of `tether serve` on stderr: json (one object per line: timestamp, "
            "level, logger, message, correlation_id) or text. Secrets are redacted in both."
        ),
    )
    embedder: str = Field(
        default="onnx-minilm",
        description="Memory embedder: onnx-minilm (default) or openai:<model>@<base_url>.",
    )
    embedder_query_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description=(
            "onnxruntime threads for a search query embedded while nothing else embeds "
            "(onnx-minilm only; default 2 from 4 CPUs up, else 1). Batches and concurrent "
            "queries use one."
        ),
    )
    embedder_api_key: SecretStr | None = Field(
        default=None,
        description="API key sent to an OpenAI-compatible embeddings endpoint (never logged).",
    )
    embed_query_timeout_ms: int = Field(
        default=300,
        ge=1,
        le=60_000,
        description=(
            "Budget in ms for a search's query embedding; past it the search answers from "
            "BM25 (degraded)."
        ),
    )
    recall_half_life_days: float = Field(
        default=30.0, gt=0, description="Recency half-life for memory recall, in days."
    )
    recall_params: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Overrides of recall ranking constants, a JSON object such as "
            '{"alpha": 0.5, "neighbour_weight": 0} (for evaluation; see docs/memory.md).'
        ),
    )
    indexer_batch_size: int = Field(
        default=64, ge=1, description="Embedding jobs the indexer takes from the outbox at once."
    )
    indexer_max_attempts: int = Field(
        default=5, ge=1, description="Embedding attempts before a job goes to the dead letters."
    )
    indexer_retry_base_ms: int = Field(
        default=1000,
        ge=1,
        description="First embedding retry delay in ms; doubles per attempt (jittered).",
    )
    indexer_retry_max_ms: int = Field(
        default=60000, ge=1, description="Longest embedding retry delay in ms."
    )
    hnsw_threshold: int = Field(
        default=10000,
        ge=0,
        description=(
            "Vectors per namespace above which that namespace gets a usearch HNSW graph "
            "(searched instead of an exact scan)."
        ),
    )

    @field_validator("metrics_token")
    @classmethod
    def _not_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        """The metrics token is not an API key: one starting with ``tk_`` would be read as
        a key (and refused) before /metrics saw it."""
        if value is not None and value.get_secret_value().startswith("tk_"):
            raise ValueError("TETHER_METRICS_TOKEN must not start with tk_ (API keys do)")
        return value

    @property
    def store_url(self) -> str:
        """The store as a URL: ``postgresql://...`` as given, else ``sqlite:///<path>``."""
        if self.db is not None and self.db.startswith(("postgresql://", "postgres://")):
            return self.db
        return f"sqlite:///{self.db_path}"

    @property
    def db_path(self) -> Path:
        """The SQLite file: ``db`` (a path or ``sqlite:///path``) if set, else
        ``<home>/tether.db``.

        Raises:
            ValueError: ``db`` names a PostgreSQL database.
        """
        if self.db is None:
            return self.home / "tether.db"
        if self.db.startswith(("postgresql://", "postgres://")):
            raise ValueError("db is a PostgreSQL URL, not a SQLite file")
        return Path(self.db.removeprefix("sqlite:///").removeprefix("sqlite://"))

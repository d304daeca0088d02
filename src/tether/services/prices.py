"""Model prices and the cost of an event's tokens, computed at ingest (docs/cost.md).

A price is US dollars per **million** tokens, per model, for five kinds of token:
``input`` (uncached input), ``cached_input`` (cache reads), ``cache_write`` (tokens
written to a prompt cache), ``output`` and ``reasoning``. Token counts follow the
OpenTelemetry GenAI usage attributes: ``input_tokens`` *includes* the cached ones and
``output_tokens`` *includes* the reasoning ones, so

    cost_usd = ( (input_tokens - cache_read_tokens - cache_write_tokens) * input
               + cache_read_tokens * cached_input
               + cache_write_tokens * cache_write
               + (output_tokens - reasoning_tokens) * output
               + reasoning_tokens * reasoning ) / 10^6

A price left out falls back: ``cached_input`` and ``cache_write`` to ``input``,
``reasoning`` to ``output`` (every major provider bills reasoning tokens as output). An
event's own ``price`` wins over the table; a ``cost_usd`` the client sent wins over both.

Where a model's prices come from, highest first (whole rows, not field by field): the
tenant's overrides (``PUT /v1/admin/prices/{model}``, stored, read through a cache of
:data:`CACHE_TTL_S` so every replica sees a change within that time), the settings file
(``TETHER_PRICES_FILE``, TOML or JSON), then :data:`DEFAULT_PRICES`. A model name matches
a row exactly, else by the longest row name it starts with followed by ``-``, ``:``,
``@`` or ``.`` (``gpt-4o-2024-08-06`` → ``gpt-4o``), after dropping a provider prefix
(``openai/gpt-4o``); case-insensitive.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tether.domain.events import PRICE_FIELDS, EventIn, PriceIn
from tether.domain.records import ModelPrice
from tether.domain.time import now_ms
from tether.errors import InvalidInput, NotFound
from tether.services.context import RequestContext
from tether.services.keys import AuditLog
from tether.store.base import Store

__all__ = ["CACHE_TTL_S", "DEFAULT_PRICES", "PriceBook", "cost_usd", "load_price_file"]

#: Seconds a tenant's overrides are cached per process.
CACHE_TTL_S: Final = 5.0

#: Shipped list prices, USD per million tokens, from the providers' public price pages as
#: of 2025-08 (OpenAI: platform.openai.com/docs/pricing; Anthropic: docs.anthropic.com
#: "Pricing", 5-minute cache writes; Google: ai.google.dev/gemini-api/docs/pricing, prompts
#: up to 200k tokens). Prices change: override them with TETHER_PRICES_FILE or
#: /v1/admin/prices rather than trusting these for billing.
DEFAULT_PRICES: Final[Mapping[str, Mapping[str, float]]] = {
    "gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10.0},
    "gpt-5-mini": {"input": 0.25, "cached_input": 0.025, "output": 2.0},
    "gpt-5-nano": {"input": 0.05, "cached_input": 0.005, "output": 0.4},
    "gpt-4.1": {"input": 2.0, "cached_input": 0.5, "output": 8.0},
    "gpt-4.1-mini": {"input": 0.4, "cached_input": 0.1, "output": 1.6},
    "gpt-4.1-nano": {"input": 0.1, "cached_input": 0.025, "output": 0.4},
    "gpt-4o": {"input": 2.5, "cached_input": 1.25, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6},
    "o3": {"input": 2.0, "cached_input": 0.5, "output": 8.0},
    "o4-mini": {"input": 1.1, "cached_input": 0.275, "output": 4.4},
    "claude-opus-4": {"input": 15.0, "cached_input": 1.5, "cache_write": 18.75, "output": 75.0},
    "claude-sonnet-4": {"input": 3.0, "cached_input": 0.3, "cache_write": 3.75, "output": 15.0},
    "claude-3-7-sonnet": {
        "input": 3.0,
        "cached_input": 0.3,
        "cache_write": 3.75,
        "output": 15.0,
    },
    "claude-3-5-haiku": {"input": 0.8, "cached_input": 0.08, "cache_write": 1.0, "output": 4.0},
    "gemini-2.5-pro": {"input": 1.25, "cached_input": 0.31, "output": 10.0},
    "gemini-2.5-flash": {"input": 0.3, "cached_input": 0.075, "output": 2.5},
}

_SEPARATORS: Final = ("-", ":", "@", ".")


@dataclass(frozen=True, slots=True)
class _Prices:
    """Resolved prices of one model (fallbacks applied), USD per million tokens."""

    input: float
    cached_input: float
    cache_write: float
    output: float
    reasoning: float

    @classmethod
    def of(cls, values: Mapping[str, float | None] | Any) -> _Prices | None:
        """Apply the fallbacks; ``None`` when neither an input nor an output price is
        known (nothing to charge by)."""

        def get(name: str) -> float | None:
            value = values.get(name) if isinstance(values, Mapping) else getattr(values, name)
            return None if value is None else float(value)

        inp, out = get("input"), get("output")
        if inp is None and out is None:
            return None
        inp_ = inp if inp is not None else 0.0
        out_ = out if out is not None else 0.0
        cached, write, reasoning = get("cached_input"), get("cache_write"), get("reasoning")
        return cls(
            input=inp_,
            cached_input=inp_ if cached is None else cached,
            cache_write=inp_ if write is None else write,
            output=out_,
            reasoning=out_ if reasoning is None else reasoning,
        )


def cost_usd(event: EventIn, prices: _Prices) -> float:
    """The event's cost in US dollars (formula in the module docstring); at most 10^6
    (the stored bound of one event's cost)."""
    cache_read = event.cache_read_tokens or 0
    cache_write = event.cache_write_tokens or 0
    reasoning = event.reasoning_tokens or 0
    inp = event.input_tokens if event.input_tokens is not None else cache_read + cache_write
    out = event.output_tokens if event.output_tokens is not None else reasoning
    micro = (
        (inp - cache_read - cache_write) * prices.input
        + cache_read * prices.cached_input
        + cache_write * prices.cache_write
        + (out - reasoning) * prices.output
        + reasoning * prices.reasoning
    )
    return min(micro / 1_000_000, 1e6)


def load_price_file(path: Path) -> dict[str, dict[str, float]]:
    """Read a price file: TOML (``[models."gpt-4o"]`` tables) or JSON
    (``{"models": {"gpt-4o": {...}}}``) by its suffix; each model's fields as
    :class:`PriceIn` (USD per million tokens).

    Raises:
        ValueError: unreadable, not that shape, or a price that is not a non-negative
            number (the message names the file and the model).
    """
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (OSError, ValueError) as exc:
        raise ValueError(f"price file {path}: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f'price file {path}: expected a "models" table of model names')
    table: dict[str, dict[str, float]] = {}
    for name, fields in models.items():
        try:
            price = PriceIn.model_validate(fields)
        except ValueError as exc:
            raise ValueError(f"price file {path}: model {name!r}: {exc}") from None
        table[name.lower()] = price.model_dump(exclude_none=True)
    return table


def _candidates(model: str) -> Iterable[str]:
    """``model`` lower-cased, then without a provider prefix."""
    name = model.strip().lower()
    yield name
    if "/" in name:
        yield name.rsplit("/", 1)[1]


def _match(table: Mapping[str, Any], model: str) -> str | None:
    """The row of ``table`` that prices ``model``: exact, else the longest prefix followed
    by a separator."""
    for name in _candidates(model):
        if name in table:
            return name
        best: str | None = None
        for row in table:
            if (
                len(name) > len(row)
                and name.startswith(row)
                and name[len(row)] in _SEPARATORS
                and (best is None or len(row) > len(best))
            ):
                best = row
        if best is not None:
            return best
    return None


class PriceBook:
    """Prices by model for each tenant, and the cost of events at ingest.

    Args:
        store: The store (tenant overrides).
        audit: Where price changes are recorded.
        file_prices: The settings file's rows (:func:`load_price_file`), if any.
    """

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        file_prices: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self._base: dict[str, tuple[str, Mapping[str, float]]] = {
            name: ("default", row) for name, row in DEFAULT_PRICES.items()
        }
        for name, row in (file_prices or {}).items():
            self._base[name.lower()] = ("file", row)
        self._tenants: dict[str, tuple[float, dict[str, ModelPrice]]] = {}
        self._resolved: dict[tuple[str, str], _Prices | None] = {}

    async def _overrides(self, tenant_id: str) -> dict[str, ModelPrice]:
        cached = self._tenants.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL_S:
            return cached[1]
        rows = {p.model.lower(): p for p in await self.store.list_prices(tenant_id)}
        self._tenants[tenant_id] = (time.monotonic(), rows)
        for key in [k for k in self._resolved if k[0] == tenant_id]:
            del self._resolved[key]
        return rows

    async def prices_of(self, tenant_id: str, model: str) -> _Prices | None:
        """The resolved prices of ``model`` for the tenant, or ``None`` (unknown model)."""
        overrides = await self._overrides(tenant_id)
        key = (tenant_id, model)
        if key in self._resolved:
            return self._resolved[key]
        found: _Prices | None = None
        if (name := _match(overrides, model)) is not None:
            found = _Prices.of(overrides[name])
        elif (name := _match(self._base, model)) is not None:
            found = _Prices.of(self._base[name][1])
        if len(self._resolved) > 10_000:  # bounded: model names are client input
            self._resolved.clear()
        self._resolved[key] = found
        return found

    async def price_events(self, tenant_id: str, events: Sequence[EventIn]) -> None:
        """Set ``cost_usd`` on each event that has tokens and no cost, from its ``price``
        or its ``model``'s row (left ``None`` for an unknown model). In place: the
        events are this request's own parsed bodies."""
        for event in events:
            if event.cost_usd is not None:
                continue
            if (
                event.input_tokens is None
                and event.output_tokens is None
                and event.cache_read_tokens is None
                and event.cache_write_tokens is None
                and event.reasoning_tokens is None
            ):
                continue
            prices: _Prices | None = None
            if event.price is not None:
                prices = _Prices.of(event.price)
            elif event.model is not None:
                prices = await self.prices_of(tenant_id, event.model)
            if prices is not None:
                event.cost_usd = cost_usd(event, prices)

    # -- the admin table -----------------------------------------------------------------
    async def table(self, tenant_id: str) -> list[ModelPrice]:
        """Every model's effective row for the tenant, by name: its overrides, else the
        file's, else the default."""
        overrides = {p.model.lower(): p for p in await self.store.list_prices(tenant_id)}
        rows: dict[str, ModelPrice] = {}
        for name, (source, row) in self._base.items():
            rows[name] = ModelPrice(
                model=name,
                **{f: row.get(f) for f in PRICE_FIELDS},
                source="file" if source == "file" else "default",
                updated_at=None,
            )
        rows.update(overrides)
        return [rows[name] for name in sorted(rows)]

    async def put(self, ctx: RequestContext, model: str, price: PriceIn) -> ModelPrice:
        """Set the tenant's prices of ``model`` (audited ``price.set``).

        Raises:
            InvalidInput: a blank model name.
        """
        name = model.strip().lower()
        if not name:
            raise InvalidInput("a model name must not be blank")
        values = {f: getattr(price, f) for f in PRICE_FIELDS}
        row = await self.store.put_price(ctx.tenant_id, name, values, now=now_ms())
        self._tenants.pop(ctx.tenant_id, None)
        await self.audit.record(ctx, "price.set", target=name, detail=values)
        return row

    async def delete(self, ctx: RequestContext, model: str) -> None:
        """Drop the tenant's override of ``model`` (audited ``price.delete``).

        Raises:
            NotFound: the tenant has no override of that model.
        """
        name = model.strip().lower()
        if not await self.store.delete_price(ctx.tenant_id, name):
            raise NotFound(f"no price override for model {name!r}")
        self._tenants.pop(ctx.tenant_id, None)
        await self.audit.record(ctx, "price.delete", target=name)

"""``/v1/admin``: API keys, the audit log, the embedding outbox's dead letters, replay,
and memory reindexing. Every route needs an ``admin`` key of the tenant it acts on
(local mode: the ``default`` tenant); see :mod:`tether.server.access`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.common import MAX_SAFE_INT, Count, Strict, StrictBool
from tether.domain.events import PriceIn
from tether.domain.keys import AdminKeyIn, ScopedKeyIn, key_body_model
from tether.domain.records import ApiKey, ModelPrice, NewApiKey
from tether.server.bodies import JSONRoute, openapi_body, read_json, validate
from tether.server.deps import ContextDep, ServicesDep, context_of, services_of
from tether.server.envelope import ok
from tether.server.shapes import (
    AuditPage,
    JobPage,
    KeyList,
    PriceDeleted,
    PriceList,
    Reindexing,
    Replayed,
    returns,
    with_errors,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=JSONRoute)

#: Bodies parsed by hand (documented through ``openapi_body``).
BODY_MODELS: list[type[BaseModel]] = [AdminKeyIn, ScopedKeyIn]

#: A model name in a path: anything but blank or control characters, ``/`` included
#: (``openai/gpt-4o``).
ModelName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")
]


class ReplayIn(Strict):
    """``POST /v1/admin/outbox/replay``: requeue the given dead jobs, or all when omitted."""

    ids: Annotated[list[Count], Field(max_length=10_000)] | None = None


class ReindexIn(Strict):
    """``POST /v1/admin/memory/reindex``: ``all`` re-embeds every memory, else only those
    without a vector of the current embedding model."""

    all: StrictBool = False


@router.get("/outbox", operation_id="admin.outbox.list", responses=returns(JobPage))
async def list_outbox(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    state: Literal["dead", "pending"] = "dead",
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Embedding jobs in ``state`` (default the dead letters) with attempts and last error."""
    items, nxt = await svc.memory.outbox(ctx, state=state, after=after, limit=limit)
    return ok(request, JobPage(items, nxt))


@router.post("/outbox/replay", operation_id="admin.outbox.replay", responses=returns(Replayed))
async def replay(
    request: Request, svc: ServicesDep, ctx: ContextDep, body: ReplayIn | None = None
) -> Response:
    """Requeue dead jobs with a fresh attempt count: ``{replayed: n}``."""
    ids = body.ids if body is not None else None
    return ok(request, Replayed(await svc.memory.replay(ctx, ids)))


@router.post("/memory/reindex", operation_id="admin.memory.reindex", responses=returns(Reindexing))
async def reindex(
    request: Request, svc: ServicesDep, ctx: ContextDep, body: ReindexIn | None = None
) -> Response:
    """Queue re-embedding (after an embedding-model change): ``{queued, embedding_model}``.
    Progress shows as ``index_backlog`` in ``GET /v1/memory/stats``."""
    queued = await svc.memory.reindex(ctx, everything=body.all if body else False)
    return ok(request, Reindexing(queued, svc.memory.embedder.name))


@router.post(
    "/keys",
    operation_id="admin.keys.create",
    responses=returns(NewApiKey, status=201),
    openapi_extra=openapi_body(AdminKeyIn, ScopedKeyIn),
)
async def create_key(request: Request) -> Response:
    """Create an API key of the caller's tenant: ``{key: {...}, secret: "tk_..."}``. The
    secret is shown this once; the store keeps only its SHA-256."""
    raw = await read_json(request)
    body = validate(key_body_model(raw), raw)
    ctx = context_of(request)
    made = await services_of(request).keys.create(ctx, ctx.tenant_id, body)
    return ok(request, made, status=201)


@router.get("/keys", operation_id="admin.keys.list", responses=returns(KeyList))
async def list_keys(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """The tenant's keys, revoked ones too (never their secrets)."""
    return ok(request, KeyList(await svc.keys.list(ctx.tenant_id)))


@router.delete(
    "/keys/{key_id}",
    operation_id="admin.keys.revoke",
    responses=with_errors(returns(ApiKey), 404),
)
async def revoke_key(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    key_id: Annotated[str, Path(min_length=26, max_length=26, pattern=r"^[0-9A-Z]{26}$")],
) -> Response:
    """Revoke one of the tenant's keys; it stops working on every replica within a
    second. Revoking again is a no-op (the first revocation time stays)."""
    return ok(request, await svc.keys.revoke(ctx, ctx.tenant_id, key_id))


@router.get("/audit", operation_id="admin.audit.list", responses=returns(AuditPage))
async def audit(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The tenant's audit log, oldest first: key created and revoked, purges, reindexing,
    exports, outbox replays, bursts of failed authentication; ``next_after`` continues."""
    items, nxt = await svc.audit.page(ctx.tenant_id, after=after, limit=limit)
    return ok(request, AuditPage(items, nxt))


@router.get("/prices", operation_id="admin.prices.list", responses=returns(PriceList))
async def list_prices(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Every model's effective prices for the tenant (USD per million tokens), with the
    ``source`` of each row: ``tenant`` overrides, else the ``file``
    (``TETHER_PRICES_FILE``), else the shipped ``default`` (docs/cost.md)."""
    return ok(request, PriceList(await svc.prices.table(ctx.tenant_id)))


@router.put(
    "/prices/{model:path}",
    operation_id="admin.prices.put",
    responses=returns(ModelPrice),
)
async def put_price(
    request: Request, svc: ServicesDep, ctx: ContextDep, model: ModelName, body: PriceIn
) -> Response:
    """Set the tenant's prices of ``model`` (USD per million tokens), replacing its row:
    events ingested from then on (on every replica within 5 s) are priced by it. A price
    left out falls back (``cached_input`` and ``cache_write`` to ``input``, ``reasoning``
    to ``output``). Audited."""
    return ok(request, await svc.prices.put(ctx, model, body))


@router.delete(
    "/prices/{model:path}",
    operation_id="admin.prices.delete",
    responses=with_errors(returns(PriceDeleted), 404),
)
async def delete_price(
    request: Request, svc: ServicesDep, ctx: ContextDep, model: ModelName
) -> Response:
    """Drop the tenant's override of ``model`` (the file's or default row applies again);
    404 when there is none. Audited."""
    await svc.prices.delete(ctx, model)
    return ok(request, PriceDeleted(model=model.strip().lower(), deleted=True))

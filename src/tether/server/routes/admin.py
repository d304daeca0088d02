"""``/v1/admin``: the embedding outbox's dead letters, replay, and memory reindexing.

Local mode has no auth; once API keys exist these routes need the ``admin`` scope.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.common import MAX_SAFE_INT, Count, Strict, StrictBool
from tether.server.bodies import JSONRoute
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import ok
from tether.server.shapes import JobPage, Reindexing, Replayed, returns

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=JSONRoute)


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

"""``/v1/memories`` and ``/v1/memory``: remember, recall, browse, history, feed, export/import."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tether.domain.common import INT64_MAX
from tether.domain.time import to_ms
from tether.errors import InvalidInput
from tether.memory.schemas import MemoryBatchIn, MemoryImport, MemoryIn, MemoryPatch, SearchIn
from tether.server.bodies import JSONRoute, openapi_body, parse_cursor, read_json, validate
from tether.server.deps import ContextDep, ServicesDep, context_of, services_of
from tether.server.envelope import ok
from tether.server.errors import field_errors
from tether.store.sql_memory import MemoryFilter

router = APIRouter(tags=["memory"], route_class=JSONRoute)

#: Request models whose schemas the OpenAPI document must carry (see bodies.py).
BODY_MODELS: list[type[BaseModel]] = [MemoryIn, MemoryBatchIn, SearchIn]

_NDJSON = "application/x-ndjson"


# Query parameters shared by browse and export.
NamespaceQ = Annotated[list[str] | None, Query(description="Namespace(s); any of them.")]
KindQ = Annotated[list[str] | None, Query(description="Kind(s); any of them.")]
TagQ = Annotated[list[str] | None, Query(description="Tag(s); all of them.")]
SessionQ = Annotated[str | None, Query(description="source_session_id equals.")]
TextQ = Annotated[
    str | None, Query(max_length=1000, description="Case-insensitive text substring.")
]
SinceQ = Annotated[datetime | None, Query(description="occurred_at (else created_at) >=.")]
UntilQ = Annotated[datetime | None, Query(description="occurred_at (else created_at) <=.")]


async def browse_filter(
    namespace: NamespaceQ = None,
    kind: KindQ = None,
    tag: TagQ = None,
    session: SessionQ = None,
    q: TextQ = None,
    since: SinceQ = None,
    until: UntilQ = None,
    include_expired: bool = False,
    include_deleted: bool = False,
) -> MemoryFilter:
    """The filter query parameters shared by browse and export (a FastAPI dependency)."""
    return MemoryFilter(
        namespaces=namespace or [],
        kinds=kind or [],
        tags=tag or [],
        session=session,
        q=q,
        since_ms=to_ms(since),
        until_ms=to_ms(until),
        include_expired=include_expired,
        include_deleted=include_deleted,
    )


BrowseFilter = Annotated[MemoryFilter, Depends(browse_filter)]


@router.post(
    "/v1/memories",
    operation_id="memories.create",
    status_code=201,
    openapi_extra=openapi_body(MemoryIn),
)
async def create_memory(request: Request) -> Response:
    """Remember one memory: 201 with ``{memory, created, deduplicated, replayed}``.

    The same text in the same namespace returns the existing memory (200,
    ``deduplicated: true``); a retried ``idempotency_key`` (or ``Idempotency-Key`` header)
    returns the original outcome (200, ``replayed: true``).
    """
    raw = await read_json(request)
    header_key = request.headers.get("idempotency-key")
    if isinstance(raw, dict) and header_key is not None and raw.get("idempotency_key") is None:
        raw = {**raw, "idempotency_key": header_key}
    item = validate(MemoryIn, raw)
    res = await services_of(request).memory.remember_one(context_of(request), item)
    return ok(request, res, status=201 if res["created"] and not res["replayed"] else 200)


@router.post(
    "/v1/memories/batch", operation_id="memories.batch", openapi_extra=openapi_body(MemoryBatchIn)
)
async def create_batch(request: Request) -> Response:
    """Remember up to 1,000 items in one transaction; any bad item is a 422 and nothing is
    stored. Returns ``{items: [{id, created, deduplicated, replayed}], created, deduplicated}``
    aligned with the input."""
    batch = validate(MemoryBatchIn, await read_json(request))
    items = await services_of(request).memory.remember(context_of(request), batch.items)
    created = sum(1 for i in items if i["created"] and not i["replayed"])
    dupes = sum(1 for i in items if i["deduplicated"] and not i["replayed"])
    return ok(request, {"items": items, "created": created, "deduplicated": dupes})


@router.post(
    "/v1/memories/search", operation_id="memories.search", openapi_extra=openapi_body(SearchIn)
)
async def search(request: Request) -> Response:
    """Hybrid recall: ``{results: [{memory, score, scores}], degraded, mode, embedding_model}``.

    ``scores`` holds ``bm25``/``vector`` (normalised, 0 when not a candidate), ``fused``,
    ``recency``, ``importance``, ``final``, and the raw ``bm25_raw``/``cosine``.
    ``degraded: true`` means the embedder was down and the ranking is BM25 only.

    The ``Server-Timing`` header (W3C Server Timing) gives each stage's wall time in ms:
    ``embed`` and ``keyword`` (concurrent), then ``vector`` and ``rank``.
    """
    body = validate(SearchIn, await read_json(request))
    data = await services_of(request).memory.search(context_of(request), body)
    timings: dict[str, float] = data.pop("timings")
    response = ok(request, data)
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={v}" for k, v in timings.items())
    return response


@router.get("/v1/memories/export", operation_id="memories.export")
async def export(
    svc: ServicesDep,
    ctx: ContextDep,
    f: BrowseFilter,
    vectors: Annotated[bool, Query()] = False,
) -> Response:
    """Stream memories as NDJSON (one JSON object per line, ingest order); not enveloped.

    With ``vectors=true`` each memory embedded by the server's current model carries
    ``embedding: {model, dim, vector}`` (base64 of little-endian float32), which an import
    into a server with the same model stores instead of embedding the text again.
    """
    return StreamingResponse(svc.memory.export(ctx, f, vectors=vectors), media_type=_NDJSON)


@router.post(
    "/v1/memories/import",
    operation_id="memories.import",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_NDJSON: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def import_memories(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Import NDJSON lines in the export's shape, all or nothing; idempotent (an existing
    id, or the same text in the same namespace, is skipped). Returns
    ``{imported, skipped, vectors, ids}``: ``vectors`` counts lines whose ``embedding``
    (of the server's model) was stored instead of queueing the text for embedding."""
    items: list[MemoryImport] = []
    errors: list[dict[str, Any]] = []
    for number, line in enumerate((await request.body()).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(MemoryImport.model_validate(orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            errors.append({"loc": ["body", number], "msg": str(exc), "type": "json_invalid"})
        except ValidationError as exc:
            for e in field_errors(exc.errors()):
                errors.append({**e, "loc": ["body", number, *e["loc"]]})
    if errors:
        raise InvalidInput("import validation failed", details=errors[:100])
    if not items:
        raise InvalidInput("the body holds no NDJSON lines", details=[{"loc": ["body"]}])
    return ok(request, await svc.memory.import_(ctx, items))


@router.get("/v1/memories", operation_id="memories.list")
async def browse(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    f: BrowseFilter,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Memories newest first, filtered; ``next_cursor`` pages on."""
    items, nxt = await svc.memory.browse(ctx, f, before=parse_cursor(cursor), limit=limit)
    return ok(request, {"items": items, "next_cursor": nxt})


@router.get("/v1/memories/{memory_id}", operation_id="memories.get")
async def get_memory(
    memory_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    include_deleted: bool = False,
) -> Response:
    """One memory; a tombstone is 404 unless ``include_deleted=true``."""
    return ok(request, await svc.memory.get(ctx, memory_id, include_deleted=include_deleted))


@router.patch("/v1/memories/{memory_id}", operation_id="memories.update")
async def patch_memory(
    memory_id: str, body: MemoryPatch, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """A new version with the fields sent (``metadata`` merges, RFC 7386); a new text is
    re-embedded. 409 when the new text duplicates another memory in the namespace."""
    return ok(request, await svc.memory.patch(ctx, memory_id, body))


@router.delete("/v1/memories/{memory_id}", operation_id="memories.delete")
async def delete_memory(
    memory_id: str, request: Request, svc: ServicesDep, ctx: ContextDep, purge: bool = False
) -> Response:
    """Tombstone (hidden from get and search; history kept). ``purge=true`` hard-deletes the
    row and blanks its history's text (to be admin-only once API keys exist)."""
    return ok(request, await svc.memory.forget(ctx, memory_id, purge=purge))


@router.get("/v1/memories/{memory_id}/history", operation_id="memories.history")
async def memory_history(
    memory_id: str, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """Every change of the memory in lsn order: ``{items: [{lsn, op, version, at, memory}]}``."""
    return ok(request, {"items": await svc.memory.history(ctx, memory_id)})


@router.get("/v1/memory/changes", operation_id="memory.changes")
async def changes(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The change feed: adds, updates, deletes and purges with ``lsn > after`` in lsn order.
    ``next_after`` is the cursor for the next call."""
    items, nxt = await svc.memory.changes(ctx, after=after, limit=limit)
    return ok(request, {"items": items, "next_after": nxt})


@router.get("/v1/memory/stats", operation_id="memory.stats")
async def memory_stats(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """``{count, deleted, index_backlog, dead_letters, embedding_model, indexed}``."""
    return ok(request, await svc.memory.stats(ctx))

"""``/v1/memories`` and ``/v1/memory``: remember, recall, browse, history, feed, export/import."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tether.domain.common import MAX_SAFE_INT, ClientId, Tag, Timestamp
from tether.domain.filters import MemoryFilter
from tether.domain.memories import (
    Kind,
    MemoryBatchIn,
    MemoryImport,
    MemoryIn,
    MemoryPatch,
    Namespace,
    SearchIn,
)
from tether.domain.records import ImportResult, Memory, Purged, SearchResults
from tether.domain.time import to_ms
from tether.errors import InvalidInput
from tether.server.bodies import (
    CursorQ,
    JSONRoute,
    idempotency_header,
    openapi_body,
    parse_cursor,
    read_json,
    validate,
)
from tether.server.deps import ContextDep, ServicesDep, context_of, services_of
from tether.server.envelope import ok
from tether.server.errors import field_errors
from tether.server.jsonparse import NulInString, loads, nul_error
from tether.server.shapes import (
    ChangePage,
    MemoryBatchResult,
    MemoryCreated,
    MemoryPage,
    MemoryStatsOut,
    NamespacePage,
    enveloped,
    returns,
    with_errors,
)

router = APIRouter(tags=["memory"], route_class=JSONRoute)

#: Request models whose schemas the OpenAPI document must carry (see bodies.py).
BODY_MODELS: list[type[BaseModel]] = [MemoryIn, MemoryBatchIn, SearchIn, MemoryImport]

_NDJSON = "application/x-ndjson"


#: OpenAPI links (3.1 §4.8.20) from a created memory to the operations on it, so clients
#: and fuzzers know where ``memory_id`` comes from.
_MEMORY_LINKS = {
    name: {"operationId": op, "parameters": {"memory_id": "$response.body#/data/memory/id"}}
    for name, op in (
        ("GetMemory", "memories.get"),
        ("UpdateMemory", "memories.update"),
        ("DeleteMemory", "memories.delete"),
        ("MemoryHistory", "memories.history"),
    )
}


# Query parameters shared by browse and export.
NamespaceQ = Annotated[
    list[Namespace] | None, Query(max_length=100, description="Namespace(s); any of them.")
]
KindQ = Annotated[list[Kind] | None, Query(max_length=50, description="Kind(s); any of them.")]
TagQ = Annotated[list[Tag] | None, Query(max_length=50, description="Tag(s); all of them.")]
SessionQ = Annotated[ClientId | None, Query(description="source_session_id equals.")]
TextQ = Annotated[
    str | None, Query(max_length=1000, description="Case-insensitive text substring.")
]
SinceQ = Annotated[Timestamp | None, Query(description="occurred_at (else created_at) >=.")]
UntilQ = Annotated[Timestamp | None, Query(description="occurred_at (else created_at) <=.")]


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
    responses=with_errors(
        {
            201: {"model": enveloped(MemoryCreated), "links": _MEMORY_LINKS},
            200: {"model": enveloped(MemoryCreated)},
        },
        409,
    ),
    openapi_extra=openapi_body(MemoryIn, idempotency_header=True),
)
async def create_memory(request: Request) -> Response:
    """Remember one memory: 201 with ``{memory, created, deduplicated, replayed}``.

    The same text in the same namespace returns the existing memory (200,
    ``deduplicated: true``); a retried ``idempotency_key`` (or ``Idempotency-Key`` header)
    returns the original outcome (200, ``replayed: true``).
    """
    raw = await read_json(request)
    header_key = idempotency_header(request)
    if isinstance(raw, dict) and header_key is not None and raw.get("idempotency_key") is None:
        raw = {**raw, "idempotency_key": header_key}
    item = validate(MemoryIn, raw)
    res, memory = await services_of(request).memory.remember_one(context_of(request), item)
    created = MemoryCreated(res.id, res.created, res.deduplicated, res.replayed, memory)
    return ok(request, created, status=201 if res.created and not res.replayed else 200)


@router.post(
    "/v1/memories/batch",
    operation_id="memories.batch",
    responses=with_errors(returns(MemoryBatchResult), 409),
    openapi_extra=openapi_body(MemoryBatchIn),
)
async def create_batch(request: Request) -> Response:
    """Remember up to 1,000 items in one transaction; any bad item is a 422 and nothing is
    stored. Returns ``{items: [{id, created, deduplicated, replayed}], created, deduplicated}``
    aligned with the input."""
    batch = validate(MemoryBatchIn, await read_json(request))
    items = await services_of(request).memory.remember(context_of(request), batch.items)
    created = sum(1 for i in items if i.created and not i.replayed)
    dupes = sum(1 for i in items if i.deduplicated and not i.replayed)
    return ok(request, MemoryBatchResult(items, created, dupes))


@router.post(
    "/v1/memories/search",
    operation_id="memories.search",
    responses=returns(SearchResults),
    openapi_extra=openapi_body(SearchIn),
)
async def search(request: Request) -> Response:
    """Hybrid recall: ``{results: [{memory, score, scores}], degraded, mode, embedding_model}``.

    ``scores`` holds ``bm25``/``vector`` (normalised, 0 when not a candidate), ``fused``,
    the conversation context (``neighbour``, ``episode``, ``subject``, ``period``; hybrid
    mode only), ``relevance``, ``recency``, ``importance``, ``final``, and the raw
    ``bm25_raw``/``cosine`` (docs/memory.md gives the formula).
    ``degraded: true`` means the embedder was down and the ranking is BM25 only.

    The ``Server-Timing`` header (W3C Server Timing) gives each stage's wall time in ms:
    ``embed`` and ``keyword`` (concurrent), then ``vector`` and ``rank``.
    """
    body = validate(SearchIn, await read_json(request))
    data, timings = await services_of(request).memory.search(context_of(request), body)
    response = ok(request, data)
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={v}" for k, v in timings.items())
    return response


class NDJSONStream(StreamingResponse):
    """A streamed NDJSON body (one JSON value per line; not enveloped)."""

    media_type = _NDJSON


@router.get(
    "/v1/memories/export",
    operation_id="memories.export",
    response_class=NDJSONStream,
    responses={200: {"description": "NDJSON, one memory per line (not enveloped)."}},
)
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
    return NDJSONStream(await svc.memory.export(ctx, f, vectors=vectors))


@router.post(
    "/v1/memories/import",
    operation_id="memories.import",
    responses=returns(ImportResult),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "NDJSON: one MemoryImport object per line (the export's shape).",
            "content": {
                _NDJSON: {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/MemoryImport"},
                        "minItems": 1,
                    }
                }
            },
        },
        "x-tether-models": ["MemoryImport"],
    },
)
async def import_memories(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Import NDJSON lines in the export's shape, all or nothing; idempotent (an existing
    id, or the same text in the same namespace, is skipped). Returns
    ``{imported, skipped, vectors, ids}``: ``vectors`` counts lines whose ``embedding``
    (of the server's model) was stored instead of queueing the text for embedding."""
    items: list[MemoryImport] = []
    errors: list[dict[str, Any]] = []
    model, dim = svc.memory.embedder.name, svc.memory.embedder.dim
    for number, line in enumerate((await request.body()).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = MemoryImport.model_validate(loads(line))
            if item.embedding is not None and item.embedding.model == model:
                item.embedding.values(dim)
            items.append(item)
        except NulInString as exc:  # loc: ["body", <line number>, ...path in the line]
            errors.append({**nul_error(exc), "loc": ["body", number, *exc.loc[1:]]})
        except orjson.JSONDecodeError as exc:
            errors.append({"loc": ["body", number], "msg": str(exc), "type": "json_invalid"})
        except ValidationError as exc:
            for e in field_errors(exc.errors()):
                errors.append({**e, "loc": ["body", number, *e["loc"]]})
        except ValueError as exc:  # an embedding of this server's model that does not fit
            errors.append(
                {"loc": ["body", number, "embedding"], "msg": str(exc), "type": "value_error"}
            )
    if errors:
        raise InvalidInput("import validation failed", details=errors[:100])
    if not items:
        raise InvalidInput("the body holds no NDJSON lines", details=[{"loc": ["body"]}])
    return ok(request, await svc.memory.import_(ctx, items))


@router.get("/v1/memories", operation_id="memories.list", responses=returns(MemoryPage))
async def browse(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    f: BrowseFilter,
    cursor: CursorQ = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Memories newest first, filtered; ``next_cursor`` pages on."""
    items, nxt = await svc.memory.browse(ctx, f, before=parse_cursor(cursor), limit=limit)
    return ok(request, MemoryPage(items, nxt))


@router.get("/v1/memories/{memory_id}", operation_id="memories.get", responses=returns(Memory))
async def get_memory(
    memory_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    include_deleted: bool = False,
) -> Response:
    """One memory; a tombstone is 404 unless ``include_deleted=true``."""
    return ok(request, await svc.memory.get(ctx, memory_id, include_deleted=include_deleted))


@router.patch(
    "/v1/memories/{memory_id}",
    operation_id="memories.update",
    responses=with_errors(returns(Memory), 409),
)
async def patch_memory(
    memory_id: str, body: MemoryPatch, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """A new version with the fields sent (``metadata`` merges, RFC 7386); a new text is
    re-embedded. 409 when the new text duplicates another memory in the namespace."""
    return ok(request, await svc.memory.patch(ctx, memory_id, body))


@router.delete(
    "/v1/memories/{memory_id}",
    operation_id="memories.delete",
    responses=returns(Memory | Purged),
)
async def delete_memory(
    memory_id: str, request: Request, svc: ServicesDep, ctx: ContextDep, purge: bool = False
) -> Response:
    """Tombstone (hidden from get, history and search unless ``include_deleted``; history
    kept). ``purge=true`` (an ``admin`` key) hard-deletes the row and blanks its history's
    text."""
    return ok(request, await svc.memory.forget(ctx, memory_id, purge=purge))


@router.get(
    "/v1/memories/{memory_id}/history",
    operation_id="memories.history",
    responses=returns(ChangePage),
)
async def memory_history(
    memory_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_deleted: bool = False,
) -> Response:
    """The memory's changes with ``lsn > after`` in lsn order:
    ``{items: [{lsn, op, version, at, memory}], next_after}`` (``null`` on the last page).
    A forgotten memory's history needs ``include_deleted=true`` (as its ``GET``); a
    purged one has none."""
    items, nxt = await svc.memory.history(
        ctx, memory_id, after=after, limit=limit, include_deleted=include_deleted
    )
    return ok(request, ChangePage(items, nxt))


@router.get("/v1/memory/changes", operation_id="memory.changes", responses=returns(ChangePage))
async def changes(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The change feed: adds, updates, deletes and purges with ``lsn > after`` in lsn order.
    ``next_after`` is the cursor for the next call."""
    items, nxt = await svc.memory.changes(ctx, after=after, limit=limit)
    return ok(request, ChangePage(items, nxt))


@router.get(
    "/v1/memory/namespaces", operation_id="memory.namespaces", responses=returns(NamespacePage)
)
async def namespaces(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[Namespace | None, Query(description="Namespaces after this one.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The namespaces holding live memories (not forgotten, not expired) with their
    ``count``, in code point order; ``next_after`` continues. A key limited to namespace
    prefixes sees only those under them."""
    items, nxt = await svc.memory.namespaces(ctx, after=after, limit=limit)
    return ok(request, NamespacePage(items, nxt))


@router.get("/v1/memory/stats", operation_id="memory.stats", responses=returns(MemoryStatsOut))
async def memory_stats(request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """``{count, deleted, index_backlog, dead_letters, embedding_model, indexed}``."""
    return ok(request, await svc.memory.stats(ctx))

"""Events: per-session append and read, and the multi-session batch (the SDK's flush path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import Discriminator, Tag
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.events import EventBatchIn, EventIn, EventKind, EventsIn
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import ok

router = APIRouter(tags=["events"])


def _shape(value: Any) -> str:
    return "many" if isinstance(value, dict) and "events" in value else "one"


OneOrMany = Annotated[
    Annotated[EventIn, Tag("one")] | Annotated[EventsIn, Tag("many")], Discriminator(_shape)
]


@router.post("/v1/sessions/{session_id}/events", operation_id="events.append", status_code=201)
async def append_events(
    session_id: str,
    body: OneOrMany,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Append one event or ``{"events": [...]}`` (up to 1,000) in one transaction.

    Returns ``{seqs, ids?, duplicates}``; a retried ``idempotency_key`` returns its original
    seq. For a single event the ``Idempotency-Key`` header is used when the body has none.
    """
    if isinstance(body, EventsIn):
        events = body.events
    else:
        if body.idempotency_key is None and idempotency_key is not None:
            body = body.model_copy(update={"idempotency_key": idempotency_key})
        events = [body]
    res = await svc.events.append(ctx, session_id, events)
    status = 200 if res.duplicates == len(events) else 201
    return ok(request, {"seqs": res.seqs, "duplicates": res.duplicates}, status=status)


@router.get("/v1/sessions/{session_id}/events", operation_id="events.list")
async def list_events(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    kind: Annotated[list[EventKind] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Events with ``seq > after_seq`` in order; ``next_cursor`` is the next ``after_seq``."""
    kinds = [k.value for k in kind] if kind else []
    items, nxt = await svc.events.list(ctx, session_id, after_seq=after_seq, kinds=kinds, limit=limit)
    return ok(request, {"items": items, "next_cursor": nxt})


@router.post("/v1/events/batch", operation_id="events.batch")
async def ingest_batch(body: EventBatchIn, request: Request, svc: ServicesDep, ctx: ContextDep) -> Response:
    """Sessions (created on first sight), events and ends for many sessions, all or nothing.

    Returns ``{seqs, duplicates, created_sessions}``; ``seqs`` align with ``events``.
    """
    return ok(request, await svc.events.ingest_batch(ctx, body))

"""Events: per-session append and read, and the multi-session batch (the SDK's flush path)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.common import MAX_SAFE_INT
from tether.domain.events import EventBatchIn, EventIn, EventKind, EventsIn
from tether.domain.records import BatchResult
from tether.server import fastlane
from tether.server.bodies import (
    JSONRoute,
    idempotency_header,
    openapi_body,
    read_json,
    validate,
)
from tether.server.deps import ContextDep, ServicesDep, context_of, services_of
from tether.server.envelope import ok
from tether.server.shapes import Appended, EventPage, returns, with_errors

router = APIRouter(tags=["events"], route_class=JSONRoute)

#: Request models whose schemas the OpenAPI document must carry (see bodies.py).
BODY_MODELS: tuple[type[BaseModel], ...] = (EventIn, EventsIn, EventBatchIn)


@router.post(
    "/v1/sessions/{session_id}/events",
    operation_id="events.append",
    status_code=201,
    responses=returns(Appended, status=201, also=(200,)),
    openapi_extra=openapi_body(EventIn, EventsIn, idempotency_header=True),
)
async def append_events(request: Request, session_id: str) -> Response:
    """Append one event or ``{"events": [...]}`` (up to 1,000) in one transaction.

    Returns ``{seqs, duplicates}``; a retried ``idempotency_key`` returns its original seq
    (200 when every event was a replay). For a single event the ``Idempotency-Key`` header
    is used when the body has none.
    """
    raw = await read_json(request)
    header_key = idempotency_header(request)
    if isinstance(raw, dict) and "events" in raw:
        events = validate(EventsIn, raw).events
    else:
        one = validate(EventIn, raw)
        if one.idempotency_key is None and header_key is not None:
            one.idempotency_key = header_key
        events = [one]
    res = await services_of(request).events.append(context_of(request), session_id, events)
    status = 200 if res.duplicates == len(events) else 201
    return ok(request, Appended(res.seqs, res.duplicates), status=status)


@router.get(
    "/v1/sessions/{session_id}/events", operation_id="events.list", responses=returns(EventPage)
)
async def list_events(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SAFE_INT)] = 0,
    kind: Annotated[
        list[EventKind] | None, Query(max_length=len(EventKind), description="Any of these kinds.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Events with ``seq > after_seq`` in order; ``next_cursor`` is the next ``after_seq``."""
    kinds = [k.value for k in kind] if kind else []
    items, nxt = await svc.events.list(
        ctx, session_id, after_seq=after_seq, kinds=kinds, limit=limit
    )
    return ok(request, EventPage(items, nxt))


@router.post(
    "/v1/events/batch",
    operation_id="events.batch",
    responses=with_errors(returns(BatchResult), 404),
    openapi_extra=openapi_body(EventBatchIn),
)
async def ingest_batch(request: Request) -> Response:
    """Sessions (created on first sight), events and ends for many sessions, all or nothing.

    Returns ``{seqs, duplicates, created_sessions}``; ``seqs`` align with ``events``.
    """
    batch = validate(EventBatchIn, await read_json(request))
    return ok(request, await services_of(request).events.ingest_batch(context_of(request), batch))


#: The ingest routes the fast lane serves with the same handlers (see server/fastlane.py).
FAST_ROUTES = [
    fastlane.route("POST", "/v1/sessions/{session_id}/events", "events.append", append_events),
    fastlane.route("POST", "/v1/events/batch", "events.batch", ingest_batch),
]

"""``/v1/sessions``: sessions, state, goals, sub-agents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from pydantic import StringConstraints
from pydantic.json_schema import SkipJsonSchema
from starlette.requests import Request
from starlette.responses import Response

from tether.domain.common import (
    MAX_SAFE_INT,
    ClientId,
    ShortText,
    Tag,
    Timestamp,
    check_json_depth,
)
from tether.domain.filters import SessionFilter
from tether.domain.records import Goal, Session, SessionDetail, StateDoc
from tether.domain.sessions import (
    AgentSpawnIn,
    GoalIn,
    GoalPatch,
    SessionEnd,
    SessionIn,
    SessionPatch,
    SessionStatus,
)
from tether.domain.time import to_ms
from tether.errors import InvalidInput
from tether.server.bodies import CursorQ, JSONRoute, parse_cursor, parse_decimal, read_json
from tether.server.deps import ContextDep, ServicesDep
from tether.server.envelope import ok
from tether.server.shapes import Deleted, SessionPage, StateVersionPage, returns, with_errors

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], route_class=JSONRoute)

FilterText = Annotated[ShortText | None, Query(description="Equals (exact match).")]


# What _if_match accepts, also stated in the OpenAPI document.
_IF_MATCH = r'^ *(\*|(W/)?"?[0-9]{1,15}"?) *$'


def _if_match(value: str | None) -> int | None:
    """``If-Match: 3``, ``"3"`` or ``W/"3"`` -> 3 (RFC 9110 §13.1.1 entity tags); ``*`` or
    absent -> ``None`` (unconditional).

    Raises:
        InvalidInput: anything else, or a version beyond 64 bits (422).
    """
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    return parse_decimal(
        tag,
        ["header", "If-Match"],
        "If-Match must carry the state version, e.g. If-Match: 3",
    )


@router.post(
    "",
    operation_id="sessions.create",
    status_code=201,
    responses=with_errors(returns(Session, status=201, also=(200,)), 404, 409),
)
async def create_session(
    body: SessionIn, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """Create a session; the same id and body again returns it (200), another body 409."""
    res = await svc.sessions.create(ctx, body)
    return ok(request, res.record, status=201 if res.created else 200)


@router.get("", operation_id="sessions.list", responses=returns(SessionPage))
async def list_sessions(
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    status: SessionStatus | None = None,
    agent: FilterText = None,
    user_id: FilterText = None,
    tag: Annotated[Tag | None, Query(description="Sessions carrying this tag.")] = None,
    parent_id: Annotated[ClientId | None, Query(description="Children of this session.")] = None,
    since: Annotated[Timestamp | None, Query(description="created_at >= (RFC 3339).")] = None,
    until: Annotated[Timestamp | None, Query(description="created_at < (RFC 3339).")] = None,
    q: Annotated[
        ShortText | None,
        Query(
            description="Words (up to 10) that must each occur, case-insensitively, in the "
            "session's id, title, agent or user id."
        ),
    ] = None,
    cursor: CursorQ = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Sessions newest first, filtered; ``next_cursor`` pages on."""
    f = SessionFilter(
        status=status.value if status else None,
        agent=agent,
        user_id=user_id,
        tag=tag,
        parent_id=parent_id,
        since_ms=to_ms(since),
        until_ms=to_ms(until),
        words=(q or "").split()[:10],
    )
    items, nxt = await svc.sessions.list(ctx, f, cursor=parse_cursor(cursor), limit=limit)
    return ok(request, SessionPage(items, nxt))


@router.get("/{session_id}", operation_id="sessions.get", responses=returns(SessionDetail))
async def get_session(
    session_id: str, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """One session with counters, goals and children."""
    return ok(request, await svc.sessions.get(ctx, session_id))


@router.patch("/{session_id}", operation_id="sessions.update", responses=returns(Session))
async def patch_session(
    session_id: str, body: SessionPatch, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """Change the fields sent; ``metadata`` merges (RFC 7386)."""
    return ok(request, await svc.sessions.patch(ctx, session_id, body))


@router.post(
    "/{session_id}/end",
    operation_id="sessions.end",
    responses=with_errors(returns(Session), 409),
)
async def end_session(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    body: SessionEnd | None = None,
) -> Response:
    """End with ``status`` (default completed) and an optional ``summary``."""
    return ok(request, await svc.sessions.end(ctx, session_id, body or SessionEnd()))


@router.delete("/{session_id}", operation_id="sessions.delete", responses=returns(Deleted))
async def delete_session(
    session_id: str, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """Delete a session, its events and goals."""
    return ok(request, Deleted(await svc.sessions.delete(ctx, session_id)))


# -- state --------------------------------------------------------------------------------
def _state_response(request: Request, data: StateDoc) -> Response:
    return ok(request, data, headers={"ETag": f'"{data.version}"'})


@router.get(
    "/{session_id}/state/versions",
    operation_id="sessions.state.versions",
    responses=returns(StateVersionPage),
)
async def state_versions(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INT, description="Versions after this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """The state document's history, oldest first: each version with the JSON Merge
    Patch (RFC 7386) that made it and the document after it; ``next_after`` continues."""
    items, nxt = await svc.sessions.state_versions(ctx, session_id, after=after, limit=limit)
    return ok(request, StateVersionPage(items, nxt))


@router.get("/{session_id}/state", operation_id="sessions.state.get", responses=returns(StateDoc))
async def get_state(
    session_id: str, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """``{state, version}``; the ``ETag`` header carries the version."""
    return _state_response(request, await svc.sessions.get_state(ctx, session_id))


@router.patch(
    "/{session_id}/state",
    operation_id="sessions.state.patch",
    responses=with_errors(returns(StateDoc), 412),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def patch_state(
    session_id: str,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
    if_match: Annotated[
        Annotated[str, StringConstraints(pattern=_IF_MATCH)] | SkipJsonSchema[None],
        Header(description='The state version: 3, "3" or W/"3" (RFC 9110 entity tag); * is any.'),
    ] = None,
) -> Response:
    """Apply a JSON Merge Patch (RFC 7386). ``If-Match: <version>`` makes it conditional:
    a stale version gets 412."""
    patch = await read_json(request)
    try:
        check_json_depth(patch)
    except ValueError as exc:
        raise InvalidInput(str(exc), details=[{"loc": ["body"], "type": "too_deep"}]) from None
    data = await svc.sessions.patch_state(ctx, session_id, patch, if_match=_if_match(if_match))
    return _state_response(request, data)


# -- goals --------------------------------------------------------------------------------
@router.post(
    "/{session_id}/goals",
    operation_id="sessions.goals.create",
    status_code=201,
    responses=with_errors(returns(Goal, status=201, also=(200,)), 409),
)
async def add_goal(
    session_id: str, body: GoalIn, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """Add a goal (a client-chosen ``id`` makes retries safe)."""
    res = await svc.sessions.add_goal(ctx, session_id, body)
    return ok(request, res.record, status=201 if res.created else 200)


@router.patch(
    "/{session_id}/goals/{goal_id}", operation_id="sessions.goals.update", responses=returns(Goal)
)
async def patch_goal(
    session_id: str,
    goal_id: str,
    body: GoalPatch,
    request: Request,
    svc: ServicesDep,
    ctx: ContextDep,
) -> Response:
    """Change a goal's description, priority, status, progress or metadata."""
    return ok(request, await svc.sessions.patch_goal(ctx, session_id, goal_id, body))


# -- sub-agents ---------------------------------------------------------------------------
@router.post(
    "/{session_id}/agents",
    operation_id="sessions.agents.spawn",
    status_code=201,
    responses=with_errors(returns(Session, status=201, also=(200,)), 409),
)
async def spawn_agent(
    session_id: str, body: AgentSpawnIn, request: Request, svc: ServicesDep, ctx: ContextDep
) -> Response:
    """Create a child session; the parent gets an ``agent`` event. Ending the child logs
    its completion in the parent."""
    res = await svc.sessions.spawn_agent(ctx, session_id, body)
    return ok(request, res.record, status=201 if res.created else 200)

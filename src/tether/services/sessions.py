"""Sessions, state, goals and sub-agents."""

from __future__ import annotations

from typing import Any

from tether.domain.sessions import (
    AgentSpawnIn,
    GoalIn,
    GoalPatch,
    SessionEnd,
    SessionIn,
    SessionPatch,
)
from tether.domain.time import now_ms
from tether.services.context import RequestContext
from tether.store import sql_sessions as q
from tether.store.sqlite import SQLiteStore


class SessionService:
    """Session use-cases over a :class:`SQLiteStore`. Every call is scoped to ``ctx.tenant_id``."""

    def __init__(self, store: SQLiteStore, *, max_state_bytes: int, max_page_bytes: int) -> None:
        self.store = store
        self.max_state_bytes = max_state_bytes
        self.max_page_bytes = max_page_bytes

    async def create(self, ctx: RequestContext, body: SessionIn) -> q.Created:
        """Create (201) or return the identical existing session (200).

        Raises:
            Conflict: the id exists with a different body.
            NotFound: ``parent_id`` names no session.
        """
        fields = body.model_dump(mode="json", exclude_unset=True)
        return await self.store.write(
            lambda c: q.create_session(
                c, ctx.tenant_id, fields, now=now_ms(), correlation_id=ctx.correlation_id
            )
        )

    async def spawn_agent(
        self, ctx: RequestContext, parent_id: str, body: AgentSpawnIn
    ) -> q.Created:
        """Create a child session of ``parent_id``; the parent gets an ``agent.spawned`` event."""
        fields = body.model_dump(mode="json", exclude_unset=True)
        fields["parent_id"] = parent_id
        return await self.store.write(
            lambda c: q.create_session(
                c, ctx.tenant_id, fields, now=now_ms(), correlation_id=ctx.correlation_id
            )
        )

    async def get(self, ctx: RequestContext, session_id: str) -> dict[str, Any]:
        return await self.store.read(lambda c: q.session_detail(c, ctx.tenant_id, session_id))

    async def list(
        self, ctx: RequestContext, f: q.SessionFilter, *, cursor: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        return await self.store.read(
            lambda c: q.list_sessions(
                c, ctx.tenant_id, f, cursor=cursor, limit=limit, max_bytes=self.max_page_bytes
            )
        )

    async def patch(
        self, ctx: RequestContext, session_id: str, body: SessionPatch
    ) -> dict[str, Any]:
        return await self.store.write(
            lambda c: q.patch_session(c, ctx.tenant_id, session_id, body, now=now_ms())
        )

    async def end(self, ctx: RequestContext, session_id: str, body: SessionEnd) -> dict[str, Any]:
        return await self.store.write(
            lambda c: q.end_session(
                c,
                ctx.tenant_id,
                session_id,
                status=body.status.value,
                summary=body.summary,
                now=now_ms(),
                correlation_id=ctx.correlation_id,
            )
        )

    async def delete(self, ctx: RequestContext, session_id: str) -> dict[str, int]:
        return await self.store.write(lambda c: q.delete_session(c, ctx.tenant_id, session_id))

    async def get_state(self, ctx: RequestContext, session_id: str) -> dict[str, Any]:
        return await self.store.read(lambda c: q.get_state(c, ctx.tenant_id, session_id))

    async def patch_state(
        self, ctx: RequestContext, session_id: str, patch: Any, *, if_match: int | None
    ) -> dict[str, Any]:
        return await self.store.write(
            lambda c: q.patch_state(
                c,
                ctx.tenant_id,
                session_id,
                patch,
                if_match=if_match,
                now=now_ms(),
                max_bytes=self.max_state_bytes,
            )
        )

    async def add_goal(self, ctx: RequestContext, session_id: str, goal: GoalIn) -> q.Created:
        return await self.store.write(
            lambda c: q.create_goal(c, ctx.tenant_id, session_id, goal, now=now_ms())
        )

    async def patch_goal(
        self, ctx: RequestContext, session_id: str, goal_id: str, patch: GoalPatch
    ) -> dict[str, Any]:
        return await self.store.write(
            lambda c: q.patch_goal(c, ctx.tenant_id, session_id, goal_id, patch, now=now_ms())
        )

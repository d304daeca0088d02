"""Sessions, state, goals and sub-agents."""

from __future__ import annotations

import builtins
from typing import Any

from tether.domain.filters import SessionFilter
from tether.domain.records import Created, Goal, Session, SessionDetail, StateDoc, StateVersion
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
from tether.store.base import Store


class SessionService:
    """Session use-cases over a :class:`Store`; every call is scoped to ``ctx.tenant_id``.

    Args:
        store: The store.
        max_state_bytes: Largest state document a patch may produce (compact JSON, bytes).
        max_page_bytes: Stored JSON per page of a list, at most (bytes).
    """

    def __init__(self, store: Store, *, max_state_bytes: int, max_page_bytes: int) -> None:
        self.store = store
        self.max_state_bytes = max_state_bytes
        self.max_page_bytes = max_page_bytes

    async def create(self, ctx: RequestContext, body: SessionIn) -> Created[Session]:
        """Create (201) or return the identical existing session (200).

        Raises:
            Conflict: the id exists with a different body.
            NotFound: ``parent_id`` names no session.
        """
        fields = body.model_dump(mode="json", exclude_unset=True)
        return await self.store.create_session(
            ctx.tenant_id, fields, now=now_ms(), correlation_id=ctx.correlation_id
        )

    async def spawn_agent(
        self, ctx: RequestContext, parent_id: str, body: AgentSpawnIn
    ) -> Created[Session]:
        """Create a child session of ``parent_id``; the parent gets an ``agent.spawned`` event."""
        fields = body.model_dump(mode="json", exclude_unset=True)
        fields["parent_id"] = parent_id
        return await self.store.create_session(
            ctx.tenant_id, fields, now=now_ms(), correlation_id=ctx.correlation_id
        )

    async def get(self, ctx: RequestContext, session_id: str) -> SessionDetail:
        return await self.store.get_session(ctx.tenant_id, session_id)

    async def list(
        self, ctx: RequestContext, f: SessionFilter, *, cursor: int | None, limit: int
    ) -> tuple[list[Session], str | None]:
        return await self.store.list_sessions(
            ctx.tenant_id, f, cursor=cursor, limit=limit, max_bytes=self.max_page_bytes
        )

    async def patch(self, ctx: RequestContext, session_id: str, body: SessionPatch) -> Session:
        return await self.store.update_session(ctx.tenant_id, session_id, body, now=now_ms())

    async def end(self, ctx: RequestContext, session_id: str, body: SessionEnd) -> Session:
        return await self.store.end_session(
            ctx.tenant_id,
            session_id,
            status=body.status.value,
            summary=body.summary,
            now=now_ms(),
            correlation_id=ctx.correlation_id,
        )

    async def delete(self, ctx: RequestContext, session_id: str) -> int:
        """Delete a session, its events and goals; returns how many events went."""
        return await self.store.delete_session(ctx.tenant_id, session_id, now=now_ms())

    async def state_versions(
        self, ctx: RequestContext, session_id: str, *, after: int, limit: int
    ) -> tuple[builtins.list[StateVersion], int | None]:
        """A page of the state's versions after ``after``. Raises NotFound."""
        return await self.store.state_versions(ctx.tenant_id, session_id, after=after, limit=limit)

    async def get_state(self, ctx: RequestContext, session_id: str) -> StateDoc:
        return await self.store.get_state(ctx.tenant_id, session_id)

    async def patch_state(
        self, ctx: RequestContext, session_id: str, patch: Any, *, if_match: int | None
    ) -> StateDoc:
        return await self.store.patch_state(
            ctx.tenant_id,
            session_id,
            patch,
            if_match=if_match,
            now=now_ms(),
            max_bytes=self.max_state_bytes,
        )

    async def add_goal(self, ctx: RequestContext, session_id: str, goal: GoalIn) -> Created[Goal]:
        return await self.store.add_goal(ctx.tenant_id, session_id, goal, now=now_ms())

    async def patch_goal(
        self, ctx: RequestContext, session_id: str, goal_id: str, patch: GoalPatch
    ) -> Goal:
        return await self.store.update_goal(ctx.tenant_id, session_id, goal_id, patch, now=now_ms())

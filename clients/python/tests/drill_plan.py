"""The scripted agent's plan, shared by both drills: 5,000 events over 20 sessions.

Five top-level sessions each spawn three sub-agents (20 sessions). Events are spread
over the sessions in a seeded random interleaving; each carries its per-session
counter in ``attributes.n`` and a deterministic idempotency key, so a restarted agent
can re-log what it is not sure was kept and the server stores it once.
"""

from __future__ import annotations

import random

PARENTS = 5
CHILDREN_PER_PARENT = 3
TOTAL_EVENTS = 5_000


def session_ids(prefix: str) -> list[tuple[str, str | None]]:
    """``(session_id, parent_id)`` for the 20 sessions, parents first."""
    out: list[tuple[str, str | None]] = []
    for p in range(PARENTS):
        parent = f"{prefix}-p{p}"
        out.append((parent, None))
        out.extend((f"{parent}-c{c}", parent) for c in range(CHILDREN_PER_PARENT))
    return out


def plan(prefix: str, seed: int = 7) -> list[tuple[str, int]]:
    """The 5,000 ``(session_id, n)`` to log, in order; ``n`` counts per session from 0."""
    ids = [sid for sid, _ in session_ids(prefix)]
    rng = random.Random(seed)
    counters = dict.fromkeys(ids, 0)
    out = []
    for _ in range(TOTAL_EVENTS):
        sid = rng.choice(ids)
        out.append((sid, counters[sid]))
        counters[sid] += 1
    return out


def key(session_id: str, n: int) -> str:
    return f"drill:{session_id}:{n}"

"""A scripted agent for the agent-crash drill; run as a subprocess and SIGKILLed.

Usage: ``python drill_agent.py URL SPOOL_DIR PROGRESS_FILE``

It logs the plan of :mod:`drill_plan` from the position in PROGRESS_FILE. An event
counts as logged only once ``client.checkpoint()`` returned ``True`` after it (it is in
the spool file then, so a crash cannot lose it); only then does the agent move its
recorded position forward. After a restart it re-logs from that position with the
same idempotency keys: what the dead process had already spooled is replayed from the
spool and the re-logged copies are deduplicated by the server.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from drill_plan import key, plan, session_ids

from tether_client import Client

CHECKPOINT_EVERY = 250  # events between checkpoints: ~0.6 s, several spool writes
PACE_S = 0.002  # seconds between events: ~10 s for the whole plan


def save(progress: Path, state: dict[str, object]) -> None:
    tmp = progress.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, progress)


def main() -> int:
    url, spool_dir, progress_path = sys.argv[1:4]
    progress = Path(progress_path)
    state = json.loads(progress.read_text()) if progress.exists() else {"done": 0, "starts": 0}
    state["starts"] = int(state["starts"]) + 1
    save(progress, state)
    client = Client(url, spool_dir=spool_dir, close_timeout=30.0)
    sessions = {}
    for sid, parent in session_ids("d2"):
        if parent is None:
            sessions[sid] = client.session(id=sid, agent="drill-lead")
        else:
            sessions[sid] = sessions[parent].spawn_agent(id=sid, agent="drill-sub")
    steps = plan("d2")
    done = int(state["done"])
    for index in range(done, len(steps)):
        sid, n = steps[index]
        sessions[sid].log_action("step", attributes={"n": n}, idempotency_key=key(sid, n))
        if (index + 1) % CHECKPOINT_EVERY == 0 and client.checkpoint(10.0):
            state["done"] = index + 1
            save(progress, state)
        time.sleep(PACE_S)
    for sid, parent in session_ids("d2"):
        if parent is not None:
            sessions[parent].complete_agent(sessions[sid])
    for sid, parent in session_ids("d2"):
        if parent is None:
            sessions[sid].end("completed")
    delivered = client.flush(60.0)
    state["done"] = len(steps)
    state["delivered"] = delivered
    stats = client.stats()
    state["stats"] = {"sent": stats.sent_events, "duplicates": stats.duplicates}
    save(progress, state)
    client.close()
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())

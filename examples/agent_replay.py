"""An agent on tether-client that replays one LoCoMo conversation session as a live session.

For each turn it recalls related memories from earlier sessions of the same conversation
(a ``retrieval`` span showing what it found), logs the turn as a ``message``, runs a small
``tool`` (keyword extraction, as a stand-in for a real tool call), and updates the session's
state and goal. Watch it with ``GET /v1/sessions/<id>/events`` while it runs.

Run against a server that has the dev data (``make run`` imports it)::

    .venv/bin/python examples/agent_replay.py                 # conv-26, session 5
    .venv/bin/python examples/agent_replay.py --conversation conv-30 --session 3 --delay 0.5

Data: LoCoMo (Maharana et al., ACL 2024), CC BY-NC 4.0; see examples/data/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from tether_client import Client

DATA = Path(__file__).parent / "data" / "locomo-dev.json"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_COMMON = frozenset(
    "that this with have what from your about just been really they their there would "
    "could when were will like know some much very thanks thank good great love also "
    "been doing going make feel things something".split()
)


def extract_keywords(text: str, limit: int = 5) -> list[str]:
    """The tool: the longest distinct uncommon words of ``text`` (a stand-in for real work)."""
    words = {w.lower() for w in _WORD.findall(text)} - _COMMON
    return sorted(words, key=lambda w: (-len(w), w))[:limit]


def load_session(conversation: str, number: int) -> tuple[list[dict[str, str]], datetime]:
    """The turns of ``session_<number>`` of ``conversation`` and the session's date (UTC)."""
    sample = next(s for s in json.loads(DATA.read_text()) if s["sample_id"] == conversation)
    conv = sample["conversation"]
    when = datetime.strptime(conv[f"session_{number}_date_time"], "%I:%M %p on %d %B, %Y")
    return conv[f"session_{number}"], when.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversation", default="conv-26")
    parser.add_argument("--session", type=int, default=5, help="LoCoMo session number")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between turns")
    parser.add_argument("--url", default=None, help="server URL (default: $TETHER_URL)")
    args = parser.parse_args()

    turns, when = load_session(args.conversation, args.session)
    namespace = f"locomo/{args.conversation}"
    with Client(args.url) as client:
        with client.session(
            agent="replay-agent",
            title=f"replay of {args.conversation} session {args.session}",
            tags=["replay", args.conversation],
            metadata={"conversation": args.conversation, "session": args.session},
        ) as session:
            client.flush()  # the session must exist on the server before direct calls
            goal = session.add_goal(
                f"replay {len(turns)} turns of {args.conversation} session {args.session}",
                status="in_progress",
            )
            recalled_total = 0
            for i, turn in enumerate(turns, start=1):
                text = f"{turn['speaker']}: {turn['text']}"
                with session.span("retrieval", "recall", input={"query": turn["text"]}) as span:
                    # Only memories from before this session: the agent cannot know the future.
                    hits = client.recall(
                        namespace, turn["text"], limit=3, filters={"until": when.isoformat()}
                    )
                    span.set_output(
                        [
                            {"id": h.memory["id"], "text": h.memory["text"], "score": h.score}
                            for h in hits
                        ]
                    )
                recalled_total += len(hits)
                session.log_message(text, role="user", name=turn["speaker"])
                with session.span("tool", "extract_keywords", input={"text": turn["text"]}) as t:
                    keywords = extract_keywords(turn["text"])
                    t.set_output(keywords)
                session.update_state(
                    {
                        "turn": i,
                        "speaker": turn["speaker"],
                        "keywords": keywords,
                        "recalled": [h.memory["id"] for h in hits],
                    }
                )
                session.update_goal(goal["id"], progress=round(i / len(turns), 3))
                if args.delay:
                    time.sleep(args.delay)
            session.update_goal(goal["id"], status="done", progress=1.0)
        client.flush()
    base = args.url or client.config.url
    print(f"replayed {len(turns)} turns, {recalled_total} memories recalled")
    print(f"session: {base}/v1/sessions/{session.id}")
    print(f"events:  {base}/v1/sessions/{session.id}/events")


if __name__ == "__main__":
    main()

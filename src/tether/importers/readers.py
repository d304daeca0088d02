"""Import formats: ``locomo`` (the LoCoMo benchmark layout) and ``tether`` (documented in
``docs/import.md``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.errors import InvalidInput
from tether.importers.model import Conversation, Turn

_SESSION_KEY = re.compile(r"^session_(\d+)$")
# LoCoMo session times read like "1:56 pm on 8 May, 2023" (no zone: taken as UTC).
_LOCOMO_TIME = "%I:%M %p on %d %B, %Y"


def _locomo_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), _LOCOMO_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def read_locomo(path: Path) -> Iterator[Conversation]:
    """LoCoMo (Maharana et al., ACL 2024): a JSON list of samples, each with
    ``conversation.session_<N>`` turn lists and ``session_<N>_date_time`` strings.

    One :class:`Conversation` per session, namespace ``locomo/<sample_id>``, session id
    ``locomo-<sample_id>-s<N>``; each turn keeps ``dia_id``, ``session`` and a
    ``blip_caption`` (a shared photo's caption) when present, in its metadata.

    Raises:
        InvalidInput: the file is not in this layout.
    """
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, list):
        raise InvalidInput(f"{path}: a LoCoMo file is a JSON list of samples")
    for sample in data:
        try:
            sample_id = str(sample["sample_id"])
            conv: dict[str, Any] = sample["conversation"]
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}: sample without {exc}") from None
        speakers = [conv.get("speaker_a"), conv.get("speaker_b")]
        numbers = sorted(int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)))
        for n in numbers:
            at = _locomo_time(conv.get(f"session_{n}_date_time"))
            turns = [
                Turn(
                    id=str(t["dia_id"]),
                    speaker=str(t["speaker"]),
                    text=str(t["text"]),
                    at=at,
                    metadata={
                        "dia_id": t["dia_id"],
                        "session": n,
                        **({"blip_caption": t["blip_caption"]} if t.get("blip_caption") else {}),
                    },
                )
                for t in conv[f"session_{n}"]
            ]
            yield Conversation(
                session_id=f"locomo-{sample_id}-s{n}",
                namespace=f"locomo/{sample_id}",
                turns=turns,
                agent="locomo-import",
                title=f"{sample_id} session {n}: {' & '.join(s for s in speakers if s)}",
                started_at=at,
                tags=["locomo", sample_id],
                metadata={
                    "source": "locomo",
                    "conversation": sample_id,
                    "session": n,
                    "speakers": speakers,
                    "date_time": conv.get(f"session_{n}_date_time"),
                },
            )


class _TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    speaker: str
    text: str = Field(min_length=1)
    at: datetime | None = None
    role: str = "user"
    metadata: dict[str, Any] = Field(default_factory=dict)


class _SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+\-=]+$")
    namespace: str | None = None
    agent: str | None = None
    user_id: str | None = None
    title: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    turns: list[_TurnIn]


def read_tether(path: Path) -> Iterator[Conversation]:
    """Tether's own format: a JSON list of sessions, ``{"sessions": [...]}``, or NDJSON with
    one session per line (``docs/import.md``). Turns without ``id`` are numbered ``t<i>``.

    Raises:
        InvalidInput: a session or turn does not fit the format (with its position).
    """
    raw = path.read_bytes()
    items: list[Any]
    try:
        parsed = orjson.loads(raw)
        # {"sessions": [...]}, a list, or one session (a one-line NDJSON file)
        items = parsed.get("sessions", [parsed]) if isinstance(parsed, dict) else parsed
    except orjson.JSONDecodeError:
        try:
            items = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: neither JSON nor NDJSON ({exc})") from None
    if not isinstance(items, list):
        raise InvalidInput(f"{path}: expected a list of sessions")
    for i, item in enumerate(items):
        try:
            s = _SessionIn.model_validate(item)
        except ValidationError as exc:
            raise InvalidInput(
                f"{path}: session #{i + 1}: {exc.errors()[0]['msg']}",
                details=[{"loc": [i, *e["loc"]], "msg": e["msg"]} for e in exc.errors()],
            ) from None
        turns = [
            Turn(
                id=t.id or f"t{j + 1}",
                speaker=t.speaker,
                text=t.text,
                at=t.at,
                role=t.role,
                metadata={**t.metadata, "turn": t.id or f"t{j + 1}"},
            )
            for j, t in enumerate(s.turns)
        ]
        yield Conversation(
            session_id=s.id,
            namespace=s.namespace or f"conversations/{s.id}",
            turns=turns,
            agent=s.agent,
            user_id=s.user_id,
            title=s.title,
            started_at=next((t.at for t in turns if t.at), None),
            tags=s.tags,
            metadata=s.metadata,
        )


FORMATS: dict[str, Callable[[Path], Iterator[Conversation]]] = {
    "locomo": read_locomo,
    "tether": read_tether,
}


def read_conversations(path: Path, fmt: str) -> list[Conversation]:
    """Read every conversation in ``path`` with the reader for ``fmt``.

    Raises:
        InvalidInput: unknown format or a malformed file.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    return list(FORMATS[fmt](path))

"""JSON bodies as every route parses them: orjson, and no U+0000 in any string.

No stored text field can hold NUL on every backend (PostgreSQL ``text`` and ``jsonb``
refuse it), so it is refused at the edge, the same on SQLite and PostgreSQL, with the
location of the string that held it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["NUL_MESSAGE", "NulInString", "loads", "nul_error"]

# U+0000 in a JSON string: the escape ``\u0000`` after an even number of backslashes
# (``\\u0000`` is an escaped backslash, then the text "u0000"). JSON forbids a raw NUL
# byte inside strings, so the escape is the only way one arrives.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_MESSAGE = "strings must not contain U+0000 (NUL)"


class NulInString(orjson.JSONDecodeError):
    """A JSON body whose string (or object key) at :attr:`loc` holds U+0000.

    A ``JSONDecodeError``, so FastAPI answers it like any parse error; the 422 handlers
    report :attr:`loc` (``["body", "metadata", "k"]``) with type ``string_nul``.
    """

    def __init__(self, doc: str, pos: int, loc: list[str | int]) -> None:
        super().__init__(NUL_MESSAGE, doc, pos)
        self.loc = loc


def nul_error(exc: NulInString) -> dict[str, Any]:
    """The 422 detail of a :class:`NulInString`."""
    return {"loc": exc.loc, "msg": NUL_MESSAGE, "type": "string_nul"}


def loads(raw: bytes | str) -> Any:
    """Parse JSON with orjson, refusing U+0000 in any string.

    No stored text field can hold NUL on every backend (PostgreSQL ``text`` and ``jsonb``
    refuse it), so it is refused here, at the edge, the same on SQLite and PostgreSQL.

    Raises:
        NulInString: a string or key holds U+0000 (422 ``string_nul`` at its location).
        orjson.JSONDecodeError: not JSON (422 ``json_invalid``).
    """
    if isinstance(raw, str):
        raw = raw.encode()
    value = orjson.loads(raw)
    if b"\\u0000" in raw and (found := _NUL_ESCAPE.search(raw)) is not None:
        loc: list[str | int] = ["body", *(_nul_path(value) or [])]
        raise NulInString(raw.decode(errors="replace"), found.end() - 6, loc)
    return value


def _nul_path(value: Any) -> list[str | int] | None:
    """Where the first string (or object key) holding U+0000 is, or ``None``."""
    if isinstance(value, str):
        return [] if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return [key]
            if (inner := _nul_path(item)) is not None:
                return [key, *inner]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if (inner := _nul_path(item)) is not None:
                return [i, *inner]
    return None

"""Constrained field types shared by the records, and the limits they enforce.

Whatever the server accepts it must be able to serve back, so every limit that a stored
value could break on the way out is checked here, at the boundary, as a 422 that names
the field (docs/api.md, "Limits"):

- free-form JSON (``metadata``, ``input``, ``output``, ``attributes``, the state
  document) nests at most :data:`MAX_JSON_DEPTH` levels;
- ``metadata`` objects serialise to at most :data:`MAX_METADATA_BYTES`;
- times are RFC 3339 strings and lie in years 1-9999 once converted to UTC;
- numbers are JSON numbers (``true`` and ``"3"`` are not), and integers stay below
  2**53 (:data:`MAX_SAFE_INT`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

# Client-chosen ids (session ids, goal ids): printable, no slashes, bounded.
ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+\-=]+$")
]
#: Session ids that name routes (``GET /v1/sessions/stream``), so no session may take them.
RESERVED_SESSION_IDS = frozenset({"stream"})


def _not_reserved(value: str) -> str:
    if value in RESERVED_SESSION_IDS:
        raise ValueError(f"{value!r} is reserved: GET /v1/sessions/{value} is a route")
    return value


#: A session id a client may give a new session: a :data:`ClientId` but not a reserved one.
SessionId = Annotated[ClientId, AfterValidator(_not_reserved)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
#: At least one character that is not whitespace. Whitespace is spelled out (ECMA-262's
#: set, as JSON Schema's ``\s`` means it) so the OpenAPI pattern, pydantic's regex engine
#: and any client's agree on it; Python's ``str.isspace`` also counts U+001C-U+001F.
#: The whole string is matched (anchored) and may not hold U+0000 anywhere: the server
#: refuses NUL in every string, and a pattern here is the only way the schema can say so
#: for these fields (``bodies._no_nul`` adds one only to strings without a pattern).
NOT_BLANK = (
    r"^[^\u0000]*"
    r"[^\u0000\t\n\x0b\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
    r"[^\u0000]*$"
)
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=50)]

#: Deepest nesting of objects and arrays in a free-form JSON value (``{"a": 1}`` is 1).
#: Responses wrap stored values a few levels deeper (envelope, list, item) and orjson
#: refuses to serialise beyond 255, so values nested ~250 deep were stored and then broke
#: every read of them; 64 leaves room for any real payload and for the wrapping.
MAX_JSON_DEPTH = 64
#: Largest ``metadata`` object, serialised as compact JSON (bytes). Metadata is merged by
#: PATCH (RFC 7386), so without a bound repeated patches could grow it without limit.
MAX_METADATA_BYTES = 64 * 1024


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a JSON value (scalars 0, ``[]`` and ``{}`` 1), counted up to
    ``limit + 1`` at most (iteratively: no recursion limit is hit on hostile input)."""
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def check_json_depth(value: Any) -> Any:
    """Pydantic validator: ``value`` unchanged, or ValueError past :data:`MAX_JSON_DEPTH`.

    Runs for every event's ``input``, ``output`` and ``attributes`` on the ingest path, so a
    flat object or array (the usual case) is recognised without the full walk: ~0.2 us
    instead of ~1.1 us per value (in-process, pydantic calling it).
    """
    kind = type(value)
    if kind is dict:
        children: Any = value.values()
    elif kind is list:
        children = value
    else:
        return value
    for child in children:
        if type(child) is dict or type(child) is list:
            break
    else:
        return value  # depth 1
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Pydantic validator for ``metadata``: depth and serialised size limits."""
    check_json_depth(value)
    if value and len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata larger than {MAX_METADATA_BYTES} bytes as JSON")
    return value


def rfc3339_string(value: Any) -> Any:
    """Pydantic before-validator: only a string shaped like an RFC 3339 date-time
    (``YYYY-MM-DDTHH...``), or a datetime, goes on to pydantic's parser, which checks the
    rest (a bare date is not a date-time).

    Pydantic alone would also take numbers and numeric strings as epoch times ("0.5" is
    1970-01-01T00:00:00.500Z), which the OpenAPI document (format: date-time) does not
    promise. Kept to a slice and a compare: it runs for every timestamp on the ingest path.
    """
    if type(value) is str and value[4:5] == "-" and value[10:11] in ("T", "t", " "):
        return value
    if isinstance(value, datetime):
        return value
    raise ValueError("expected an RFC 3339 date-time string, e.g. 2026-01-02T03:04:05Z")


def json_number(value: Any) -> Any:
    """Pydantic before-validator: JSON numbers only (lax pydantic turns ``true`` into 1
    and ``"3"`` into 3; an integral float such as ``3.0`` is still an integer, as JSON
    Schema counts it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a JSON number")
    return value


#: The times a stored value may hold: years 1-9999 in UTC. A time outside them (such as
#: ``9999-12-31T23:59:59-01:00``) could not be rendered back as RFC 3339; pydantic compares
#: aware times in UTC, natively (no Python call on the ingest path). A time without an
#: offset means UTC.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


#: Free-form JSON (event ``input``/``output``): anything JSON, at most MAX_JSON_DEPTH deep.
JsonValue = Annotated[Any, AfterValidator(check_json_depth)]
#: An event's ``attributes``: a JSON object, at most MAX_JSON_DEPTH deep.
Attributes = Annotated[dict[str, Any], AfterValidator(check_json_depth)]
#: A ``metadata`` object: depth and size bounded (see the module docstring).
Metadata = Annotated[dict[str, Any], AfterValidator(check_metadata)]
#: An RFC 3339 time in years 1-9999 (in UTC; no offset means UTC).
Timestamp = Annotated[datetime, Field(ge=EARLIEST, le=LATEST), BeforeValidator(rfc3339_string)]

# SQLite stores integers as signed 64-bit: a larger value would fail in the driver (a 500),
# so typed integer fields are bounded and rejected with a 422 instead. The bound is 2**53
# (JavaScript's Number.MAX_SAFE_INTEGER), not 2**63: beyond it JSON numbers lose precision
# in JavaScript and in float-based JSON Schema validators, and no count, seq or row key
# here comes near it.
MAX_SAFE_INT = 2**53 - 1
SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT), BeforeValidator(json_number)]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT), BeforeValidator(json_number)]
#: A non-negative JSON number (an integer is fine, ``true`` and ``"3"`` are not):
#: durations, costs. Strict floats take ints and refuse bools and strings natively.
NonNegative = Annotated[float, Field(strict=True, ge=0.0)]
#: A fraction in [0, 1] (progress, importance).
Fraction = Annotated[float, Field(strict=True, ge=0.0, le=1.0)]
#: Tokens of one call: at most 10^9 (far above any model's context), so a session's sum
#: stays an exact 64-bit integer for 9 * 10^9 events.
TokenCount = Annotated[int, Field(ge=0, le=10**9), BeforeValidator(json_number)]
#: US dollars of one event: at most 10^6, so a session's sum never overflows to infinity
#: (which JSON cannot carry).
Usd = Annotated[float, Field(strict=True, ge=0.0, le=1e6)]
#: JSON ``true``/``false`` only (lax pydantic also takes 1, "yes", "on").
StrictBool = Annotated[bool, Field(strict=True)]


class Strict(BaseModel):
    """Base for request bodies: unknown fields are an error (catches typos early)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

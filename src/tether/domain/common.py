"""Constrained field types shared by the records."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Client-chosen ids (session ids, goal ids): printable, no slashes, bounded.
ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+\-=]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Field(max_length=50)]
Metadata = dict[str, Any]
# SQLite stores integers as signed 64-bit: a larger value would fail in the driver (a 500),
# so typed integer fields are bounded here and rejected with a 422 instead.
INT64_MAX = 2**63 - 1
Int64 = Annotated[int, Field(ge=-(2**63), le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


class Strict(BaseModel):
    """Base for request bodies: unknown fields are an error (catches typos early)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

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


class Strict(BaseModel):
    """Base for request bodies: unknown fields are an error (catches typos early)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

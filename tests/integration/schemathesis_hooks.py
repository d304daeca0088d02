"""Schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

- ``POST /v1/memories/import`` takes NDJSON, which schemathesis cannot serialise by
  itself: the OpenAPI document describes the body as an array of ``MemoryImport``
  objects, one per line, and the serialiser below writes it that way (with the stdlib
  encoder: generated integers may exceed 64 bits, which orjson refuses).
- An import line's ``embedding`` carries ``dim`` float32 values as base64 in ``vector``;
  JSON Schema cannot tie the string's length to ``dim``, so generated bodies get a
  vector of the right length where ``dim`` is a valid dimension and ``vector`` a string
  (other values are left as generated, so invalid ones still reach the server).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """A list becomes one JSON line per item; anything else one line."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def _consistent_embedding(item: Any) -> None:
    embedding = item.get("embedding") if isinstance(item, dict) else None
    if not isinstance(embedding, dict):
        return
    dim = embedding.get("dim")
    # Only a vector that is already a string is resized: a negative case that changed its
    # type must reach the server as generated.
    if (
        isinstance(embedding.get("vector"), str)
        and isinstance(dim, int)
        and not isinstance(dim, bool)
        and 1 <= dim <= 4096
    ):
        embedding["vector"] = base64.b64encode(struct.pack(f"<{dim}f", *([0.5] * dim))).decode()


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    """Give import lines vectors whose length matches their ``dim``."""
    if ctx.operation.path == "/v1/memories/import" and isinstance(body, list):
        for item in body:
            _consistent_embedding(item)
    return body

"""Memory request records (ARCHITECTURE §2) and the content hash used for dedupe.

Request bodies are strict (unknown fields are a 422), except :class:`MemoryImport`, which
reads Tether's own export lines and ignores the server-managed fields they carry
(``version``, ``access_count``, ``content_hash``, ...).
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from tether.domain.common import (
    NOT_BLANK,
    ClientId,
    Fraction,
    Metadata,
    SafeInt,
    Strict,
    StrictBool,
    Tag,
    Tags,
    Timestamp,
    json_number,
)

__all__ = [
    "MAX_BATCH",
    "MemoryBatchIn",
    "MemoryImport",
    "MemoryIn",
    "MemoryPatch",
    "SearchFilters",
    "SearchIn",
    "content_hash",
    "normalise_text",
]

#: Most items in one ``POST /v1/memories/batch``.
MAX_BATCH = 1000
#: Longest memory text, in characters (the embedder truncates at 256 tokens anyway; the
#: keyword index sees all of it).
MAX_TEXT_CHARS = 20_000

# Namespaces are paths such as ``user/alice`` or ``agent/support``.
Namespace = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+\-=/]+$")
]
MemoryText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK)
]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9._\-]+$")]
Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Metadata filter keys go into a JSON path ``$."key"``: no quotes or backslashes.
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r'^[^"\\]+$')]
# Filter values are bound as SQL parameters: integers must fit SQLite's signed 64 bits.
Scalar = (
    Annotated[str, StringConstraints(max_length=1000)]
    | SafeInt
    | Annotated[float, BeforeValidator(json_number)]
    | StrictBool
    | None
)
Importance = Fraction

_WS = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """The text dedupe compares: Unicode NFKC, whitespace runs collapsed, ends stripped.

    Case is kept: "Ana likes Tea" and "ana likes tea" may differ in a name.
    """
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def content_hash(text: str) -> str:
    """SHA-256 (hex, 64 chars) of :func:`normalise_text` as UTF-8: the dedupe key."""
    return hashlib.sha256(normalise_text(text).encode()).hexdigest()


class _MemoryFields(Strict):
    """The fields a client gives a memory, shared by create and import."""

    namespace: Namespace
    text: MemoryText
    kind: Kind = "fact"
    tags: Tags = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)
    importance: Importance = 0.5
    occurred_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    source_session_id: ClientId | None = None
    source_event_id: Key | None = None


class MemoryIn(_MemoryFields):
    """``POST /v1/memories`` and each item of ``POST /v1/memories/batch``.

    ``importance`` is in [0, 1] (0.5 is neutral in ranking). Datetimes are ISO 8601; a
    naive one is UTC. ``idempotency_key`` (or the ``Idempotency-Key`` header for a single
    create) makes a retry return the original result.
    """

    idempotency_key: Key | None = None


class MemoryBatchIn(Strict):
    """``POST /v1/memories/batch``: 1 to 1,000 items, all stored or none."""

    items: Annotated[list[MemoryIn], Field(min_length=1, max_length=MAX_BATCH)]


class MemoryPatch(Strict):
    """``PATCH /v1/memories/{id}``: only the fields sent change (``model_fields_set``).

    ``metadata`` is merged as a JSON Merge Patch (RFC 7386); ``expires_at: null`` clears
    the expiry; a new ``text`` is re-embedded. The namespace cannot change.
    """

    text: MemoryText | None = None
    kind: Kind | None = None
    tags: Tags | None = None
    metadata: Metadata | None = None
    importance: Importance | None = None
    occurred_at: Timestamp | None = None
    expires_at: Timestamp | None = None


class SearchFilters(Strict):
    """Search filters: ``kind`` (one or any of several), ``tags`` (all of them),
    ``metadata`` (top-level key equals a scalar), ``since``/``until`` on ``occurred_at``
    (``created_at`` when a memory has none), inclusive, and ``session``
    (``source_session_id``)."""

    kind: Kind | Annotated[list[Kind], Field(max_length=50)] | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)
    metadata: Annotated[
        dict[MetaKey, Scalar],
        # pydantic states the key pattern as patternProperties; without this, JSON Schema
        # would allow any value under a key that does not match it.
        Field(max_length=20, json_schema_extra={"additionalProperties": False}),
    ] = Field(default_factory=dict)
    since: Timestamp | None = None
    until: Timestamp | None = None
    session: ClientId | None = None


class SearchIn(Strict):
    """``POST /v1/memories/search``.

    ``mode`` picks the retrievers: ``hybrid`` (default: BM25 and vector, fused), ``bm25``
    or ``vector`` alone (for comparisons such as ``benchmarks/memory_recall.py``).
    ``touch: false`` leaves access statistics (and so recency) untouched.
    """

    namespace: Namespace | Annotated[list[Namespace], Field(min_length=1, max_length=100)]
    query: Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=NOT_BLANK)]
    limit: Annotated[int, Field(ge=1, le=100), BeforeValidator(json_number)] = 10
    filters: SearchFilters = Field(default_factory=SearchFilters)
    include_expired: StrictBool = False
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    touch: StrictBool = Field(
        default=True,
        description="Update the results' access statistics (false: a read-only peek).",
    )

    @property
    def namespaces(self) -> list[str]:
        """The namespace(s) as a deduplicated list."""
        raw = [self.namespace] if isinstance(self.namespace, str) else self.namespace
        return list(dict.fromkeys(raw))


# Largest vector an import line may carry (float32 values).
MAX_VECTOR_DIM = 4096


# Canonical base64 (RFC 4648 §4, padded): what the export writes and the import decodes.
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class ImportedEmbedding(Strict):
    """A memory's vector as ``GET /v1/memories/export?vectors=true`` writes it.

    ``vector`` is base64 (RFC 4648) of the little-endian float32 values, ``dim`` of them.
    Only an embedding of the importing server's model is used (and then checked by
    :meth:`values`); any other is ignored and the text is embedded again.
    """

    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    dim: Annotated[int, Field(ge=1, le=MAX_VECTOR_DIM), BeforeValidator(json_number)]
    vector: Annotated[str, StringConstraints(max_length=8 * MAX_VECTOR_DIM, pattern=_BASE64)]

    def values(self, expected_dim: int) -> npt.NDArray[np.float32]:
        """The vector as float32 ``[dim]``.

        Args:
            expected_dim: The server model's dimension (0: not known yet, any).

        Raises:
            ValueError: ``vector`` does not hold ``dim`` float32 values, ``dim`` is not
                the model's, or the values are not finite or all zero.
        """
        raw = base64.b64decode(self.vector)
        if len(raw) != 4 * self.dim:
            raise ValueError(f"vector must hold {self.dim} float32 values ({4 * self.dim} bytes)")
        if expected_dim and self.dim != expected_dim:
            raise ValueError(f"{self.model} vectors have {expected_dim} dimensions, not {self.dim}")
        values = np.frombuffer(raw, dtype="<f4")
        if not np.isfinite(values).all() or not values.any():
            raise ValueError("vector must be finite and not all zero")
        return values


class MemoryImport(_MemoryFields):
    """One line of ``POST /v1/memories/import`` (the shape ``GET /v1/memories/export``
    writes). Server-managed fields in the line are ignored; ``id`` and ``created_at`` are
    kept so a round trip preserves identity. An ``embedding`` of the server's current
    model and dimension is stored as the memory's vector instead of embedding the text
    again (a restore or a move between servers skips the embedder); any other is ignored
    and the text is embedded as usual."""

    model_config = ConfigDict(extra="ignore")

    id: ClientId | None = None
    created_at: Timestamp | None = None
    embedding: ImportedEmbedding | None = None


def fields_of(model: BaseModel) -> dict[str, Any]:
    """The fields the client actually sent, JSON-ready except datetimes (kept as objects)."""
    return {name: getattr(model, name) for name in model.model_fields_set}

"""API keys: who may call, for which tenant, with what scope, over which namespaces.

A key is ``tk_<id>_<secret>``: ``<id>`` is the key's public id (26 characters, a ULID)
and ``<secret>`` 43 URL-safe characters (32 random bytes). The store keeps the id and the
SHA-256 of the secret, never the secret: a 256-bit random secret needs no slow hash, as
with GitHub's and Stripe's tokens. The whole key is shown once, when it is created.

Scopes are ordered: ``read`` < ``write`` < ``admin``; a key may call every route whose
scope is at most its own. A key limited to namespace prefixes (``user/alice/``) reads and
writes only memories whose namespace starts with one of them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from tether.domain.common import ShortText, Strict, Timestamp
from tether.domain.time import new_id

__all__ = [
    "AdminKeyIn",
    "KeyIn",
    "NamespacePrefix",
    "ParsedKey",
    "Scope",
    "ScopedKeyIn",
    "TenantName",
    "hash_secret",
    "key_body_model",
    "new_key",
    "parse_key",
    "scope_allows",
    "secret_matches",
]

KEY_PREFIX: Final = "tk_"
_ID_CHARS: Final = 26
_KEY = re.compile(r"^tk_([0-9A-Z]{26})_([A-Za-z0-9_-]{43})$")

#: Tenant names: what ``--tenant`` takes (``default`` is local mode's).
TenantName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@+\-=]+$")
]
#: A namespace prefix a key is limited to (``user/alice/``); a memory is reachable when
#: its namespace starts with the prefix.
NamespacePrefix = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+\-=/]+$")
]


class Scope(StrEnum):
    """What a key may do: ``read`` (GET, search), ``write`` (also create, update,
    forget), ``admin`` (also purge, reindex, outbox replay, keys, audit, export of every
    namespace)."""

    read = "read"
    write = "write"
    admin = "admin"


_RANK: Final = {Scope.read: 0, Scope.write: 1, Scope.admin: 2}


def scope_allows(have: Scope, need: Scope) -> bool:
    """True when a key of scope ``have`` may call a route that needs ``need``."""
    return _RANK[have] >= _RANK[need]


class _KeyFields(Strict):
    name: ShortText | None = None
    expires_at: Timestamp | None = Field(
        default=None,
        description="When the key stops working (none: when revoked). A time already past "
        "makes a key that never works.",
    )


class AdminKeyIn(_KeyFields):
    """``POST /v1/admin/keys`` for an ``admin`` key: it acts on the whole tenant, so it
    takes no namespace prefixes."""

    scope: Literal[Scope.admin]


class ScopedKeyIn(_KeyFields):
    """``POST /v1/admin/keys`` for a ``read`` or ``write`` key, optionally limited to
    namespace prefixes (``user/alice/``): its memory calls reach only memories whose
    namespace starts with one of them."""

    scope: Literal[Scope.read, Scope.write]
    namespaces: Annotated[list[NamespacePrefix], Field(max_length=20)] = Field(default_factory=list)


#: A new key's body: the two shapes, told apart by ``scope``.
KeyIn = AdminKeyIn | ScopedKeyIn


def key_body_model(value: object) -> type[AdminKeyIn] | type[ScopedKeyIn]:
    """The model a ``POST /v1/admin/keys`` body is validated with (by its ``scope``)."""
    scope = value.get("scope") if isinstance(value, dict) else None
    return AdminKeyIn if scope == Scope.admin.value else ScopedKeyIn


class ParsedKey:
    """A presented key split into its public id and its secret."""

    __slots__ = ("key_id", "secret")

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret


def new_key() -> tuple[str, str, str]:
    """A fresh key: ``(key_id, secret_sha256_hex, the whole key to show once)``."""
    key_id = new_id()
    secret = secrets.token_urlsafe(32)
    return key_id, hash_secret(secret), f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(presented: str) -> ParsedKey | None:
    """The id and secret of a presented key, or ``None`` when it is not one of ours."""
    m = _KEY.match(presented)
    return None if m is None else ParsedKey(m.group(1), m.group(2))


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a key's secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def under_prefixes(namespace: str, prefixes: tuple[str, ...]) -> bool:
    """True when ``namespace`` starts with one of ``prefixes`` (no prefixes: all)."""
    return not prefixes or any(namespace.startswith(p) for p in prefixes)

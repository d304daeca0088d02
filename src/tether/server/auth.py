"""The security stage of the request pipeline: host, origin, API key, rate limit.

Pure ASGI, between :class:`~tether.server.envelope.RequestMiddleware` (outermost:
correlation id, body limits) and the fast lane, so every route, the hot ingest routes
included, passes it. For each HTTP request, in order:

1. **Host.** A ``Host`` outside ``TETHER_ALLOWED_HOSTS`` (loopback names by default) is
   421: a web page cannot reach a local Tether through DNS rebinding.
2. **Origin.** A request that can change state (POST, PUT, PATCH, DELETE) and carries an
   ``Origin`` outside ``TETHER_CORS_ORIGINS`` and not the server's own (the dashboard's:
   its host and port are the request's ``Host``, already allow-listed; with
   ``TETHER_ALLOWED_HOSTS=*`` nothing is, so a rebound name's page is not "own") is 403: browsers
   send ``Origin`` on cross-site requests, including the ones they send without a CORS
   preflight, so no other site can make a visitor's browser change anything. Clients that are not
   browsers (the SDK, curl) send no ``Origin``.
3. **Key.** ``Authorization: Bearer tk_...`` is authenticated (401 if it is not a live
   key). Without one, the caller is local mode's (tenant ``default``, every scope) when
   no live key exists, auth is not required and the request came to a loopback address;
   otherwise it has no identity, and every route but the health checks answers 401
   (:func:`tether.server.access.authorize`, per route). On the paths that check a token
   of their own (``/metrics``: ``TETHER_METRICS_TOKEN``), a bearer that is not a ``tk_``
   key is left to the route, and the caller is as if it had sent none.
4. **Rate.** A key's request spends a token of its bucket (429 and ``Retry-After``).

The caller's :class:`~tether.services.context.RequestContext` goes into the ASGI scope.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from tether.config import Settings
from tether.errors import Forbidden, TetherError, Unauthorized
from tether.server.access import CONTEXT_KEY
from tether.server.envelope import correlation_id
from tether.server.errors import error_response
from tether.services.context import RequestContext
from tether.services.keys import Authenticator
from tether.services.ratelimit import RateLimiter

__all__ = ["AuthMiddleware", "is_loopback", "same_origin"]

_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8, ``::1`` (and a Unix socket: ``None``)."""
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def same_origin(origin: str, host: str | None) -> bool:
    """True when ``origin`` (``scheme://host[:port]``) names the ``Host`` the request was
    sent to: a page this server served (the dashboard) calling it back. Another site's
    page has its own origin, and a rebound DNS name is refused by the ``Host`` check."""
    if not host:
        return False
    scheme, sep, netloc = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and netloc.lower() == host.lower()


def _host_name(value: str) -> str:
    """The host of a ``Host`` header, without the port (``[::1]:7117`` -> ``[::1]``)."""
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AuthMiddleware:
    """See the module docstring.

    Args:
        authenticator: API keys and local mode.
        limiter: per-key rate limits.
        settings: allowed hosts and CORS origins.
        token_paths: paths whose route checks a non-key bearer token itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        limiter: RateLimiter,
        settings: Settings,
        token_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.token_paths = token_paths
        self.authenticator = authenticator
        self.limiter = limiter
        self.any_host = "*" in settings.allowed_hosts
        self.hosts = frozenset(h.lower() for h in settings.allowed_hosts)
        self.origins = frozenset(settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = authorization = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            if not self.any_host and _host_name(host or "").lower() not in self.hosts:
                await self._send(scope, receive, send, _misdirected(host))
                return
            if (
                origin is not None
                and scope["method"] in _UNSAFE
                and origin not in self.origins
                and not (not self.any_host and same_origin(origin, host))
            ):
                raise Forbidden(
                    f"cross-origin requests from {origin} may not change anything "
                    "(allow the origin with TETHER_CORS_ORIGINS)"
                )
            if authorization is not None and scope["path"] in self.token_paths:
                kind, _, token = authorization.partition(" ")
                if kind.lower() == "bearer" and not token.strip().startswith("tk_"):
                    authorization = None  # the route's own token (server/metrics.py)
            ctx = await self._caller(scope, authorization)
            scope[CONTEXT_KEY] = ctx
            if ctx is not None and ctx.key_id is not None:
                await self.limiter.check(ctx.key_id, ctx.scope)
        except TetherError as exc:
            await self._send(scope, receive, send, exc)
            return
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same checks for a WebSocket handshake; a refusal closes it before it is
        accepted (the client sees HTTP 403). Every browser sends ``Origin`` on a WebSocket
        handshake, so only listed origins (or none, for non-browser clients) may connect:
        no other site can open a socket in a visitor's browser. Without a key the caller
        is local mode's, or has no identity yet and must send an ``auth`` message first
        (the endpoint checks it)."""
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin")
        authorization = headers.get(b"authorization")
        try:
            if not self.any_host and _host_name(host).lower() not in self.hosts:
                raise _misdirected(host)
            if (
                origin is not None
                and origin.decode("latin-1") not in self.origins
                and not (not self.any_host and same_origin(origin.decode("latin-1"), host))
            ):
                raise Forbidden("cross-origin WebSocket connections are refused")
            ctx = await self._caller(
                scope, None if authorization is None else authorization.decode("latin-1")
            )
            if ctx is not None and ctx.key_id is not None:
                await self.limiter.check(ctx.key_id, ctx.scope)
        except TetherError:
            await send({"type": "websocket.close", "code": 1008})
            return
        scope[CONTEXT_KEY] = ctx
        await self.app(scope, receive, send)

    async def _caller(self, scope: Scope, authorization: str | None) -> RequestContext | None:
        cid = correlation_id(scope)
        if authorization is not None:
            kind, _, token = authorization.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                raise Unauthorized("send the API key as Authorization: Bearer tk_...")
            return await self.authenticator.authenticate(token.strip(), correlation_id=cid)
        if not await self.authenticator.local_mode():
            return None
        server = scope.get("server")
        if not is_loopback(server[0] if server else None):
            raise Unauthorized(
                "this server has no API keys, so it answers requests to its loopback address "
                "only: create a key (`tether keys create`) to serve other addresses"
            )
        return RequestContext(correlation_id=cid)

    async def _send(self, scope: Scope, receive: Receive, send: Send, exc: TetherError) -> None:
        await error_response(scope, exc)(scope, receive, send)


class _Misdirected(TetherError):
    code = "misdirected_request"
    status = 421


def _misdirected(host: str | None) -> TetherError:
    return _Misdirected(
        f"this server does not answer for host {host!r} (allow it with TETHER_ALLOWED_HOSTS)"
    )

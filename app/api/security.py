"""The API's front door (pure ASGI middleware): Host check, Origin/CORS, bearer token, body size limit.

Order matters: the Host header is checked first (a web page that rebinds its DNS name to 127.0.0.1 still sends
its own name as Host), then the Origin (a page on another site may not use the API unless its origin is
configured, even without auth), then the token, then the body size.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Callable

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import ApiError, error_response
from app.api.generation import EMBER_HEADERS
from app.settings import ApiSettings

PUBLIC_PATHS = frozenset({"/", "/health", "/openapi.json"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
EXPOSED_HEADERS = ", ".join(EMBER_HEADERS)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> str:
    """The name part of a Host header value (``[::1]:8765`` -> ``::1``, ``localhost:8765`` -> ``localhost``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


@dataclass
class Guard:
    """The security policy; asks for the live settings and the server's current token on every request.

    Args:
        settings: returns the API settings in force (saved settings apply without a restart).
        token: returns the bearer token to require, or None when auth is off (the server holds it).
        bound_host: the address the server listens on.
    """

    settings: Callable[[], ApiSettings]
    token: Callable[[], str | None]
    bound_host: str

    def host_allowed(self, host_header: str | None) -> bool:
        """True for a loopback name, the bound address or a configured allowed host."""
        if not host_header:
            return False
        name = split_host(host_header)
        if is_loopback(name):
            return True
        allowed = {h.lower() for h in self.settings().allowed_hosts}
        if self.bound_host not in ("0.0.0.0", "::", ""):
            allowed.add(self.bound_host.lower().strip("[]"))
        return name in allowed or "*" in allowed

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """True for a configured web origin (or ``*``) and for the server's own origin."""
        allowed = self.settings().allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        # Same origin: a page served by this host and port (no such page today, but harmless).
        return origin in (f"http://{host_header}", f"https://{host_header}")

    def token_ok(self, authorization: str | None, api_key: str | None = None) -> bool:
        """True when auth is off, ``authorization`` carries the current bearer token or ``api_key`` (Anthropic's
        ``x-api-key`` header) is the token (compared in constant time)."""
        token = self.token()
        if token is None:
            return True
        if api_key and hmac.compare_digest(api_key.strip().encode(), token.encode()):
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class SecurityMiddleware:
    """Applies a :class:`Guard` to every HTTP request before the app sees it."""

    def __init__(self, app: ASGIApp, *, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        host = headers.get("host", "")
        guard = self.guard
        if not guard.host_allowed(host):
            await self._refuse(scope, receive, send, ApiError(
                403, f"Host {host!r} is not allowed. Ember's API answers requests for localhost and the names "
                     "configured in its allowed hosts setting.", code="invalid_host"))
            return
        origin = headers.get("origin")
        cors: dict[str, str] = {}
        if origin is not None:
            if not guard.origin_allowed(origin, host):
                await self._refuse(scope, receive, send, ApiError(
                    403, f"Requests from the web origin {origin!r} are not allowed. Add it to the API's allowed "
                         "origins setting to let that site use Ember.", code="origin_not_allowed"))
                return
            cors = {"access-control-allow-origin": origin, "vary": "Origin",
                    "access-control-expose-headers": EXPOSED_HEADERS}
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                await self._preflight(send, cors, headers)
                return
        if path not in PUBLIC_PATHS and not guard.token_ok(headers.get("authorization"), headers.get("x-api-key")):
            await self._refuse(scope, receive, send, ApiError(
                401, "A valid API token is required: send 'Authorization: Bearer <token>' (or 'x-api-key: "
                     "<token>'). `ember serve` prints "
                     "the token; the desktop app shows it in its settings.", code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"}), cors)
            return
        limit = guard.settings().max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(scope, receive, send, _too_large(limit), cors)
                return
        await self.app(scope, _limited(receive, limit), _with_headers(send, cors) if cors else send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, err: ApiError,
                      extra: dict[str, str] | None = None) -> None:
        response = error_response(err, scope["path"])
        response.headers.update(extra or {})
        await response(scope, receive, send)

    @staticmethod
    async def _preflight(send: Send, cors: dict[str, str], headers: Headers) -> None:
        allow = {**cors, "access-control-allow-methods": "GET, POST, OPTIONS",
                 "access-control-allow-headers": headers.get("access-control-request-headers",
                                                             "authorization, content-type"),
                 "access-control-max-age": "600", "content-length": "0"}
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(k.encode(), v.encode()) for k, v in allow.items()]})
        await send({"type": "http.response.body", "body": b""})


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than the API's limit of {limit} bytes.",
                    code="request_too_large")


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises a 413 once more than ``limit`` body bytes arrive (chunked uploads)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI passes an HTTPException from the body read through unchanged
                raise HTTPException(413, str(_too_large(limit)))
        return message

    return wrapped


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    raw = [(k.encode(), v.encode()) for k, v in extra.items()]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": list(message.get("headers", [])) + raw}
        await send(message)

    return wrapped

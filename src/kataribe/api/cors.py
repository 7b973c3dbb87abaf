"""CORS on the compatibility routes only, as Ollama's OLLAMA_ORIGINS: preflights, private network."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kataribe.api.security import AccessPolicy, is_compat_path

ALLOW_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
MAX_AGE = b"600"
_ALLOW_ORIGIN = b"access-control-allow-origin"
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")


class CompatCors:
    """Answers CORS for origins the access policy lets call a compatibility route (pages on this
    machine on any port, ``--cors-origins``): preflights here, the origin echoed on answers (the
    guard's 401 and 403 too, so a browser client can read why). Never ``*``, never credentials:
    such pages authenticate with the key in a header, not with the browser app's cookie. Other
    routes and other origins get no CORS headers, so browsers keep their answers from the page."""

    def __init__(self, app: ASGIApp, *, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_compat_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if (
            origin is None
            or not self.policy.host_ok(headers)
            or not self.policy.origin_may_call(origin, scope, headers)
        ):
            await self.app(scope, receive, send)  # the guard refuses what must be refused
            return
        if scope.get("method") == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(send, origin, headers)
            return
        cors = _origin_headers(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != _ALLOW_ORIGIN]
                message = {**message, "headers": [*kept, *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _origin_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [(_ALLOW_ORIGIN, origin.encode("latin-1")), (b"vary", b"Origin")]


async def _preflight(send: Send, origin: str, headers: dict[str, str]) -> None:
    out = [
        *_origin_headers(origin),
        (b"access-control-allow-methods", ALLOW_METHODS),
        (b"access-control-max-age", MAX_AGE),
        (b"content-length", b"0"),
    ]
    requested = headers.get("access-control-request-headers", "").strip()
    if requested and _HEADER_LIST.match(requested):
        out.append((b"access-control-allow-headers", requested.encode("latin-1")))
    if headers.get("access-control-request-private-network", "").lower() == "true":
        out.append((b"access-control-allow-private-network", b"true"))
    await send({"type": "http.response.start", "status": 204, "headers": out})
    await send({"type": "http.response.body", "body": b""})

"""Host-header allow-list (DNS-rebinding defence) and API-key check, as one ASGI middleware."""

from __future__ import annotations

import hmac
import json
import socket
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from kataribe.api.errors import error_body
from kataribe.settings import LOOPBACK_HOSTS

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})


def local_addresses() -> set[str]:
    """Addresses and names of this machine, accepted as Host when bound to all interfaces."""
    names: set[str] = {socket.gethostname().lower(), socket.getfqdn().lower()}
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(addr.address.split("%")[0].lower())
    except Exception:  # interface listing is best effort
        pass
    return names


def allowed_host_names(bind_host: str, extra: Iterable[str]) -> set[str] | None:
    """The Host names to accept, or None when the user allowed any ('*')."""
    extra = [h.strip().lower() for h in extra]
    if "*" in extra:
        return None
    names = {h.strip("[]") for h in LOOPBACK_HOSTS} | {h.strip("[]") for h in extra}
    if bind_host in WILDCARD_BINDS:
        names |= local_addresses()
    else:
        names.add(bind_host.strip("[]").lower())
    return names


def host_without_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_host(origin: str) -> str | None:
    """The host of an Origin header value ('null' and junk give None)."""
    if "://" not in origin:
        return None
    return host_without_port(origin.split("://", 1)[1].split("/", 1)[0])


class AccessGuard:
    """Refuses requests whose Host is not ours (403), cross-site writes (403, CSRF), and requests
    without the API key (401).

    Browsers send ``Origin`` with every cross-site POST, even a plain form post that needs no
    CORS preflight; a write whose Origin is neither this server nor a configured CORS origin is
    refused. Programs (SillyTavern's server, scripts) send no Origin and are not affected.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: set[str] | None,
        api_key: str | None,
        cors_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.api_key = api_key.encode() if api_key else None
        self.cors_origins = {o.rstrip("/").lower() for o in cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None:
            host = host_without_port(headers.get("host", b"").decode("latin-1"))
            if host not in self.allowed_hosts:
                await _deny(
                    send,
                    403,
                    f"Host '{host}' is not allowed. Add it with --allowed-hosts.",
                    "permission_error",
                )
                return
        origin = headers.get("origin")
        if scope.get("method") in UNSAFE_METHODS and origin is not None and not self._origin_ok(origin):
            await _deny(
                send,
                403,
                "Cross-site request refused: this server only accepts changes from its own "
                "pages (or origins listed in cors_origins).",
                "permission_error",
            )
            return
        if self.api_key is not None and scope.get("method") != "OPTIONS" and not self._key_ok(headers):
            await _deny(
                send,
                401,
                "A valid API key is required: send 'Authorization: Bearer <key>'.",
                "authentication_error",
                www_auth=True,
            )
            return
        await self.app(scope, receive, send)

    def _origin_ok(self, raw: bytes) -> bool:
        origin = raw.decode("latin-1").strip().rstrip("/").lower()
        if origin in self.cors_origins or "*" in self.cors_origins:
            return True
        host = origin_host(origin)
        if host is None:
            return False
        return self.allowed_hosts is None or host in self.allowed_hosts

    def _key_ok(self, headers: dict[str, bytes]) -> bool:
        assert self.api_key is not None
        candidates = []
        auth = headers.get("authorization", b"")
        if auth[:7].lower() == b"bearer ":
            candidates.append(auth[7:].strip())
        for name in ("x-api-key", "api-key"):
            if name in headers:
                candidates.append(headers[name].strip())
        return any(hmac.compare_digest(c, self.api_key) for c in candidates)


async def _deny(send: Send, status: int, message: str, type_: str, www_auth: bool = False) -> None:
    body = json.dumps(error_body(message, type_=type_)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if www_auth:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_FORMISH = (b"", b"text/plain", b"application/x-www-form-urlencoded")


COMPAT_PREFIXES = ("/v1/", "/api/v1/", "/api/latest/", "/api/extra/")


class JsonByDefault:
    """Treats POST bodies sent without a JSON content type as JSON on the OpenAI and KoboldCpp
    routes, as KoboldCpp and llama-server do (curl -d and some clients send form or text types).
    Kataribe's own API keeps requiring JSON; multipart uploads are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("POST", "PUT", "PATCH")
            and str(scope.get("path", "")).startswith(COMPAT_PREFIXES)
        ):
            headers = list(scope.get("headers", []))
            ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if ctype.split(b";")[0].strip().lower() in _FORMISH:
                headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                headers.append((b"content-type", b"application/json"))
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)

"""Access rules: the compatibility routes, Host allow-list (DNS rebinding), Origin check, API key."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from kataribe.api.ollama.errors import edge_error_body
from kataribe.api.origins import Origin, OriginPatterns, parse_origin, request_origin
from kataribe.api.session import LOGIN_PAGE, PUBLIC_PATHS, SessionStore
from kataribe.settings import LOOPBACK_HOSTS

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})

COMPAT_PREFIXES = ("/v1/", "/api/v1/", "/api/latest/", "/api/extra/", "/api/blobs/")
COMPAT_PATHS = frozenset(
    {
        # llama-server (llama.cpp's own web UI, SillyTavern's llama.cpp and vLLM types)
        "/health",
        "/completion",
        "/completions",
        "/tokenize",
        "/detokenize",
        "/props",
        "/slots",
        # Ollama (Open WebUI, AnythingLLM, SillyTavern's Ollama type, the ollama packages)
        "/api/tags",
        "/api/show",
        "/api/generate",
        "/api/chat",
        "/api/version",
        "/api/ps",
        "/api/pull",
        "/api/push",
        "/api/create",
        "/api/delete",
        "/api/copy",
        "/api/embed",
        "/api/embeddings",
        # KoboldCpp's image-generation probe (KoboldAI Lite)
        "/sdapi/v1/sd-models",
    }
)
"""The routes other programs' clients call (OpenAI, KoboldCpp, llama-server, Ollama): the only ones
that accept non-JSON bodies as JSON and answer CORS for other origins. Kataribe's own API (library,
models, backups) is never among them."""


def is_compat_path(path: str) -> bool:
    """Whether ``path`` is one of the compatibility routes (``COMPAT_PREFIXES`` / ``COMPAT_PATHS``)."""
    return path.startswith(COMPAT_PREFIXES) or (path[:-1] if path.endswith("/") else path) in COMPAT_PATHS


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


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class AccessPolicy:
    """Who may call what: the Host names, the origins each route family accepts, the API key and
    the browser's session cookie. Shared by ``AccessGuard`` and the CORS middleware."""

    def __init__(
        self,
        *,
        allowed_hosts: set[str] | None,
        bind_host: str,
        port: int,
        cors: OriginPatterns,
        sessions: SessionStore,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.cors = cors
        self.sessions = sessions
        bind = bind_host.strip("[]").lower()
        self.bind_origins = set() if bind_host in WILDCARD_BINDS else {Origin("http", bind, port)}

    def host_ok(self, headers: dict[str, str]) -> bool:
        if self.allowed_hosts is None:
            return True
        return host_without_port(headers.get("host", "")) in self.allowed_hosts

    def is_own(self, raw_origin: str, scope: Scope, headers: dict[str, str]) -> bool:
        """Whether ``raw_origin`` is this server as the browser reached it (the Host it asked for,
        or the bind address and port): scheme, host and port all equal."""
        origin = parse_origin(raw_origin)
        if origin is None:
            return False
        return origin in self.bind_origins or origin == request_origin(
            str(scope.get("scheme", "http")), headers.get("host", "")
        )

    def origin_may_call(self, raw_origin: str, scope: Scope, headers: dict[str, str]) -> bool:
        """This server's own pages may call every route; other origins (pages on this machine,
        ``--cors-origins``) only the compatibility routes."""
        if self.is_own(raw_origin, scope, headers):
            return True
        return is_compat_path(str(scope.get("path", ""))) and self.cors.allows(raw_origin)

    def own_page_request(self, origin: str | None, scope: Scope, headers: dict[str, str]) -> bool:
        """Whether a request comes from this server's own pages, so that the session cookie counts.
        A page on another port of this host is the same *site*: SameSite=Strict still sends it
        the cookie, with its ``<img>`` and ``<script>`` requests, which carry no ``Origin``. The
        browser's ``Sec-Fetch-Site`` tells those apart; a top-level navigation (a link to the app)
        is let through: the page cannot read what it opens (and frames are refused anyway)."""
        if origin is not None:
            return self.is_own(origin, scope, headers)
        site = headers.get("sec-fetch-site")
        mode, dest = headers.get("sec-fetch-mode"), headers.get("sec-fetch-dest")
        top_level = mode == "navigate" and dest == "document"
        return site in (None, "same-origin", "none") or top_level

    def key_ok(self, headers: dict[str, str], *, own_page: bool) -> bool:
        """The API key in a header, or (from this server's own pages only) a session cookie."""
        candidates: list[str] = []
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            candidates.append(auth[7:].strip())
        candidates += [headers[name].strip() for name in ("x-api-key", "api-key") if name in headers]
        if any(self.sessions.key_matches(c.encode("latin-1")) for c in candidates):
            return True
        return own_page and self.sessions.logged_in(headers.get("cookie", ""))


class AccessGuard:
    """Refuses requests whose Host is not ours (403), requests from web pages that may not use the
    route (403: CSRF and cross-site reads), and requests without the API key (401; the browser
    app's page sends the browser to the log-in page instead).

    Browsers send ``Origin`` with every cross-origin request (and same-origin writes), even a plain
    form post that needs no CORS preflight. Programs (SillyTavern's server, scripts) send none and
    are not affected.
    """

    def __init__(self, app: ASGIApp, *, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not self.policy.host_ok(headers):
            host = host_without_port(headers.get("host", ""))
            await _deny(
                scope,
                send,
                403,
                f"Host '{host}' is not allowed. Add it with --allowed-hosts.",
                "permission_error",
            )
            return
        origin = headers.get("origin")
        if origin is not None and not self.policy.origin_may_call(origin, scope, headers):
            await _deny(
                scope,
                send,
                403,
                f"Cross-site request refused: pages from {origin} may not use {scope.get('path')}. Only "
                "this server's own pages reach the library, models and backups; the OpenAI, KoboldCpp, "
                "Ollama and llama.cpp routes also answer pages on this machine and --cors-origins.",
                "permission_error",
            )
            return
        own_page = self.policy.own_page_request(origin, scope, headers)
        if origin is None and not own_page and not is_compat_path(str(scope.get("path", ""))):
            # an <img>, <script> or frame of another page: those carry no Origin
            await _deny(
                scope,
                send,
                403,
                f"Cross-site request refused: other pages may not load {scope.get('path')} "
                "(Sec-Fetch-Site). Only this server's own pages reach the library, models and backups.",
                "permission_error",
            )
            return
        if self._needs_key(scope) and not self.policy.key_ok(headers, own_page=own_page):
            if scope.get("method") in ("GET", "HEAD") and scope.get("path") == "/":
                await _redirect(send, LOGIN_PAGE)
                return
            await _deny(
                scope,
                send,
                401,
                "A valid API key is required: send 'Authorization: Bearer <key>' (the browser app: "
                f"log in at {LOGIN_PAGE}).",
                "authentication_error",
                www_auth=True,
            )
            return
        await self.app(scope, receive, send)

    def _needs_key(self, scope: Scope) -> bool:
        # Browsers send no credentials on a CORS preflight; the log-in page must load without a key.
        return (
            self.policy.sessions.key_required
            and scope.get("method") != "OPTIONS"
            and scope.get("path") not in PUBLIC_PATHS
        )


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _deny(
    scope: Scope, send: Send, status: int, message: str, type_: str, www_auth: bool = False
) -> None:
    body = json.dumps(edge_error_body(str(scope.get("path", "")), message, type_=type_)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if www_auth:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_FORMISH = (b"", b"text/plain", b"application/x-www-form-urlencoded")


class JsonByDefault:
    """Treats POST bodies sent without a JSON content type as JSON on the compatibility routes, as
    KoboldCpp, llama-server and Ollama do (curl -d and some clients send form or text types).
    Kataribe's own API keeps requiring JSON; multipart uploads are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("POST", "PUT", "PATCH")
            and is_compat_path(str(scope.get("path", "")))
        ):
            headers = list(scope.get("headers", []))
            ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if ctype.split(b";")[0].strip().lower() in _FORMISH:
                headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                headers.append((b"content-type", b"application/json"))
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)

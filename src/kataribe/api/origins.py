"""Web origins (scheme, host, port): parsing, the server's own origins, and which others may call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kataribe.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_PORT = -1
LOOPBACK_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
"""Pages on this machine, on any port: allowed on the compatibility routes unless turned off."""


@dataclass(frozen=True)
class Origin:
    """A web origin; ``port`` is explicit (80 for a bare http origin), ``ANY_PORT`` in a pattern."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "*" if self.port == ANY_PORT else str(self.port)
        return f"{self.scheme}://{host}:{port}"


def split_host_port(authority: str) -> tuple[str, str | None] | None:
    """``host[:port]`` (IPv6 in brackets) into a lower-case host and the port text, or None if malformed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[1:end], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        return host, rest[1:] if rest else None
    if authority.count(":") > 1:
        return authority, None  # a bare IPv6 address
    host, sep, port = authority.partition(":")
    return host, port if sep else None


def _origin(scheme: str, authority: str, *, wildcard_port: bool = False) -> Origin | None:
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    parts = split_host_port(authority)
    if parts is None or not parts[0] or any(c in parts[0] for c in "/?#@ "):
        return None
    host, port_text = parts
    if port_text is None:
        return Origin(scheme, host, DEFAULT_PORTS[scheme])
    if port_text == "*" and wildcard_port:
        return Origin(scheme, host, ANY_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return Origin(scheme, host, int(port_text))


def parse_origin(value: str, *, wildcard_port: bool = False) -> Origin | None:
    """An ``Origin`` header value (or a configured origin) as an Origin; None for ``null`` and junk."""
    scheme, sep, rest = value.strip().partition("://")
    if not sep:
        return None
    rest = rest[:-1] if rest.endswith("/") else rest
    if "/" in rest:
        return None
    return _origin(scheme, rest, wildcard_port=wildcard_port)


def request_origin(scheme: str, host_header: str) -> Origin | None:
    """The origin a browser shows for a page of this server reached through ``host_header``."""
    return _origin("https" if scheme in ("https", "wss") else "http", host_header)


class OriginPatterns:
    """Origins a user listed (``--cors-origins``) plus the loopback defaults: exact origins,
    ``scheme://host:*`` for any port, ``*`` for every origin and ``null`` for opaque ones — the
    last two only when listed."""

    def __init__(self, listed: Iterable[str], *, loopback: bool = True) -> None:
        self.any = False
        self.null = False
        self.patterns: set[Origin] = set()
        for raw in [*(LOOPBACK_ORIGINS if loopback else ()), *listed]:
            value = raw.strip()
            if value == "*":
                self.any = True
            elif value.lower() == "null":
                self.null = True
            elif (parsed := parse_origin(value, wildcard_port=True)) is not None:
                self.patterns.add(parsed)
            else:
                raise ConfigError(
                    f"cors_origins: '{raw}' is not an origin. Write each as scheme://host[:port], "
                    "for example https://lite.koboldai.net or http://localhost:* for any port."
                )

    def allows(self, raw: str) -> bool:
        """Whether an ``Origin`` header value matches a pattern."""
        if raw.strip().lower() == "null":
            return self.null
        origin = parse_origin(raw)
        if origin is None:
            return False
        if self.any or origin in self.patterns:
            return True
        return Origin(origin.scheme, origin.host, ANY_PORT) in self.patterns

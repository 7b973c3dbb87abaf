"""Origin rules without a server: parsing, the CORS patterns (loopback defaults, --cors-origins) and
the set of compatibility routes."""

from __future__ import annotations

import pytest

from kataribe.api.origins import Origin, OriginPatterns, parse_origin, request_origin
from kataribe.api.security import is_compat_path
from kataribe.errors import ConfigError


def test_origin_parsing() -> None:
    assert parse_origin("HTTP://LocalHost:3000") == Origin("http", "localhost", 3000)
    assert parse_origin("https://lite.koboldai.net") == Origin("https", "lite.koboldai.net", 443)
    assert parse_origin("https://lite.koboldai.net/") == Origin("https", "lite.koboldai.net", 443)
    assert parse_origin("http://[::1]:5001") == Origin("http", "::1", 5001)
    for junk in ("null", "localhost:3000", "http://a:99999", "http://a:1/path", "ftp://a", "http://:80"):
        assert parse_origin(junk) is None, junk
    assert request_origin("http", "localhost") == Origin("http", "localhost", 80)
    assert request_origin("https", "[::1]:8443") == Origin("https", "::1", 8443)


def test_origin_patterns() -> None:
    defaults = OriginPatterns([])
    assert defaults.allows("http://localhost:3000") and defaults.allows("http://[::1]:1")
    assert defaults.allows("http://127.0.0.1:8000")
    for refused in ("https://localhost:3000", "http://localhost.evil.example:3000", "null", "*"):
        assert not defaults.allows(refused), refused
    assert not defaults.allows("https://lite.koboldai.net")
    listed = OriginPatterns(["https://lite.koboldai.net", "http://192.168.1.9:*"])
    assert listed.allows("https://lite.koboldai.net") and listed.allows("https://lite.koboldai.net:443")
    assert listed.allows("http://192.168.1.9:8080") and not listed.allows("http://192.168.1.10:8080")
    assert not listed.allows("http://lite.koboldai.net")
    assert OriginPatterns(["*"]).allows("https://anything.example") and not OriginPatterns(["*"]).allows(
        "null"
    )
    with pytest.raises(ConfigError) as err:
        OriginPatterns(["lite.koboldai.net"])
    assert "https://lite.koboldai.net" in err.value.message


def test_the_compatibility_routes() -> None:
    for path in ("/v1/chat/completions", "/api/v1/model", "/api/extra/generate/stream", "/api/latest/model"):
        assert is_compat_path(path), path
    for path in (
        "/health",
        "/completion",
        "/tokenize",
        "/api/tags",
        "/api/chat",
        "/api/generate",
        "/sdapi/v1/sd-models",
    ):
        assert is_compat_path(path), path
    for path in (
        "/api/chats",
        "/api/chats/1",
        "/api/characters",
        "/api/models",
        "/api/backup",
        "/api/tokenize",
    ):
        assert not is_compat_path(path), path
    for path in ("/", "/login", "/api/session", "/api/tagsx", "/v1", "/static/js/main.js"):
        assert not is_compat_path(path), path

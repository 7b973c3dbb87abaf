"""CORS over real HTTP, on the compatibility routes only: preflights (private network too) for pages
on this machine and for --cors-origins (hosted KoboldAI Lite), never for the library, models or
backups, never ``*``; with a key the preflight passes without it and the request needs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kataribe.api.app import create_app
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.errors import ConfigError
from kataribe.settings import Settings
from tests.conftest import LiveServer, own_live_server, serve

LITE = "https://lite.koboldai.net"
live = own_live_server("cors")


def preflight(
    server: LiveServer, path: str, origin: str, method: str = "POST", **extra: str
) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": method, **extra}
    return httpx.options(server.url + path, headers=headers)


def assert_cors(r: httpx.Response, origin: str) -> None:
    assert r.headers.get("access-control-allow-origin") == origin
    assert "access-control-allow-credentials" not in r.headers
    assert "Origin" in r.headers.get_list("vary")


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8000", "http://[::1]:5173"])
def test_pages_on_this_machine_pass_the_preflight(live: LiveServer, origin: str) -> None:
    r = preflight(live, "/api/v1/model", origin, "GET", **{"Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204, r.text
    assert_cors(r, origin)
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
    assert "GET" in r.headers["access-control-allow-methods"]
    got = httpx.get(
        live.url + "/api/v1/model", headers={"Origin": origin, "Content-Type": "application/json"}
    )
    assert got.status_code == 200 and got.json()["result"]
    assert_cors(got, origin)


def test_a_private_network_preflight_is_allowed(live: LiveServer) -> None:
    r = preflight(
        live,
        "/api/extra/generate/stream",
        "http://localhost:3000",
        **{
            "Access-Control-Request-Headers": "content-type,authorization",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-private-network"] == "true"
    assert set(r.headers["access-control-allow-headers"].lower().split(",")) == {
        "content-type",
        "authorization",
    }


def test_a_streamed_generation_answers_the_page(live: LiveServer) -> None:
    origin = "http://localhost:3000"
    body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 6, "stream": True}
    with httpx.stream(
        "POST", live.url + "/v1/chat/completions", json=body, headers={"Origin": origin}, timeout=60
    ) as r:
        assert r.status_code == 200
        assert_cors(r, origin)
        lines = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    chunks = [json.loads(data) for data in lines if data != "[DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.mark.parametrize(
    "path", ["/api/tags", "/api/chat", "/api/show", "/completion", "/tokenize", "/props"]
)
def test_ollama_and_llama_server_routes_answer_cors(live: LiveServer, path: str) -> None:
    r = preflight(live, path, "http://localhost:3000")
    assert r.status_code == 204
    assert_cors(r, "http://localhost:3000")


@pytest.mark.parametrize(
    "path",
    ["/api/characters", "/api/chats", "/api/models", "/api/backup", "/api/backup/restore", "/api/render"],
)
def test_the_library_models_and_backups_answer_no_cors(live: LiveServer, path: str) -> None:
    r = preflight(live, path, "http://localhost:3000")
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "origin", [LITE, "null", "https://evil.example", "http://localhost.evil.example:3000"]
)
def test_other_sites_get_no_cors_by_default(live: LiveServer, origin: str) -> None:
    r = preflight(live, "/api/v1/generate", origin)
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    post = httpx.post(
        live.url + "/api/v1/generate", json={"prompt": "hi", "max_length": 2}, headers={"Origin": origin}
    )
    assert post.status_code == 403
    assert "access-control-allow-origin" not in post.headers


@pytest.fixture(scope="module")
def lite_server(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(engine, tmp_path_factory.mktemp("lite"), cors_origins=[LITE])
    yield server
    server.stop()


def test_hosted_lite_can_connect_and_generate(lite_server: LiveServer) -> None:
    for path in ("/api/v1/model", "/api/extra/version", "/api/extra/true_max_context_length"):
        r = preflight(lite_server, path, LITE, "GET", **{"Access-Control-Request-Headers": "content-type"})
        assert r.status_code == 204, path
        got = httpx.get(lite_server.url + path, headers={"Origin": LITE})
        assert got.status_code == 200, path
        assert_cors(got, LITE)
    body = {"prompt": "Once upon a time", "max_length": 4, "max_context_length": 2048, "temperature": 0.7}
    gen = httpx.post(lite_server.url + "/api/v1/generate", json=body, headers={"Origin": LITE}, timeout=60)
    assert gen.status_code == 200 and gen.json()["results"][0]["text"]
    assert_cors(gen, LITE)


def test_a_listed_site_never_reaches_the_library_models_or_backups(lite_server: LiveServer) -> None:
    headers = {"Origin": LITE}
    for path in ("/api/characters", "/api/backup", "/api/models", "/api/chats"):
        r = httpx.get(lite_server.url + path, headers=headers)
        assert r.status_code == 403, path
        assert "access-control-allow-origin" not in r.headers
        assert preflight(lite_server, path, LITE).status_code == 403
    restore = httpx.post(
        lite_server.url + "/api/backup/restore", files={"file": ("b.zip", b"PK")}, headers=headers
    )
    assert restore.status_code == 403
    persona = httpx.post(lite_server.url + "/api/personas", json={"name": "Lite"}, headers=headers)
    assert persona.status_code == 403
    assert httpx.get(lite_server.url + "/api/personas").json() == []


@pytest.fixture(scope="module")
def keyed(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(engine, tmp_path_factory.mktemp("keyedcors"), api_key="s3cret", cors_origins=[LITE])
    yield server
    server.stop()


def test_with_a_key_the_preflight_needs_none_and_the_request_does(keyed: LiveServer) -> None:
    r = preflight(
        keyed, "/api/v1/generate", LITE, **{"Access-Control-Request-Headers": "authorization,content-type"}
    )
    assert r.status_code == 204
    assert_cors(r, LITE)
    body = {"prompt": "Hello", "max_length": 2}
    missing = httpx.post(keyed.url + "/api/v1/generate", json=body, headers={"Origin": LITE})
    assert missing.status_code == 401
    assert_cors(missing, LITE)  # the page can read why
    ok = httpx.post(
        keyed.url + "/api/v1/generate",
        json=body,
        headers={"Origin": LITE, "Authorization": "Bearer s3cret"},
        timeout=60,
    )
    assert ok.status_code == 200
    assert_cors(ok, LITE)


def test_the_browser_apps_cookie_does_not_work_for_other_pages(keyed: LiveServer) -> None:
    login = httpx.post(keyed.url + "/api/session", json={"key": "s3cret"}, headers={"Origin": keyed.url})
    assert login.status_code == 204
    cookies = dict(login.cookies)
    assert httpx.get(keyed.url + "/api/v1/model", cookies=cookies).status_code == 200
    for origin in ("http://localhost:3000", LITE):
        r = httpx.get(keyed.url + "/api/v1/model", cookies=cookies, headers={"Origin": origin})
        assert r.status_code == 401, origin


def test_a_malformed_cors_origin_stops_the_start(engine: EmbeddedEngine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(Settings(data_dir=tmp_path, cors_origins=["lite.koboldai.net"]), engine)
    assert "scheme://host" in err.value.message


def test_ollama_clients_read_why_a_request_was_refused(keyed: LiveServer) -> None:
    """The official ollama client shows ``error`` as the message: it must be a string there."""
    import ollama

    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=keyed.url).list()
    assert err.value.status_code == 401 and "API key" in err.value.error
    other = httpx.post(keyed.url + "/api/generate", json={}, headers={"Origin": "http://evil.example"})
    assert other.status_code == 403 and isinstance(other.json()["error"], str)
    v1 = httpx.get(keyed.url + "/v1/models")  # the OpenAI routes keep OpenAI's shape
    assert v1.status_code == 401 and v1.json()["error"]["type"] == "authentication_error"

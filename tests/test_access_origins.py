"""The Origin check over real HTTP: whole origins (scheme, host, port), per route family, and
``--allowed-hosts '*'`` keeping it on (and requiring a key)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kataribe.api.app import create_app
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.errors import ConfigError
from kataribe.settings import Settings
from tests.conftest import VENV_BIN, LiveServer, free_port, own_live_server, serve

live = own_live_server("origins")


def persona_names(live: LiveServer) -> list[str]:
    return [p["name"] for p in httpx.get(live.url + "/api/personas").json()]


def test_a_page_on_another_local_port_cannot_write_to_the_library(live: LiveServer) -> None:
    other = f"http://127.0.0.1:{free_port()}"  # another dev server, a SillyTavern at :8000
    refused = httpx.post(
        live.url + "/api/personas", json={"name": "From elsewhere"}, headers={"Origin": other}
    )
    assert refused.status_code == 403
    assert other in refused.json()["error"]["message"]
    assert "From elsewhere" not in persona_names(live)
    own = httpx.post(live.url + "/api/personas", json={"name": "From the app"}, headers={"Origin": live.url})
    assert own.status_code == 201
    assert "From the app" in persona_names(live)


@pytest.mark.parametrize(
    "origin",
    [
        "https://127.0.0.1:{port}",  # the scheme differs
        "http://127.0.0.1:{other}",  # the port differs
        "http://127.0.0.1",  # port 80
        "http://localhost:{port}",  # the host differs from the Host asked for
        "null",
        "http://127.0.0.1:{port}.evil.example",
    ],
)
def test_the_whole_origin_must_be_this_server(live: LiveServer, origin: str) -> None:
    value = origin.format(port=live.port, other=live.port + 1)
    r = httpx.post(live.url + "/api/personas", json={"name": "x"}, headers={"Origin": value})
    assert r.status_code == 403, value


def test_the_host_the_browser_used_is_its_own_origin(live: LiveServer) -> None:
    headers = {"Host": f"localhost:{live.port}", "Origin": f"http://localhost:{live.port}"}
    assert (
        httpx.post(live.url + "/api/personas", json={"name": "Via localhost"}, headers=headers).status_code
        == 201
    )


def test_pages_elsewhere_cannot_read_the_library_models_or_backups(live: LiveServer) -> None:
    for path in ("/api/characters", "/api/backup", "/api/models", "/api/chats"):
        r = httpx.get(live.url + path, headers={"Origin": "http://localhost:3000"})
        assert r.status_code == 403, path
        assert "access-control-allow-origin" not in r.headers, path
    assert httpx.get(live.url + "/api/characters").status_code == 200  # programs send no Origin


@pytest.fixture(scope="module")
def any_host(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(engine, tmp_path_factory.mktemp("anyhost"), allowed_hosts=["*"], api_key="k3y")
    yield server
    server.stop()


def test_allowed_hosts_star_keeps_the_origin_check(any_host: LiveServer) -> None:
    key = {"Authorization": "Bearer k3y"}
    foreign = {**key, "Origin": "http://attacker.example"}
    assert httpx.post(any_host.url + "/api/personas", json={"name": "x"}, headers=foreign).status_code == 403
    assert httpx.get(any_host.url + "/api/characters", headers=foreign).status_code == 403
    # any Host is accepted, and a page of this server under that name is its own origin
    named = {**key, "Host": "kataribe.home:5001", "Origin": "http://kataribe.home:5001"}
    assert httpx.post(any_host.url + "/api/personas", json={"name": "Home"}, headers=named).status_code == 201
    mixed = {**key, "Host": "kataribe.home:5001", "Origin": "http://kataribe.home:5002"}
    assert httpx.post(any_host.url + "/api/personas", json={"name": "x"}, headers=mixed).status_code == 403


def test_allowed_hosts_star_requires_a_key(engine: EmbeddedEngine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(Settings(data_dir=tmp_path, allowed_hosts=["*"]), engine)
    assert "--allowed-hosts '*'" in err.value.message and "API key" in err.value.message


def test_cli_refuses_allowed_hosts_star_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATARIBE_")}
    proc = subprocess.run(
        [str(VENV_BIN / "kataribe"), "serve", "--allowed-hosts", "*", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "KATARIBE_DATA_DIR": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "an API key is required" in " ".join(proc.stderr.split())

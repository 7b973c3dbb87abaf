"""Exposure rules: loopback by default, a key beyond it, Host allow-list against DNS rebinding."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kataribe.api.app import create_app
from kataribe.api.security import allowed_host_names, host_without_port
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.errors import ConfigError
from kataribe.settings import Settings
from tests.conftest import VENV_BIN, LiveServer, free_port


def test_non_loopback_without_key_refuses_to_start_app(engine: EmbeddedEngine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(Settings(data_dir=tmp_path, host="0.0.0.0"), engine)
    assert "--api-key" in err.value.message


def test_cli_serve_on_all_interfaces_without_key_exits_with_a_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "kataribe"), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={"KATARIBE_DATA_DIR": str(tmp_path), "PATH": ""},
    )
    assert proc.returncode == 2
    assert "API key is required" in proc.stderr


@pytest.fixture(scope="module")
def keyed_server(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("keyed"), port=port, api_key="s3cret", allowed_hosts=["kataribe.lan"]
    )
    live = LiveServer(create_app(settings, engine), port).start()  # start() accepts the 401 as "up"
    yield live
    live.stop()


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/api/v1/model", "/api/extra/version", "/docs"])
def test_every_route_needs_the_key(keyed_server: LiveServer, path: str) -> None:
    assert httpx.get(keyed_server.url + path).status_code == 401
    assert httpx.get(keyed_server.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(keyed_server.url + path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(keyed_server.url + path, headers={"X-Api-Key": "s3cret"}).status_code == 200


def test_post_routes_need_the_key(keyed_server: LiveServer) -> None:
    body = {"prompt": "hi", "max_length": 2}
    assert httpx.post(keyed_server.url + "/api/v1/generate", json=body).status_code == 401
    ok = httpx.post(
        keyed_server.url + "/api/v1/generate",
        json=body,
        headers={"Authorization": "Bearer s3cret"},
        timeout=60,
    )
    assert ok.status_code == 200


def test_foreign_host_header_is_refused(server: LiveServer) -> None:
    r = httpx.get(server.url + "/health", headers={"Host": "attacker.example:5001"})
    assert r.status_code == 403
    assert httpx.get(server.url + "/health", headers={"Host": "localhost:5001"}).status_code == 200


def test_allowed_hosts_extend_the_list(keyed_server: LiveServer) -> None:
    key = {"Authorization": "Bearer s3cret"}
    assert httpx.get(keyed_server.url + "/health", headers={**key, "Host": "kataribe.lan"}).status_code == 200
    assert httpx.get(keyed_server.url + "/health", headers={**key, "Host": "evil.lan"}).status_code == 403


def test_host_parsing() -> None:
    assert host_without_port("LOCALHOST:5001") == "localhost"
    assert host_without_port("[::1]:5001") == "::1"
    assert host_without_port("::1") == "::1"
    assert allowed_host_names("127.0.0.1", ["*"]) is None
    names = allowed_host_names("192.168.1.5", [])
    assert names is not None and "192.168.1.5" in names and "localhost" in names


def test_default_bind_is_loopback() -> None:
    assert Settings().host == "127.0.0.1"
    assert sys.version_info >= (3, 11)

"""The browser app with an API key over real HTTP: the log-in page, the session cookie (HttpOnly,
SameSite=Strict, Secure over https, never the key), log-out, the wrong-key throttle; and the key
read from a file or the environment so it stays out of ``ps``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.errors import ConfigError
from kataribe.settings import Settings, load_settings
from tests.conftest import VENV_BIN, LiveServer, free_port, serve, wait_http

KEY = "correct horse battery"


@pytest.fixture(scope="module")
def keyed(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve(engine, tmp_path_factory.mktemp("login"), api_key=KEY)
    yield server
    server.stop()


def log_in(server: LiveServer, key: str = KEY, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + "/api/session", json={"key": key}, headers={"Origin": server.url, **headers}
    )


def test_the_app_page_sends_the_browser_to_the_log_in_page(keyed: LiveServer) -> None:
    r = httpx.get(keyed.url + "/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    page = httpx.get(keyed.url + "/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/login.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/js/login.js", "/static/js/i18n.js", "/static/app.css", "/static/i18n/ja.json"):
        assert httpx.get(keyed.url + asset).status_code == 200, asset
    for closed in ("/static/js/main.js", "/api/characters", "/api/backup", "/v1/models"):
        assert httpx.get(keyed.url + closed).status_code == 401, closed
    assert httpx.get(keyed.url + "/api/session").json() == {"key_required": True, "logged_in": False}


def test_the_key_opens_a_session_cookie_that_is_not_the_key(keyed: LiveServer) -> None:
    wrong = log_in(keyed, "guess")
    assert wrong.status_code == 401 and "Wrong key" in wrong.json()["error"]["message"]
    assert "set-cookie" not in wrong.headers
    ok = log_in(keyed)
    assert ok.status_code == 204
    cookie = ok.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    name, _, token = cookie.split(";")[0].partition("=")
    assert name == f"kataribe_session_{keyed.port}"
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    assert len(token) >= 40 and KEY not in token and KEY.replace(" ", "") not in token
    cookies = {name: token}
    assert httpx.get(keyed.url + "/", cookies=cookies).status_code == 200
    assert httpx.get(keyed.url + "/api/characters", cookies=cookies).status_code == 200
    assert httpx.get(keyed.url + "/api/session", cookies=cookies).json()["logged_in"] is True
    own = httpx.post(
        keyed.url + "/api/personas", json={"name": "Mine"}, cookies=cookies, headers={"Origin": keyed.url}
    )
    assert own.status_code == 201
    # the same cookie from another page on this machine (same site, other port) acts on nothing
    other = {"Origin": f"http://127.0.0.1:{keyed.port + 1}"}
    assert (
        httpx.post(
            keyed.url + "/api/personas", json={"name": "x"}, cookies=cookies, headers=other
        ).status_code
        == 403
    )
    assert httpx.get(keyed.url + "/login", cookies=cookies).headers.get("location") == "/"


def test_api_clients_keep_using_the_header(keyed: LiveServer) -> None:
    assert httpx.get(keyed.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(keyed.url + "/", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_log_out_ends_the_session(keyed: LiveServer) -> None:
    name, _, token = log_in(keyed).headers["set-cookie"].split(";")[0].partition("=")
    cookies = {name: token}
    assert httpx.get(keyed.url + "/api/characters", cookies=cookies).status_code == 200
    out = httpx.delete(keyed.url + "/api/session", cookies=cookies, headers={"Origin": keyed.url})
    assert out.status_code == 204 and "max-age=0" in out.headers["set-cookie"].lower()
    assert httpx.get(keyed.url + "/api/characters", cookies=cookies).status_code == 401
    assert httpx.get(keyed.url + "/", cookies=cookies).status_code == 303


def test_over_https_the_cookie_is_secure(keyed: LiveServer) -> None:
    # a TLS proxy on this machine says so with X-Forwarded-Proto (uvicorn trusts 127.0.0.1)
    proxied = f"https://127.0.0.1:{keyed.port}"
    r = log_in(keyed, **{"X-Forwarded-Proto": "https", "Origin": proxied})
    assert r.status_code == 204
    assert "secure" in [part.strip().lower() for part in r.headers["set-cookie"].split(";")]


def test_a_cross_site_page_cannot_log_the_browser_in(keyed: LiveServer) -> None:
    r = httpx.post(keyed.url + "/api/session", json={"key": KEY}, headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_wrong_keys_are_throttled(engine: EmbeddedEngine, tmp_path: Path) -> None:
    server = serve(engine, tmp_path, api_key=KEY)
    try:
        codes = [log_in(server, f"guess {i}").status_code for i in range(10)]
        assert codes == [401] * 10
        blocked = log_in(server)  # even the right key waits now
        assert blocked.status_code == 429 and "Try again" in blocked.json()["error"]["message"]
    finally:
        server.stop()


def test_without_a_key_there_is_no_log_in(engine: EmbeddedEngine, tmp_path: Path) -> None:
    server = serve(engine, tmp_path)
    try:
        assert httpx.get(server.url + "/").status_code == 200
        assert httpx.get(server.url + "/login").headers["location"] == "/"
        assert httpx.get(server.url + "/api/session").json() == {"key_required": False, "logged_in": False}
        assert log_in(server).status_code == 400
    finally:
        server.stop()


def test_the_key_file_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    assert Settings(api_key_file=key_file).api_key == KEY
    monkeypatch.setenv("KATARIBE_API_KEY_FILE", str(key_file))
    assert load_settings().api_key == KEY
    key_file.write_text("\n")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "empty" in err.value.message
    with pytest.raises(ConfigError) as err:
        load_settings(api_key_file=tmp_path / "missing")
    assert "cannot read" in err.value.message
    key_file.write_text(KEY)
    with pytest.raises(ConfigError) as err:
        load_settings(api_key="other")
    assert "not both" in err.value.message


def _serve_keyed(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    """``kataribe serve`` with the key given by ``args``/``env``: it is required, it works, and it
    is nowhere in the process's command line."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("KATARIBE_")}
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "kataribe"),
            "serve",
            "--port",
            str(port),
            "--threads",
            "2",
            "--ctx-size",
            "512",
            *args,
        ],
        env={**base, "KATARIBE_DATA_DIR": str(tmp_path), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc=proc)
        assert httpx.get(url + "/health").status_code == 401
        assert httpx.get(url + "/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert KEY.encode() not in cmdline
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_reads_the_key_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "kataribe.key"
    key_file.write_text(KEY + "\n")
    _serve_keyed(tmp_path, ["--api-key-file", str(key_file)], {})


def test_serve_reads_the_key_from_the_environment(tmp_path: Path) -> None:
    _serve_keyed(tmp_path, [], {"KATARIBE_API_KEY": KEY})


def test_serve_reads_a_key_file_saved_by_windows_notepad(tmp_path: Path) -> None:
    # Notepad's "UTF-8 with BOM" and CRLF: the BOM is no part of the key
    key_file = tmp_path / "kataribe.key"
    key_file.write_bytes(b"\xef\xbb\xbf" + KEY.encode() + b"\r\n")
    assert Settings(api_key_file=key_file).api_key == KEY
    _serve_keyed(tmp_path, ["--api-key-file", str(key_file)], {})

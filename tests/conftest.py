"""Shared fixtures: the real embedded model, a live server on a free port, fixture files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kataribe.api.app import create_app
from kataribe.engine.default_model import default_model_path
from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine
from kataribe.services.context import RoleplayContext
from kataribe.settings import Settings
from kataribe.store.db import Database, sqlite_url
from tests.libraries import open_library
from tests.pg import PostgresServer

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        if os.environ.get("KATARIBE_REQUIRE_FIXTURES") == "1":
            pytest.fail(f"KATARIBE_REQUIRE_FIXTURES=1 but {FIXTURES} is missing")
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (tests/pg.py); skipped where PostgreSQL is not installed, unless
    KATARIBE_REQUIRE_POSTGRES=1 (scripts/test installs it and sets that)."""
    server = PostgresServer.start()
    if server is None:
        if os.environ.get("KATARIBE_REQUIRE_POSTGRES") == "1":
            pytest.fail("KATARIBE_REQUIRE_POSTGRES=1 but PostgreSQL's initdb/pg_ctl were not found")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind Kataribe supports: SQLite in tmp_path, a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def any_db(database_url: str) -> Iterator[Database]:
    """A migrated, empty database: each test using it runs on SQLite and on PostgreSQL."""
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def ctx(tmp_path: Path, database_url: str) -> Iterator[RoleplayContext]:
    """A library without a model (tests/libraries.py) on SQLite and on PostgreSQL."""
    library = open_library(tmp_path / "library", database_url)
    yield library
    library.close()


@pytest.fixture
def empty(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[RoleplayContext]:
    """A second, empty library on the same kind of database as ``ctx``."""
    if database_url.startswith("sqlite"):
        url = sqlite_url(tmp_path / "restored")
    else:
        url = request.getfixturevalue("postgres").new_database()
    library = open_library(tmp_path / "restored", url)
    yield library
    library.close()


@pytest.fixture(scope="session")
def model_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def engine(model_path: Path) -> Iterator[EmbeddedEngine]:
    eng = EmbeddedEngine(EmbeddedConfig(model_path=model_path, n_ctx=4096, n_threads=2, kv_cache_ram_mb=256))
    yield eng
    eng.close()


class LiveServer:
    def __init__(self, app: object, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        wait_http(self.url + "/health")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def server(engine: EmbeddedEngine, data_dir: Path) -> Iterator[LiveServer]:
    """A live Kataribe server (in this process, on a free port) over the shared engine."""
    port = free_port()
    settings = Settings(data_dir=data_dir, port=port)
    live = LiveServer(create_app(settings, engine), port).start()
    yield live
    live.stop()


def serve(engine: object, data_dir: Path, **settings: object) -> LiveServer:
    """A live server on a free port over ``engine`` (tests stop it themselves)."""
    port = free_port()
    app = create_app(Settings(data_dir=data_dir, port=port, **settings), engine)  # type: ignore[arg-type]
    return LiveServer(app, port).start()


def own_live_server(library: str, **settings: object) -> Any:
    """A module-scoped ``live`` fixture: a live server over the shared engine with its own library
    (a fresh data dir named ``library``), so a module sees only what it made."""

    @pytest.fixture(scope="module", name="live")
    def live(engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
        server = serve(engine, tmp_path_factory.mktemp(library), **settings)
        yield server
        server.stop()

    return live


def api_client(name: str, timeout: float = 60) -> Any:
    """A module-scoped fixture called ``name``: an HTTP client for the module's ``live`` server's /api."""

    @pytest.fixture(scope="module", name=name)
    def client(live: LiveServer) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=live.url + "/api", timeout=timeout) as opened:
            yield opened

    return client


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One Debian Chromium for every browser test, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's chromium (scripts/test does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: object) -> Iterator[object]:
    """A tab in a fresh browser context (tests/browser.py browser_tab); modules may define their own."""
    from tests.browser import browser_tab

    with browser_tab(browser) as tab:
        yield tab


@pytest.fixture(autouse=True)
def _isolated_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Tests never read or write the user's real data dir or config.
    monkeypatch.setenv("KATARIBE_DATA_DIR", str(tmp_path / "kataribe-data"))

"""The browser app's visual-novel mode and models page, on a live server with the real model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from kataribe.api.app import create_app
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.settings import Settings
from tests.browser import ARTIFACTS
from tests.conftest import LiveServer, free_port
from tests.fakehub import FakeHub
from tests.test_api_models import tiny_gguf
from tests.test_expressions import seraphina_sprites_zip

REPO = "kataribe-test/tiny-GGUF"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    tiny = tiny_gguf(tmp_path_factory.mktemp("ui-hub") / "tiny.gguf")
    fake = FakeHub().start()
    fake.add_repo(REPO, {"tiny-model.Q8_0.gguf": tiny, "README.md": b"# tiny"}, downloads=5, likes=1)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def live(
    engine: EmbeddedEngine, hub: FakeHub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    port = free_port()
    settings = Settings(data_dir=tmp_path_factory.mktemp("ui-vn"), port=port, hf_endpoint=hub.url)
    server = LiveServer(create_app(settings, engine), port).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(live: LiveServer, browser: Browser) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == []


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.locator("body[data-ready=true]").wait_for(timeout=20_000)


def test_vn_mode_swaps_the_sprite_after_a_reply(page: Page, live: LiveServer, fixtures_dir: Path) -> None:
    api = httpx.Client(base_url=live.url + "/api", timeout=120)
    png = (fixtures_dir / "sillytavern" / "Seraphina.png").read_bytes()
    character: dict[str, Any] = api.post(
        "/characters/import", files={"file": ("Seraphina.png", png, "image/png")}
    ).json()
    sprites = api.post(
        f"/characters/{character['id']}/sprites/zip",
        files={"file": ("s.zip", seraphina_sprites_zip(fixtures_dir), "application/zip")},
    ).json()
    labels = {s["label"] for s in sprites}
    chat = api.post("/chats", json={"character_id": character["id"]}).json()
    api.patch(f"/chats/{chat['id']}", json={"settings": {"max_tokens": 12}})

    open_page(page, f"{live.url}/#/chat/{chat['id']}")
    page.locator("#vn-toggle").click()
    sprite = page.locator("#vn-stage img.vn-sprite")
    expect(sprite).to_have_attribute("data-label", "neutral", timeout=10_000)
    expect(page.locator("#vn-text")).not_to_be_empty()

    page.locator("#composer").fill("Hello! I brought you flowers, I'm so happy to see you!")
    page.locator("#send").click()
    deadline = time.monotonic() + 60
    classified = None
    while classified is None and time.monotonic() < deadline:
        last = api.get(f"/chats/{chat['id']}").json()["messages"][-1]
        if last["role"] == "assistant" and last["id"] != chat["head_message_id"]:
            classified = last["meta"].get("expression")
        time.sleep(0.3)
    assert classified in labels
    expect(sprite).to_have_attribute("data-label", classified, timeout=10_000)
    src = sprite.get_attribute("src") or ""
    assert src.startswith("/api/assets/") and src.removeprefix("/api/assets/") in {
        s["asset"] for s in sprites
    }
    page.screenshot(path=str(ARTIFACTS / "vn.png"))

    page.locator("#vn-toggle").click()
    expect(page.locator("#vn-stage")).to_have_count(0)


def test_models_page_downloads_from_the_hub_and_saves_a_preset(page: Page, live: LiveServer) -> None:
    open_page(page, f"{live.url}/#/models")
    expect(page.locator("#engine-current .engine-model")).not_to_be_empty(timeout=10_000)
    expect(page.locator("#model-library tr")).to_have_count(1)

    page.locator("#hub-query").fill("tiny")
    page.locator("#hub-search").click()
    repo = page.locator(".hub-repo", has_text=REPO)
    expect(repo).to_have_count(1)
    repo.locator("button.open-files").click()
    row = page.locator("tr.hub-file", has_text="tiny-model")
    expect(row).to_have_count(1)
    expect(row.locator(".tag")).not_to_be_empty()
    row.locator("button.download").click()
    expect(page.locator(".download-row.done")).to_have_count(1, timeout=30_000)
    bar = page.locator(".download-row.done progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")
    expect(page.locator("#model-library tr")).to_have_count(2)
    expect(page.locator("#model-library")).to_contain_text("Q8_0")

    page.locator("#sampler-preset-name").fill("<img src=x onerror=alert(1)> Cold")
    page.locator("#preset-temperature").fill("0.2")
    page.locator("#preset-top_k").fill("20")
    page.locator("#create-sampler-preset").click()
    preset = page.locator("#sampler-presets .preset")
    expect(preset.locator(".preset-name")).to_have_text("<img src=x onerror=alert(1)> Cold")
    expect(preset.locator(".preset-summary")).to_contain_text("temperature=0.2")
    assert page.locator("#sampler-presets img").count() == 0
    page.screenshot(path=str(ARTIFACTS / "models.png"), full_page=True)

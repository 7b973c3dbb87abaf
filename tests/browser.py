"""Playwright on Debian's Chromium (never `playwright install`): shared launch settings for UI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("KATARIBE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def shot(page: Any, name: str) -> None:
    """A full-page screenshot into test-artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@contextmanager
def browser_tab(
    browser: Any, *, locale: str = "en-US", bypass_csp: bool = False, timeout_ms: int = 20_000
) -> Iterator[Any]:
    """A tab in a fresh browser context (1280×900); the test fails if the page throws an error.

    ``bypass_csp`` only for tests that must run their own script in the page (building a drop
    event) or that check what stands between hostile text and the DOM without the CSP's help.
    """
    ctx = browser.new_context(
        locale=locale, viewport={"width": 1280, "height": 900}, accept_downloads=True, bypass_csp=bypass_csp
    )
    ctx.set_default_timeout(timeout_ms)
    tab = ctx.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    try:
        yield tab
    finally:
        ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def open_app(page: Any, base_url: str, route: str) -> None:
    """Opens the app at ``route`` (e.g. ``#/characters``) and waits until it has rendered."""
    page.goto(f"{base_url}/{route}")
    page.locator("body[data-ready=true]").wait_for()

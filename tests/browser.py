"""Playwright on Debian's Chromium (never `playwright install`): shared launch settings for UI tests."""

from __future__ import annotations

import os
from pathlib import Path

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

"""Lorebooks over HTTP: SillyTavern's real Eldoria book in, and out again in every export format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import api_client, own_live_server

live = own_live_server("api-lorebooks")
api = api_client("api")
FORMATS = ["sillytavern", "character_book", "lorebook_v3", "risu", "novelai"]


@pytest.fixture(scope="module")
def eldoria(api: httpx.Client, fixtures_dir: Path) -> dict[str, Any]:
    data = (fixtures_dir / "sillytavern" / "Eldoria.json").read_bytes()
    r = api.post("/lorebooks/import", files={"file": ("Eldoria.json", data, "application/json")})
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_export_downloads_and_imports_back_with_every_entry(
    api: httpx.Client, eldoria: dict[str, Any], fmt: str
) -> None:
    r = api.get(f"/lorebooks/{eldoria['id']}/export", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "Eldoria" in r.headers["content-disposition"]
    again = api.post(
        "/lorebooks/import", files={"file": (f"eldoria-{fmt}.json", r.content, "application/json")}
    )
    assert again.status_code == 201, again.text
    assert again.json()["entry_count"] == eldoria["entry_count"] > 0


def test_the_sillytavern_export_is_the_file_that_came_in(
    api: httpx.Client, eldoria: dict[str, Any], fixtures_dir: Path
) -> None:
    original = json.loads((fixtures_dir / "sillytavern" / "Eldoria.json").read_text("utf-8"))
    exported = api.get(f"/lorebooks/{eldoria['id']}/export", params={"format": "sillytavern"}).json()
    assert exported == original


def test_an_unknown_book_or_format_is_refused(api: httpx.Client, eldoria: dict[str, Any]) -> None:
    assert api.get("/lorebooks/999999/export").status_code == 404
    assert api.get(f"/lorebooks/{eldoria['id']}/export", params={"format": "docx"}).status_code in (400, 422)

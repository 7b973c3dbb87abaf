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


UNSAFE = "/(a{1,100}){1,100}$/"  # RE2 refuses it (too large for linear time); re would backtrack for ages


def test_check_keys_says_which_regexes_are_refused_and_which_run_time_limited(api: httpx.Client) -> None:
    keys = [UNSAFE, "/(?<=red )dragon/", "/([a-z]/", "dragon", "/(.|\\s)*QQQ/"]
    r = api.post("/lorebooks/check-keys", json={"keys": keys})
    assert r.status_code == 200, r.text
    checks = {c["key"]: c for c in r.json()["keys"]}
    assert "linear time" in checks[UNSAFE]["refused"]
    assert checks["/(?<=red )dragon/"] == {"key": "/(?<=red )dragon/", "refused": None, "time_limited": True}
    assert "not a valid regular expression" in checks["/([a-z]/"]["refused"]
    assert checks["dragon"]["refused"] is None and not checks["dragon"]["time_limited"]
    assert checks["/(.|\\s)*QQQ/"]["refused"] is None  # runs on RE2, in linear time


def test_the_test_box_and_the_dry_run_show_why_a_regex_key_was_not_used(api: httpx.Client) -> None:
    entry = {"uid": 5, "keys": [UNSAFE], "content": "Never seen.", "comment": "unsafe"}
    book = api.post("/lorebooks", json={"name": "Unsafe", "data": {"entries": [entry]}}).json()
    tested = api.post(f"/lorebooks/{book['id']}/test", json={"text": "a" * 80})
    assert tested.status_code == 200, tested.text
    [skip] = tested.json()["skipped"]
    assert skip["uid"] == 5 and skip["reason"] == "regex_key"
    assert UNSAFE in skip["detail"] and "linear time" in skip["detail"]

    character = api.post("/characters", json={"name": "Ann", "first_mes": "Hello."}).json()
    api.post(f"/lorebooks/{book['id']}/links", json={"character_id": character["id"]})
    chat = api.post("/chats", json={"character_id": character["id"]}).json()
    api.post(f"/chats/{chat['id']}/messages", json={"text": "a" * 80, "generate": False})
    dry = api.get(f"/chats/{chat['id']}/prompt").json()
    assert [(s["uid"], s["reason"]) for s in dry["lore_skipped"]] == [(5, "regex_key")]
    assert "linear time" in dry["lore_skipped"][0]["detail"]

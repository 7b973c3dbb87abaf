"""Character favorites (SillyTavern's `fav`) and where a lorebook is linked, through the REST API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import api_client, own_live_server

live = own_live_server("api-favorites-links")
api = api_client("api")


def import_json(api: httpx.Client, card: dict[str, Any], filename: str = "card.json") -> dict[str, Any]:
    r = api.post(
        "/characters/import", files={"file": (filename, json.dumps(card).encode(), "application/json")}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def v2_card(name: str, fav: object) -> dict[str, Any]:
    """A V2 card as SillyTavern writes it: the flag in data.extensions, mirrored at the top."""
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "name": name,
        "fav": fav,
        "data": {"name": name, "first_mes": "Hello.", "extensions": {"fav": fav, "talkativeness": "0.5"}},
    }


def listed(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/characters", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def export_v2(api: httpx.Client, character_id: int) -> dict[str, Any]:
    r = api.get(f"/characters/{character_id}/export", params={"format": "json_v2"})
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- favorites --


def test_sillytavern_card_with_fav_false_imports_unfavorited_and_put_writes_fav_into_the_export(
    api: httpx.Client, fixtures_dir: Path
) -> None:
    png = (fixtures_dir / "sillytavern" / "Seraphina.png").read_bytes()
    r = api.post("/characters/import", files={"file": ("Seraphina.png", png, "image/png")})
    assert r.status_code == 201, r.text
    seraphina = r.json()
    assert seraphina["card"]["data"]["extensions"]["fav"] is False  # what SillyTavern shipped
    assert seraphina["favorite"] is False

    r = api.put(f"/characters/{seraphina['id']}/favorite", json={"favorite": True})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == seraphina["id"] and r.json()["favorite"] is True
    assert api.get(f"/characters/{seraphina['id']}").json()["favorite"] is True

    exported = export_v2(api, seraphina["id"])
    assert exported["data"]["extensions"]["fav"] is True
    assert exported["fav"] is True  # SillyTavern's top-level mirror
    assert exported["data"]["extensions"]["world"] == "Eldoria"  # the other extensions are kept
    v3 = api.get(f"/characters/{seraphina['id']}/export", params={"format": "json"}).json()
    assert v3["data"]["extensions"]["fav"] is True

    r = api.put(f"/characters/{seraphina['id']}/favorite", json={"favorite": False})
    assert r.status_code == 200 and r.json()["favorite"] is False
    exported = export_v2(api, seraphina["id"])
    assert exported["data"]["extensions"]["fav"] is False and exported["fav"] is False


@pytest.mark.parametrize("fav", [True, "true", "TRUE"])
def test_card_with_fav_true_or_the_string_true_imports_as_a_favorite(api: httpx.Client, fav: object) -> None:
    made = import_json(api, v2_card(f"Fav {fav!r}", fav))
    assert made["favorite"] is True
    assert made["id"] in {c["id"] for c in listed(api, favorite="true")}


@pytest.mark.parametrize("fav", [False, "false", None, 1])
def test_card_without_a_true_fav_imports_unfavorited(api: httpx.Client, fav: object) -> None:
    made = import_json(api, v2_card(f"Nofav {fav!r}", fav))
    assert made["favorite"] is False


def test_favorite_follows_the_card_on_create_and_on_patch(api: httpx.Client) -> None:
    r = api.post("/characters", json={"name": "Created Fav", "extensions": {"fav": True}})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["favorite"] is True
    r = api.patch(f"/characters/{made['id']}", json={"extensions": {"fav": False}})
    assert r.status_code == 200 and r.json()["favorite"] is False
    r = api.patch(f"/characters/{made['id']}", json={"extensions": {"fav": "true"}})
    assert r.status_code == 200 and r.json()["favorite"] is True
    r = api.patch(f"/characters/{made['id']}", json={"description": "Unrelated edit."})
    assert r.status_code == 200 and r.json()["favorite"] is True  # an edit elsewhere keeps the flag


def test_list_puts_favorites_first_and_filters_by_favorite(api: httpx.Client) -> None:
    amy = api.post("/characters", json={"name": "Aaa Ordertest"}).json()
    zed = api.post("/characters", json={"name": "Zzz Ordertest"}).json()
    mid = api.post("/characters", json={"name": "Mmm Ordertest"}).json()
    assert [c["id"] for c in listed(api, q="ordertest")] == [amy["id"], mid["id"], zed["id"]]

    assert api.put(f"/characters/{zed['id']}/favorite", json={"favorite": True}).status_code == 200
    assert [c["id"] for c in listed(api, q="ordertest")] == [zed["id"], amy["id"], mid["id"]]
    everyone = listed(api)
    flags = [c["favorite"] for c in everyone]
    assert flags == sorted(flags, reverse=True)  # every favorite before every other character

    favorites = listed(api, favorite="true")
    assert favorites and all(c["favorite"] is True for c in favorites)
    assert zed["id"] in {c["id"] for c in favorites}
    assert not {amy["id"], mid["id"]} & {c["id"] for c in favorites}
    others = listed(api, favorite="false")
    assert all(c["favorite"] is False for c in others)
    assert {amy["id"], mid["id"]} <= {c["id"] for c in others}
    assert len(favorites) + len(others) == len(everyone)

    assert api.put(f"/characters/{zed['id']}/favorite", json={"favorite": False}).status_code == 200
    assert [c["id"] for c in listed(api, q="ordertest")] == [amy["id"], mid["id"], zed["id"]]
    assert zed["id"] not in {c["id"] for c in listed(api, favorite="true")}


def test_favorite_of_an_unknown_character_is_404_and_a_bad_body_is_400(api: httpx.Client) -> None:
    r = api.put("/characters/999999/favorite", json={"favorite": True})
    assert r.status_code == 404, r.text
    made = api.post("/characters", json={"name": "Bad Body"}).json()
    for body in ({}, {"favorite": "maybe"}, {"favorite": True, "extra": 1}):
        r = api.put(f"/characters/{made['id']}/favorite", json=body)
        assert r.status_code == 400, (body, r.text)
    assert api.get(f"/characters/{made['id']}").json()["favorite"] is False


# -- lorebook links --


def test_links_list_characters_chats_and_personas_and_unlink_removes_one(api: httpx.Client) -> None:
    book = api.post("/lorebooks", json={"name": "Linked Lore"}).json()
    other_book = api.post("/lorebooks", json={"name": "Other Lore"}).json()
    empty = api.get(f"/lorebooks/{book['id']}/links")
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"is_global": False, "characters": [], "chats": [], "personas": []}

    bea = api.post("/characters", json={"name": "Bea Linktest", "first_mes": "Hi."}).json()
    abe = api.post("/characters", json={"name": "Abe Linktest", "first_mes": "Hi."}).json()
    chat = api.post("/chats", json={"character_id": bea["id"], "title": "Linked chat"}).json()
    persona = api.post("/personas", json={"name": "Link Persona"}).json()
    for body in ({"character_id": bea["id"]}, {"character_id": abe["id"]}, {"chat_id": chat["id"]}):
        r = api.post(f"/lorebooks/{book['id']}/links", json=body)
        assert r.status_code == 200, r.text
    api.post(f"/lorebooks/{other_book['id']}/links", json={"character_id": bea["id"]})
    r = api.patch(f"/personas/{persona['id']}", json={"lorebook_id": book["id"]})
    assert r.status_code == 200 and r.json()["lorebook_id"] == book["id"]

    links = api.get(f"/lorebooks/{book['id']}/links").json()
    assert links == {
        "is_global": False,
        "characters": [
            {"id": abe["id"], "name": "Abe Linktest"},  # sorted by name
            {"id": bea["id"], "name": "Bea Linktest"},
        ],
        "chats": [{"id": chat["id"], "title": "Linked chat"}],
        "personas": [{"id": persona["id"], "name": "Link Persona"}],
    }
    assert api.get(f"/lorebooks/{other_book['id']}/links").json()["characters"] == [
        {"id": bea["id"], "name": "Bea Linktest"}
    ]

    r = api.post(f"/lorebooks/{book['id']}/links", json={"character_id": bea["id"], "linked": False})
    assert r.status_code == 200, r.text
    r = api.post(f"/lorebooks/{book['id']}/links", json={"chat_id": chat["id"], "linked": False})
    assert r.status_code == 200, r.text
    api.patch(f"/personas/{persona['id']}", json={"lorebook_id": None})
    api.patch(f"/lorebooks/{book['id']}", json={"is_global": True})
    links = api.get(f"/lorebooks/{book['id']}/links").json()
    assert links == {
        "is_global": True,
        "characters": [{"id": abe["id"], "name": "Abe Linktest"}],
        "chats": [],
        "personas": [],
    }
    # unlinking from one book leaves the other book's link alone
    other_links = api.get(f"/lorebooks/{other_book['id']}/links").json()
    assert [c["id"] for c in other_links["characters"]] == [bea["id"]]


def test_links_of_an_unknown_lorebook_is_404(api: httpx.Client) -> None:
    r = api.get("/lorebooks/999999/links")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["message"]

"""Personas over the REST API: which characters are locked to each, and the persona's lorebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import event

from kataribe.engine.base import Engine
from kataribe.services.context import RoleplayContext
from kataribe.services.personas import PersonaService
from kataribe.store.models import Character
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/api", timeout=60)


def new_character(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.post("/characters", json={"name": name, "first_mes": "Hello, {{user}}."})
    assert r.status_code == 201, r.text
    return dict(r.json())


def new_persona(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    r = api.post("/personas", json={"name": name, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


def lock(api: httpx.Client, character_id: int, persona_id: int | None) -> None:
    r = api.put(f"/characters/{character_id}/persona", json={"persona_id": persona_id})
    assert r.status_code == 200, r.text
    assert r.json() == {"character_id": character_id, "persona_id": persona_id}


def locks(api: httpx.Client) -> dict[int, list[int]]:
    r = api.get("/personas")
    assert r.status_code == 200, r.text
    return {p["id"]: p["locked_character_ids"] for p in r.json()}


def test_a_new_persona_has_no_locked_characters(api: httpx.Client) -> None:
    made = new_persona(api, "Nobody's")
    assert made["locked_character_ids"] == []
    assert api.get(f"/personas/{made['id']}").json()["locked_character_ids"] == []


def test_lock_shows_on_the_persona_and_moves_when_relocked(api: httpx.Client) -> None:
    first = new_persona(api, "Lock First")
    second = new_persona(api, "Lock Second")
    alice = new_character(api, "Lock Alice")
    bob = new_character(api, "Lock Bob")

    lock(api, alice["id"], first["id"])
    lock(api, bob["id"], first["id"])
    by_persona = locks(api)
    assert by_persona[first["id"]] == sorted([alice["id"], bob["id"]])
    assert by_persona[second["id"]] == []
    assert api.get(f"/personas/{first['id']}").json()["locked_character_ids"] == sorted(
        [alice["id"], bob["id"]]
    )

    # a character has one locked persona: locking it to another moves it
    lock(api, alice["id"], second["id"])
    by_persona = locks(api)
    assert by_persona[first["id"]] == [bob["id"]]
    assert by_persona[second["id"]] == [alice["id"]]
    assert api.get(f"/personas/{second['id']}").json()["locked_character_ids"] == [alice["id"]]

    # the lock has effect: a new chat with alice starts as the second persona (greeting macro)
    chat = api.post("/chats", json={"character_id": alice["id"]})
    assert chat.status_code == 201, chat.text
    greeting = api.get(f"/chats/{chat.json()['id']}").json()["messages"][0]["content"]
    assert greeting == "Hello, Lock Second."

    # unlocking (persona_id null) removes it
    lock(api, alice["id"], None)
    by_persona = locks(api)
    assert by_persona[second["id"]] == []
    assert by_persona[first["id"]] == [bob["id"]]

    # deleting the character removes its lock
    assert api.delete(f"/characters/{bob['id']}").status_code == 204
    assert locks(api)[first["id"]] == []


def test_patch_response_carries_the_locks(api: httpx.Client) -> None:
    persona = new_persona(api, "Lock Patched")
    carol = new_character(api, "Lock Carol")
    lock(api, carol["id"], persona["id"])
    patched = api.patch(f"/personas/{persona['id']}", json={"description": "Someone."})
    assert patched.status_code == 200, patched.text
    assert patched.json()["locked_character_ids"] == [carol["id"]]


def test_lock_to_unknown_persona_or_character_is_404(api: httpx.Client) -> None:
    persona = new_persona(api, "Lock Missing")
    dave = new_character(api, "Lock Dave")
    missing_persona = api.put(f"/characters/{dave['id']}/persona", json={"persona_id": 999_999})
    assert missing_persona.status_code == 404, missing_persona.text
    missing_character = api.put("/characters/999999/persona", json={"persona_id": persona["id"]})
    assert missing_character.status_code == 404, missing_character.text
    assert locks(api)[persona["id"]] == []


def test_lorebook_is_set_and_cleared_by_patch(api: httpx.Client) -> None:
    persona = new_persona(api, "Lore Owner")
    assert persona["lorebook_id"] is None
    book = api.post("/lorebooks", json={"name": "Persona lore"})
    assert book.status_code == 201, book.text
    book_id = book.json()["id"]

    r = api.patch(f"/personas/{persona['id']}", json={"lorebook_id": book_id})
    assert r.status_code == 200, r.text
    assert r.json()["lorebook_id"] == book_id
    assert api.get(f"/personas/{persona['id']}").json()["lorebook_id"] == book_id

    r = api.patch(f"/personas/{persona['id']}", json={"lorebook_id": None})
    assert r.status_code == 200, r.text
    assert api.get(f"/personas/{persona['id']}").json()["lorebook_id"] is None


def test_unknown_lorebook_is_404_and_changes_nothing(api: httpx.Client) -> None:
    persona = new_persona(api, "Lore Missing")
    r = api.patch(f"/personas/{persona['id']}", json={"lorebook_id": 999_999, "description": "changed"})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["message"]
    after = api.get(f"/personas/{persona['id']}").json()
    assert after["lorebook_id"] is None and after["description"] == ""


def test_list_all_reads_locks_in_one_query_whatever_the_number_of_personas(tmp_path: Path) -> None:
    ctx = RoleplayContext.open(tmp_path, cast(Engine, object()))
    service = PersonaService(ctx)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def statements_for_list() -> int:
        statements.clear()
        listed = service.list_all()
        assert all(isinstance(p["locked_character_ids"], list) for p in listed)
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    try:
        service.create({"name": "P0"})
        few = statements_for_list()
        with ctx.db.session() as session:
            characters = [Character(name=f"C{i}") for i in range(6)]
            session.add_all(characters)
            session.flush()
            ids = [c.id for c in characters]
        personas = [service.create({"name": f"P{i}"})["id"] for i in range(1, 6)]
        for character_id, persona_id in zip(ids, personas, strict=False):
            service.lock_to_character(character_id, persona_id)
        many = statements_for_list()
        assert many == few
        listed = {p["id"]: p["locked_character_ids"] for p in service.list_all()}
        assert [listed[p] for p in personas] == [[c] for c in ids[:5]]
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", count)
        ctx.db.close()

"""The personas page in the browser: the persona's lorebook, and the characters locked to a persona."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.browser import browser_tab, open_app, shot
from tests.conftest import LiveServer, api_client, own_live_server

live = own_live_server("ui-personas")
rest = api_client("rest")


def goto(page: Page, live: LiveServer, hash_: str) -> None:
    open_app(page, live.url, hash_)


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return dict(r.json())


def persona_of(rest: httpx.Client, persona_id: int) -> dict[str, Any]:
    return next(p for p in rest.get("/personas").json() if p["id"] == persona_id)


def test_lorebook_picked_on_the_persona_page_is_saved(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    persona = created(rest.post("/personas", json={"name": "Librarian"}))
    book = created(rest.post("/lorebooks", json={"name": "Library lore"}))
    goto(page, live, f"#/personas/{persona['id']}")
    expect(page.locator("#persona-form")).to_have_attribute("data-id", str(persona["id"]))
    picker = page.locator("#persona-lorebook")
    expect(picker).to_have_value("")
    expect(picker.locator("option").first).to_have_text("none")
    expect(picker.locator(f'option[value="{book["id"]}"]')).to_have_text("Library lore")

    picker.select_option(str(book["id"]))
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/personas/{persona['id']}") and r.request.method == "PATCH"
    ) as saved:
        page.locator("#save-persona").click()
    assert saved.value.status == 200
    assert persona_of(rest, persona["id"])["lorebook_id"] == book["id"]
    # the form is drawn again from the stored persona, which shows the choice
    expect(page.locator("#persona-form")).to_have_attribute("data-lorebook-id", str(book["id"]))
    expect(page.locator("#persona-lorebook")).to_have_value(str(book["id"]))

    page.locator("#persona-lorebook").select_option("")
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/personas/{persona['id']}") and r.request.method == "PATCH"
    ) as cleared:
        page.locator("#save-persona").click()
    assert cleared.value.status == 200
    assert persona_of(rest, persona["id"])["lorebook_id"] is None
    expect(page.locator("#persona-form")).to_have_attribute("data-lorebook-id", "")
    expect(page.locator("#persona-lorebook")).to_have_value("")


def test_character_locked_on_the_persona_page_starts_chats_as_that_persona(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    created(rest.post("/personas", json={"name": "Someone Else", "is_default": True}))
    persona = created(rest.post("/personas", json={"name": "Wanderer"}))
    other = created(rest.post("/personas", json={"name": "Holder"}))
    ember = created(rest.post("/characters", json={"name": "Ember", "first_mes": "Welcome, {{user}}."}))
    frost = created(rest.post("/characters", json={"name": "Frost", "first_mes": "Cold day, {{user}}."}))
    # frost starts locked to another persona: locking it here moves it
    assert rest.put(f"/characters/{frost['id']}/persona", json={"persona_id": other["id"]}).status_code == 200

    goto(page, live, f"#/personas/{persona['id']}")
    box = page.locator("#persona-locks")
    expect(box).to_have_attribute("data-id", str(persona["id"]))
    expect(box.locator(".persona-lock-item")).to_have_count(0)
    expect(box.locator(".hint")).to_contain_text("moves it from another persona")
    picker = page.locator("#persona-lock-character")
    expect(picker.locator(f'option[value="{frost["id"]}"]')).to_have_text("Frost (now locked to Holder)")

    def lock_response(character_id: int) -> Any:
        return page.expect_response(
            lambda r: r.url.endswith(f"/api/characters/{character_id}/persona") and r.request.method == "PUT"
        )

    picker.select_option(str(ember["id"]))
    with lock_response(ember["id"]) as locked:
        page.locator("#persona-lock").click()
    assert locked.value.status == 200
    assert persona_of(rest, persona["id"])["locked_character_ids"] == [ember["id"]]
    item = box.locator(f'.persona-lock-item[data-character-id="{ember["id"]}"]')
    expect(item.locator(".persona-lock-name")).to_have_text("Ember")
    # a locked character is no longer offered in the picker
    expect(picker.locator(f'option[value="{ember["id"]}"]')).to_have_count(0)

    # the lock has effect: a new chat with Ember greets the locked persona, not the default one
    chat = created(rest.post("/chats", json={"character_id": ember["id"]}))
    # the chat itself names no persona: the character's lock is read when the prompt is built
    assert chat["persona_id"] is None
    greeting = rest.get(f"/chats/{chat['id']}").json()["messages"][0]
    assert greeting["content"] == "Welcome, Wanderer."

    picker.select_option(str(frost["id"]))
    with lock_response(frost["id"]) as moved:
        page.locator("#persona-lock").click()
    assert moved.value.status == 200
    assert persona_of(rest, persona["id"])["locked_character_ids"] == sorted([ember["id"], frost["id"]])
    assert persona_of(rest, other["id"])["locked_character_ids"] == []
    expect(box.locator(".persona-lock-item")).to_have_count(2)
    shot(page, "persona-locks.png")

    with lock_response(ember["id"]) as unlocked:
        item.locator("button.persona-unlock").click()
    assert unlocked.value.status == 200
    assert persona_of(rest, persona["id"])["locked_character_ids"] == [frost["id"]]
    expect(item).to_have_count(0)
    expect(picker.locator(f'option[value="{ember["id"]}"]')).to_have_text("Ember")
    # unlocked, Ember's new chats start as the default persona again
    again = created(rest.post("/chats", json={"character_id": ember["id"]}))
    assert rest.get(f"/chats/{again['id']}").json()["messages"][0]["content"] == "Welcome, Someone Else."


def test_unsaved_form_edits_survive_a_lock(page: Page, live: LiveServer, rest: httpx.Client) -> None:
    persona = created(rest.post("/personas", json={"name": "Drafter"}))
    gale = created(rest.post("/characters", json={"name": "Gale"}))
    goto(page, live, f"#/personas/{persona['id']}")
    page.locator("#persona-description").fill("Not saved yet.")
    page.locator("#persona-lock-character").select_option(str(gale["id"]))
    with page.expect_response(lambda r: r.url.endswith(f"/api/characters/{gale['id']}/persona")) as locked:
        page.locator("#persona-lock").click()
    assert locked.value.status == 200
    expect(
        page.locator(f'#persona-locks .persona-lock-item[data-character-id="{gale["id"]}"]')
    ).to_be_visible()
    expect(page.locator("#persona-description")).to_have_value("Not saved yet.")
    assert persona_of(rest, persona["id"])["description"] == ""


def test_lock_controls_speak_japanese(browser: Browser, live: LiveServer, rest: httpx.Client) -> None:
    persona = created(rest.post("/personas", json={"name": "Tabibito"}))
    created(rest.post("/characters", json={"name": "Hikari"}))
    with browser_tab(browser, locale="ja-JP") as tab:
        goto(tab, live, f"#/personas/{persona['id']}")
        expect(tab.locator("#persona-locks legend")).to_have_text("固定されたキャラクター")
        expect(tab.locator("#persona-lock")).to_have_text("固定")
        expect(tab.locator("#persona-lorebook option").first).to_have_text("なし")

"""The browser app's character gallery, character editor and personas page, end to end on the real model."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import browser_tab, open_app, shot
from tests.conftest import LiveServer, api_client, own_live_server

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
LINK = "[x](javascript:window.__pwned=1)"
HOSTILE = f"{SCRIPT} {IMG} {LINK}"
TOKENS = re.compile(r"^\d+ tokens")
SOME_TOKENS = re.compile(r"^[1-9]\d* tokens")
CARD_TEXT_FIELDS = [
    "name",
    "nickname",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "system_prompt",
    "post_history_instructions",
    "creator_notes",
    "creator",
    "character_version",
]


live = own_live_server("ui-gallery")
rest = api_client("rest")


@pytest.fixture(scope="module")
def seraphina_png(fixtures_dir: Path) -> Path:
    return fixtures_dir / "sillytavern" / "Seraphina.png"


@pytest.fixture()
def seraphina(rest: httpx.Client, seraphina_png: Path) -> dict[str, Any]:
    r = rest.post(
        "/characters/import", files={"file": ("Seraphina.png", seraphina_png.read_bytes(), "image/png")}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def goto(page: Page, live: LiveServer, hash_: str) -> None:
    open_app(page, live.url, hash_)


def card_of(page: Page, character_id: int) -> Any:
    return page.locator(f'#gallery-grid .character-card[data-id="{character_id}"]')


def test_card_imported_through_the_file_picker_shows_in_the_grid_with_its_avatar(
    page: Page, live: LiveServer, rest: httpx.Client, seraphina_png: Path
) -> None:
    goto(page, live, "#/characters")
    before = {c["id"] for c in rest.get("/characters").json()}
    page.set_input_files("#card-file", str(seraphina_png))
    expect(page.locator(".toast", has_text="Imported Seraphina")).to_be_visible()

    added = [c for c in rest.get("/characters").json() if c["id"] not in before]
    assert [c["name"] for c in added] == ["Seraphina"]
    card = card_of(page, added[0]["id"])
    expect(card.locator(".card-name")).to_have_text("Seraphina")
    avatar = card.locator("img.avatar")
    expect(avatar).to_have_attribute("src", f"/api/assets/{added[0]['avatar']}")
    got = httpx.get(live.url + f"/api/assets/{added[0]['avatar']}")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    shot(page, "gallery.png")


def test_card_dropped_on_the_dropzone_is_imported(
    browser: Browser, live: LiveServer, rest: httpx.Client
) -> None:
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {"name": "Dropped Dana", "first_mes": "Hi."},
    }
    # Building a File and a DataTransfer needs page scripts, which the app's CSP (rightly) forbids.
    with browser_tab(browser, bypass_csp=True) as page:
        goto(page, live, "#/characters")
        transfer = page.evaluate_handle(
            """(text) => {
                const dt = new DataTransfer();
                dt.items.add(new File([text], "dana.json", { type: "application/json" }));
                return dt;
            }""",
            json.dumps(card),
        )
        page.dispatch_event("#card-drop", "drop", {"dataTransfer": transfer})
        expect(page.locator(".toast", has_text="Imported Dropped Dana")).to_be_visible()
        names = [c["name"] for c in rest.get("/characters").json()]
        assert "Dropped Dana" in names
        expect(page.locator("#gallery-grid .card-name", has_text="Dropped Dana")).to_be_visible()


def test_a_file_that_is_not_a_card_gets_an_error_toast_with_the_servers_reason(
    page: Page, live: LiveServer, rest: httpx.Client, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": "world"}', encoding="utf-8")
    count = len(rest.get("/characters").json())
    goto(page, live, "#/characters")
    page.set_input_files("#card-file", str(bad))
    expect(page.locator(".toast.toast-error", has_text="notes.json:")).to_be_visible()
    assert len(rest.get("/characters").json()) == count


def test_editor_shows_token_counts_and_saves_the_changed_description(
    page: Page, live: LiveServer, rest: httpx.Client, seraphina: dict[str, Any]
) -> None:
    cid = seraphina["id"]
    goto(page, live, "#/characters")
    card_of(page, cid).locator("button.edit").click()
    expect(page).to_have_url(re.compile(rf"#/characters/{cid}$"))
    description = page.locator("#field-description")
    expect(description).to_have_value(re.compile("Seraphina"))
    count = page.locator('.token-count[data-field="description"]')
    expect(count).to_have_text(TOKENS)
    first = int(count.inner_text().split()[0])
    assert first > 50  # Seraphina's description is several hundred tokens with the real tokenizer
    expect(page.locator("#token-total")).to_have_text(re.compile(r"^Total: \d+ tokens"))
    expect(page.locator("img.avatar")).to_have_attribute("src", f"/api/assets/{seraphina['avatar']}")

    description.fill("A short description.")
    expect(count).not_to_have_text(f"{first} tokens")
    expect(count).to_have_text(TOKENS)
    assert int(count.inner_text().split()[0]) < first
    shot(page, "character_editor.png")
    page.locator("#save-character").click()
    expect(page.locator(".toast", has_text="Saved Seraphina")).to_be_visible()

    data = rest.get(f"/characters/{cid}").json()["card"]["data"]
    assert data["description"] == "A short description."
    assert data["first_mes"].startswith("*You wake with a start")  # untouched fields are kept
    assert data["character_book"]["entries"]  # the embedded lorebook survives the edit


def test_alternate_greetings_can_be_added_and_removed(
    page: Page, live: LiveServer, rest: httpx.Client, seraphina: dict[str, Any]
) -> None:
    cid = seraphina["id"]
    goto(page, live, f"#/characters/{cid}")
    greetings = page.locator("#field-alternate_greetings .greeting")
    expect(greetings).to_have_count(0)
    add = page.locator(".field-alternate_greetings .add-greeting")
    add.click()
    add.click()
    greetings.nth(0).fill("Hello there.")
    greetings.nth(1).fill("Good evening.")
    page.locator("#field-alternate_greetings .remove-greeting").nth(0).click()
    page.locator("#save-character").click()
    expect(page.locator(".toast", has_text="Saved")).to_be_visible()
    assert rest.get(f"/characters/{cid}").json()["card"]["data"]["alternate_greetings"] == ["Good evening."]


def test_export_png_link_answers_with_a_png(page: Page, live: LiveServer, seraphina: dict[str, Any]) -> None:
    goto(page, live, "#/characters")
    card = card_of(page, seraphina["id"])
    card.locator(".export-menu summary").click()
    link = card.locator("a.export-png")
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href == f"/api/characters/{seraphina['id']}/export?format=png"
    got = httpx.get(live.url + href)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/png"
    assert got.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_chat_button_starts_a_chat_that_opens_on_the_greeting(
    page: Page, live: LiveServer, rest: httpx.Client, seraphina: dict[str, Any]
) -> None:
    goto(page, live, "#/characters")
    card_of(page, seraphina["id"]).locator("button.chat").click()
    expect(page).to_have_url(re.compile(r"#/chat/\d+$"))
    chat_id = int(page.url.rsplit("/", 1)[1])
    assert rest.get(f"/chats/{chat_id}").json()["character_id"] == seraphina["id"]
    greeting = page.locator("#messages .message").first
    expect(greeting).to_have_attribute("data-role", "assistant")
    expect(greeting.locator(".message-body")).to_contain_text("You wake with a start")


def test_search_and_tag_filter_narrow_the_grid(page: Page, live: LiveServer, rest: httpx.Client) -> None:
    a = rest.post("/characters", json={"name": "Aoi Filtertest", "tags": ["fantasy", "elf"]}).json()
    b = rest.post("/characters", json={"name": "Beni Filtertest", "tags": ["scifi"]}).json()
    goto(page, live, "#/characters")
    page.locator("#gallery-search").fill("filtertest")
    expect(page.locator("#gallery-grid .character-card")).to_have_count(2)
    page.locator("#gallery-tag").select_option("scifi")
    expect(page.locator("#gallery-grid .character-card")).to_have_count(1)
    expect(card_of(page, b["id"])).to_be_visible()
    page.locator("#gallery-tag").select_option("")
    page.locator("#gallery-search").fill("aoi")
    expect(page.locator("#gallery-grid .character-card")).to_have_count(1)
    expect(card_of(page, a["id"]).locator(".tags .tag")).to_have_text(["fantasy", "elf"])


def test_new_character_from_the_editor_is_created_and_delete_removes_it(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    goto(page, live, "#/characters")
    page.locator("#new-character").click()
    expect(page).to_have_url(re.compile(r"#/characters/new$"))
    page.locator("#field-name").fill("Kiri Newcard")
    page.locator("#field-first_mes").fill("Hi, I am Kiri.")
    page.locator("#field-tags").fill("test, new ")
    page.locator("#save-character").click()
    expect(page).to_have_url(re.compile(r"#/characters/\d+$"))
    cid = int(page.url.rsplit("/", 1)[1])
    data = rest.get(f"/characters/{cid}").json()["card"]["data"]
    assert (data["name"], data["first_mes"], data["tags"]) == (
        "Kiri Newcard",
        "Hi, I am Kiri.",
        ["test", "new"],
    )

    goto(page, live, "#/characters")
    page.once("dialog", lambda dialog: dialog.accept())
    card_of(page, cid).locator("button.delete").click()
    expect(card_of(page, cid)).to_have_count(0)
    assert rest.get(f"/characters/{cid}").status_code == 404


def test_persona_is_created_edited_and_made_default(
    page: Page, live: LiveServer, rest: httpx.Client, seraphina_png: Path
) -> None:
    first = rest.post("/personas", json={"name": "Existing Default", "is_default": True}).json()
    goto(page, live, "#/personas")
    page.locator("#new-persona-name").fill("Traveler")
    page.locator("#create-persona").click()
    expect(page.locator(".toast", has_text="Created Traveler")).to_be_visible()
    made = next(p for p in rest.get("/personas").json() if p["name"] == "Traveler")
    expect(page.locator("#persona-form")).to_have_attribute("data-id", str(made["id"]))

    page.locator("#persona-description").fill("A weary traveler who lost their way in the forest.")
    expect(page.locator("#persona-tokens")).to_have_text(SOME_TOKENS)
    assert int(page.locator("#persona-tokens").inner_text().split()[0]) > 5
    page.locator("#persona-position").select_option("at_depth")
    page.locator("#persona-depth").fill("3")
    page.locator("#persona-role").select_option("user")
    page.locator("#persona-default").check()
    page.locator("#save-persona").click()
    expect(page.locator(".toast", has_text="Saved Traveler")).to_be_visible()
    page.set_input_files("#persona-avatar-file", str(seraphina_png))
    expect(page.locator(".toast", has_text="Avatar updated")).to_be_visible()

    by_id = {p["id"]: p for p in rest.get("/personas").json()}
    saved = by_id[made["id"]]
    assert saved["description"] == "A weary traveler who lost their way in the forest."
    assert (saved["position"], saved["depth"], saved["role"], saved["is_default"]) == (
        "at_depth",
        3,
        "user",
        True,
    )
    assert saved["avatar"]
    assert by_id[first["id"]]["is_default"] is False
    item = page.locator(f'.persona-item[data-id="{made["id"]}"]')
    expect(item.locator(".default-badge")).to_be_visible()
    expect(item.locator("img.avatar")).to_have_attribute("src", f"/api/assets/{saved['avatar']}")
    expect(page.locator("#persona-tokens")).to_have_text(SOME_TOKENS)
    shot(page, "personas.png")


def test_hostile_card_shows_as_text_in_gallery_and_editor_and_runs_nothing(
    browser: Browser, live: LiveServer, rest: httpx.Client, tmp_path: Path
) -> None:
    fields: dict[str, str | list[str]] = {name: HOSTILE for name in CARD_TEXT_FIELDS}
    fields |= {
        "tags": [SCRIPT, IMG, LINK],
        "alternate_greetings": [HOSTILE],
        "group_only_greetings": [HOSTILE],
    }
    rest.post("/personas", json={"name": HOSTILE, "description": HOSTILE})
    hostile_file = tmp_path / "hostile.json"
    hostile_file.write_text(json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": fields}))
    before = {c["id"] for c in rest.get("/characters").json()}

    # Without the CSP, nothing but the page's own care stands between the text and the DOM.
    with browser_tab(browser, bypass_csp=True) as page:
        goto(page, live, "#/characters")
        page.set_input_files("#card-file", str(hostile_file))  # imported like any card a user downloads
        deadline = time.monotonic() + 30
        while not (new := {c["id"] for c in rest.get("/characters").json()} - before):
            assert time.monotonic() < deadline, "the hostile card was not imported"
            time.sleep(0.1)
        (cid,) = new
        card = card_of(page, cid)
        expect(card.locator(".card-name")).to_have_text(HOSTILE)
        for tag in (SCRIPT, IMG, LINK):
            expect(card.get_by_text(tag, exact=True)).to_be_visible()
        assert page.locator("#main script").count() == 0
        assert page.locator("#main img[src=x]").count() == 0
        assert page.locator('#main a[href^="javascript"]').count() == 0

        card.locator("button.edit").click()
        expect(page.locator("h2", has_text=SCRIPT)).to_be_visible()
        expect(page.locator("#field-description")).to_have_value(HOSTILE)
        expect(page.locator("#field-tags")).to_have_value(f"{SCRIPT}, {IMG}, {LINK}")
        expect(page.locator("#field-alternate_greetings .greeting")).to_have_value(HOSTILE)
        expect(page.locator('.token-count[data-field="description"]')).to_have_text(TOKENS)
        assert page.locator("#main script").count() == 0
        assert page.locator("#main img[src=x]").count() == 0

        goto(page, live, "#/personas")
        expect(page.get_by_text(HOSTILE, exact=True).first).to_be_visible()
        assert page.locator("#main script").count() == 0
        assert page.locator("#main img[src=x]").count() == 0
        assert page.evaluate("typeof window.__pwned") == "undefined"


def test_star_toggles_favorite_sorts_it_first_and_favorites_only_narrows_the_grid(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    first = rest.post("/characters", json={"name": "Aka Startest"}).json()
    second = rest.post("/characters", json={"name": "Bara Startest"}).json()
    goto(page, live, "#/characters")
    page.locator("#gallery-search").fill("startest")
    cards = page.locator("#gallery-grid .character-card")
    expect(cards).to_have_count(2)
    expect(cards.first).to_have_attribute("data-id", str(first["id"]))
    star = card_of(page, second["id"]).locator("button.favorite-toggle")
    expect(star).to_have_attribute("aria-pressed", "false")
    expect(star).to_have_attribute("aria-label", "Favorite: Bara Startest")
    expect(star).to_have_attribute("title", "Add Bara Startest to favorites")

    favorite_url = f"/api/characters/{second['id']}/favorite"
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith(favorite_url)) as put:
        star.click()
    assert put.value.status == 200
    expect(star).to_have_attribute("aria-pressed", "true")
    expect(star).to_have_attribute("title", "Remove Bara Startest from favorites")
    assert rest.get(f"/characters/{second['id']}").json()["favorite"] is True
    assert rest.get(f"/characters/{first['id']}").json()["favorite"] is False
    expect(cards.first).to_have_attribute("data-id", str(second["id"]))  # favorites first

    page.locator("#gallery-favorites").check()
    expect(cards).to_have_count(1)
    expect(card_of(page, second["id"])).to_be_visible()
    shot(page, "gallery_favorites.png")
    page.locator("#gallery-search").fill("")
    favorites = rest.get("/characters", params={"favorite": "true"}).json()
    expect(cards).to_have_count(len(favorites))
    assert len(favorites) < len(rest.get("/characters").json())

    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith(favorite_url)):
        star.click()
    expect(card_of(page, second["id"])).to_have_count(0)  # no longer a favorite: filtered out
    assert rest.get(f"/characters/{second['id']}").json()["favorite"] is False
    page.locator("#gallery-favorites").uncheck()
    expect(star).to_have_attribute("aria-pressed", "false")

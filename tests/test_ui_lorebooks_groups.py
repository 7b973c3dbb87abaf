"""The lorebook editor (import, filters, entry form, test box) and group chats (page, toolbar) in Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser import ARTIFACTS, browser_tab, open_app, shot
from tests.conftest import LiveServer, api_client, own_live_server

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


live = own_live_server("ui-lore-groups")
rest = api_client("rest", timeout=120)


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    with browser_tab(browser, timeout_ms=30_000) as tab:
        tab.on("dialog", lambda dialog: dialog.accept())  # confirm() before deleting
        yield tab


def open_page(page: Page, live: LiveServer, route: str) -> None:
    open_app(page, live.url, f"#/{route}")


def new_character(rest: httpx.Client, name: str) -> dict[str, Any]:
    r = rest.post(
        "/characters",
        json={"name": name, "description": f"{name} is a cheerful baker.", "first_mes": f"Hi, I am {name}."},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def entry_of(rest: httpx.Client, book_id: int, uid: int) -> dict[str, Any]:
    entries = rest.get(f"/lorebooks/{book_id}").json()["data"]["entries"]
    return dict(next(e for e in entries if e["uid"] == uid))


def test_eldoria_import_filter_edit_save_and_test_box_shows_why_entries_fire(
    page: Page, live: LiveServer, rest: httpx.Client, fixtures_dir: Path
) -> None:
    open_page(page, live, "lorebooks")
    page.locator("#lore-file").set_input_files(str(fixtures_dir / "sillytavern" / "Eldoria.json"))
    row = page.locator("table.lore-books tr", has_text="Eldoria")
    expect(row.locator(".lore-count")).to_have_text("4")
    shot(page, "lorebooks.png")
    book = next(b for b in rest.get("/lorebooks").json() if b["name"] == "Eldoria")
    before = rest.get(f"/lorebooks/{book['id']}").json()["data"]
    shadowfang = next(e for e in before["entries"] if e["uid"] == 1)

    row.locator("a.lore-open").click()
    page.locator("#lore-entries").wait_for()
    rows = page.locator("#lore-entries tbody tr")
    expect(rows).to_have_count(4)
    page.locator("#lore-filter-text").fill("shadowfang")  # a key of #1, named in the content of #0 and #2
    expect(rows).to_have_count(3)
    page.locator("#lore-filter-text").fill("MONSTERS")  # only #1's keys
    expect(rows).to_have_count(1)
    expect(page.locator("#lore-shown")).to_have_text("1 of 4 entries")
    page.locator("#lore-filter-state").select_option("disabled")
    expect(rows).to_have_count(sum(1 for e in before["entries"] if e["disabled"] and "monsters" in e["keys"]))
    page.locator("#lore-filter-state").select_option("")
    rows.first.click()
    expect(page.locator("#lore-entry-keys")).to_have_value("\n".join(shadowfang["keys"]))

    page.locator("#lore-entry-keys").fill("shadowfang\nwolfbeast")
    page.locator("#lore-entry-content").fill("Shadowfangs are wolf-like beasts of the dark forest.")
    page.locator("#lore-entry-position").select_option("at_depth")
    page.locator("#lore-save").click()
    expect(page.locator("#lore-status")).to_have_text("Saved.")

    saved = entry_of(rest, book["id"], 1)
    assert saved["keys"] == ["shadowfang", "wolfbeast"]
    assert saved["content"] == "Shadowfangs are wolf-like beasts of the dark forest."
    assert saved["position"] == "at_depth"
    untouched = {k: v for k, v in shadowfang.items() if k not in ("keys", "content", "position")}
    assert {k: saved[k] for k in untouched} == untouched  # every other field survives the editor's save
    other = entry_of(rest, book["id"], 0)
    assert other == next(e for e in before["entries"] if e["uid"] == 0)

    page.locator("#lore-filter-text").fill("")
    page.locator("#lore-filter-position").select_option("at_depth")
    expect(rows).to_have_count(1)

    page.locator("#lore-test-text").fill("A wolfbeast howls somewhere in the night.")
    page.locator("#lore-test-run").click()
    fired = page.locator('#lore-fired li[data-uid="1"]')
    expect(fired).to_be_visible()
    expect(fired.locator(".lore-reason")).to_contain_text("wolfbeast")
    # the edited content says "forest", one of #0's keys: #0 fires by recursion
    expect(page.locator('#lore-fired li[data-uid="0"] .lore-reason')).to_contain_text("forest")
    page.locator("#lore-test-results").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "lorebook_test.png"))

    page.locator("#lore-test-text").fill("Good morning, how was the bread?")
    page.locator("#lore-test-run").click()
    expect(page.locator("#lore-test-results")).to_contain_text("Nothing fires for this text.")


def test_editor_adds_an_entry_and_shows_hostile_text_as_text(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    entry = {"uid": 7, "keys": [HOSTILE], "comment": HOSTILE, "content": HOSTILE}
    r = rest.post("/lorebooks", json={"name": HOSTILE, "data": {"name": "x", "entries": [entry]}})
    assert r.status_code == 201, r.text
    book_id = r.json()["id"]
    open_page(page, live, f"lorebooks/{book_id}")
    label = page.locator('#lore-entries tr[data-uid="7"] .lore-label')
    expect(label).to_have_text(HOSTILE)
    expect(page.locator("main img")).to_have_count(0)
    expect(page.locator("main script")).to_have_count(0)

    page.locator("#lore-add-entry").click()
    page.locator("#lore-entry-comment").fill("Harbour")
    page.locator("#lore-entry-keys").fill("harbour\nport")
    page.locator("#lore-entry-sticky").fill("2")
    page.locator("#lore-entry-case-sensitive").select_option("true")
    page.locator("#lore-entry-selective-logic").select_option("3")
    page.locator("#lore-save").click()
    expect(page.locator("#lore-status")).to_have_text("Saved.")
    added = entry_of(rest, book_id, 8)
    expected = {"comment": "Harbour", "keys": ["harbour", "port"], "sticky": 2, "case_sensitive": True}
    assert {k: added[k] for k in expected} == expected
    assert added["selective_logic"] == 3  # AND ALL
    assert entry_of(rest, book_id, 7)["content"] == HOSTILE


def test_group_page_then_toolbar_next_turn_and_force_talk_use_the_real_model(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    aiko, bento = new_character(rest, "Aiko"), new_character(rest, "Bento")
    open_page(page, live, "groups")
    page.locator("#group-name").fill("Tea Party")
    for who in (aiko, bento):
        page.locator("#group-add-select").select_option(str(who["id"]))
        page.locator("#group-add").click()
    members = page.locator("#group-members li.group-member")
    expect(members).to_have_count(2)
    page.locator(f'#group-members li[data-character-id="{aiko["id"]}"] .member-mute').check()
    page.locator("#group-save").click()
    page.wait_for_url(re.compile(r"#/groups/\d+$"))
    group_id = int(page.url.rsplit("/", 1)[1])
    assert [m["muted"] for m in rest.get(f"/groups/{group_id}").json()["members"]] == [True, False]

    # the hash change re-renders the page for the stored group: edit that form, not the one it replaces
    expect(page.locator("#group-form")).to_have_attribute("data-group-id", str(group_id))
    page.locator(f'#group-members li[data-character-id="{aiko["id"]}"] .member-mute').uncheck()
    page.locator("#group-strategy").select_option("list")
    patched = f"/api/groups/{group_id}"
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.url.endswith(patched)) as saved:
        page.locator("#group-save").click()
    assert saved.value.status == 200
    group = rest.get(f"/groups/{group_id}").json()
    assert [m["muted"] for m in group["members"]] == [False, False]
    assert group["activation_strategy"] == "list"
    shot(page, "groups.png")

    page.locator("#group-start").click()
    page.wait_for_url(re.compile(r"#/chat/\d+$"))
    chat_id = int(page.url.rsplit("/", 1)[1])
    sidebar = page.locator(
        "#chat-list .chat-group", has=page.locator(".chat-group-title", has_text="Group: Tea Party")
    )
    expect(sidebar.locator(f'.chat-link[data-chat-id="{chat_id}"]')).to_be_visible()
    r = rest.patch(f"/chats/{chat_id}", json={"settings": {"max_tokens": 8, "sampler": {"seed": 3}}})
    assert r.status_code == 200, r.text
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(2)  # both greetings
    toolbar = page.locator("#group-toolbar")
    expect(toolbar.locator(".group-force")).to_have_text(["Talk: Aiko", "Talk: Bento"])

    # list strategy after Bento's greeting: Aiko speaks (no self-responses for Bento)
    toolbar.locator("#group-next").click()
    expect(messages.last.locator(".speaker")).to_have_text("Aiko", timeout=60_000)  # "…" while live
    expect(messages).to_have_count(3)
    toolbar.locator(f'.group-force[data-character-id="{bento["id"]}"]').click()
    expect(messages.last.locator(".speaker")).to_have_text("Bento", timeout=60_000)  # "…" while live
    expect(messages).to_have_count(4)
    stored = rest.get(f"/chats/{chat_id}").json()["messages"]
    assert [m["character_id"] for m in stored[-2:]] == [aiko["id"], bento["id"]]
    assert all(m["content"].strip() for m in stored[-2:])

    toolbar.locator("#group-auto").click()
    expect(page.locator("#group-auto")).to_have_text("Auto-mode: on")
    page.locator("#group-auto").click()
    expect(page.locator("#group-auto")).to_have_text("Auto-mode: off")
    shot(page, "group_chat.png")


def test_a_page_still_loading_when_the_user_navigates_away_never_shows_up_beside_the_next_one(
    page: Page, live: LiveServer
) -> None:
    open_page(page, live, "characters")
    held: list[Route] = []

    def hold_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/api/groups$"), hold_first)
    page.locator('.nav a[href="#/groups"]').click()
    for _ in range(100):  # the groups page is now waiting for its list
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the groups page never asked for /api/groups"
    page.locator('.nav a[href="#/lorebooks"]').click()
    with page.expect_response(re.compile(r"/api/groups$")):
        held[0].continue_()
    expect(page.locator("#main .lore-page")).to_have_count(1)
    page.wait_for_timeout(300)
    expect(page.locator("#main > .page")).to_have_count(1)
    expect(page.locator("#main .groups-page")).to_have_count(0)


def test_editor_lists_links_links_a_character_and_unlinks_it_with_its_own_button(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    book = rest.post("/lorebooks", json={"name": "Harbour Lore"}).json()
    kiko = new_character(rest, "Kiko Linktest")
    persona = rest.post("/personas", json={"name": "Sailor Persona"}).json()
    assert rest.patch(f"/personas/{persona['id']}", json={"lorebook_id": book["id"]}).status_code == 200
    open_page(page, live, f"lorebooks/{book['id']}")
    links = page.locator("#lore-links li")
    expect(links).to_have_count(1)
    persona_item = page.locator(f'#lore-links li[data-kind="persona"][data-id="{persona["id"]}"]')
    expect(persona_item).to_contain_text("Persona")
    expect(persona_item).to_contain_text("Sailor Persona")
    expect(persona_item.locator(".lore-unlink-one")).to_have_count(0)  # unlinked on the persona page

    option = page.locator(f'#lore-link-character option[value="{kiko["id"]}"]')
    expect(option).to_have_count(1)
    page.locator("#lore-link-character").select_option(str(kiko["id"]))
    page.locator("#lore-link").click()
    item = page.locator(f'#lore-links li[data-kind="character"][data-id="{kiko["id"]}"]')
    expect(item).to_contain_text("Character")
    expect(item.locator(".lore-link-name")).to_have_text("Kiko Linktest")
    expect(option).to_have_count(0)  # only characters not linked yet are offered
    expect(links).to_have_count(2)
    shot(page, "lorebook_links.png")
    stored = rest.get(f"/lorebooks/{book['id']}/links").json()
    assert [c["id"] for c in stored["characters"]] == [kiko["id"]]

    item.locator("button.lore-unlink-one").click()
    expect(item).to_have_count(0)
    expect(option).to_have_count(1)
    expect(links).to_have_count(1)
    stored = rest.get(f"/lorebooks/{book['id']}/links").json()
    assert stored["characters"] == []
    assert [p["id"] for p in stored["personas"]] == [persona["id"]]


def test_editor_shows_and_saves_sillytavern_entry_options(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    # written with a character book's names, as the API accepts them; the editor saves SillyTavern's
    extensions = {
        "displayIndex": 3,
        "character_filter": {"isExclude": False, "names": ["Old Name"], "tags": []},
        "triggers": ["quiet", "someday"],
        "match_scenario": True,
    }
    entry = {"uid": 1, "keys": ["harbour"], "content": "The harbour is busy.", "extensions": extensions}
    r = rest.post("/lorebooks", json={"name": "Options", "data": {"name": "Options", "entries": [entry]}})
    assert r.status_code == 201, r.text
    book_id = r.json()["id"]
    open_page(page, live, f"lorebooks/{book_id}")
    page.locator('#lore-entries tr[data-uid="1"]').click()
    expect(page.locator("#lore-entry-filter-names")).to_have_value("Old Name")
    expect(page.locator("#lore-entry-trigger-quiet")).to_be_checked()
    expect(page.locator("#lore-entry-trigger-normal")).not_to_be_checked()
    expect(page.locator("#lore-entry-match-scenario")).to_be_checked()
    expect(page.locator("#lore-entry-ignore-budget")).not_to_be_checked()

    page.locator("#lore-entry-filter-names").fill("Alice\nBob")
    page.locator("#lore-entry-filter-tags").fill("elf")
    page.locator("#lore-entry-filter-exclude").check()
    page.locator("#lore-entry-trigger-quiet").uncheck()
    page.locator("#lore-entry-trigger-normal").check()
    page.locator("#lore-entry-trigger-continue").check()
    page.locator("#lore-entry-ignore-budget").check()
    page.locator("#lore-entry-match-persona-description").check()
    page.locator("#lore-entry-match-scenario").uncheck()
    page.locator("#lore-entry-extras").scroll_into_view_if_needed()
    shot(page, "lorebook_entry_options.png")
    patched = f"/api/lorebooks/{book_id}"
    with page.expect_response(lambda resp: resp.request.method == "PATCH" and patched in resp.url) as saved:
        page.locator("#lore-save").click()
    assert saved.value.status == 200

    stored = entry_of(rest, book_id, 1)["extensions"]
    assert stored == {
        "displayIndex": 3,
        "characterFilter": {"isExclude": True, "names": ["Alice", "Bob"], "tags": ["elf"]},
        "triggers": ["normal", "continue", "someday"],
        "ignoreBudget": True,
        "matchPersonaDescription": True,
        "matchScenario": False,
    }


def test_entry_form_and_test_box_show_why_a_regex_key_is_not_used(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    unsafe = "/(a{1,100}){1,100}$/"  # too large to run in linear time: refused
    behind = "/(?<=red )dragon/"  # lookbehind: runs, with a time limit
    entry = {"uid": 1, "keys": [unsafe, behind, "dragon"], "secondary_keys": [], "content": "Dragons."}
    r = rest.post("/lorebooks", json={"name": "Regexes", "data": {"name": "Regexes", "entries": [entry]}})
    assert r.status_code == 201, r.text
    open_page(page, live, f"lorebooks/{r.json()['id']}")
    page.locator('#lore-entries tr[data-uid="1"]').click()
    notes = page.locator("#lore-entry-keys-notes")
    expect(notes.locator("li.refused")).to_have_count(1)
    expect(notes.locator("li.refused")).to_contain_text(unsafe)
    expect(notes.locator("li.refused")).to_contain_text("cannot be run in linear time")
    expect(notes.locator("li.limited")).to_contain_text(behind)
    notes.scroll_into_view_if_needed()
    shot(page, "lorebook_key_refused.png")

    page.locator("#lore-entry-secondary-keys").fill("/([a-z]/")  # typed: checked a moment later
    secondary = page.locator("#lore-entry-secondary-keys-notes li.refused")
    expect(secondary).to_contain_text("not a valid regular expression")
    page.locator("#lore-entry-keys").fill("dragon")
    expect(notes.locator("li")).to_have_count(0)

    page.locator("#lore-entry-keys").fill(unsafe)
    page.locator("#lore-entry-secondary-keys").fill("")
    page.locator("#lore-test-text").fill("a" * 80)
    page.locator("#lore-test-run").click()  # saves first, then tests
    skipped = page.locator('#lore-skipped li[data-uid="1"]')
    expect(skipped.locator(".lore-reason")).to_have_text("regex_key")
    expect(skipped.locator(".lore-detail")).to_contain_text("cannot be run in linear time")


def test_a_cards_own_lorebook_key_that_is_refused_shows_in_the_chats_prompt_inspector(
    page: Page, live: LiveServer, rest: httpx.Client
) -> None:
    # A card's embedded book has no lorebook editor: the chat's dry run is where its refusal shows.
    unsafe = "/(a{1,100}){1,100}$/"
    book = {"name": "Hostile", "entries": [{"id": 1, "keys": [unsafe], "content": "Never.", "enabled": True}]}
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {"name": "Regex card", "description": "", "first_mes": "Hello.", "character_book": book},
    }
    files = {"file": ("regex.json", json.dumps(card).encode(), "application/json")}
    character = rest.post("/characters/import", files=files)
    assert character.status_code == 201, character.text
    chat = rest.post("/chats", json={"character_id": character.json()["id"]}).json()
    message = rest.post(f"/chats/{chat['id']}/messages", json={"text": "a" * 60, "generate": False})
    assert message.status_code == 200, message.text
    open_page(page, live, f"chat/{chat['id']}")
    page.locator("#inspect-prompt").click()
    inspector = page.locator("#prompt-inspector")
    expect(inspector).to_contain_text(
        f"lore Hostile/1 skipped (regex_key): key '{unsafe}' cannot be run in linear time"
    )

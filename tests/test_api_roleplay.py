"""The role-play REST API end to end on the real model: cards, personas, lore, chats, groups."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kataribe.engine.llamacpp import EmbeddedEngine
from tests.conftest import LiveServer, serve
from tests.sse import iter_sse


def sse(resp: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    return list(iter_sse(resp))


def post_sse(
    client: httpx.Client, path: str, body: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    with client.stream("POST", path, json=body or {}) as r:
        assert r.status_code == 200, r.read()
        return sse(r)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The whole module runs against a live server on SQLite (the default) and on PostgreSQL."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()
    live = serve(engine, tmp_path_factory.mktemp(f"roleplay-{request.param}"), database_url=url)
    with httpx.Client(base_url=live.url + "/api", timeout=120) as client:
        yield client
    live.stop()


@pytest.fixture(scope="module")
def seraphina(api: httpx.Client, fixtures_dir: Path) -> dict[str, Any]:
    png = (fixtures_dir / "sillytavern" / "Seraphina.png").read_bytes()
    r = api.post("/characters/import", files={"file": ("Seraphina.png", png, "image/png")})
    assert r.status_code == 201, r.text
    return r.json()


def test_import_shows_in_the_library_and_exports_back(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    assert seraphina["name"] == "Seraphina" and seraphina["avatar"]
    assert any(c["id"] == seraphina["id"] for c in api.get("/characters", params={"q": "sera"}).json())
    exported = api.get(f"/characters/{seraphina['id']}/export", params={"format": "png"})
    assert exported.headers["content-type"] == "image/png"
    again = api.post(
        "/characters/import", files={"file": ("again.png", exported.content, "image/png")}
    ).json()
    assert again["card"]["data"] == seraphina["card"]["data"]
    avatar = api.get(f"/assets/{seraphina['avatar']}")
    assert avatar.status_code == 200 and avatar.content[:4] == b"\x89PNG"
    assert "sandbox" in avatar.headers["content-security-policy"]


def test_bad_card_is_a_4xx_that_names_the_problem(api: httpx.Client) -> None:
    before = len(api.get("/characters").json())
    r = api.post("/characters/import", files={"file": ("x.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")})
    assert 400 <= r.status_code < 500 and r.json()["error"]["message"]
    assert len(api.get("/characters").json()) == before


def test_chat_send_stream_swipe_edit_branch(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    persona = api.post(
        "/personas", json={"name": "Kai", "description": "{{user}} is a lost traveller.", "is_default": True}
    ).json()
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    cid = chat["id"]
    view = api.get(f"/chats/{cid}").json()
    greeting = view["messages"][0]
    assert greeting["role"] == "assistant" and greeting["swipe_count"] >= 1
    assert "{{user}}" not in greeting["content"]
    api.patch(
        f"/chats/{cid}",
        json={
            "settings": {"max_tokens": 12, "sampler": {"temperature": 0.7, "seed": 1}},
            "author_note": {"text": "[Keep it short]", "depth": 2},
        },
    )

    events = post_sse(api, f"/chats/{cid}/messages", {"text": "Where am I?"})
    kinds = [k for k, _ in events]
    assert kinds[0] == "user_message" and "token" in kinds and kinds[-2:] == ["message", "done"]
    reply = events[-2][1]
    assert reply["content"] == "".join(d["text"] for k, d in events if k == "token").strip()
    assert reply["meta"]["usage"]["completion_tokens"] > 0 and reply["meta"]["timings"]["predicted_n"] > 0

    # regenerate: a second swipe on the same message
    swiped = post_sse(api, f"/messages/{reply['id']}/regenerate")[-2][1]
    assert swiped["id"] == reply["id"] and swiped["swipe_count"] == 2 and swiped["swipe_index"] == 1
    back = api.patch(f"/messages/{reply['id']}", json={"swipe_index": 0}).json()
    assert back["content"] == reply["content"]

    # edit and hide
    assert (
        api.patch(f"/messages/{reply['id']}", json={"content": "Edited reply."}).json()["content"]
        == "Edited reply."
    )
    assert api.patch(f"/messages/{reply['id']}", json={"hidden": True}).json()["hidden"] is True
    prompt = api.get(f"/chats/{cid}/prompt").json()
    assert all("Edited reply." not in m["content"] for m in prompt["messages"])
    api.patch(f"/messages/{reply['id']}", json={"hidden": False})

    # continue makes the message longer in place
    unfinished = "The path through the forest leads to the"
    api.patch(f"/messages/{reply['id']}", json={"content": unfinished})
    longer = post_sse(api, f"/messages/{reply['id']}/continue")[-2][1]
    assert longer["content"].startswith(unfinished) and len(longer["content"]) > len(unfinished)

    # branch from the greeting: a new user message starts a second branch
    api.post(f"/chats/{cid}/branch", json={"message_id": greeting["id"]})
    api.post(f"/chats/{cid}/messages", json={"text": "A different path.", "generate": False})
    tree = api.get(f"/chats/{cid}/tree").json()
    assert len(tree["leaves"]) == 2
    path = [m["content"] for m in api.get(f"/chats/{cid}").json()["messages"]]
    assert path[-1] == "A different path." and "Where am I?" not in path
    api.post(f"/chats/{cid}/branch", json={"message_id": reply["id"]})
    assert api.get(f"/chats/{cid}").json()["messages"][-1]["id"] == reply["id"]
    cp = api.post(f"/chats/{cid}/checkpoints", json={"name": "before the storm"}).json()
    assert cp["message_id"] == reply["id"]

    # impersonation is returned, not stored
    imp = post_sse(api, f"/chats/{cid}/impersonate")[-2][1]
    assert imp["stored"] is False and imp["role"] == "user"
    assert api.get(f"/chats/{cid}").json()["messages"][-1]["id"] == reply["id"]
    assert persona["is_default"]


def test_dry_run_reports_sections_and_lore(
    api: httpx.Client, seraphina: dict[str, Any], fixtures_dir: Path
) -> None:
    eldoria = (fixtures_dir / "sillytavern" / "Eldoria.json").read_bytes()
    book = api.post("/lorebooks/import", files={"file": ("Eldoria.json", eldoria, "application/json")}).json()
    assert book["entry_count"] > 0
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    api.post(f"/lorebooks/{book['id']}/links", json={"chat_id": chat["id"]})
    entries = api.get(f"/lorebooks/{book['id']}").json()["data"]["entries"]
    key = next(e["keys"][0] for e in entries if e.get("keys") and not e.get("constant"))
    api.post(f"/chats/{chat['id']}/messages", json={"text": f"Tell me about {key}.", "generate": False})
    dry = api.get(f"/chats/{chat['id']}/prompt").json()
    assert dry["sections"][0]["section"] == "main" and all(s["tokens"] >= 0 for s in dry["sections"])
    assert dry["total_tokens"] <= dry["budget_tokens"]
    assert any(key.lower() in e["reason"].lower() for e in dry["lore"]), dry["lore"]
    tested = api.post(f"/lorebooks/{book['id']}/test", json={"text": f"what about {key}?"}).json()
    assert tested["activated"]


def test_search_finds_messages(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    api.post(f"/chats/{chat['id']}/messages", json={"text": "魔法の森で迷子になった", "generate": False})
    hits = api.get("/search", params={"q": "魔法の森"}).json()
    assert any(h["chat_id"] == chat["id"] for h in hits)


def test_group_chat_turn(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    bob = api.post(
        "/characters",
        json={"name": "Bob", "description": "A cheerful smith.", "first_mes": "Hello there, I'm Bob."},
    ).json()
    group = api.post(
        "/groups",
        json={"name": "Forest party", "members": [seraphina["id"], bob["id"]], "activation_strategy": "list"},
    ).json()
    chat = api.post(f"/groups/{group['id']}/chats").json()
    opening = api.get(f"/chats/{chat['id']}").json()["messages"]
    assert {m["character_id"] for m in opening} == {seraphina["id"], bob["id"]}
    api.patch(f"/chats/{chat['id']}", json={"settings": {"max_tokens": 8}})
    api.post(f"/chats/{chat['id']}/messages", json={"text": "Hi both!", "generate": False})
    events = post_sse(api, f"/chats/{chat['id']}/group/next")
    speakers = [d["character_id"] for k, d in events if k == "speaker"]
    stored = [d for k, d in events if k == "message"]
    assert speakers == [seraphina["id"], bob["id"]]
    assert [m["character_id"] for m in stored] == speakers
    forced = post_sse(api, f"/chats/{chat['id']}/group/next", {"character_id": bob["id"]})
    assert [d["character_id"] for k, d in forced if k == "speaker"] == [bob["id"]]


def test_missing_things_are_404(api: httpx.Client) -> None:
    assert api.get("/characters/999999").status_code == 404
    assert api.post("/chats", json={"character_id": 999999}).status_code == 404
    assert api.patch("/messages/999999", json={"content": "x"}).status_code == 404


def test_sillytavern_chat_export_and_import_over_http(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    api.post(f"/chats/{chat['id']}/messages", json={"text": "こんにちは、セラフィナ。", "generate": False})
    exported = api.get(f"/chats/{chat['id']}/export")
    assert exported.status_code == 200 and exported.text.count("\n") >= 2
    imported = api.post(
        "/chats/import",
        data={"character_id": str(seraphina["id"])},
        files={"file": ("chat.jsonl", exported.content, "application/jsonl")},
    )
    assert imported.status_code == 201, imported.text
    original = [
        (m["role"], m["content"], m["swipe_count"])
        for m in api.get(f"/chats/{chat['id']}").json()["messages"]
    ]
    copy = [(m["role"], m["content"], m["swipe_count"]) for m in imported.json()["messages"]]
    assert copy == original
    bad = api.post(
        "/chats/import", files={"file": ("chat.jsonl", b'{"user_name": "x"}\n{broken', "text/plain")}
    )
    assert bad.status_code == 400 and "line 2" in bad.json()["error"]["message"].lower()


def test_backup_downloads_and_restore_refuses_a_non_empty_library(
    api: httpx.Client, seraphina: dict[str, Any]
) -> None:
    backup = api.get("/backup")
    assert backup.status_code == 200
    doc = backup.json()
    assert doc["format"] == "kataribe-backup"
    refused = api.post("/backup/restore", files={"file": ("b.json", backup.content, "application/json")})
    assert 400 <= refused.status_code < 500


def test_chat_settings_are_validated_and_change_the_prompt(
    api: httpx.Client, seraphina: dict[str, Any]
) -> None:
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    for bad in (
        {"sampler": {"temperature": "hot"}},
        {"sampler": {"warmth": 1}},
        {"max_tokens": 0},
        {"prompt": {"order": ["nonsense"]}},
        {"prompt": {"instruct": "unknown"}},
    ):
        r = api.patch(f"/chats/{chat['id']}", json={"settings": bad})
        assert r.status_code == 400, bad
    ok = api.patch(
        f"/chats/{chat['id']}",
        json={
            "settings": {
                "prompt": {
                    "order": ["description", "main", "history"],
                    "disabled": ["examples"],
                    "instruct": "chatml",
                    "main_prompt": "You narrate for {{char}}.",
                }
            }
        },
    )
    assert ok.status_code == 200
    dry = api.get(f"/chats/{chat['id']}/prompt").json()
    assert [s["section"] for s in dry["sections"]][:2] == ["description", "main"]
    assert dry["text"].startswith("<|im_start|>system\n") and "You narrate for Seraphina." in dry["text"]


def test_group_auto_mode_keeps_talking_until_stopped(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    import time

    bob = api.post("/characters", json={"name": "Bob", "first_mes": "Hi."}).json()
    group = api.post(
        "/groups",
        json={
            "name": "Auto",
            "members": [seraphina["id"], bob["id"]],
            "activation_strategy": "pooled",
            "auto_mode_delay_s": 0,
        },
    ).json()
    chat = api.post(f"/groups/{group['id']}/chats").json()
    api.patch(f"/chats/{chat['id']}", json={"settings": {"max_tokens": 4}})
    start = api.get(f"/chats/{chat['id']}").json()["message_count"]
    assert api.put(f"/chats/{chat['id']}/group/auto", json={"enabled": True}).json() == {"enabled": True}
    deadline = time.monotonic() + 60
    while api.get(f"/chats/{chat['id']}").json()["message_count"] < start + 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert api.put(f"/chats/{chat['id']}/group/auto", json={"enabled": False}).json() == {"enabled": False}
    assert api.get(f"/chats/{chat['id']}").json()["message_count"] >= start + 2


def test_openapi_schema_lists_the_role_play_routes(server: LiveServer) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    for path in (
        "/api/characters/import",
        "/api/chats/{chat_id}/messages",
        "/api/lorebooks/{book_id}/test",
        "/api/backup",
        "/v1/chat/completions",
        "/api/v1/generate",
    ):
        assert path in schema["paths"], path


def test_stop_keeps_the_partial_reply(api: httpx.Client, seraphina: dict[str, Any]) -> None:
    import threading

    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    api.patch(f"/chats/{chat['id']}", json={"settings": {"max_tokens": 2000}})
    events: list[tuple[str, dict[str, Any]]] = []
    got_token = threading.Event()

    def send() -> None:
        with api.stream(
            "POST", f"/chats/{chat['id']}/messages", json={"text": "Tell me a very long story."}
        ) as r:
            for kind, data in iter_sse(r):
                events.append((kind, data))
                if kind == "token":
                    got_token.set()

    t = threading.Thread(target=send)
    t.start()
    assert got_token.wait(60)
    assert api.post(f"/chats/{chat['id']}/stop").json() == {"stopped": True}
    t.join(60)
    stored = [d for k, d in events if k == "message"]
    assert stored and stored[0]["meta"]["finish_reason"] == "cancelled"
    assert stored[0]["meta"]["usage"]["completion_tokens"] < 2000
    assert api.get(f"/chats/{chat['id']}").json()["messages"][-1]["id"] == stored[0]["id"]
    assert api.post(f"/chats/{chat['id']}/stop").json() == {"stopped": False}


def test_books_and_cards_are_parsed_once_and_an_edit_shows_on_the_next_turn(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kataribe.services import chat_prompt

    parsed: list[str] = []
    real_book_of, real_card_of = chat_prompt.book_of, chat_prompt.card_of

    def counting_book_of(row: Any) -> Any:
        parsed.append(f"book {row.name}")
        return real_book_of(row)

    def counting_card_of(row: Any) -> Any:
        parsed.append(f"card {row.name}")
        return real_card_of(row)

    monkeypatch.setattr(chat_prompt, "book_of", counting_book_of)
    monkeypatch.setattr(chat_prompt, "card_of", counting_card_of)

    def entry(content: str) -> dict[str, Any]:
        return {"entries": [{"uid": 0, "keys": ["lantern"], "content": content}]}

    book = api.post("/lorebooks", json={"name": "Lamps", "data": entry("The lantern burns blue.")}).json()
    hero = api.post("/characters", json={"name": "Lamplighter", "description": "Tends the lamps."}).json()
    chat = api.post("/chats", json={"character_id": hero["id"]}).json()
    api.post(f"/lorebooks/{book['id']}/links", json={"chat_id": chat["id"]})
    api.post(f"/chats/{chat['id']}/messages", json={"text": "Look at the lantern.", "generate": False})

    def prompt() -> str:
        dry = api.get(f"/chats/{chat['id']}/prompt")
        assert dry.status_code == 200, dry.text
        return json.dumps(dry.json()["messages"], ensure_ascii=False)

    first, second = prompt(), prompt()
    assert "burns blue" in first and "Tends the lamps" in first and second == first
    assert parsed == ["card Lamplighter", "book Lamps"]  # the second turn parsed nothing

    updated = api.patch(f"/lorebooks/{book['id']}", json={"data": entry("The lantern burns red.")})
    assert updated.status_code == 200, updated.text
    assert "burns red" in prompt() and parsed[-1] == "book Lamps"
    api.patch(f"/characters/{hero['id']}", json={"description": "Guards the lighthouse."})
    text = prompt()
    assert "Guards the lighthouse" in text and "Tends the lamps" not in text

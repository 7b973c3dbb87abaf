"""Hostile data over real HTTP: lone surrogates on every JSON route and in every imported file, one text
limit on every write path, zip bombs made of small members, images of absurd declared size."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kataribe.api.ollama.errors import is_ollama_path
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.store.fields import MAX_TEXT_CHARS
from tests.conftest import LiveServer, api_client, serve
from tests.hostile import card_json, card_png, charx, png


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, engine: EmbeddedEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The whole module runs against a live server on SQLite (the default) and on PostgreSQL."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()
    server = serve(engine, tmp_path_factory.mktemp(f"hostile-{request.param}"), database_url=url)
    yield server
    server.stop()


api = api_client("api")
LONE = "a\ud800b"


@pytest.fixture(scope="module")
def library(api: httpx.Client) -> dict[str, int]:
    """One of each thing the write paths change: a character, its chat, a group, a lorebook."""
    character = api.post("/characters", json={"name": "Mira"}).json()["id"]
    chat = api.post("/chats", json={"character_id": character}).json()["id"]
    group = api.post("/groups", json={"name": "Party", "members": [character]}).json()["id"]
    book = api.post("/lorebooks", json={"name": "Book", "data": {"entries": []}}).json()["id"]
    persona = api.post("/personas", json={"name": "Alice"}).json()["id"]
    return {"character": character, "chat": chat, "group": group, "book": book, "persona": persona}


def assert_backup_works(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/backup")
    assert response.status_code == 200, response.text[:300]
    document: dict[str, Any] = json.loads(response.content.decode("utf-8"))
    return document


def send(api: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    """JSON with every non-ASCII character escaped, so a lone surrogate goes out as ``\\ud800``."""
    raw = json.dumps(body).encode("ascii")
    return api.request(method, path, content=raw, headers={"content-type": "application/json"})


def assert_refused_naming(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    error = response.json()["error"]
    message = error if isinstance(error, str) else error["message"]  # Ollama's shape is a string
    assert "surrogate" in message and field in message, error


# -- every JSON route, walked from the OpenAPI schema -------------------------------------------------


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _types(schema: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, spec)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [_resolve(option, spec) for option in options]


def string_fields(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(path, body) for every string a body may carry: top-level, one object deeper, list items."""
    for option in _types(schema, spec):
        for name, prop in (option.get("properties") or {}).items():
            for kind in _types(prop, spec):
                if kind.get("type") == "string" and "enum" not in kind and "const" not in kind:
                    yield name, {name: LONE}
                elif (
                    kind.get("type") == "array"
                    and _resolve(kind.get("items", {}), spec).get("type") == "string"
                ):
                    yield f"{name}[0]", {name: [LONE]}
                elif kind.get("properties") and depth < 1:
                    for path, inner in string_fields(kind, spec, depth + 1):
                        yield f"{name}.{path}", {name: inner}
                elif kind.get("type") == "array" and depth < 1:
                    for path, inner in string_fields(kind.get("items", {}), spec, depth + 1):
                        yield f"{name}[0].{path}", {name: [inner]}
        if option.get("type") == "object" and not option.get("properties"):
            yield "anything", {"anything": LONE}  # a free-form object (card fields, settings)


def json_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                yield method, re.sub(r"\{[^}]+\}", "1", path), content["application/json"]["schema"]


def test_every_json_route_refuses_a_lone_surrogate_in_any_string_field_naming_it(
    live: Any, api: httpx.Client, library: dict[str, int]
) -> None:
    spec = httpx.get(live.url + "/openapi.json").json()
    tried: list[str] = []
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for method, path, schema in json_operations(spec):
            for field, body in string_fields(schema, spec):
                # json.dumps writes the lone surrogate as the escape \ud800, as a hostile client would
                raw = json.dumps(body).encode("ascii")
                response = client.request(
                    method, path, content=raw, headers={"content-type": "application/json"}
                )
                assert_refused_naming(response, field)
                error = response.json()["error"]
                if is_ollama_path(path):  # Ollama clients read {"error": "..."}
                    assert isinstance(error, str), error
                else:
                    assert error["param"] == field
                tried.append(f"{method} {path} {field}")
    # the walk reached the surfaces other clients use, not only Kataribe's own
    assert any(" /v1/chat/completions messages[0].content" in t for t in tried), tried
    assert any(" /api/v1/generate prompt" in t for t in tried), tried[:20]
    assert any(" /api/characters/1 anything" in t for t in tried), tried[:20]
    assert any(" /api/chat messages[0].content" in t for t in tried), tried[:20]
    assert len(tried) > 60
    assert_backup_works(api)


@pytest.mark.parametrize(
    "text",
    [
        "\\\\ud800",  # an escaped backslash, then the letters ud800: ordinary text
        "\\ud83d\\ude00",  # a valid pair (😀), as JSON encoders with ensure_ascii write it
    ],
)
def test_escapes_that_are_not_lone_surrogates_pass(api: httpx.Client, text: str) -> None:
    raw = ('{"name": "' + text + '"}').encode("ascii")
    created = api.post("/personas", content=raw, headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == json.loads(raw)["name"]
    assert_backup_works(api)


@pytest.mark.parametrize("escape", ["\\udc00", "\\ud800\\u0041", "\\uDBFF", "x\\\\\\ud800"])
def test_lone_high_low_and_uppercase_escapes_are_refused(api: httpx.Client, escape: str) -> None:
    raw = ('{"name": "Bob", "description": "' + escape + '"}').encode("ascii")
    assert_refused_naming(
        api.post("/personas", content=raw, headers={"content-type": "application/json"}), "description"
    )


# -- the five write paths that stored them, with otherwise valid bodies --------------------------------


def test_the_write_paths_that_stored_lone_surrogates_refuse_them_and_the_backup_keeps_working(
    api: httpx.Client, library: dict[str, int]
) -> None:
    chat, character, group = library["chat"], library["character"], library["group"]
    attempts = {
        "description": send(api, "PATCH", f"/characters/{character}", {"description": LONE}),
        "settings.sampler.note": send(
            api, "PATCH", f"/chats/{chat}", {"settings": {"sampler": {"note": LONE}}}
        ),
        "author_note.text": send(api, "PATCH", f"/chats/{chat}", {"author_note": {"text": LONE}}),
        "scenario_override": send(api, "PATCH", f"/groups/{group}", {"scenario_override": LONE}),
        "data.entries[0].content": send(
            api, "PATCH", f"/lorebooks/{library['book']}", {"data": {"entries": [{"content": LONE}]}}
        ),
    }
    for field, response in attempts.items():
        assert_refused_naming(response, field)
    book = {"entries": {"0": {"uid": 0, "key": ["wolf"], "content": LONE}}}
    imported = api.post(
        "/lorebooks/import",
        files={"file": ("book.json", json.dumps(book).encode("ascii"), "application/json")},
    )
    assert_refused_naming(imported, "content")
    document = assert_backup_works(api)
    assert [b["name"] for b in document["lorebooks"]] == ["Book"]
    assert api.get(f"/characters/{character}").status_code == 200
    assert api.get(f"/chats/{chat}").status_code == 200
    assert api.get(f"/groups/{group}").status_code == 200


# -- imported files -------------------------------------------------------------------------------------


def _v3_card(description: str) -> dict[str, Any]:
    data = {"name": "Boxed", "description": description, "first_mes": "Hi", "assets": []}
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("card.json", card_json(description=LONE)),
        ("card.png", card_png(card_json(personality=LONE))),
        ("card.charx", charx(_v3_card(LONE), {})),
        ("card.json", card_json(alternate_greetings=["fine", LONE])),
    ],
)
def test_imported_cards_with_lone_surrogates_are_refused_and_nothing_is_stored(
    api: httpx.Client, name: str, data: bytes
) -> None:
    before = len(api.get("/characters").json())
    response = api.post("/characters/import", files={"file": (name, data)})
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"], response.text
    assert len(api.get("/characters").json()) == before
    assert_backup_works(api)


def test_an_st_chat_and_a_backup_with_lone_surrogates_are_refused(
    api: httpx.Client, library: dict[str, int]
) -> None:
    header = {"user_name": "You", "character_name": "Mira", "create_date": "2024-01-01"}
    line = {"name": "Mira", "is_user": False, "mes": LONE, "send_date": "2024-01-01"}
    jsonl = (json.dumps(header) + "\n" + json.dumps(line)).encode("ascii")
    chats_before = len(api.get("/chats").json())
    response = api.post(
        "/chats/import", files={"file": ("c.jsonl", jsonl)}, data={"character_id": str(library["character"])}
    )
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"], response.text
    assert len(api.get("/chats").json()) == chats_before

    document = assert_backup_works(api)
    document["personas"][0]["description"] = LONE
    restored = api.post("/backup/restore", files={"file": ("b.json", json.dumps(document).encode("ascii"))})
    assert restored.status_code == 400 and "surrogate" in restored.json()["error"]["message"], restored.text


# -- one text limit ---------------------------------------------------------------------------------------


def test_a_text_over_the_limit_is_refused_on_every_write_path_and_one_at_the_limit_is_kept(
    api: httpx.Client, library: dict[str, int]
) -> None:
    over, at = "x" * (MAX_TEXT_CHARS + 1), "y" * MAX_TEXT_CHARS
    refused = [
        api.post("/personas", json={"name": "Huge", "description": over}),
        api.patch(f"/characters/{library['character']}", json={"description": over}),
        api.patch(f"/chats/{library['chat']}", json={"author_note": {"text": over}}),
        api.patch(f"/groups/{library['group']}", json={"scenario_override": over}),
        api.patch(
            f"/lorebooks/{library['book']}",
            json={"data": {"entries": [{"uid": 0, "keys": ["k"], "content": over}]}},
        ),
        api.post("/characters/import", files={"file": ("big.json", card_json(name="Big", description=over))}),
    ]
    for response in refused:
        assert response.status_code == 400, response.text[:300]
        message = response.json()["error"]["message"]
        assert f"{MAX_TEXT_CHARS:,}" in message or f"at most {MAX_TEXT_CHARS} characters" in message
    kept = api.patch(f"/characters/{library['character']}", json={"description": at})
    assert kept.status_code == 200
    assert (
        len(api.get(f"/characters/{library['character']}").json()["card"]["data"]["description"])
        == MAX_TEXT_CHARS
    )
    assert_backup_works(api)


# -- disk ---------------------------------------------------------------------------------------------------


def _store_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in (data_dir / "assets").rglob("*") if f.is_file())


def test_a_charx_of_many_small_members_that_inflate_together_is_refused(live: Any, api: httpx.Client) -> None:
    # Forty members of 1 MiB (each just at the per-member ratio threshold), distinct so that none is
    # stored once for all: 40 MiB out of about 45 KB.
    members = {f"assets/other/blob{i}.bin": i.to_bytes(4, "big") + bytes(1024 * 1024 - 4) for i in range(40)}
    card = _v3_card("ok")
    card["data"]["assets"] = [
        {"type": "other", "uri": f"embeded://{name}", "name": f"blob{i}", "ext": "bin"}
        for i, name in enumerate(members)
    ]
    data = charx(card, members)
    assert len(data) < 100 * 1024
    data_dir = Path(live._server.config.app.state.settings.data_dir)
    before = _store_bytes(data_dir)
    response = api.post("/characters/import", files={"file": ("bomb.charx", data)})
    assert response.status_code == 400, response.text[:300]
    assert "as a whole" in response.json()["error"]["message"]
    assert _store_bytes(data_dir) - before < 1024 * 1024


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (16_384, 16_384), (40_000, 10)])
def test_images_declaring_absurd_sizes_are_refused_as_avatars_sprites_and_cards(
    api: httpx.Client, library: dict[str, int], width: int, height: int
) -> None:
    image = png(width, height)
    avatar = api.put(f"/personas/{library['persona']}/avatar", files={"file": ("a.png", image)})
    sprite = api.post(
        f"/characters/{library['character']}/sprites", data={"label": "joy"}, files={"file": ("j.png", image)}
    )
    card = api.post("/characters/import", files={"file": ("c.png", card_png(card_json(), width, height))})
    for response in (avatar, sprite, card):
        assert response.status_code == 400, response.text[:300]
        assert f"{width:,} x {height:,}" in response.json()["error"]["message"]


def test_an_image_of_ordinary_size_is_kept(api: httpx.Client, library: dict[str, int]) -> None:
    avatar = api.put(f"/personas/{library['persona']}/avatar", files={"file": ("a.png", png(512, 768))})
    assert avatar.status_code == 200, avatar.text
    assert api.get(f"/assets/{avatar.json()['avatar']}").status_code == 200

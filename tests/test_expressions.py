"""Expressions on the real model (constrained classification), sprite zips, presets and the engine switch."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from kataribe.api.app import create_app
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.engine.remote import RemoteConfig, RemoteEngine
from kataribe.services.expressions import (
    EXPRESSION_LABELS,
    SpriteZipError,
    classify_expression,
    expression_choices,
    read_sprite_zip,
)
from kataribe.settings import Settings
from tests.conftest import LiveServer, api_client, free_port, own_live_server

HAPPY = "Yay!! I'm so happy, this is the best day of my life! *laughs and dances with joy*"
PNG_1PX = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def seraphina_sprites_zip(fixtures_dir: Path) -> bytes:
    folder = fixtures_dir / "sillytavern" / "Seraphina-sprites"
    return zip_of({f"Seraphina/{p.name}": p.read_bytes() for p in sorted(folder.glob("*.png"))})


live = own_live_server("expr-data")
api = api_client("api", timeout=120)


@pytest.fixture(scope="module")
def seraphina(api: httpx.Client, fixtures_dir: Path) -> dict[str, Any]:
    png = (fixtures_dir / "sillytavern" / "Seraphina.png").read_bytes()
    r = api.post("/characters/import", files={"file": ("Seraphina.png", png, "image/png")})
    assert r.status_code == 201, r.text
    return r.json()


# -- classification on the real model ---------------------------------------------------------------


def test_default_labels_are_sillytaverns_28() -> None:
    assert len(EXPRESSION_LABELS) == 28 == len(set(EXPRESSION_LABELS))
    assert {"joy", "neutral", "admiration", "surprise", "remorse"} <= set(EXPRESSION_LABELS)


def test_choices_prefer_the_characters_sprites_plus_neutral() -> None:
    assert expression_choices(["joy", "anger"]) == ["anger", "joy", "neutral"]
    assert expression_choices(["neutral", "joy"]) == ["joy", "neutral"]
    assert expression_choices([]) == list(EXPRESSION_LABELS)


@pytest.mark.parametrize(
    "text",
    [
        HAPPY,
        "I hate you! Get out of my house right now!",
        "The train leaves at nine.",
        "悲しい…涙が止まらない。",
    ],
)
def test_classifier_answers_one_of_the_given_labels(engine: EmbeddedEngine, text: str) -> None:
    labels = ["anger", "joy", "sadness", "surprise", "neutral"]
    assert classify_expression(engine, text, labels) in labels


def test_classifier_over_all_default_labels_stays_in_the_set(engine: EmbeddedEngine) -> None:
    assert classify_expression(engine, HAPPY, EXPRESSION_LABELS) in EXPRESSION_LABELS


def test_happy_text_with_joy_or_neutral_is_one_of_them(engine: EmbeddedEngine) -> None:
    assert classify_expression(engine, HAPPY, ["joy", "neutral"]) in ("joy", "neutral")


def test_classifier_falls_back_to_neutral_without_text_or_choice(engine: EmbeddedEngine) -> None:
    assert classify_expression(engine, "   ", ["joy", "neutral"]) == "neutral"
    assert classify_expression(engine, HAPPY, []) == "neutral"
    assert classify_expression(engine, HAPPY, ["joy"]) == "joy"
    assert classify_expression(engine, "", ["joy", "anger"]) == "joy"


def test_hostile_labels_are_still_answered_from_the_list(engine: EmbeddedEngine) -> None:
    labels = ['"}]<script>alert(1)</script>', "a\\b", "neutral"]
    assert classify_expression(engine, HAPPY, labels) in labels


# -- sprite zips (pure) ------------------------------------------------------------------------------


def test_seraphina_sprite_folder_zip_gives_eight_labels(fixtures_dir: Path) -> None:
    sprites = read_sprite_zip(seraphina_sprites_zip(fixtures_dir))
    assert sorted(s.label for s in sprites) == [
        "anger",
        "confusion",
        "fear",
        "joy",
        "love",
        "neutral",
        "sadness",
        "surprise",
    ]
    assert all(s.mime == "image/png" for s in sprites)


def test_zip_skips_non_images_and_archiver_noise_and_lowercases_labels() -> None:
    data = zip_of({"Joy.PNG": PNG_1PX, "readme.txt": b"hi", "__MACOSX/._joy.png": b"x", "dir/": b""})
    assert [(s.label, s.mime) for s in read_sprite_zip(data)] == [("joy", "image/png")]


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ({"../joy.png": PNG_1PX}, "'..'"),
        ({"/etc/joy.png": PNG_1PX}, "absolute"),
        ({"joy.png": b"<script>alert(1)</script>"}, "not a PNG"),
        ({"evil.exe": b"MZ"}, "no sprites"),
        ({"joy.png": PNG_1PX, "sub/JOY.webp": PNG_1PX}, "two sprites"),
        ({"joy.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 10_000_000}, "zip bomb"),
        ({"joy.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 20_000_000}, "at most 16 MiB"),
    ],
)
def test_hostile_zips_are_refused(members: dict[str, bytes], fragment: str) -> None:
    with pytest.raises(SpriteZipError, match=fragment):
        read_sprite_zip(zip_of(members))


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(SpriteZipError, match="not a readable zip"):
        read_sprite_zip(b"PK\x03\x04 not really")


# -- over HTTP ---------------------------------------------------------------------------------------


def test_zip_upload_lists_and_deletes_sprites(
    api: httpx.Client, seraphina: dict[str, Any], fixtures_dir: Path
) -> None:
    cid = seraphina["id"]
    r = api.post(
        f"/characters/{cid}/sprites/zip",
        files={"file": ("sprites.zip", seraphina_sprites_zip(fixtures_dir), "application/zip")},
    )
    assert r.status_code == 201, r.text
    assert len(r.json()) == 8
    listed = api.get(f"/characters/{cid}/sprites").json()
    assert {s["label"] for s in listed} >= {"joy", "neutral", "anger"}
    joy = next(s for s in listed if s["label"] == "joy")
    assert api.get(f"/assets/{joy['asset']}").content[:4] == b"\x89PNG"
    # uploading again replaces instead of duplicating
    api.post(
        f"/characters/{cid}/sprites/zip",
        files={"file": ("sprites.zip", seraphina_sprites_zip(fixtures_dir), "application/zip")},
    )
    assert len(api.get(f"/characters/{cid}/sprites").json()) == 8
    assert api.delete(f"/characters/{cid}/sprites/fear").status_code == 204
    assert "fear" not in {s["label"] for s in api.get(f"/characters/{cid}/sprites").json()}
    assert api.delete(f"/characters/{cid}/sprites/fear").status_code == 404


def test_hostile_zip_upload_is_a_400_that_names_the_problem(
    api: httpx.Client, seraphina: dict[str, Any]
) -> None:
    r = api.post(
        f"/characters/{seraphina['id']}/sprites/zip",
        files={"file": ("x.zip", zip_of({"../../joy.png": PNG_1PX}), "application/zip")},
    )
    assert r.status_code == 400
    assert "'..'" in r.json()["error"]["message"]
    assert api.post("/characters/999999/sprites/zip", files={"file": ("x.zip", b"x")}).status_code in (
        400,
        404,
    )


def test_message_expression_returns_a_sprite_of_the_speaker(
    api: httpx.Client, seraphina: dict[str, Any], fixtures_dir: Path
) -> None:
    cid = seraphina["id"]
    api.post(
        f"/characters/{cid}/sprites/zip",
        files={"file": ("sprites.zip", seraphina_sprites_zip(fixtures_dir), "application/zip")},
    )
    sprites = {s["label"]: s["asset"] for s in api.get(f"/characters/{cid}/sprites").json()}
    chat = api.post("/chats", json={"character_id": cid}).json()
    greeting = api.get(f"/chats/{chat['id']}").json()["messages"][-1]
    r = api.post(f"/messages/{greeting['id']}/expression")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["label"] in sprites
    assert out["sprite"] == sprites[out["label"]]
    stored = api.get(f"/chats/{chat['id']}").json()["messages"][-1]
    assert stored["meta"]["expression"] == out["label"]
    assert api.post("/messages/999999/expression").status_code == 404


# -- presets -----------------------------------------------------------------------------------------


def test_sampler_preset_crud_and_apply_merges_into_the_chat(
    api: httpx.Client, seraphina: dict[str, Any]
) -> None:
    created = api.post(
        "/presets", json={"kind": "sampler", "name": "Cold", "data": {"temperature": 0.2, "top_k": 20}}
    )
    assert created.status_code == 201, created.text
    preset = created.json()
    assert preset["data"] == {"temperature": 0.2, "top_k": 20}
    assert preset["id"] in {p["id"] for p in api.get("/presets", params={"kind": "sampler"}).json()}
    assert preset["id"] not in {p["id"] for p in api.get("/presets", params={"kind": "system_prompt"}).json()}
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    api.patch(f"/chats/{chat['id']}", json={"settings": {"sampler": {"min_p": 0.1, "temperature": 1.5}}})
    applied = api.post(f"/presets/{preset['id']}/apply", json={"chat_id": chat["id"]})
    assert applied.status_code == 200, applied.text
    sampler = api.get(f"/chats/{chat['id']}").json()["settings"]["sampler"]
    assert sampler == {"min_p": 0.1, "temperature": 0.2, "top_k": 20}
    renamed = api.patch(f"/presets/{preset['id']}", json={"name": "Colder", "data": {"temperature": 0.1}})
    assert renamed.json()["name"] == "Colder" and renamed.json()["data"] == {"temperature": 0.1}
    assert api.delete(f"/presets/{preset['id']}").status_code == 204
    assert api.get(f"/presets/{preset['id']}").status_code == 404


def test_system_prompt_preset_applies_to_settings_prompt(
    api: httpx.Client, seraphina: dict[str, Any]
) -> None:
    preset = api.post(
        "/presets",
        json={
            "kind": "system_prompt",
            "name": "<b>Terse</b>",
            "data": {"main_prompt": "Be brief.", "post_history": ""},
        },
    ).json()
    assert preset["name"] == "<b>Terse</b>"
    chat = api.post("/chats", json={"character_id": seraphina["id"]}).json()
    api.post(f"/presets/{preset['id']}/apply", json={"chat_id": chat["id"]})
    prompt = api.get(f"/chats/{chat['id']}").json()["settings"]["prompt"]
    assert prompt["main_prompt"] == "Be brief."


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "sampler", "name": "x", "data": {"temperature": "hot"}},
        {"kind": "sampler", "name": "x", "data": {"evil": 1}},
        {"kind": "sampler", "name": "x", "data": {"top_k": 1.5}},
        {"kind": "sampler", "name": "x", "data": {"temperature": True}},
        {"kind": "system_prompt", "name": "x", "data": {"main_prompt": {"nested": 1}}},
        {"kind": "system_prompt", "name": "x", "data": {"jailbreak": "hi"}},
        {"kind": "other", "name": "x", "data": {}},
        {"kind": "sampler", "name": "", "data": {}},
        {"kind": "sampler", "name": "   ", "data": {}},
    ],
)
def test_bad_presets_are_a_400(api: httpx.Client, body: dict[str, Any]) -> None:
    r = api.post("/presets", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


# -- the engine connection ---------------------------------------------------------------------------


def test_engine_reports_the_embedded_model(api: httpx.Client) -> None:
    current = api.get("/engine").json()
    assert current["engine"] and current["model"] and current["n_ctx"] > 0
    assert current["remote"] is None


def test_unreachable_remote_is_a_502_and_keeps_the_model(api: httpx.Client) -> None:
    r = api.put("/engine/remote", json={"base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key": "sk-x"})
    assert r.status_code == 502, r.text
    assert "remote backend" in r.json()["error"]["message"]
    assert api.put("/engine/remote", json={"base_url": "ftp://nowhere"}).status_code == 502
    assert api.get("/engine").json()["remote"] is None
    assert api.post("/render", json={"texts": ["ok"]}).status_code == 200


def test_switching_to_a_remote_backend_hides_its_key(
    server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # an app that already drives a remote engine (the shared live server), so switching closes
    # nothing but that client: the shared embedded model keeps running for the other tests
    port = free_port()
    first = RemoteEngine(RemoteConfig(base_url=server.url + "/v1"))
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("remote"), port=port), first)
    live = LiveServer(app, port).start()
    try:
        client = httpx.Client(base_url=live.url + "/api", timeout=60)
        r = client.put("/engine/remote", json={"base_url": server.url + "/v1", "api_key": "sk-secret-123"})
        assert r.status_code == 200, r.text
        assert "sk-secret-123" not in r.text
        assert r.json()["remote"] == {"base_url": server.url + "/v1", "model": None, "api_key_set": True}
        current = client.get("/engine")
        assert "sk-secret-123" not in current.text and current.json()["n_ctx"] > 0
    finally:
        live.stop()

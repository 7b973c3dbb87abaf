"""Character cards: real SillyTavern/V3 files, every spec and container, round trips, hostile files."""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from kataribe.formats import png
from kataribe.formats.cards import (
    CardAsset,
    CardFormatError,
    CharacterCard,
    card_to_v2,
    card_to_v3,
    export_card_charx,
    export_card_json,
    export_card_png,
    import_card,
)


def b64json(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def card_png(texts: list[tuple[str, str]], image: bytes | None = None) -> bytes:
    return png.rewrite_text_chunks(image or png.placeholder_png(4), drop=lambda _: False, add=texts)


def png_texts(data: bytes) -> dict[str, Any]:
    """Card chunks of a PNG, decoded to JSON."""
    return {
        t.keyword: json.loads(base64.b64decode(t.text))
        for t in png.read_text_chunks(data)
        if t.keyword in ("chara", "ccv3")
    }


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def patch_central_directory(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Rewrite one field of every central directory entry (what zipfile trusts for sizes and flags)."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos != -1:
        struct.pack_into(fmt, out, pos + offset, value)
        pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


FULL_V3: dict[str, Any] = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "x_top": {"kept": True},
    "data": {
        "name": "語り部",
        "description": "A storyteller. <script>alert(1)</script>",
        "personality": "calm",
        "scenario": "a library",
        "first_mes": "Hello, {{user}}.",
        "mes_example": "<START>\n{{char}}: Hi.",
        "creator_notes": "notes",
        "system_prompt": "Stay in character.",
        "post_history_instructions": "Be brief.",
        "alternate_greetings": ["Hi!", "Yo."],
        "group_only_greetings": ["Hello, everyone."],
        "tags": ["fantasy", "日本語"],
        "creator": "me",
        "character_version": "1.2",
        "nickname": "Kata",
        "creator_notes_multilingual": {"en": "notes", "ja": "メモ"},
        "source": ["https://example.com/card"],
        "creation_date": 1700000000,
        "modification_date": 1700000100.5,
        "character_book": {"name": "lore", "entries": [{"keys": ["a"], "content": "b", "use_regex": False}]},
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "extensions": {"depth_prompt": {"prompt": "x", "depth": 4}, "x_unknown": [1, {"deep": None}]},
        "x_future_field": {"anything": [1, 2]},
    },
}


# ---------------------------------------------------------------- real files


def test_seraphina_png_imports_as_v2_with_its_character_book(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "sillytavern" / "Seraphina.png").read_bytes()
    imported = import_card(raw, "Seraphina.png")
    card = imported.card
    assert (imported.spec, imported.source_format, card.name) == ("v2", "png", "Seraphina")
    assert card.character_book is not None and len(card.character_book["entries"]) >= 2
    assert card.character_book["entries"][0]["keys"][0] == "eldoria"
    assert card.extensions["world"] == "Eldoria" and card.creator == "OtisAlejandro"
    assert card.first_mes.startswith("*You wake with a start")
    # V1 mirrors are derived; the non-mirror top-level keys SillyTavern writes are kept
    assert set(card.extra_top_level) == {"avatar", "chat", "create_date"}
    # the avatar is the same image without the card text
    assert imported.avatar is not None
    avatar_chunks = png.read_chunks(imported.avatar)
    assert [c.type for c in avatar_chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert [c for c in png.read_chunks(raw) if c.type == b"IDAT"] == avatar_chunks[1:2]


def test_default_chan_imports_v3_from_its_ccv3_chunk_alone(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "cards" / "Default-chan-v3.png").read_bytes()
    assert "chara" not in png_texts(raw)
    imported = import_card(raw)
    assert (imported.spec, imported.card.name, imported.card.creator) == ("v3", "Default-chan", "Choral")
    assert len(imported.card.alternate_greetings) == 2 and "Cute" in imported.card.tags


@pytest.mark.parametrize(
    ("path", "chunk"),
    [("sillytavern/Seraphina.png", "chara"), ("cards/Default-chan-v3.png", "ccv3")],
)
def test_real_cards_reexport_with_identical_data_objects(fixtures_dir: Path, path: str, chunk: str) -> None:
    raw = (fixtures_dir / path).read_bytes()
    original = png_texts(raw)[chunk]
    imported = import_card(raw)
    exported_png = png_texts(export_card_png(imported.card, imported.avatar, imported.assets))
    assert exported_png[chunk]["data"] == original["data"]
    spec = "v2" if chunk == "chara" else "v3"
    assert json.loads(export_card_json(imported.card, spec))["data"] == original["data"]
    if chunk == "chara":  # SillyTavern's V1 mirrors and other top-level keys survive too
        top = {k: v for k, v in exported_png["chara"].items() if k != "tags"}
        assert top == original


@pytest.mark.parametrize("path", ["sillytavern/Seraphina.png", "cards/Default-chan-v3.png"])
def test_real_png_import_export_import_gives_the_same_card(fixtures_dir: Path, path: str) -> None:
    first = import_card((fixtures_dir / path).read_bytes())
    second = import_card(export_card_png(first.card, first.avatar, first.assets))
    assert second.card == first.card
    assert second.spec == "v3"  # the ccv3 chunk we write wins over our chara chunk
    assert second.avatar == first.avatar


# ---------------------------------------------------------------- PNG specifics


def test_ccv3_chunk_wins_over_chara() -> None:
    v2 = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Old V2 name"}}
    v3 = {"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "New V3 name"}}
    for order in (
        [("chara", b64json(v2)), ("ccv3", b64json(v3))],
        [("ccv3", b64json(v3)), ("chara", b64json(v2))],
    ):
        imported = import_card(card_png(order))
        assert (imported.card.name, imported.spec) == ("New V3 name", "v3")


def test_chara_chunk_may_hold_v1_or_v3_json_and_keywords_ignore_case() -> None:
    assert import_card(card_png([("chara", b64json({"name": "Flat"}))])).spec == "v1"
    v3 = {"spec": "chara_card_v3", "data": {"name": "In chara"}}
    imported = import_card(card_png([("Chara", b64json(v3))]))
    assert (imported.spec, imported.card.name) == ("v3", "In chara")


def test_card_in_ztxt_and_itxt_chunks_is_read() -> None:
    payload = b64json({"spec": "chara_card_v2", "data": {"name": "Zipped"}}).encode()
    ztxt = png.PngChunk(b"zTXt", b"chara\0\0" + zlib.compress(payload))
    itxt = png.PngChunk(b"iTXt", b"chara\0\1\0en\0\0" + zlib.compress(payload))
    for chunk in (ztxt, itxt):
        chunks = png.read_chunks(png.placeholder_png(2))
        data = png.PNG_SIGNATURE + b"".join(c.to_bytes() for c in [*chunks[:-1], chunk, chunks[-1]])
        assert import_card(data).card.name == "Zipped"


def apng_with_card() -> bytes:
    chunks = png.read_chunks(png.placeholder_png(2))
    ihdr, idat, iend = chunks
    fctl = png.PngChunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 2, 2, 0, 0, 1, 10, 0, 0))
    fctl2 = png.PngChunk(b"fcTL", struct.pack(">IIIIIHHBB", 1, 2, 2, 0, 0, 1, 10, 0, 0))
    fdat = png.PngChunk(b"fdAT", struct.pack(">I", 2) + idat.data)
    actl = png.PngChunk(b"acTL", struct.pack(">II", 2, 0))
    ordered = [ihdr, actl, fctl, idat, fctl2, fdat, iend]
    return png.PNG_SIGNATURE + b"".join(c.to_bytes() for c in ordered)


def test_apng_frames_pass_through_import_and_export_untouched() -> None:
    apng = apng_with_card()
    exported = export_card_png(CharacterCard(name="Animated"), apng)
    non_text = [c for c in png.read_chunks(exported) if c.type not in (b"tEXt",)]
    assert non_text == png.read_chunks(apng)
    imported = import_card(exported)
    assert imported.card.name == "Animated"
    assert imported.avatar == apng


def test_export_replaces_old_card_chunks_and_keeps_other_text() -> None:
    old = card_png([("Comment", "made by hand"), ("chara", b64json({"name": "Old"})), ("ccv3", "junk")])
    exported = export_card_png(CharacterCard(name="New"), old)
    keywords = [t.keyword for t in png.read_text_chunks(exported)]
    assert keywords == ["Comment", "chara", "ccv3"]
    assert import_card(exported).card.name == "New"


def test_export_without_image_writes_a_valid_placeholder_png() -> None:
    exported = export_card_png(CharacterCard(name="No image"))
    ihdr = png.read_chunks(exported)[0]
    assert struct.unpack(">II", ihdr.data[:8]) == (64, 64)
    idat = b"".join(c.data for c in png.read_chunks(exported) if c.type == b"IDAT")
    assert zlib.decompress(idat) == (b"\0" + b"\x80" * 64) * 64
    assert import_card(exported).card.name == "No image"


def test_png_export_writes_v2_mirrors_like_sillytavern() -> None:
    card = CharacterCard(name="Mira", creator_notes="n", tags=["t"], extensions={"talkativeness": "0.5"})
    chara = png_texts(export_card_png(card))["chara"]
    assert chara["spec"] == "chara_card_v2" and chara["data"]["name"] == "Mira"
    assert (chara["name"], chara["creatorcomment"], chara["tags"], chara["talkativeness"]) == (
        "Mira",
        "n",
        ["t"],
        "0.5",
    )


# ---------------------------------------------------------------- JSON specs and round trips


def test_v3_json_keeps_every_field_and_unknown_key() -> None:
    imported = import_card(json.dumps(FULL_V3).encode())
    card = imported.card
    data = FULL_V3["data"]
    # FULL_V3 sets every V3 field, and each one comes back as given
    assert {f.name for f in fields(CharacterCard)} - set(data) == {
        "extra_data",
        "extra_top_level",
        "missing_fields",
    }
    for name, value in data.items():
        if name != "x_future_field":
            assert getattr(card, name) == value, name
    assert card.extra_data == {"x_future_field": {"anything": [1, 2]}}
    assert card.extra_top_level == {"x_top": {"kept": True}}
    assert json.loads(export_card_json(card)) == FULL_V3
    assert card_to_v3(card) == FULL_V3


@pytest.mark.parametrize("via", ["json-v2", "json-v3", "png", "charx"])
def test_v3_card_survives_every_export_route(via: str) -> None:
    first = import_card(json.dumps(FULL_V3).encode()).card
    if via == "json-v2":
        exported = export_card_json(first, "v2")
    elif via == "json-v3":
        exported = export_card_json(first, "v3")
    elif via == "png":
        exported = export_card_png(first)
    else:
        exported = export_card_charx(first)
    second = import_card(exported).card
    assert second == first


def test_v1_flat_card_keeps_unknown_keys_and_gains_v2_mirrors_on_export() -> None:
    v1 = {
        "name": "Flat",
        "description": "d",
        "personality": "p",
        "scenario": "s",
        "first_mes": "f",
        "mes_example": "m",
        "avatar": "none",
        "talkativeness": "0.7",
        "create_date": "2023-1-1",
    }
    imported = import_card(json.dumps(v1).encode())
    assert imported.spec == "v1"
    card = imported.card
    assert (card.name, card.description, card.personality, card.scenario) == ("Flat", "d", "p", "s")
    assert card.extra_top_level == {"avatar": "none", "talkativeness": "0.7", "create_date": "2023-1-1"}
    v2 = json.loads(export_card_json(card, "v2"))
    assert {k: v2[k] for k in v1} == v1  # every V1 key is still at the top for V1 readers
    assert v2["data"]["name"] == "Flat" and v2["data"]["tags"] == []
    assert import_card(export_card_json(card, "v2")).card == card
    assert import_card(export_card_json(card, "v3")).card == card


def test_pygmalion_style_keys_are_read_as_v1() -> None:
    flat = {"char_name": "Pyg", "char_persona": "persona", "char_greeting": "hi", "world_scenario": "w"}
    card = import_card(json.dumps(flat).encode()).card
    assert (card.name, card.description, card.first_mes, card.scenario) == ("Pyg", "persona", "hi", "w")


def test_v2_data_wins_over_top_level_mirrors_and_unknown_keys_survive() -> None:
    v2 = {
        "name": "Stale mirror",
        "chat": "some chat",
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Real name",
            "description": "",
            "extensions": {"fav": True, "x_ext": {"nested": [1]}},
            "x_data": 1,
            "group_only_greetings": ["only in groups"],
        },
    }
    imported = import_card(json.dumps(v2).encode())
    card = imported.card
    assert (imported.spec, card.name, card.group_only_greetings) == ("v2", "Real name", ["only in groups"])
    assert card.extensions["x_ext"] == {"nested": [1]} and card.extra_data == {"x_data": 1}
    assert card.extra_top_level == {"chat": "some chat"}
    again = json.loads(export_card_json(card, "v2"))
    assert again["data"] == v2["data"]
    assert again["name"] == "Real name" and again["chat"] == "some chat"
    assert import_card(export_card_json(card, "v3")).card == card


def test_v2_exports_as_complete_v3_while_a_v3_source_keeps_its_own_shape() -> None:
    v2 = import_card(json.dumps({"spec": "chara_card_v2", "data": {"name": "Two"}}).encode()).card
    as_v3 = card_to_v3(v2)["data"]
    assert as_v3["group_only_greetings"] == []  # required by V3; a V2 source never had it
    assert "tags" not in as_v3  # the source lacked it and it is still empty
    v2.tags = ["now set"]
    assert card_to_v3(v2)["data"]["tags"] == ["now set"]
    assert card_to_v2(v2)["data"]["tags"] == ["now set"]


def test_null_optional_fields_read_as_absent() -> None:
    v3 = {"spec": "chara_card_v3", "data": {"name": "N", "nickname": None, "character_book": None}}
    card = import_card(json.dumps(v3).encode()).card
    assert card.nickname is None and card.character_book is None
    assert "nickname" not in card_to_v3(card)["data"]


def test_exports_do_not_share_mutable_state_with_the_card() -> None:
    card = import_card(json.dumps(FULL_V3).encode()).card
    exported = card_to_v3(card)
    exported["data"]["extensions"]["x_unknown"].append("mutated")
    exported["data"]["tags"].append("mutated")
    assert card.extensions["x_unknown"] == [1, {"deep": None}] and "mutated" not in card.tags


def test_json_with_bom_imports_and_lone_surrogates_are_refused_naming_the_field() -> None:
    card = import_card(b"\xef\xbb\xbf" + b'{"name": "Good \\ud83d\\ude00 pair", "description": "ok"}').card
    assert card.name == "Good \U0001f600 pair"
    assert import_card(export_card_json(card)).card == card
    raw = (
        b'{"data": {"name": "x", "alternate_greetings": ["ok", "Bad \\ud800 half"]}, "spec": "chara_card_v2"}'
    )
    with pytest.raises(
        CardFormatError, match=r"'data\.alternate_greetings\[1\]' contains an unpaired surrogate"
    ):
        import_card(raw)


# ---------------------------------------------------------------- assets: CHARX, RisuAI, data URIs


def risu_charx(uri_prefix: str = "embeded://") -> tuple[bytes, dict[str, bytes]]:
    icon, joy, bg = png.placeholder_png(8, 10), png.placeholder_png(8, 200), b"RIFF\0\0\0\0WEBPfake"
    card = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Zipped",
            "assets": [
                {
                    "type": "icon",
                    "uri": uri_prefix + "assets/icon/images/main.png",
                    "name": "main",
                    "ext": "png",
                },
                {
                    "type": "emotion",
                    "uri": uri_prefix + "assets/emotion/images/joy.png",
                    "name": "joy",
                    "ext": "png",
                },
                {
                    "type": "background",
                    "uri": uri_prefix + "assets/background/images/bg.webp",
                    "name": "bg",
                    "ext": "webp",
                },
                {"type": "x_remote", "uri": "https://example.com/a.png", "name": "remote", "ext": "png"},
            ],
            "extensions": {"risuai": {"utilityBot": False}},
        },
    }
    members = {
        "card.json": json.dumps(card).encode(),
        "assets/icon/images/main.png": icon,
        "assets/emotion/images/joy.png": joy,
        "assets/background/images/bg.webp": bg,
        "module.risum": b"\0risu",
        "x_meta/main.json": b'{"type": "PNG"}',
    }
    return make_zip(members), members


@pytest.mark.parametrize("uri_prefix", ["embeded://", "embedded://"])
def test_charx_assets_resolve_to_zip_members(uri_prefix: str) -> None:
    data, members = risu_charx(uri_prefix)
    imported = import_card(data, "Zipped.charx")
    assert (imported.source_format, imported.spec, imported.card.name) == ("charx", "v3", "Zipped")
    by_name = {asset.name: asset for asset in imported.assets}
    assert (
        by_name["joy"].type == "emotion" and by_name["joy"].data == members["assets/emotion/images/joy.png"]
    )
    assert by_name["bg"].data == members["assets/background/images/bg.webp"]
    assert by_name["remote"].data is None  # never fetched
    assert imported.avatar == members["assets/icon/images/main.png"]


def test_charx_round_trip_keeps_card_and_asset_bytes() -> None:
    first = import_card(risu_charx()[0])
    exported = export_card_charx(first.card, first.assets, first.avatar)
    second = import_card(exported)
    assert second.card == first.card
    assert [(a.type, a.name, a.uri, a.data) for a in second.assets] == [
        (a.type, a.name, a.uri, a.data) for a in first.assets
    ]
    assert export_card_charx(second.card, second.assets, second.avatar) == exported  # deterministic bytes


def test_charx_export_moves_the_avatar_and_inline_assets_into_members() -> None:
    joy = png.placeholder_png(4, 1)
    card = CharacterCard(
        name="Inline",
        assets=[
            {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"},
            {
                "type": "emotion",
                "uri": "data:image/png;base64," + base64.b64encode(joy).decode(),
                "name": "joy",
                "ext": "png",
            },
        ],
    )
    first = import_card(export_card_json(card))
    assert [a.data for a in first.assets] == [None, joy]
    avatar = png.placeholder_png(16)
    second = import_card(export_card_charx(first.card, first.assets, avatar))
    assert second.avatar == avatar
    uris = [a["uri"] for a in second.card.assets or []]
    assert uris == ["embeded://assets/icon/images/main.png", "embeded://assets/emotion/images/joy.png"]
    assert second.assets[1].data == joy


def risu_v2_png() -> tuple[bytes, bytes]:
    joy = png.placeholder_png(4, 250)
    v2 = {
        "spec": "chara_card_v2",
        "data": {
            "name": "Risu",
            "extensions": {
                "risuai": {
                    "emotions": [["joy", "__asset:1"]],
                    "additionalAssets": [["map", "__asset:2", "png"]],
                }
            },
        },
    }
    texts = [
        ("chara-ext-asset_:1", base64.b64encode(joy).decode()),
        ("chara-ext-asset_:2", base64.b64encode(b"map bytes").decode()),
        ("chara", b64json(v2)),
    ]
    return card_png(texts), joy


def test_risuai_v2_emotions_come_back_as_emotion_assets() -> None:
    data, joy = risu_v2_png()
    imported = import_card(data)
    assert [(a.type, a.name, a.ext, a.data) for a in imported.assets] == [
        ("emotion", "joy", "png", joy),
        ("x-risu-asset", "map", "png", b"map bytes"),
    ]
    assert imported.avatar is not None
    assert not [t for t in png.read_text_chunks(imported.avatar) if t.keyword.startswith("chara")]
    again = import_card(export_card_png(imported.card, imported.avatar, imported.assets))
    assert again.card == imported.card
    assert [a.data for a in again.assets] == [a.data for a in imported.assets]


def test_risuai_v2_emotions_become_v3_descriptors_in_charx() -> None:
    imported = import_card(risu_v2_png()[0])
    converted = import_card(export_card_charx(imported.card, imported.assets, imported.avatar))
    assets = {a.name: a for a in converted.assets}
    assert assets["joy"].type == "emotion" and assets["joy"].uri.startswith(
        "embeded://assets/emotion/images/"
    )
    assert assets["joy"].data == risu_v2_png()[1]
    assert "emotions" not in converted.card.extensions["risuai"]  # moved, not duplicated
    assert converted.avatar == imported.avatar


def test_v3_png_asset_chunks_and_ccdefault_resolve() -> None:
    image = png.placeholder_png(6)
    v3 = {
        "spec": "chara_card_v3",
        "data": {
            "name": "Chunky",
            "assets": [
                {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"},
                {"type": "emotion", "uri": "__asset:sad", "name": "sad", "ext": "png"},
                {"type": "background", "uri": "ccdefault:", "name": "main", "ext": "png"},
            ],
        },
    }
    data = card_png(
        [("chara-ext-asset_:sad", base64.b64encode(b"sad bytes").decode()), ("ccv3", b64json(v3))], image
    )
    imported = import_card(data)
    assert [a.data for a in imported.assets] == [image, b"sad bytes", None]
    assert imported.avatar == image


# ---------------------------------------------------------------- refused files


def too_big_text_chunk_png() -> bytes:
    header = png.read_chunks(png.placeholder_png(2))[0].to_bytes()
    return png.PNG_SIGNATURE + header + struct.pack(">I", 33 * 1024 * 1024) + b"tEXt" + b"chara\0AAAA"


def ztxt_bomb_png() -> bytes:
    bomb = png.PngChunk(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (33 * 1024 * 1024), 9))
    ihdr, idat, iend = png.read_chunks(png.placeholder_png(2))
    return png.PNG_SIGNATURE + b"".join(c.to_bytes() for c in (ihdr, idat, bomb, iend))


def crc_broken_png() -> bytes:
    data = bytearray(card_png([("chara", b64json({"name": "x"}))]))
    data[-20] ^= 0xFF  # inside the tEXt chunk's body
    return bytes(data)


def v3_json(data: dict[str, Any]) -> bytes:
    return json.dumps({"spec": "chara_card_v3", "data": data}).encode()


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


REFUSED: dict[str, tuple[bytes, str]] = {
    "random bytes": (b"\x00\x01garbage", "not a PNG, JSON or CHARX"),
    "plain text": (b"hello there", "not a PNG, JSON or CHARX"),
    "jpeg": (b"\xff\xd8\xff\xe0" + b"\0" * 64, "JPEG image without a card"),
    "png without card": (png.placeholder_png(), "no character card"),
    "png truncated": (png.placeholder_png()[:-7], "truncated"),
    "png crc": (crc_broken_png(), "CRC"),
    "png chunk too big": (too_big_text_chunk_png(), "limit is 32 MiB"),
    "png ztxt bomb": (ztxt_bomb_png(), "expands past 32 MiB"),
    "png over 64 MiB": (png.placeholder_png() + b"\0" * (64 * 1024 * 1024), "limit is 64 MiB"),
    "bad base64": (card_png([("chara", "!!!not base64!!!")]), "not valid base64"),
    "bad json in chunk": (card_png([("chara", base64.b64encode(b"{nope").decode())]), "not valid JSON"),
    "bad utf-8": (card_png([("chara", base64.b64encode(b'{"name": "\xff"}').decode())]), "not UTF-8"),
    "bad json file": (b'{"name": "x",}', "not valid JSON: Expecting property name"),
    "json list": (b"[1, 2]", "is a list of JSON, not a character card object"),
    "json without name": (b'{"hello": 1}', "no 'spec' and no 'name'"),
    "unknown spec": (b'{"spec": "chara_card_v9", "data": {}}', "chara_card_v9"),
    "v2 without data": (b'{"spec": "chara_card_v2", "name": "x"}', "no 'data' object"),
    "name not string": (v3_json({"name": 5}), "data.name must be a string, not a number"),
    "tag not string": (v3_json({"name": "x", "tags": ["a", {}]}), "data.tags[1] must be a string"),
    "extensions list": (v3_json({"name": "x", "extensions": []}), "data.extensions must be a JSON object"),
    "date as text": (
        v3_json({"name": "x", "creation_date": "yesterday"}),
        "data.creation_date must be a number",
    ),
    "asset without uri": (v3_json({"name": "x", "assets": [{"type": "icon"}]}), "data.assets[0].uri"),
    "v1 name not string": (b'{"name": ["x"]}', "name must be a string, not a list"),
    "nan": (b'{"name": "x", "fav": NaN}', "NaN"),
    "huge number": (b'{"name": "x", "n": 1e999}', "too large"),
    "deep nesting": (v3_json({"name": "x", "extensions": {"deep": nested(80)}}), "nested deeper"),
    "very deep nesting": (b'{"name": ' + b"[" * 100000 + b"]" * 100000 + b"}", "not usable JSON"),
    "bad data uri": (
        v3_json(
            {"name": "x", "assets": [{"type": "icon", "uri": "data:image/png;base64,@@@", "name": "main"}]}
        ),
        "invalid base64",
    ),
    "charx without card.json": (make_zip({"assets/icon/main.png": b"x"}), "no card.json"),
    "zip not readable": (b"PK\x03\x04" + b"\0" * 40, "not a readable zip"),
    "zip dot-dot": (make_zip({"card.json": b"{}", "../evil.png": b"x"}), "'..' component"),
    "zip absolute": (make_zip({"card.json": b"{}", "/etc/evil": b"x"}), "absolute path"),
    "zip backslash": (make_zip({"card.json": b"{}", "assets\\evil.png": b"x"}), "backslash"),
    "zip drive letter": (make_zip({"card.json": b"{}", "C:/evil.png": b"x"}), "absolute path"),
    "zip bomb ratio": (make_zip({"card.json": b"{}", "bomb.bin": b"\0" * (2 * 1024 * 1024)}), "zip bomb"),
    "zip total size": (
        patch_central_directory(
            patch_central_directory(
                make_zip({"card.json": b"{}", "a": b"a", "b": b"b"}), 20, "<I", 100 << 20
            ),
            24,
            "<I",
            100 << 20,
        ),
        "the limit is 256 MiB",
    ),
    "zip many members": (make_zip({f"m{i}": b"" for i in range(1001)}), "limit is 1000"),
    "zip encrypted": (patch_central_directory(make_zip({"card.json": b"{}"}), 8, "<H", 1), "encrypted"),
    "zip from the future": (
        patch_central_directory(make_zip({"card.json": b"{}"}), 6, "<H", 64),
        "not a readable zip archive (zip file version 6.4)",
    ),
    "zip lzma": (make_zip({"card.json": b"{}"}, zipfile.ZIP_LZMA), "compression method 14"),
    "charx card not json": (make_zip({"card.json": b"\x00\x01"}), "card.json in the CHARX archive is not"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unusable_files_raise_card_format_error_naming_the_problem(case: str) -> None:
    data, expected = REFUSED[case]
    with pytest.raises(CardFormatError) as info:
        import_card(data)
    assert expected in info.value.message
    assert info.value.code == "bad_card" and info.value.status_code == 400


def test_error_message_names_the_file() -> None:
    with pytest.raises(CardFormatError, match=r"^Hero\.png: The PNG holds no character card"):
        import_card(png.placeholder_png(), "Hero.png")


def test_charx_member_that_lies_about_its_size_is_refused() -> None:
    honest = make_zip({"card.json": v3_json({"name": "x"})})
    lying = patch_central_directory(honest, 24, "<I", 5)  # claims 5 bytes uncompressed
    with pytest.raises(CardFormatError, match="cannot be read"):
        import_card(lying)


def test_card_image_must_be_a_png() -> None:
    with pytest.raises(CardFormatError, match="must be a PNG, not jpg"):
        export_card_png(CharacterCard(name="x"), b"\xff\xd8\xff\xe0 jpeg")


def test_export_refuses_values_that_are_not_json() -> None:
    with pytest.raises(CardFormatError, match="cannot be written as JSON"):
        export_card_json(CharacterCard(name="x", extensions={"bad": float("nan")}))
    with pytest.raises(CardFormatError, match="cannot be written as JSON"):
        export_card_json(CharacterCard(name="x", extensions={"bad": object()}))


def test_asset_bytes_are_exported_only_for_asset_uris_they_belong_to() -> None:
    stray = CardAsset("emotion", "joy", "png", "https://example.com/joy.png", b"bytes")
    exported = export_card_png(CharacterCard(name="x"), None, [stray])
    assert not [t for t in png.read_text_chunks(exported) if t.keyword.startswith("chara-ext-asset_")]


def test_risuai_jpeg_with_appended_charx_imports_with_the_jpeg_as_icon() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"jpeg body" + b"\xff\xd9"
    icon = {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "jpeg"}
    archive = make_zip({"card.json": v3_json({"name": "Polyglot", "assets": [icon]})})
    imported = import_card(jpeg + archive, "Polyglot.jpeg")
    assert (imported.source_format, imported.card.name) == ("charx", "Polyglot")
    assert imported.avatar == jpeg and imported.assets[0].data == jpeg

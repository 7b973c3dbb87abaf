"""Lorebook files: real SillyTavern files round-trip exactly; each format maps onto the model."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from kataribe.formats.lorebooks import (
    LorebookFormatError,
    import_character_book,
    import_lorebook,
    to_character_book,
    to_lorebook_v3,
    to_novelai,
    to_risu,
    to_st_world,
)
from kataribe.lore.model import Lorebook, LoreDataError, LoreEntry, Position, Role, SelectiveLogic


def canonical(value: Any) -> str:
    """JSON text that tells 1, 1.0 and true apart and ignores key order."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def png_text_chunk(path: Path, keyword: bytes) -> bytes:
    data = path.read_bytes()
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and body.split(b"\0", 1)[0] == keyword:
            return body.split(b"\0", 1)[1]
        pos += 12 + length
    raise AssertionError(f"no tEXt chunk {keyword!r} in {path}")


def seraphina_card(fixtures_dir: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(
        base64.b64decode(png_text_chunk(fixtures_dir / "sillytavern/Seraphina.png", b"chara"))
    )
    return card


def test_eldoria_world_info_re_exports_identically(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "sillytavern/Eldoria.json").read_bytes()
    book = import_lorebook(raw, "Eldoria.json")
    assert book.name == "Eldoria"
    assert [e.keys[0] for e in book.entries] == ["eldoria", "shadowfang", "glade", "power"]
    assert canonical(to_st_world(book)) == canonical(json.loads(raw))


def test_seraphina_character_book_re_exports_identically(fixtures_dir: Path) -> None:
    original = seraphina_card(fixtures_dir)["data"]["character_book"]
    book = import_character_book(original)
    assert book.name == "Eldoria" and len(book.entries) == 4
    first = book.entries[0]
    assert (first.position, first.use_probability, first.probability) == (Position.BEFORE_CHAR, False, 100)
    assert canonical(to_character_book(book)) == canonical(original)


def test_a_card_json_imports_as_its_lorebook(fixtures_dir: Path) -> None:
    card = seraphina_card(fixtures_dir)
    book = import_lorebook(json.dumps(card).encode(), "Seraphina.json")
    assert book.name == "Eldoria"
    assert canonical(to_character_book(book)) == canonical(card["data"]["character_book"])


def test_stored_lorebook_keeps_everything_needed_for_an_identical_export(fixtures_dir: Path) -> None:
    original = seraphina_card(fixtures_dir)["data"]["character_book"]
    stored = json.loads(json.dumps(import_character_book(original).to_dict()))
    assert canonical(to_character_book(Lorebook.from_dict(stored))) == canonical(original)


ST_ENTRY = {
    "uid": 7,
    "key": ["castle", "/keep/i"],
    "keysecondary": ["king"],
    "comment": "Castle",
    "content": "Stone walls.",
    "constant": False,
    "selective": True,
    "selectiveLogic": 3,
    "order": 250,
    "position": 4,
    "depth": 2,
    "role": 2,
    "probability": 40,
    "useProbability": True,
    "disable": False,
    "excludeRecursion": True,
    "preventRecursion": False,
    "delayUntilRecursion": 2,
    "scanDepth": 5,
    "caseSensitive": True,
    "matchWholeWords": None,
    "group": "places, keeps",
    "groupOverride": True,
    "groupWeight": 30,
    "useGroupScoring": None,
    "sticky": 3,
    "cooldown": None,
    "delay": 4,
    "vectorized": True,
    "displayIndex": 2,
    "characterFilter": {"isExclude": False, "names": ["Seraphina"], "tags": []},
}


def st_world(*entries: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"entries": {str(e["uid"]): e for e in entries}, **top}).encode()


def test_sillytavern_fields_map_onto_the_model() -> None:
    entry = import_lorebook(st_world(ST_ENTRY)).entries[0]
    assert (entry.uid, entry.keys, entry.secondary_keys) == (7, ["castle", "/keep/i"], ["king"])
    assert entry.selective_logic is SelectiveLogic.AND_ALL
    assert (entry.position, entry.depth, entry.role) == (Position.AT_DEPTH, 2, Role.ASSISTANT)
    assert (entry.probability, entry.delay_until_recursion, entry.scan_depth) == (40, 2, 5)
    assert (entry.case_sensitive, entry.match_whole_words, entry.group_weight) == (True, None, 30)
    assert (entry.sticky, entry.cooldown, entry.delay) == (3, None, 4)
    assert entry.extensions == {
        "vectorized": True,
        "displayIndex": 2,
        "characterFilter": {"isExclude": False, "names": ["Seraphina"], "tags": []},
    }


def test_unknown_fields_and_book_fields_survive_a_round_trip() -> None:
    raw = st_world(
        ST_ENTRY, {"uid": 8, "key": ["x"], "content": "y", "future": [1, 2.5]}, originalData={"a": 1}
    )
    book = import_lorebook(raw)
    assert book.extensions == {"originalData": {"a": 1}}
    assert canonical(to_st_world(book)) == canonical(json.loads(raw))


def test_an_edited_field_is_exported_and_the_rest_stays_as_it_was() -> None:
    book = import_lorebook(st_world(ST_ENTRY))
    book.entries[0].order = 999
    book.entries[0].extensions["vectorized"] = False
    exported = to_st_world(book)["entries"]["7"]
    assert exported == {**ST_ENTRY, "order": 999, "vectorized": False}


def test_sillytavern_entry_converts_to_a_character_book_and_back() -> None:
    book = import_lorebook(st_world(ST_ENTRY))
    card_entry = to_character_book(book)["entries"][0]
    assert (card_entry["keys"], card_entry["insertion_order"], card_entry["enabled"]) == (
        ["castle", "/keep/i"],
        250,
        True,
    )
    extensions = card_entry["extensions"]
    assert (extensions["position"], extensions["role"], extensions["selectiveLogic"]) == (4, 2, 3)
    assert (extensions["display_index"], extensions["vectorized"]) == (2, True)
    assert extensions["character_filter"] == ST_ENTRY["characterFilter"]
    back = to_st_world(import_character_book({"entries": [card_entry]}))["entries"]["7"]
    assert {k: back.get(k) for k in ST_ENTRY} == ST_ENTRY


def test_v3_lorebook_file_keeps_use_regex_and_its_wrapper() -> None:
    original = {
        "spec": "lorebook_v3",
        "data": {
            "name": "Regex lore",
            "scan_depth": 3,
            "token_budget": 500,
            "recursive_scanning": False,
            "extensions": {"chub": {"id": 1}},
            "entries": [
                {
                    "keys": ["dra(g|k)on"],
                    "content": "@@depth 2\nScales.",
                    "extensions": {},
                    "enabled": True,
                    "insertion_order": 5,
                    "use_regex": True,
                    "constant": False,
                }
            ],
        },
    }
    book = import_lorebook(json.dumps(original).encode())
    assert (book.name, book.scan_depth, book.token_budget, book.recursive_scanning) == (
        "Regex lore",
        3,
        500,
        False,
    )
    assert book.extensions == {"chub": {"id": 1}}
    assert book.entries[0].use_regex
    assert canonical(to_lorebook_v3(book)) == canonical(original)


def test_v2_export_leaves_out_use_regex_and_v3_export_adds_it() -> None:
    book = Lorebook(name="b", entries=[LoreEntry(uid=0, keys=["x"], content="y")])
    assert "use_regex" not in to_character_book(book)["entries"][0]
    assert to_character_book(book, v3=True)["entries"][0]["use_regex"] is False


RISU = {
    "type": "risu",
    "ver": 1,
    "data": [
        {
            "key": "library, books",
            "secondkey": "",
            "comment": "Library",
            "content": "Afternoon light.",
            "mode": "normal",
            "insertorder": 100,
            "alwaysActive": False,
            "selective": False,
            "activationPercent": 60,
            "useRegex": False,
            "extentions": {"risu_case_sensitive": True},
            "bookVersion": 2,
        },
        {"key": "\uf000folder:1", "comment": "Folder", "content": "", "mode": "folder", "insertorder": 100},
        {
            "key": "solen",
            "content": "Collects books.",
            "mode": "constant",
            "insertorder": 101,
            "alwaysActive": True,
        },
    ],
}


def test_risu_lorebook_maps_and_round_trips() -> None:
    book = import_lorebook(json.dumps(RISU).encode(), "lore.json")
    library, _, solen = book.entries
    assert (library.keys, library.probability, library.case_sensitive) == (["library", "books"], 60, True)
    assert library.extensions == {"bookVersion": 2}
    assert solen.constant and solen.order == 101
    assert canonical(to_risu(book)) == canonical(RISU)


NOVELAI = {
    "lorebookVersion": 5,
    "entries": [
        {
            "text": "A harbour town.",
            "contextConfig": {"prefix": "", "suffix": "\n", "tokenBudget": 2048, "budgetPriority": 400},
            "lastUpdatedAt": 1650000000000,
            "displayName": "Port",
            "id": "6c1e8b0e-0000-4000-8000-000000000001",
            "keys": ["port", "harbour"],
            "searchRange": 1000,
            "enabled": False,
            "forceActivation": True,
            "keyRelative": False,
            "nonStoryActivatable": False,
        }
    ],
    "settings": {"orderByKeyLocations": False},
}


def test_novelai_lorebook_maps_and_round_trips() -> None:
    book = import_lorebook(json.dumps(NOVELAI).encode())
    entry = book.entries[0]
    assert (entry.uid, entry.comment, entry.order) == ("6c1e8b0e-0000-4000-8000-000000000001", "Port", 400)
    assert (entry.disabled, entry.constant, entry.keys) == (True, True, ["port", "harbour"])
    assert canonical(to_novelai(book)) == canonical(NOVELAI)


def test_fresh_exports_are_readable_by_the_importer_with_the_same_meaning() -> None:
    book = Lorebook(
        name="Fresh",
        entries=[
            LoreEntry(uid=0, keys=["a", "b"], content="one", order=3, constant=True),
            LoreEntry(uid=1, keys=["c"], content="two", disabled=True),
        ],
    )
    for exporter in (to_st_world, to_character_book, to_risu, to_novelai):
        again = import_lorebook(json.dumps(exporter(book)).encode())
        assert [(e.keys, e.content, e.constant) for e in again.entries] == [
            (["a", "b"], "one", True),
            (["c"], "two", False),
        ], exporter.__name__
    assert [e.disabled for e in import_lorebook(json.dumps(to_novelai(book)).encode()).entries] == [
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\x89PNG\r\n\x1a\n....", "PNG image"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"hello": 1}', "not a known lorebook format"),
        (b'{"entries": {"0": {"key": ["x"], "order": "soon"}}}', "entry 0: field 'order': expected a number"),
        (b'{"entries": {"0": "text"}}', "entry 0 must be an object"),
        (b'{"entries": {"0": {"key": ["x"], "position": 12}}}', "position must be 0 to 7"),
        (b'{"entries": [{"keys": "x", "content": {"a": 1}}]}', "field 'content': expected a string"),
        (b'{"entries": {"0": {"key": [NaN]}}}', "not valid JSON"),
        (b'{"spec": "chara_card_v2", "data": {"name": "A"}}', "no lorebook"),
        (b'{"type": "risu", "data": {}}', "'data' must be a list"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid"),
        (b'{"entries": {"0": {"key": ' + b"[" * 100 + b"]" * 100 + b"}}}", "nested more than"),
    ],
)
def test_bad_files_give_a_clear_format_error(data: bytes, message: str) -> None:
    with pytest.raises(LorebookFormatError, match=message):
        import_lorebook(data, "bad.json")


def test_stored_entry_with_an_unknown_field_is_refused() -> None:
    stored = LoreEntry(uid=1).to_dict() | {"surprise": True}
    with pytest.raises(LoreDataError, match="surprise"):
        LoreEntry.from_dict(stored)

"""Lorebook files: SillyTavern World Info, Character Card V2/V3 books, RisuAI and NovelAI lorebooks.

Imports are lossless: exporting a book to the format it came from gives back the same JSON
content, unknown fields included (see ``kataribe.lore.trace``). Every field is untrusted.
This module tells the formats apart; each format lives in its own ``lorebook_*`` module.
"""

from __future__ import annotations

import json
from pathlib import PurePath

from kataribe.formats.lorebook_card import (
    import_character_book,
    read_character_book,
    read_lorebook_v3,
    to_character_book,
    to_lorebook_v3,
)
from kataribe.formats.lorebook_fields import MAX_ENTRIES, LorebookFormatError
from kataribe.formats.lorebook_nai import read_novelai, to_novelai
from kataribe.formats.lorebook_risu import read_risu, to_risu
from kataribe.formats.lorebook_st import read_st_world, to_st_world
from kataribe.lore.jsonvalues import BadValue, check_nesting, kind_of
from kataribe.lore.model import Lorebook

__all__ = [
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "LorebookFormatError",
    "import_character_book",
    "import_lorebook",
    "to_character_book",
    "to_lorebook_v3",
    "to_novelai",
    "to_risu",
    "to_st_world",
]

MAX_FILE_BYTES = 64 * 1024 * 1024
_PNG = b"\x89PNG\r\n\x1a\n"


def import_lorebook(data: bytes, filename: str | None = None) -> Lorebook:
    """Reads a lorebook file of any supported format, told apart by its content.

    Supported: SillyTavern World Info, Character Card V2/V3 ``character_book`` (bare, in a
    ``lorebook_v3`` file, or in a card's JSON), RisuAI and NovelAI lorebooks.
    """
    name = PurePath(filename).stem if filename else ""
    if len(data) > MAX_FILE_BYTES:
        raise LorebookFormatError(
            f"The lorebook file is {len(data) // 2**20} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB."
        )
    if data.startswith(_PNG):
        raise LorebookFormatError(
            "This is a PNG image, not a lorebook file. "
            "Import it as a character card: its lorebook comes with it."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LorebookFormatError("The lorebook file is not UTF-8 text. Export it again as JSON.") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:200] if isinstance(exc, ValueError) else "it is nested too deeply"
        raise LorebookFormatError(f"The lorebook file is not valid JSON ({detail}).") from None
    try:
        check_nesting(obj)
        return _read_any(obj, name)
    except BadValue as exc:
        raise LorebookFormatError(f"The lorebook file is not valid: {exc}.") from None


def _reject_constant(value: str) -> object:
    raise ValueError(f"{value} is not a JSON number")


def _read_any(obj: object, name: str) -> Lorebook:
    if not isinstance(obj, dict):
        raise BadValue(f"expected a JSON object, got {kind_of(obj)}")
    spec = obj.get("spec")
    if "lorebookVersion" in obj:
        return read_novelai(obj, name)
    if obj.get("type") == "risu":
        return read_risu(obj, name)
    if spec == "lorebook_v3":
        return read_lorebook_v3(obj, name)
    if spec in ("chara_card_v2", "chara_card_v3"):
        card = obj.get("data")
        book_obj = card.get("character_book") if isinstance(card, dict) else None
        if book_obj is None:
            raise BadValue("this character card has no lorebook (data.character_book)")
        card_name = card.get("name") if isinstance(card, dict) else None
        return read_character_book(
            book_obj, f"{card_name}'s Lorebook" if isinstance(card_name, str) else name
        )
    entries = obj.get("entries")
    if isinstance(entries, dict):
        return read_st_world(obj, name)
    if isinstance(entries, list):
        return read_character_book(obj, name)
    raise BadValue(
        "it is not a known lorebook format (SillyTavern World Info, a character book, "
        "a lorebook_v3 file, a RisuAI or a NovelAI lorebook)"
    )

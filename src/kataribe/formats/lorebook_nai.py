"""NovelAI lorebooks: ``{"lorebookVersion": 6, "entries": [...]}`` read into and written from a Lorebook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kataribe.formats.lorebook_fields import (
    check_entry_count,
    dotted,
    get_field,
    parse_uid,
    read_entry,
    top_name,
)
from kataribe.lore.jsonvalues import BadValue, as_bool, as_int, as_str, as_str_list, kind_of
from kataribe.lore.model import Lorebook, LoreEntry
from kataribe.lore.trace import Flat, Layout, flatten, rebuild, record

_NAI_ENTRY = Layout("novelai", frozenset({"contextConfig"}), top_name, dotted("contextConfig"))
_NAI_BOOK = Layout("novelai", frozenset(), top_name, lambda name: (name,), frozenset({("entries",)}))
_NAI_CONTEXT_DEFAULTS: dict[str, Any] = {
    "prefix": "",
    "suffix": "\n",
    "tokenBudget": 1,
    "reservedTokens": 0,
    "trimDirection": "trimBottom",
    "insertionType": "newline",
    "maximumTrimType": "sentence",
    "insertionPosition": -1,
}


def _nai_decode(flat: Flat, index: int) -> LoreEntry:
    return LoreEntry(
        uid=parse_uid(flat.get(("id",)), index),
        keys=get_field(flat, ("keys",), as_str_list),
        content=get_field(flat, ("text",), as_str),
        comment=get_field(flat, ("displayName",), as_str),
        disabled=not get_field(flat, ("enabled",), as_bool, True),
        constant=get_field(flat, ("forceActivation",), as_bool),
        order=get_field(flat, ("contextConfig", "budgetPriority"), as_int, 0),
    )


def _nai_encode(entry: LoreEntry) -> Flat:
    context: Flat = {("contextConfig", k): v for k, v in _NAI_CONTEXT_DEFAULTS.items()}
    return {
        ("text",): entry.content,
        ("contextConfig", "budgetPriority"): entry.order,
        **context,
        ("displayName",): entry.comment,
        ("id",): str(entry.uid),
        ("keys",): list(entry.keys),
        ("searchRange",): 1000,
        ("enabled",): not entry.disabled,
        ("forceActivation",): entry.constant,
        ("keyRelative",): False,
        ("nonStoryActivatable",): False,
    }


def read_novelai(obj: dict[str, Any], name: str) -> Lorebook:
    """A parsed NovelAI lorebook object as a Lorebook; raises BadValue on a bad field."""
    data = obj.get("entries")
    if not isinstance(data, list):
        raise BadValue(f"a NovelAI lorebook's 'entries' must be a list, got {kind_of(data)}")
    check_entry_count(len(data))
    entries = [read_entry(raw, _NAI_ENTRY, _nai_decode, _nai_encode, i) for i, raw in enumerate(data)]
    book = Lorebook(name=name, entries=entries)
    canonical: Flat = {("lorebookVersion",): 6, ("entries",): None}
    book.source, book.extensions = record(_NAI_BOOK, flatten(obj, _NAI_BOOK.nested), canonical, {})
    return book


def to_novelai(book: Lorebook) -> dict[str, Any]:
    """A NovelAI lorebook: ``{"lorebookVersion": 6, "entries": [...]}``."""
    entries = [rebuild(_NAI_ENTRY, _nai_encode(e), e.extensions, e.source) for e in book.entries]
    canonical: Flat = {("lorebookVersion",): 6, ("entries",): entries}
    fresh = book.source is None or book.source.format != "novelai"
    extras: Mapping[str, Any] = (
        {"settings": {"orderByKeyLocations": False}, "categories": []} if fresh else {}
    )
    return rebuild(_NAI_BOOK, canonical, {**extras, **book.extensions}, book.source)

"""RisuAI lorebook exports, ``{"type": "risu", "ver": 1, "data": [...]}``, read and written."""

from __future__ import annotations

from typing import Any

from kataribe.formats.lorebook_fields import (
    check_entry_count,
    dotted,
    get_field,
    parse_probability,
    read_entry,
    top_name,
)
from kataribe.lore.jsonvalues import BadValue, as_bool, as_int, as_opt_bool, as_str, as_str_list, kind_of
from kataribe.lore.model import Lorebook, LoreEntry
from kataribe.lore.trace import Flat, Layout, flatten, rebuild, record

_RISU_ENTRY = Layout(
    "risu", frozenset({"extentions"}), top_name, dotted("extentions")
)  # sic: Risu's spelling
_RISU_BOOK = Layout("risu", frozenset(), top_name, lambda name: (name,), frozenset({("data",)}))


def _risu_keys(value: object) -> list[str]:
    if isinstance(value, list):
        return as_str_list(value)
    return [k.strip() for k in as_str(value).split(",") if k.strip()]


def _risu_decode(flat: Flat, index: int) -> LoreEntry:
    percent = flat.get(("activationPercent",))
    return LoreEntry(
        uid=index,
        keys=get_field(flat, ("key",), _risu_keys),
        secondary_keys=get_field(flat, ("secondkey",), _risu_keys),
        comment=get_field(flat, ("comment",), as_str),
        content=get_field(flat, ("content",), as_str),
        constant=get_field(flat, ("alwaysActive",), as_bool) or flat.get(("mode",)) == "constant",
        selective=get_field(flat, ("selective",), as_bool),
        order=get_field(flat, ("insertorder",), as_int, 100),
        probability=100 if percent is None else get_field(flat, ("activationPercent",), parse_probability),
        use_regex=get_field(flat, ("useRegex",), as_bool),
        case_sensitive=get_field(flat, ("extentions", "risu_case_sensitive"), as_opt_bool),
    )


def _risu_encode(entry: LoreEntry) -> Flat:
    return {
        ("key",): ", ".join(entry.keys),
        ("secondkey",): ", ".join(entry.secondary_keys),
        ("comment",): entry.comment,
        ("content",): entry.content,
        ("mode",): "constant" if entry.constant else "normal",
        ("alwaysActive",): entry.constant,
        ("selective",): entry.selective,
        ("insertorder",): entry.order,
        ("activationPercent",): entry.probability
        if entry.use_probability and entry.probability < 100
        else None,
        ("useRegex",): entry.use_regex,
        ("extentions", "risu_case_sensitive"): entry.case_sensitive,
    }


def read_risu(obj: dict[str, Any], name: str) -> Lorebook:
    """A parsed RisuAI lorebook object as a Lorebook; raises BadValue on a bad field."""
    data = obj.get("data")
    if not isinstance(data, list):
        raise BadValue(f"a RisuAI lorebook's 'data' must be a list, got {kind_of(data)}")
    check_entry_count(len(data))
    entries = [read_entry(raw, _RISU_ENTRY, _risu_decode, _risu_encode, i) for i, raw in enumerate(data)]
    book = Lorebook(name=name, entries=entries)
    canonical: Flat = {("type",): "risu", ("ver",): 1, ("data",): None}
    book.source, book.extensions = record(_RISU_BOOK, flatten(obj, _RISU_BOOK.nested), canonical, {})
    return book


def to_risu(book: Lorebook) -> dict[str, Any]:
    """RisuAI's lorebook export: ``{"type": "risu", "ver": 1, "data": [...]}``."""
    data = [rebuild(_RISU_ENTRY, _risu_encode(e), e.extensions, e.source) for e in book.entries]
    return rebuild(
        _RISU_BOOK, {("type",): "risu", ("ver",): 1, ("data",): data}, book.extensions, book.source
    )

"""Character Card V2/V3 ``character_book`` objects and standalone ``lorebook_v3`` files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kataribe.formats.lorebook_fields import (
    ST_POSITIONS,
    ST_ROLES,
    LorebookFormatError,
    check_entry_count,
    get_field,
    parse_count,
    parse_depth,
    parse_logic,
    parse_probability,
    parse_recursion_delay,
    parse_st_position,
    parse_st_role,
    parse_uid,
    read_entry,
)
from kataribe.lore.jsonvalues import (
    BadValue,
    as_bool,
    as_int,
    as_opt_bool,
    as_opt_int,
    as_str,
    as_str_list,
    check_nesting,
    kind_of,
)
from kataribe.lore.model import DEFAULT_DEPTH, DEFAULT_GROUP_WEIGHT, Lorebook, LoreEntry, Path, Position
from kataribe.lore.trace import Flat, Layout, flatten, rebuild, record

# SillyTavern's entry fields that have no model field, as a character book's extensions name them
_ST_TO_CARD = {
    "displayIndex": "display_index",
    "automationId": "automation_id",
    "ignoreBudget": "ignore_budget",
    "outletName": "outlet_name",
    "characterFilter": "character_filter",
    "matchPersonaDescription": "match_persona_description",
    "matchCharacterDescription": "match_character_description",
    "matchCharacterPersonality": "match_character_personality",
    "matchCharacterDepthPrompt": "match_character_depth_prompt",
    "matchScenario": "match_scenario",
    "matchCreatorNotes": "match_creator_notes",
}
_CARD_TO_ST = {card: st for st, card in _ST_TO_CARD.items()}
_WRAPPER = "$wrapper"  # trace paths of a ``{"spec": "lorebook_v3", "data": ...}`` file's own fields


def _card_entry_name(path: Path) -> str:
    return _CARD_TO_ST.get(path[1], path[1]) if len(path) == 2 else path[0]


_CARD_ENTRY = Layout(
    "character_book",
    frozenset({"extensions"}),
    _card_entry_name,
    lambda name: ("extensions", _ST_TO_CARD.get(name, name)),
)
_CARD_BOOK = Layout(
    "character_book",
    frozenset({"extensions"}),
    lambda p: p[-1],
    lambda name: ("extensions", name),
    frozenset({("entries",)}),
)


def _card_decode(flat: Flat, index: int) -> LoreEntry:
    def get(path: Path, parse: Callable[..., Any], *args: Any) -> Any:
        return get_field(flat, path, parse, *args)

    def ext(name: str, parse: Callable[..., Any], *args: Any) -> Any:
        return get_field(flat, ("extensions", name), parse, *args)

    if flat.get(("extensions", "position")) is not None:
        position = ext("position", parse_st_position)
    else:  # as SillyTavern reads a card: anything but "before_char" is after
        position = Position.BEFORE_CHAR if flat.get(("position",)) == "before_char" else Position.AFTER_CHAR
    case = ext("case_sensitive", as_opt_bool)
    return LoreEntry(
        uid=parse_uid(flat.get(("id",)), index),
        keys=get(("keys",), as_str_list),
        secondary_keys=get(("secondary_keys",), as_str_list),
        comment=get(("comment",), as_str),
        content=get(("content",), as_str),
        constant=get(("constant",), as_bool),
        selective=get(("selective",), as_bool),
        selective_logic=ext("selectiveLogic", parse_logic),
        order=get(("insertion_order",), as_int, 100),
        position=position,
        depth=ext("depth", as_int, DEFAULT_DEPTH),
        role=ext("role", parse_st_role),
        probability=ext("probability", parse_probability),
        use_probability=ext("useProbability", as_bool, True),
        disabled=not get(("enabled",), as_bool, True),
        exclude_recursion=ext("exclude_recursion", as_bool),
        prevent_recursion=ext("prevent_recursion", as_bool),
        delay_until_recursion=ext("delay_until_recursion", parse_recursion_delay),
        scan_depth=ext("scan_depth", parse_depth),
        case_sensitive=get(("case_sensitive",), as_opt_bool) if case is None else case,
        match_whole_words=ext("match_whole_words", as_opt_bool),
        group=ext("group", as_str),
        group_override=ext("group_override", as_bool),
        group_weight=ext("group_weight", as_int, DEFAULT_GROUP_WEIGHT),
        use_group_scoring=ext("use_group_scoring", as_opt_bool),
        sticky=ext("sticky", parse_count),
        cooldown=ext("cooldown", parse_count),
        delay=ext("delay", parse_count),
        use_regex=get(("use_regex",), as_bool),
        name=None if flat.get(("name",)) is None else get(("name",), as_str),
        priority=get(("priority",), as_opt_int),
    )


def _card_encode(entry: LoreEntry) -> Flat:
    top: dict[str, Any] = {
        "id": entry.uid,
        "keys": list(entry.keys),
        "secondary_keys": list(entry.secondary_keys),
        "comment": entry.comment,
        "content": entry.content,
        "constant": entry.constant,
        "selective": entry.selective,
        "insertion_order": entry.order,
        "enabled": not entry.disabled,
        "position": "before_char" if entry.position is Position.BEFORE_CHAR else "after_char",
        "use_regex": entry.use_regex,
        "case_sensitive": entry.case_sensitive,
        "name": entry.name,
        "priority": entry.priority,
    }
    extensions: dict[str, Any] = {
        "position": ST_POSITIONS.index(entry.position),
        "depth": entry.depth,
        "role": ST_ROLES.index(entry.role),
        "probability": entry.probability,
        "useProbability": entry.use_probability,
        "selectiveLogic": int(entry.selective_logic),
        "exclude_recursion": entry.exclude_recursion,
        "prevent_recursion": entry.prevent_recursion,
        "delay_until_recursion": entry.delay_until_recursion,
        "scan_depth": entry.scan_depth,
        "case_sensitive": entry.case_sensitive,
        "match_whole_words": entry.match_whole_words,
        "use_group_scoring": entry.use_group_scoring,
        "group": entry.group,
        "group_override": entry.group_override,
        "group_weight": entry.group_weight,
        "sticky": entry.sticky,
        "cooldown": entry.cooldown,
        "delay": entry.delay,
    }
    return {(k,): v for k, v in top.items()} | {("extensions", k): v for k, v in extensions.items()}


def _card_book_encode(book: Lorebook, entries: list[dict[str, Any]]) -> Flat:
    return {
        ("name",): book.name or None,
        ("description",): book.description or None,
        ("scan_depth",): book.scan_depth,
        ("token_budget",): book.token_budget,
        ("recursive_scanning",): book.recursive_scanning,
        ("entries",): entries,
    }


def import_character_book(book: object, *, name: str = "") -> Lorebook:
    """A card's ``character_book`` object (already parsed) as a Lorebook; ``name`` if it has none."""
    try:
        check_nesting(book)
        return read_character_book(book, name)
    except BadValue as exc:
        raise LorebookFormatError(f"The character book is not valid: {exc}.") from None


def read_character_book(obj: object, name: str) -> Lorebook:
    """A parsed ``character_book`` object as a Lorebook; raises BadValue on a bad field."""
    if not isinstance(obj, dict):
        raise BadValue(f"a character book must be an object, got {kind_of(obj)}")
    raw_entries = obj.get("entries")
    if not isinstance(raw_entries, list):
        raise BadValue(f"'entries' must be a list, got {kind_of(raw_entries)}")
    check_entry_count(len(raw_entries))
    flat = flatten(obj, _CARD_BOOK.nested)
    book = Lorebook(
        name=get_field(flat, ("name",), as_str) or name,
        description=get_field(flat, ("description",), as_str),
        entries=[
            read_entry(raw, _CARD_ENTRY, _card_decode, _card_encode, i) for i, raw in enumerate(raw_entries)
        ],
        scan_depth=get_field(flat, ("scan_depth",), parse_depth),
        token_budget=get_field(flat, ("token_budget",), parse_count),
        recursive_scanning=get_field(flat, ("recursive_scanning",), as_opt_bool),
    )
    book.source, book.extensions = record(_CARD_BOOK, flat, _card_book_encode(book, []), {})
    return book


def read_lorebook_v3(obj: dict[str, Any], name: str) -> Lorebook:
    """A parsed ``{"spec": "lorebook_v3", "data": ...}`` file; keeps the wrapper's own fields for export."""
    book = read_character_book(obj.get("data"), name)
    assert book.source is not None
    for key, value in obj.items():
        if key != "data":
            book.source.verbatim[(_WRAPPER, key)] = value
    return book


def to_character_book(book: Lorebook, v3: bool = False) -> dict[str, Any]:
    """A Character Card ``character_book`` object (V3 adds ``use_regex`` to every entry)."""
    entries = []
    for entry in book.entries:
        drop = () if v3 or entry.use_regex else [("use_regex",)]  # a V2 field only since V3
        exported = rebuild(
            _CARD_ENTRY, _card_encode(entry), entry.extensions, entry.source, drop_when_fresh=drop
        )
        traced = entry.source is not None and entry.source.format == _CARD_ENTRY.format
        if v3 and not traced:  # required by V3, but an imported entry stays as it was written
            exported.setdefault("use_regex", entry.use_regex)
        entries.append(exported)
    return rebuild(_CARD_BOOK, _card_book_encode(book, entries), book.extensions, book.source)


def to_lorebook_v3(book: Lorebook) -> dict[str, Any]:
    """A standalone V3 lorebook file: ``{"spec": "lorebook_v3", "data": <character_book>}``."""
    wrapper: dict[str, Any] = {"spec": "lorebook_v3"}
    if book.source is not None:
        wrapper |= {p[1]: v for p, v in book.source.verbatim.items() if len(p) == 2 and p[0] == _WRAPPER}
    return wrapper | {"data": to_character_book(book, v3=True)}

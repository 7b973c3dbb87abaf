"""SillyTavern World Info files: ``{"entries": {"<uid>": {...}}}`` read into and written from a Lorebook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kataribe.formats.lorebook_fields import (
    ST_POSITIONS,
    ST_ROLES,
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
    top_name,
)
from kataribe.lore.jsonvalues import as_bool, as_int, as_opt_bool, as_str, as_str_list
from kataribe.lore.model import DEFAULT_DEPTH, DEFAULT_GROUP_WEIGHT, Lorebook, LoreEntry
from kataribe.lore.trace import Flat, Layout, flatten, rebuild, record

_ST_ENTRY = Layout("sillytavern", frozenset(), top_name, lambda name: (name,))
_ST_BOOK = Layout("sillytavern", frozenset(), top_name, lambda name: (name,), frozenset({("entries",)}))


def _st_decode(flat: Flat, index: int) -> LoreEntry:
    def get(name: str, parse: Callable[..., Any], *args: Any) -> Any:
        return get_field(flat, (name,), parse, *args)

    return LoreEntry(
        uid=parse_uid(flat.get(("uid",)), index),
        keys=get("key", as_str_list),
        secondary_keys=get("keysecondary", as_str_list),
        comment=get("comment", as_str),
        content=get("content", as_str),
        constant=get("constant", as_bool),
        selective=get("selective", as_bool, True),
        selective_logic=get("selectiveLogic", parse_logic),
        order=get("order", as_int, 100),
        position=get("position", parse_st_position),
        depth=get("depth", as_int, DEFAULT_DEPTH),
        role=get("role", parse_st_role),
        probability=get("probability", parse_probability),
        use_probability=get("useProbability", as_bool, True),
        disabled=get("disable", as_bool),
        exclude_recursion=get("excludeRecursion", as_bool),
        prevent_recursion=get("preventRecursion", as_bool),
        delay_until_recursion=get("delayUntilRecursion", parse_recursion_delay),
        scan_depth=get("scanDepth", parse_depth),
        case_sensitive=get("caseSensitive", as_opt_bool),
        match_whole_words=get("matchWholeWords", as_opt_bool),
        group=get("group", as_str),
        group_override=get("groupOverride", as_bool),
        group_weight=get("groupWeight", as_int, DEFAULT_GROUP_WEIGHT),
        use_group_scoring=get("useGroupScoring", as_opt_bool),
        sticky=get("sticky", parse_count),
        cooldown=get("cooldown", parse_count),
        delay=get("delay", parse_count),
    )


def _st_encode(entry: LoreEntry) -> Flat:
    fields: dict[str, Any] = {
        "uid": entry.uid,
        "key": list(entry.keys),
        "keysecondary": list(entry.secondary_keys),
        "comment": entry.comment,
        "content": entry.content,
        "constant": entry.constant,
        "selective": entry.selective,
        "selectiveLogic": int(entry.selective_logic),
        "order": entry.order,
        "position": ST_POSITIONS.index(entry.position),
        "depth": entry.depth,
        "role": ST_ROLES.index(entry.role),
        "probability": entry.probability,
        "useProbability": entry.use_probability,
        "disable": entry.disabled,
        "excludeRecursion": entry.exclude_recursion,
        "preventRecursion": entry.prevent_recursion,
        "delayUntilRecursion": entry.delay_until_recursion,
        "scanDepth": entry.scan_depth,
        "caseSensitive": entry.case_sensitive,
        "matchWholeWords": entry.match_whole_words,
        "group": entry.group,
        "groupOverride": entry.group_override,
        "groupWeight": entry.group_weight,
        "useGroupScoring": entry.use_group_scoring,
        "sticky": entry.sticky,
        "cooldown": entry.cooldown,
        "delay": entry.delay,
    }
    return {(k,): v for k, v in fields.items()}


def read_st_world(obj: dict[str, Any], name: str) -> Lorebook:
    """A parsed World Info object whose ``entries`` is a dict; raises BadValue on a bad field."""
    raw_entries = obj["entries"]
    check_entry_count(len(raw_entries))
    entries = []
    for position, (key, raw) in enumerate(raw_entries.items()):
        fallback: int | str = int(key) if key.isascii() and key.isdigit() and len(key) < 16 else key
        entries.append(read_entry(raw, _ST_ENTRY, _st_decode, _st_encode, position, fallback))
    book = Lorebook(name=name, entries=entries)
    flat = flatten(obj, _ST_BOOK.nested)
    book.source, book.extensions = record(_ST_BOOK, flat, {("entries",): None}, {})
    return book


def to_st_world(book: Lorebook) -> dict[str, Any]:
    """SillyTavern's World Info file: ``{"entries": {"<uid>": {...}}}``."""
    entries: dict[str, Any] = {}
    for entry in book.entries:
        key = str(entry.uid)
        if key in entries:  # duplicate uids: SillyTavern keys entries by uid, so give it a free one
            key = str(next(i for i in range(len(book.entries) + len(entries) + 1) if str(i) not in entries))
        entries[key] = rebuild(_ST_ENTRY, _st_encode(entry), entry.extensions, entry.source)
    return rebuild(_ST_BOOK, {("entries",): entries}, book.extensions, book.source)

"""Lorebook files: SillyTavern World Info, Character Card V2/V3 books, RisuAI and NovelAI lorebooks.

Imports are lossless: exporting a book to the format it came from gives back the same JSON
content, unknown fields included (see ``kataribe.lore.trace``). Every field is untrusted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from kataribe.errors import InvalidRequest
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
from kataribe.lore.model import (
    DEFAULT_DEPTH,
    DEFAULT_GROUP_WEIGHT,
    MAX_SCAN_DEPTH,
    Lorebook,
    LoreEntry,
    Path,
    Position,
    Role,
    SelectiveLogic,
    parse_selective_logic,
)
from kataribe.lore.trace import Flat, Layout, flatten, rebuild, record

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 100_000
_PNG = b"\x89PNG\r\n\x1a\n"
_ST_POSITIONS = list(Position)  # SillyTavern's numbers are the enum's order: 0 before_char ... 7 outlet
_ST_ROLES = [Role.SYSTEM, Role.USER, Role.ASSISTANT]
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


class LorebookFormatError(InvalidRequest):
    """A lorebook file could not be read; the message says what is wrong with it."""


def _top(path: Path) -> str:
    return path[0] if len(path) == 1 else ".".join(path)


def _dotted(nested: str) -> Callable[[str], Path]:
    def path_of(name: str) -> Path:
        head, _, rest = name.partition(".")
        return (head, rest) if head == nested and rest else (name,)

    return path_of


def _card_entry_name(path: Path) -> str:
    return _CARD_TO_ST.get(path[1], path[1]) if len(path) == 2 else path[0]


_ST_ENTRY = Layout("sillytavern", frozenset(), _top, lambda name: (name,))
_ST_BOOK = Layout("sillytavern", frozenset(), _top, lambda name: (name,), frozenset({("entries",)}))
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
_RISU_ENTRY = Layout("risu", frozenset({"extentions"}), _top, _dotted("extentions"))  # sic: Risu's spelling
_RISU_BOOK = Layout("risu", frozenset(), _top, lambda name: (name,), frozenset({("data",)}))
_NAI_ENTRY = Layout("novelai", frozenset({"contextConfig"}), _top, _dotted("contextConfig"))
_NAI_BOOK = Layout("novelai", frozenset(), _top, lambda name: (name,), frozenset({("entries",)}))
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


# ---- reading fields ----


def _get(flat: Flat, path: Path, parse: Callable[..., Any], *args: Any) -> Any:
    try:
        return parse(flat.get(path), *args)
    except BadValue as exc:
        raise BadValue(f"field '{'.'.join(path)}': {exc}") from None


def _uid(value: object, fallback: int) -> int | str:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise BadValue(f"field 'uid/id': expected a number or a string, got {kind_of(value)}")
    if isinstance(value, float):
        return as_int(value)
    return as_str(value, limit=200) if isinstance(value, str) else value


def _depth(value: object) -> int | None:
    return as_opt_int(value, low=0, high=MAX_SCAN_DEPTH)


def _count(value: object) -> int | None:
    number = as_opt_int(value)
    return None if number is None else max(0, number)


def _probability(value: object) -> int:
    return min(100, max(0, as_int(value, 100)))


def _st_position(value: object) -> Position:
    if isinstance(value, str) and value in Position.__members__.values():
        return Position(value)
    number = as_int(value, 0)
    if not 0 <= number < len(_ST_POSITIONS):
        raise BadValue(f"position must be 0 to {len(_ST_POSITIONS) - 1}, got {number}")
    return _ST_POSITIONS[number]


def _st_role(value: object) -> Role:
    if isinstance(value, str) and value.lower() in Role.__members__.values():
        return Role(value.lower())
    number = as_int(value, 0)
    if not 0 <= number < len(_ST_ROLES):
        raise BadValue(f"role must be 0 (system), 1 (user) or 2 (assistant), got {number}")
    return _ST_ROLES[number]


def _recursion_delay(value: object) -> bool | int:
    if value is None or isinstance(value, bool):
        return bool(value)
    return max(0, as_int(value))


def _logic(value: object) -> SelectiveLogic:
    return parse_selective_logic(value)


# ---- SillyTavern World Info ----


def _st_decode(flat: Flat, index: int) -> LoreEntry:
    def get(name: str, parse: Callable[..., Any], *args: Any) -> Any:
        return _get(flat, (name,), parse, *args)

    return LoreEntry(
        uid=_uid(flat.get(("uid",)), index),
        keys=get("key", as_str_list),
        secondary_keys=get("keysecondary", as_str_list),
        comment=get("comment", as_str),
        content=get("content", as_str),
        constant=get("constant", as_bool),
        selective=get("selective", as_bool, True),
        selective_logic=get("selectiveLogic", _logic),
        order=get("order", as_int, 100),
        position=get("position", _st_position),
        depth=get("depth", as_int, DEFAULT_DEPTH),
        role=get("role", _st_role),
        probability=get("probability", _probability),
        use_probability=get("useProbability", as_bool, True),
        disabled=get("disable", as_bool),
        exclude_recursion=get("excludeRecursion", as_bool),
        prevent_recursion=get("preventRecursion", as_bool),
        delay_until_recursion=get("delayUntilRecursion", _recursion_delay),
        scan_depth=get("scanDepth", _depth),
        case_sensitive=get("caseSensitive", as_opt_bool),
        match_whole_words=get("matchWholeWords", as_opt_bool),
        group=get("group", as_str),
        group_override=get("groupOverride", as_bool),
        group_weight=get("groupWeight", as_int, DEFAULT_GROUP_WEIGHT),
        use_group_scoring=get("useGroupScoring", as_opt_bool),
        sticky=get("sticky", _count),
        cooldown=get("cooldown", _count),
        delay=get("delay", _count),
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
        "position": _ST_POSITIONS.index(entry.position),
        "depth": entry.depth,
        "role": _ST_ROLES.index(entry.role),
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


def _read_st_world(obj: dict[str, Any], name: str) -> Lorebook:
    raw_entries = obj["entries"]
    if len(raw_entries) > MAX_ENTRIES:
        raise BadValue(f"{len(raw_entries)} entries, more than the limit of {MAX_ENTRIES}")
    entries = []
    for position, (key, raw) in enumerate(raw_entries.items()):
        fallback: int | str = int(key) if key.isascii() and key.isdigit() and len(key) < 16 else key
        entries.append(_read_entry(raw, _ST_ENTRY, _st_decode, _st_encode, position, fallback))
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


# ---- Character Card V2/V3 character_book ----


def _card_decode(flat: Flat, index: int) -> LoreEntry:
    def get(path: Path, parse: Callable[..., Any], *args: Any) -> Any:
        return _get(flat, path, parse, *args)

    def ext(name: str, parse: Callable[..., Any], *args: Any) -> Any:
        return _get(flat, ("extensions", name), parse, *args)

    if flat.get(("extensions", "position")) is not None:
        position = ext("position", _st_position)
    else:  # as SillyTavern reads a card: anything but "before_char" is after
        position = Position.BEFORE_CHAR if flat.get(("position",)) == "before_char" else Position.AFTER_CHAR
    case = ext("case_sensitive", as_opt_bool)
    return LoreEntry(
        uid=_uid(flat.get(("id",)), index),
        keys=get(("keys",), as_str_list),
        secondary_keys=get(("secondary_keys",), as_str_list),
        comment=get(("comment",), as_str),
        content=get(("content",), as_str),
        constant=get(("constant",), as_bool),
        selective=get(("selective",), as_bool),
        selective_logic=ext("selectiveLogic", _logic),
        order=get(("insertion_order",), as_int, 100),
        position=position,
        depth=ext("depth", as_int, DEFAULT_DEPTH),
        role=ext("role", _st_role),
        probability=ext("probability", _probability),
        use_probability=ext("useProbability", as_bool, True),
        disabled=not get(("enabled",), as_bool, True),
        exclude_recursion=ext("exclude_recursion", as_bool),
        prevent_recursion=ext("prevent_recursion", as_bool),
        delay_until_recursion=ext("delay_until_recursion", _recursion_delay),
        scan_depth=ext("scan_depth", _depth),
        case_sensitive=get(("case_sensitive",), as_opt_bool) if case is None else case,
        match_whole_words=ext("match_whole_words", as_opt_bool),
        group=ext("group", as_str),
        group_override=ext("group_override", as_bool),
        group_weight=ext("group_weight", as_int, DEFAULT_GROUP_WEIGHT),
        use_group_scoring=ext("use_group_scoring", as_opt_bool),
        sticky=ext("sticky", _count),
        cooldown=ext("cooldown", _count),
        delay=ext("delay", _count),
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
        "position": _ST_POSITIONS.index(entry.position),
        "depth": entry.depth,
        "role": _ST_ROLES.index(entry.role),
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
        return _read_character_book(book, name)
    except BadValue as exc:
        raise LorebookFormatError(f"The character book is not valid: {exc}.") from None


def _read_character_book(obj: object, name: str) -> Lorebook:
    if not isinstance(obj, dict):
        raise BadValue(f"a character book must be an object, got {kind_of(obj)}")
    raw_entries = obj.get("entries")
    if not isinstance(raw_entries, list):
        raise BadValue(f"'entries' must be a list, got {kind_of(raw_entries)}")
    if len(raw_entries) > MAX_ENTRIES:
        raise BadValue(f"{len(raw_entries)} entries, more than the limit of {MAX_ENTRIES}")
    flat = flatten(obj, _CARD_BOOK.nested)
    book = Lorebook(
        name=_get(flat, ("name",), as_str) or name,
        description=_get(flat, ("description",), as_str),
        entries=[
            _read_entry(raw, _CARD_ENTRY, _card_decode, _card_encode, i, i)
            for i, raw in enumerate(raw_entries)
        ],
        scan_depth=_get(flat, ("scan_depth",), _depth),
        token_budget=_get(flat, ("token_budget",), _count),
        recursive_scanning=_get(flat, ("recursive_scanning",), as_opt_bool),
    )
    book.source, book.extensions = record(_CARD_BOOK, flat, _card_book_encode(book, []), {})
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


# ---- RisuAI ----


def _risu_keys(value: object) -> list[str]:
    if isinstance(value, list):
        return as_str_list(value)
    return [k.strip() for k in as_str(value).split(",") if k.strip()]


def _risu_decode(flat: Flat, index: int) -> LoreEntry:
    percent = flat.get(("activationPercent",))
    return LoreEntry(
        uid=index,
        keys=_get(flat, ("key",), _risu_keys),
        secondary_keys=_get(flat, ("secondkey",), _risu_keys),
        comment=_get(flat, ("comment",), as_str),
        content=_get(flat, ("content",), as_str),
        constant=_get(flat, ("alwaysActive",), as_bool) or flat.get(("mode",)) == "constant",
        selective=_get(flat, ("selective",), as_bool),
        order=_get(flat, ("insertorder",), as_int, 100),
        probability=100 if percent is None else _get(flat, ("activationPercent",), _probability),
        use_regex=_get(flat, ("useRegex",), as_bool),
        case_sensitive=_get(flat, ("extentions", "risu_case_sensitive"), as_opt_bool),
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


def _read_risu(obj: dict[str, Any], name: str) -> Lorebook:
    data = obj.get("data")
    if not isinstance(data, list):
        raise BadValue(f"a RisuAI lorebook's 'data' must be a list, got {kind_of(data)}")
    if len(data) > MAX_ENTRIES:
        raise BadValue(f"{len(data)} entries, more than the limit of {MAX_ENTRIES}")
    entries = [_read_entry(raw, _RISU_ENTRY, _risu_decode, _risu_encode, i, i) for i, raw in enumerate(data)]
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


# ---- NovelAI ----


def _nai_decode(flat: Flat, index: int) -> LoreEntry:
    return LoreEntry(
        uid=_uid(flat.get(("id",)), index),
        keys=_get(flat, ("keys",), as_str_list),
        content=_get(flat, ("text",), as_str),
        comment=_get(flat, ("displayName",), as_str),
        disabled=not _get(flat, ("enabled",), as_bool, True),
        constant=_get(flat, ("forceActivation",), as_bool),
        order=_get(flat, ("contextConfig", "budgetPriority"), as_int, 0),
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


def _read_novelai(obj: dict[str, Any], name: str) -> Lorebook:
    data = obj.get("entries")
    if not isinstance(data, list):
        raise BadValue(f"a NovelAI lorebook's 'entries' must be a list, got {kind_of(data)}")
    if len(data) > MAX_ENTRIES:
        raise BadValue(f"{len(data)} entries, more than the limit of {MAX_ENTRIES}")
    entries = [_read_entry(raw, _NAI_ENTRY, _nai_decode, _nai_encode, i, i) for i, raw in enumerate(data)]
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


# ---- shared ----


def _read_entry(
    raw: object,
    layout: Layout,
    decode: Callable[[Flat, int], LoreEntry],
    encode: Callable[[LoreEntry], Flat],
    position: int,
    fallback_uid: int | str,
) -> LoreEntry:
    if not isinstance(raw, dict):
        raise BadValue(f"entry {position} must be an object, got {kind_of(raw)}")
    flat = flatten(raw, layout.nested)
    try:
        entry = decode(flat, position)
    except BadValue as exc:
        label = raw.get("comment") or raw.get("displayName") or ""
        named = f" ('{label[:60]}')" if isinstance(label, str) and label else ""
        raise BadValue(f"entry {position}{named}: {exc}") from None
    if layout is _ST_ENTRY and ("uid",) not in flat:
        entry.uid = fallback_uid
    entry.source, entry.extensions = record(layout, flat, encode(entry), {})
    return entry


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
        return _read_novelai(obj, name)
    if obj.get("type") == "risu":
        return _read_risu(obj, name)
    if spec == "lorebook_v3":
        book = _read_character_book(obj.get("data"), name)
        assert book.source is not None
        for key, value in obj.items():
            if key != "data":
                book.source.verbatim[(_WRAPPER, key)] = value
        return book
    if spec in ("chara_card_v2", "chara_card_v3"):
        card = obj.get("data")
        book_obj = card.get("character_book") if isinstance(card, dict) else None
        if book_obj is None:
            raise BadValue("this character card has no lorebook (data.character_book)")
        card_name = card.get("name") if isinstance(card, dict) else None
        return _read_character_book(
            book_obj, f"{card_name}'s Lorebook" if isinstance(card_name, str) else name
        )
    entries = obj.get("entries")
    if isinstance(entries, dict):
        return _read_st_world(obj, name)
    if isinstance(entries, list):
        return _read_character_book(obj, name)
    raise BadValue(
        "it is not a known lorebook format (SillyTavern World Info, a character book, "
        "a lorebook_v3 file, a RisuAI or a NovelAI lorebook)"
    )

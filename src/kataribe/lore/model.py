"""The lorebook (World Info) data model with SillyTavern's fields, and its lossless storage JSON."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum, StrEnum
from typing import Any, TypeVar

from kataribe.errors import InvalidRequest
from kataribe.lore.jsonvalues import (
    BadValue,
    as_bool,
    as_int,
    as_object,
    as_opt_bool,
    as_opt_int,
    as_str,
    as_str_list,
    check_nesting,
    copy_json,
)

MAX_SCAN_DEPTH = 1000  # SillyTavern's MAX_SCAN_DEPTH
DEFAULT_DEPTH = 4
DEFAULT_GROUP_WEIGHT = 100


class LoreDataError(InvalidRequest):
    """Stored lore data, a lore setting or a timed state is malformed."""


class Position(StrEnum):
    """Where an activated entry goes in the prompt (SillyTavern's world_info_position)."""

    BEFORE_CHAR = "before_char"
    AFTER_CHAR = "after_char"
    AN_TOP = "an_top"
    AN_BOTTOM = "an_bottom"
    AT_DEPTH = "at_depth"
    EM_TOP = "em_top"
    EM_BOTTOM = "em_bottom"
    OUTLET = "outlet"  # SillyTavern 1.13's named outlet; its name stays in extensions["outletName"]


class SelectiveLogic(IntEnum):
    """How secondary keys combine with a primary key match; values are SillyTavern's numbers."""

    AND_ANY = 0
    NOT_ALL = 1
    NOT_ANY = 2
    AND_ALL = 3


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class InsertionStrategy(StrEnum):
    """How entries of several books are ordered: SillyTavern's 'evenly', or book by book."""

    EVENLY = "evenly"
    BOOK_ORDER = "book_order"  # SillyTavern's character_first / global_first: pass books in that order


Path = tuple[str, ...]


@dataclass(slots=True)
class SourceTrace:
    """How an imported object looked, so that exporting it to the same format reproduces it.

    ``order`` is every original field path in file order; ``kept`` maps a known field to its raw
    value and to what the model encoded at import (the raw value is written back while the model
    still encodes the same); ``omitted`` holds what the model encoded for fields the file did not
    have (left out again while unchanged); ``verbatim`` holds unknown fields with no place in
    ``extensions``.
    """

    format: str
    order: list[Path] = field(default_factory=list)
    kept: dict[Path, tuple[Any, Any]] = field(default_factory=dict)
    omitted: dict[Path, Any] = field(default_factory=dict)
    verbatim: dict[Path, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "order": [list(p) for p in self.order],
            "kept": [[list(p), copy_json(raw), copy_json(enc)] for p, (raw, enc) in self.kept.items()],
            "omitted": [[list(p), copy_json(enc)] for p, enc in self.omitted.items()],
            "verbatim": [[list(p), copy_json(raw)] for p, raw in self.verbatim.items()],
        }

    @classmethod
    def from_dict(cls, data: object) -> SourceTrace:
        obj = as_object(data)

        def path(value: object) -> Path:
            parts = as_str_list(value) if isinstance(value, list) else None
            if not parts:
                raise BadValue("a trace path must be a non-empty list of strings")
            return tuple(parts)

        def pairs(name: str, width: int) -> list[list[Any]]:
            items = obj.get(name) or []
            if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == width for i in items):
                raise BadValue(f"trace '{name}' must be a list of {width}-item lists")
            return items

        order = obj.get("order") or []
        if not isinstance(order, list):
            raise BadValue("trace 'order' must be a list")
        return cls(
            format=as_str(obj.get("format")),
            order=[path(p) for p in order],
            kept={path(i[0]): (copy_json(i[1]), copy_json(i[2])) for i in pairs("kept", 3)},
            omitted={path(i[0]): copy_json(i[1]) for i in pairs("omitted", 2)},
            verbatim={path(i[0]): copy_json(i[1]) for i in pairs("verbatim", 2)},
        )


@dataclass(slots=True, kw_only=True)
class LoreEntry:
    """One World Info entry. ``None`` in an optional override means "use the global setting"."""

    uid: int | str
    keys: list[str] = field(default_factory=list)
    secondary_keys: list[str] = field(default_factory=list)
    content: str = ""
    comment: str = ""
    constant: bool = False
    selective: bool = True
    selective_logic: SelectiveLogic = SelectiveLogic.AND_ANY
    order: int = 100
    position: Position = Position.BEFORE_CHAR
    depth: int = DEFAULT_DEPTH
    role: Role = Role.SYSTEM
    probability: int = 100
    use_probability: bool = True
    disabled: bool = False
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    delay_until_recursion: bool | int = False
    scan_depth: int | None = None
    case_sensitive: bool | None = None
    match_whole_words: bool | None = None
    group: str = ""
    group_override: bool = False
    group_weight: int = DEFAULT_GROUP_WEIGHT
    use_group_scoring: bool | None = None
    sticky: int | None = None
    cooldown: int | None = None
    delay: int | None = None
    # Character Card V2/V3 fields; decorators (``@@depth 3``...) stay in ``content``
    use_regex: bool = False
    name: str | None = None
    priority: int | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    source: SourceTrace | None = None

    @property
    def label(self) -> str:
        """How people recognise the entry: its comment, else its name, first key, or uid."""
        return self.comment or self.name or (self.keys[0] if self.keys else "") or f"#{self.uid}"

    @property
    def recursion_delay_level(self) -> int:
        """``delay_until_recursion`` as a level: 0 = off, ``True`` = 1."""
        level = self.delay_until_recursion
        return (1 if level else 0) if isinstance(level, bool) else max(0, level)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "source":
                value = None if value is None else value.to_dict()
            elif f.name in ("selective_logic",):
                value = int(value)
            elif f.name in ("position", "role"):
                value = str(value)
            else:
                value = copy_json(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: object) -> LoreEntry:
        try:
            check_nesting(data)
            obj = as_object(data)
            unknown = sorted(set(obj) - {f.name for f in fields(cls)})
            if unknown:
                raise BadValue(f"unknown field(s) {', '.join(map(repr, unknown))}")
            return _entry_from_obj(obj)
        except BadValue as exc:
            raise LoreDataError(f"A stored lore entry is malformed: {exc}. Re-import the lorebook.") from None


def _entry_from_obj(obj: dict[str, Any]) -> LoreEntry:
    def get(name: str, parse: Any, *args: Any) -> Any:
        try:
            return parse(obj.get(name), *args)
        except BadValue as exc:
            raise BadValue(f"'{name}': {exc}") from None

    uid = obj.get("uid")
    if not isinstance(uid, int | str) or isinstance(uid, bool):
        raise BadValue("'uid' must be a number or a string")
    delay_level = obj.get("delay_until_recursion")
    return LoreEntry(
        uid=uid,
        keys=get("keys", as_str_list),
        secondary_keys=get("secondary_keys", as_str_list),
        content=get("content", as_str),
        comment=get("comment", as_str),
        constant=get("constant", as_bool),
        selective=get("selective", as_bool, True),
        selective_logic=parse_selective_logic(obj.get("selective_logic")),
        order=get("order", as_int, 100),
        position=parse_enum(Position, obj.get("position"), Position.BEFORE_CHAR, "position"),
        depth=get("depth", as_int, DEFAULT_DEPTH),
        role=parse_enum(Role, obj.get("role"), Role.SYSTEM, "role"),
        probability=get("probability", as_int, 100),
        use_probability=get("use_probability", as_bool, True),
        disabled=get("disabled", as_bool),
        exclude_recursion=get("exclude_recursion", as_bool),
        prevent_recursion=get("prevent_recursion", as_bool),
        delay_until_recursion=delay_level
        if isinstance(delay_level, bool)
        else get("delay_until_recursion", as_int),
        scan_depth=get("scan_depth", as_opt_int),
        case_sensitive=get("case_sensitive", as_opt_bool),
        match_whole_words=get("match_whole_words", as_opt_bool),
        group=get("group", as_str),
        group_override=get("group_override", as_bool),
        group_weight=get("group_weight", as_int, DEFAULT_GROUP_WEIGHT),
        use_group_scoring=get("use_group_scoring", as_opt_bool),
        sticky=get("sticky", as_opt_int),
        cooldown=get("cooldown", as_opt_int),
        delay=get("delay", as_opt_int),
        use_regex=get("use_regex", as_bool),
        name=None if obj.get("name") is None else get("name", as_str),
        priority=get("priority", as_opt_int),
        extensions=copy_json(get("extensions", as_object)),
        source=None if obj.get("source") is None else SourceTrace.from_dict(obj["source"]),
    )


def parse_selective_logic(value: object) -> SelectiveLogic:
    if value is None:
        return SelectiveLogic.AND_ANY
    if isinstance(value, str) and value.upper() in SelectiveLogic.__members__:
        return SelectiveLogic[value.upper()]
    number = as_int(value)
    if number not in {m.value for m in SelectiveLogic}:
        raise BadValue(f"selective logic must be 0 to 3, got {number}")
    return SelectiveLogic(number)


E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: object, default: E, what: str) -> E:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise BadValue(f"'{what}' must be one of {', '.join(m.value for m in enum)}, got {str(value)[:40]!r}")


@dataclass(slots=True, kw_only=True)
class Lorebook:
    """A named set of entries; optional book-level overrides follow the Character Card spec."""

    name: str = ""
    description: str = ""
    entries: list[LoreEntry] = field(default_factory=list)
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    source: SourceTrace | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "entries": [e.to_dict() for e in self.entries],
            "scan_depth": self.scan_depth,
            "token_budget": self.token_budget,
            "recursive_scanning": self.recursive_scanning,
            "extensions": copy_json(self.extensions),
            "source": None if self.source is None else self.source.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> Lorebook:
        try:
            check_nesting(data)
            obj = as_object(data)
            entries = obj.get("entries") or []
            if not isinstance(entries, list):
                raise BadValue("'entries' must be a list")
            book = cls(
                name=as_str(obj.get("name")),
                description=as_str(obj.get("description")),
                entries=[],
                scan_depth=as_opt_int(obj.get("scan_depth"), low=0, high=MAX_SCAN_DEPTH),
                token_budget=as_opt_int(obj.get("token_budget"), low=0),
                recursive_scanning=as_opt_bool(obj.get("recursive_scanning")),
                extensions=copy_json(as_object(obj.get("extensions"))),
                source=None if obj.get("source") is None else SourceTrace.from_dict(obj["source"]),
            )
        except BadValue as exc:
            raise LoreDataError(f"A stored lorebook is malformed: {exc}. Re-import the lorebook.") from None
        book.entries = [LoreEntry.from_dict(e) for e in entries]
        return book


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldInfoSettings:
    """Global World Info settings; defaults are SillyTavern's, except recursion is on."""

    scan_depth: int = 2
    budget_percent: int = 25
    budget_cap: int = 0  # tokens; 0 = no cap
    min_activations: int = 0
    min_activations_depth_max: int = 0  # 0 = up to the whole chat
    recursive: bool = True
    max_recursion_steps: int = 0  # 0 = unlimited
    case_sensitive: bool = False
    match_whole_words: bool = False
    use_group_scoring: bool = False
    insertion_strategy: InsertionStrategy = InsertionStrategy.BOOK_ORDER

    def __post_init__(self) -> None:
        bounds = {
            "scan_depth": (0, MAX_SCAN_DEPTH),
            "budget_percent": (0, 100),
            "budget_cap": (0, 10_000_000),
            "min_activations": (0, 100_000),
            "min_activations_depth_max": (0, MAX_SCAN_DEPTH),
            "max_recursion_steps": (0, 1_000),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise LoreDataError(
                    f"World Info setting '{name}' must be a whole number, {low} to {high}; got {value!r}.",
                    param=name,
                )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "insertion_strategy": str(self.insertion_strategy)
        }

    @classmethod
    def from_dict(cls, data: object) -> WorldInfoSettings:
        try:
            obj = as_object(data)
            unknown = sorted(set(obj) - {f.name for f in fields(cls)})
            if unknown:
                raise BadValue(f"unknown setting(s) {', '.join(map(repr, unknown))}")
            kwargs: dict[str, Any] = {}
            for f in fields(cls):
                if f.name not in obj:
                    continue
                value = obj[f.name]
                if f.name == "insertion_strategy":
                    kwargs[f.name] = parse_enum(
                        InsertionStrategy, value, InsertionStrategy.BOOK_ORDER, f.name
                    )
                elif isinstance(f.default, bool):
                    kwargs[f.name] = as_bool(value)
                else:
                    kwargs[f.name] = as_int(value)
        except BadValue as exc:
            raise LoreDataError(f"World Info settings are malformed: {exc}.") from None
        return cls(**kwargs)

"""Field parsers, SillyTavern numbering and the entry reader shared by the lorebook format modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kataribe.errors import InvalidRequest
from kataribe.lore.jsonvalues import BadValue, as_int, as_opt_int, as_str, kind_of
from kataribe.lore.model import (
    MAX_SCAN_DEPTH,
    LoreEntry,
    Path,
    Position,
    Role,
    SelectiveLogic,
    parse_selective_logic,
)
from kataribe.lore.trace import Flat, Layout, flatten, record

MAX_ENTRIES = 100_000
ST_POSITIONS = list(Position)  # SillyTavern's numbers are the enum's order: 0 before_char ... 7 outlet
ST_ROLES = [Role.SYSTEM, Role.USER, Role.ASSISTANT]


class LorebookFormatError(InvalidRequest):
    """A lorebook file could not be read; the message says what is wrong with it."""


def top_name(path: Path) -> str:
    return path[0] if len(path) == 1 else ".".join(path)


def dotted(nested: str) -> Callable[[str], Path]:
    def path_of(name: str) -> Path:
        head, _, rest = name.partition(".")
        return (head, rest) if head == nested and rest else (name,)

    return path_of


def get_field(flat: Flat, path: Path, parse: Callable[..., Any], *args: Any) -> Any:
    try:
        return parse(flat.get(path), *args)
    except BadValue as exc:
        raise BadValue(f"field '{'.'.join(path)}': {exc}") from None


def parse_uid(value: object, fallback: int) -> int | str:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise BadValue(f"field 'uid/id': expected a number or a string, got {kind_of(value)}")
    if isinstance(value, float):
        return as_int(value)
    return as_str(value, limit=200) if isinstance(value, str) else value


def parse_depth(value: object) -> int | None:
    return as_opt_int(value, low=0, high=MAX_SCAN_DEPTH)


def parse_count(value: object) -> int | None:
    number = as_opt_int(value)
    return None if number is None else max(0, number)


def parse_probability(value: object) -> int:
    return min(100, max(0, as_int(value, 100)))


def parse_st_position(value: object) -> Position:
    if isinstance(value, str) and value in Position.__members__.values():
        return Position(value)
    number = as_int(value, 0)
    if not 0 <= number < len(ST_POSITIONS):
        raise BadValue(f"position must be 0 to {len(ST_POSITIONS) - 1}, got {number}")
    return ST_POSITIONS[number]


def parse_st_role(value: object) -> Role:
    if isinstance(value, str) and value.lower() in Role.__members__.values():
        return Role(value.lower())
    number = as_int(value, 0)
    if not 0 <= number < len(ST_ROLES):
        raise BadValue(f"role must be 0 (system), 1 (user) or 2 (assistant), got {number}")
    return ST_ROLES[number]


def parse_recursion_delay(value: object) -> bool | int:
    if value is None or isinstance(value, bool):
        return bool(value)
    return max(0, as_int(value))


def parse_logic(value: object) -> SelectiveLogic:
    return parse_selective_logic(value)


def check_entry_count(count: int) -> None:
    if count > MAX_ENTRIES:
        raise BadValue(f"{count} entries, more than the limit of {MAX_ENTRIES}")


def read_entry(
    raw: object,
    layout: Layout,
    decode: Callable[[Flat, int], LoreEntry],
    encode: Callable[[LoreEntry], Flat],
    position: int,
    uid_when_missing: int | str | None = None,
) -> LoreEntry:
    """One entry object as a LoreEntry with its source trace; ``uid_when_missing`` fills an absent ``uid``."""
    if not isinstance(raw, dict):
        raise BadValue(f"entry {position} must be an object, got {kind_of(raw)}")
    flat = flatten(raw, layout.nested)
    try:
        entry = decode(flat, position)
    except BadValue as exc:
        label = raw.get("comment") or raw.get("displayName") or ""
        named = f" ('{label[:60]}')" if isinstance(label, str) and label else ""
        raise BadValue(f"entry {position}{named}: {exc}") from None
    if uid_when_missing is not None and ("uid",) not in flat:
        entry.uid = uid_when_missing
    entry.source, entry.extensions = record(layout, flat, encode(entry), {})
    return entry

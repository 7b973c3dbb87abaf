"""Character Card V3 decorators: the ``@@name value`` lines at the top of an entry's content."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from kataribe.lore.model import Position, Role

_LINE = re.compile(r"@@([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]+(.*))?$")
_INT = re.compile(r"[+-]?\d{1,9}")

# V3's @@position values, placed where SillyTavern's prompt puts that part of the card: World Info
# "before" sits right before the description, "after" right after the scenario.
_POSITIONS: dict[str, Position] = {
    "before_desc": Position.BEFORE_CHAR,
    "after_desc": Position.AFTER_CHAR,
    "personality": Position.AFTER_CHAR,
    "scenario": Position.AFTER_CHAR,
    **{p.value: p for p in Position if p is not Position.OUTLET},
}


@dataclass(frozen=True, slots=True)
class Decorators:
    """What the recognised decorators of one entry ask for; ``None`` or empty = not given."""

    activate: bool = False
    dont_activate: bool = False
    depth: int | None = None
    role: Role | None = None
    position: Position | None = None
    scan_depth: int | None = None
    additional_keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    activate_only_after: int | None = None
    activate_only_every: int | None = None
    ignored: tuple[str, ...] = field(default=())  # unknown, invalid or repeated lines, as written

    @property
    def any(self) -> bool:
        """True when a recognised decorator is present."""
        return self is not NO_DECORATORS and replace(self, ignored=()) != NO_DECORATORS

    def placement(self, position: Position, depth: int) -> tuple[Position, int]:
        """Where an entry with this position and depth goes: V3's @@position wins over @@depth."""
        if self.position is not None:
            if self.position is Position.AT_DEPTH and self.depth is not None:
                return self.position, self.depth
            return self.position, depth
        if self.depth is not None:
            return Position.AT_DEPTH, self.depth
        return position, depth


NO_DECORATORS = Decorators()


def split_decorators(content: str) -> tuple[Decorators, str]:
    """Parses leading decorator lines; returns them and the content without them.

    Follows the V3 spec: the first decorator of a name wins, unknown or invalid ones are
    ignored, and a ``@@@`` fallback line applies only when the decorator before it did not.
    The blank lines between the decorators and the text are trimmed.
    """
    if not content.startswith("@@"):
        return NO_DECORATORS, content
    values: dict[str, object] = {}
    ignored: list[str] = []
    fallback_open = False
    lines = content.split("\n")
    rest_at = len(lines)
    for index, raw_line in enumerate(lines):
        line = raw_line.rstrip("\r")
        if not line.startswith("@@"):
            rest_at = index
            break
        if line.startswith("@@@"):
            if not fallback_open:
                continue
            applied = _apply(line[1:], values)
            fallback_open = not applied
        else:
            applied = _apply(line, values)
            fallback_open = not applied
        if not applied:
            ignored.append(line)
    rest = "\n".join(lines[rest_at:]).lstrip("\r\n")
    return _build(values, tuple(ignored)), rest


def _apply(line: str, values: dict[str, object]) -> bool:
    match = _LINE.match(line.strip())
    if match is None:
        return False
    name, arg = match.group(1).lower(), (match.group(2) or "").strip()
    if name in values:
        return False
    value = _parse(name, arg)
    if value is None:
        return False
    values[name] = value
    return True


def _parse(name: str, arg: str) -> object | None:
    if name in ("activate", "dont_activate"):
        return True
    if name in ("depth", "scan_depth", "activate_only_after", "activate_only_every"):
        if not _INT.fullmatch(arg):
            return None
        number = int(arg)
        if name == "depth":
            return max(0, number)  # V3: below 1 means after the most recent message
        if name == "activate_only_every":
            return number if number >= 1 else None
        return number if number >= 0 else None
    if name == "role":
        return Role(arg.lower()) if arg.lower() in {r.value for r in Role} else None
    if name == "position":
        return _POSITIONS.get(arg.lower())
    if name in ("additional_keys", "exclude_keys"):
        keys = tuple(k.strip() for k in arg.split(",") if k.strip())
        return keys or None
    return None


def _build(values: dict[str, object], ignored: tuple[str, ...]) -> Decorators:
    def num(name: str) -> int | None:
        value = values.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def keys(name: str) -> tuple[str, ...]:
        value = values.get(name)
        return value if isinstance(value, tuple) else ()

    role = values.get("role")
    position = values.get("position")
    return Decorators(
        activate="activate" in values,
        dont_activate="dont_activate" in values,
        depth=num("depth"),
        role=role if isinstance(role, Role) else None,
        position=position if isinstance(position, Position) else None,
        scan_depth=num("scan_depth"),
        additional_keys=keys("additional_keys"),
        exclude_keys=keys("exclude_keys"),
        activate_only_after=num("activate_only_after"),
        activate_only_every=num("activate_only_every"),
        ignored=ignored,
    )

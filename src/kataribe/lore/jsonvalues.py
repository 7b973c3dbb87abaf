"""Reading untrusted JSON values into typed lore fields, and comparing JSON values exactly."""

from __future__ import annotations

from typing import Any

# Bounds on imported data: generous for real lorebooks, small enough that hostile files cannot
# make scanning or storage explode.
MAX_KEYS_PER_ENTRY = 1_000
MAX_KEY_CHARS = 10_000
MAX_TEXT_CHARS = 2_000_000
MAX_NESTING = 64
MAX_SAFE_INT = 2**53  # what JavaScript (every other program here) can represent exactly


class BadValue(ValueError):
    """A JSON value has the wrong type or range; the message names what was expected."""


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def as_str(value: object, default: str = "", *, limit: int = MAX_TEXT_CHARS) -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadValue(f"expected a string, got {kind_of(value)}")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise BadValue(f"expected a string, got {kind_of(value)}")
    if len(value) > limit:
        raise BadValue(f"text is {len(value)} characters, more than the limit of {limit}")
    return value


def as_bool(value: object, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadValue(f"expected true or false, got {kind_of(value)}")


def as_opt_bool(value: object) -> bool | None:
    return None if value is None else as_bool(value)


def as_int(value: object, default: int = 0, *, low: int = -MAX_SAFE_INT, high: int = MAX_SAFE_INT) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise BadValue(f"expected a number, got {kind_of(value)}")
    number: int | float
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise BadValue(f"expected a number, got the text {value[:40]!r}") from None
    else:
        raise BadValue(f"expected a number, got {kind_of(value)}")
    if number != number or number in (float("inf"), float("-inf")):
        raise BadValue("expected a finite number")
    if not low <= number <= high:
        raise BadValue(f"expected a number from {low} to {high}, got {number}")
    return round(number)


def as_opt_int(value: object, *, low: int = -MAX_SAFE_INT, high: int = MAX_SAFE_INT) -> int | None:
    return None if value is None else as_int(value, low=low, high=high)


def as_str_list(value: object) -> list[str]:
    """A list of strings; a single comma-separated string (older exports) is split."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",")]
        items = [part for part in items if part]
    elif isinstance(value, list):
        items = value
    else:
        raise BadValue(f"expected a list of strings, got {kind_of(value)}")
    if len(items) > MAX_KEYS_PER_ENTRY:
        raise BadValue(f"{len(items)} keys, more than the limit of {MAX_KEYS_PER_ENTRY}")
    return [as_str(item, limit=MAX_KEY_CHARS) for item in items]


def as_object(value: object, default: dict[str, Any] | None = None) -> dict[str, Any]:
    if value is None:
        return {} if default is None else default
    if not isinstance(value, dict):
        raise BadValue(f"expected an object, got {kind_of(value)}")
    return value


def check_nesting(value: object, limit: int = MAX_NESTING) -> None:
    """Rejects values nested deeper than ``limit`` (iteratively: deep input must not recurse)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            raise BadValue(f"data is nested more than {limit} levels deep")
        stack.extend((child, depth + 1) for child in children)


def same_json(a: object, b: object) -> bool:
    """Equality that tells 1, 1.0 and true apart, as a JSON file would (inputs are depth-checked)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (inputs are depth-checked, so recursion is bounded)."""
    if isinstance(value, dict):
        return {str(k): copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value

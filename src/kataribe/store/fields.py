"""Checks on values from outside (imports, API bodies) before they reach a row, with clear errors."""

from __future__ import annotations

import json
from typing import Any

from kataribe.store.errors import InvalidValue

MAX_NAME_CHARS = 1_000
MAX_TEXT_CHARS = 1_000_000
"""The one limit on a text: every string column, and every string inside a JSON column, on write and
on restore (so whatever was stored can be backed up and restored)."""
MAX_JSON_CHARS = 1_000_000
MAX_JSON_DOCUMENT_CHARS = 64 * 1024 * 1024
"""A JSON column as a whole (a card or a lorebook may be large), on write and on restore."""


def lone_surrogate_path(value: object, where: str = "") -> str | None:
    """Where in ``value`` (nested lists and dicts, keys included) a string holds an unpaired UTF-16
    surrogate, e.g. from JSON ``"\\ud800"``; None if nowhere. No database can store such a string."""
    pending: list[tuple[str, object]] = [(where, value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                return path or "value"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _has_lone_surrogate(key):
                    return child_path.encode("utf-8", "backslashreplace").decode("ascii")
                pending.append((child_path, child))
        elif isinstance(item, list | tuple):
            pending.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


def _has_lone_surrogate(text: str) -> bool:
    # Python keeps a valid pair from JSON as one astral character, so any surrogate left is alone.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _longest_string(value: object) -> tuple[str, int]:
    """The path and length of the longest string in a JSON value (keys included)."""
    best = ("", 0)
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if len(item) > best[1]:
                best = (path, len(item))
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and len(key) > best[1]:
                    best = (child_path, len(key))
                pending.append((child_path, child))
        elif isinstance(item, list | tuple):
            pending.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return best


def checked_text(field: str, value: object, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A string every database can store: not too long, valid UTF-8, no NUL (PostgreSQL refuses it)."""
    if not isinstance(value, str):
        raise InvalidValue(field, f"'{field}' must be a string; got {type(value).__name__}.")
    if len(value) > max_chars:
        raise InvalidValue(
            field, f"'{field}' is {len(value):,} characters; the limit is {max_chars:,}. Shorten it."
        )
    if "\x00" in value:
        raise InvalidValue(field, f"'{field}' contains a NUL character (\\u0000); remove it.")
    if _has_lone_surrogate(value):
        # A lone UTF-16 surrogate, e.g. from JSON "\ud800": no database can store it as text.
        raise InvalidValue(field, _surrogate_message(field))
    return value


def checked_json_object(field: str, value: object, *, max_chars: int = MAX_JSON_CHARS) -> dict[str, Any]:
    """A JSON object that serializes portably (no NaN, no non-JSON types), is not huge, and holds
    only text every database can store (no lone surrogate, no string over MAX_TEXT_CHARS)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(field, f"'{field}' must be a JSON object; got {type(value).__name__}.")
    checked_json_value(field, value, max_chars=max_chars)
    return value


def checked_json_value(field: str, value: object, *, max_chars: int = MAX_JSON_DOCUMENT_CHARS) -> object:
    """Any JSON value (a JSON column's content) under the same checks as ``checked_json_object``."""
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(
            field, f"'{field}' cannot be stored as JSON ({type(exc).__name__}: {str(exc)[:120]})."
        ) from None
    if len(encoded) > max_chars:
        raise InvalidValue(
            field, f"'{field}' is {len(encoded):,} characters of JSON; the limit is {max_chars:,}."
        )
    if not encoded.isascii():
        try:
            encoded.encode("utf-8")
        except UnicodeEncodeError:
            path = lone_surrogate_path(value) or "?"
            raise InvalidValue(field, _surrogate_message(f"{field}.{path}")) from None
    if len(encoded) > MAX_TEXT_CHARS:
        path, longest = _longest_string(value)
        if longest > MAX_TEXT_CHARS:
            raise InvalidValue(
                field,
                f"'{field}.{path}' is {longest:,} characters; the limit is {MAX_TEXT_CHARS:,}. Shorten it.",
            )
    return value


def _surrogate_message(where: str) -> str:
    return (
        f"'{where}' contains an unpaired surrogate (broken UTF-16 text such as \\ud800); fix the source text."
    )


def checked_id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(field, f"'{field}' must be an integer id; got {value!r:.40}.")
    return value


def checked_count(field: str, value: object, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidValue(field, f"'{field}' must be a whole number from 0 to {maximum}; got {value!r:.40}.")
    return value

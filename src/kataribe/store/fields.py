"""Checks on values from outside (imports, API bodies) before they reach a row, with clear errors."""

from __future__ import annotations

import json
from typing import Any

from kataribe.store.errors import InvalidValue

MAX_NAME_CHARS = 1_000
MAX_TEXT_CHARS = 1_000_000
MAX_JSON_CHARS = 1_000_000


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
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone UTF-16 surrogate, e.g. from JSON "\ud800": no database can store it as text.
        raise InvalidValue(
            field, f"'{field}' contains an unpaired surrogate (broken UTF-16 text); fix the source text."
        ) from None
    return value


def checked_json_object(field: str, value: object, *, max_chars: int = MAX_JSON_CHARS) -> dict[str, Any]:
    """A JSON object that serializes portably (no NaN, no non-JSON types) and is not huge."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(field, f"'{field}' must be a JSON object; got {type(value).__name__}.")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidValue(
            field, f"'{field}' cannot be stored as JSON ({type(exc).__name__}: {str(exc)[:120]})."
        ) from None
    if len(encoded) > max_chars:
        raise InvalidValue(
            field, f"'{field}' is {len(encoded):,} characters of JSON; the limit is {max_chars:,}."
        )
    return value


def checked_id(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(field, f"'{field}' must be an integer id; got {value!r:.40}.")
    return value


def checked_count(field: str, value: object, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidValue(field, f"'{field}' must be a whole number from 0 to {maximum}; got {value!r:.40}.")
    return value

"""SillyTavern chat files (JSONL: a metadata header line, then one message per line), both ways."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kataribe.errors import InvalidRequest

MAX_CHAT_BYTES = 200 * 1024 * 1024
MAX_JSON_DEPTH = 64
_BOM = b"\xef\xbb\xbf"
# A first line with "mes" but none of these is a message from a file that lost its header.
_HEADER_KEYS = ("user_name", "character_name", "create_date", "chat_metadata")
_FLAT_KEYS = ("name", "is_user", "is_system", "send_date", "mes", "extra", "original_avatar")
_KNOWN_KEYS = frozenset((*_FLAT_KEYS, "swipes", "swipe_id", "swipe_info"))

# fmt: off
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
# fmt: on
_MERIDIEM_DATE = re.compile(
    r"([A-Za-z]+)\s([0-9]{1,2}),\s([0-9]{4})\s([0-9]{1,2}):([0-9]{1,2})(am|pm)", re.IGNORECASE
)
_HUMANIZED_DATES = (  # ST's older file-name style stamps, which it reads as UTC
    re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})@([0-9]{1,2})h([0-9]{1,2})m([0-9]{1,2})s([0-9]{1,3})ms"),
    re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})@([0-9]{1,2})h([0-9]{1,2})m([0-9]{1,2})s()"),
    re.compile(
        r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2}) @([0-9]{1,2})h ([0-9]{1,2})m ([0-9]{1,2})s ([0-9]{1,3})ms"
    ),
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ChatFormatError(InvalidRequest):
    """The bytes are not a SillyTavern chat file Kataribe can read."""


@dataclass
class StMessage:
    """One chat message. ``raw`` holds every key Kataribe does not model, written back unchanged."""

    name: str
    is_user: bool
    is_system: bool = False
    send_date: datetime | None = None
    # written back as found; set it to None to write ``send_date`` in ST's "June 19, 2023 2:20pm" style
    send_date_raw: str | int | float | None = None
    text: str = ""
    swipes: list[str] = field(default_factory=list)
    swipe_id: int = 0
    swipe_info: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    original_avatar: str | None = None  # group chats: which member's card spoke
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class StChat:
    """The header line (user_name, character_name, create_date, chat_metadata, ...) and the messages."""

    header: dict[str, Any]
    messages: list[StMessage]

    @property
    def user_name(self) -> str:
        value = self.header.get("user_name")
        return value if isinstance(value, str) else ""

    @property
    def character_name(self) -> str:
        value = self.header.get("character_name")
        return value if isinstance(value, str) else ""

    @property
    def chat_metadata(self) -> dict[str, Any]:
        value = self.header.get("chat_metadata")
        return value if isinstance(value, dict) else {}


def parse_st_chat(data: bytes) -> StChat:
    """Read a SillyTavern ``.jsonl`` chat (UTF-8, with or without BOM; blank lines are ignored)."""
    if len(data) > MAX_CHAT_BYTES:
        raise ChatFormatError(
            f"The chat file is {len(data) / 1024 / 1024:.0f} MB; Kataribe reads chats up to "
            f"{MAX_CHAT_BYTES // 1024 // 1024} MB. Branch or trim the chat in SillyTavern first."
        )
    data = data.removeprefix(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ChatFormatError(
            f"Line {line} of the chat file is not UTF-8 text. Export the chat from SillyTavern again."
        ) from None
    rows = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip(" \t\r")]
    if not rows:
        raise ChatFormatError(
            "The chat file is empty. A SillyTavern chat (.jsonl) has a header line and one line per message."
        )
    objects = [(number, _load_line(number, line)) for number, line in rows]
    first = objects[0][1]
    header: dict[str, Any] = {}
    if "mes" not in first or any(key in first for key in _HEADER_KEYS):
        header = first
        objects = objects[1:]
    return StChat(header=header, messages=[_message_from_json(number, obj) for number, obj in objects])


def dump_st_chat(chat: StChat) -> bytes:
    """Write the chat as SillyTavern writes it: compact JSON lines joined by newlines, UTF-8."""
    lines = [chat.header, *(_message_to_json(message) for message in chat.messages)]
    try:
        encoded = [
            json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False) for line in lines
        ]
    except (TypeError, ValueError, RecursionError) as exc:
        raise ChatFormatError(f"The chat holds a value that JSON cannot represent ({exc}).") from None
    # JSON.stringify escapes unpaired surrogates; UTF-8 cannot carry them raw.
    text = "\n".join(_LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", line) for line in encoded)
    return text.encode("utf-8")


def parse_st_date(value: object) -> datetime | None:
    """A message's ``send_date`` as a datetime, or None when it is not a date ST would understand.

    Numbers (and digit strings) are milliseconds since 1970 (UTC); ISO 8601 keeps its own offset;
    ST's "June 19, 2023 2:20pm" is local time, so it comes back naive; "2024-07-12@01h31m37s" is UTC.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or len(value) > 64:
            return None
        if value.isascii() and value.isdigit():
            return _from_epoch_ms(int(value))
        return _from_date_text(value)
    return _from_epoch_ms(value)


def format_st_date(moment: datetime) -> str:
    """ST's message stamp: "November 27, 2026 6:42pm"."""
    clock = f"{moment.hour % 12 or 12}:{moment.minute:02d}{'pm' if moment.hour >= 12 else 'am'}"
    return f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year} {clock}"


def _from_epoch_ms(milliseconds: float) -> datetime | None:
    if not math.isfinite(milliseconds) or milliseconds < 0:
        return None
    try:
        return datetime.fromtimestamp(milliseconds / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _from_date_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        found = _MERIDIEM_DATE.search(text)
        if found:
            month_name, day, year, hour, minute, meridiem = found.groups()
            month = _month_number(month_name)
            if month is None:
                return None
            hour24 = int(hour) % 12 + (12 if meridiem.lower() == "pm" else 0)
            return datetime(int(year), month, int(day), hour24, int(minute))
        for pattern in _HUMANIZED_DATES:
            found = pattern.search(text)
            if found:
                year, month_text, day, hour, minute, second, millis = found.groups()
                micro = int(millis.ljust(3, "0")) * 1000 if millis else 0
                parts = (int(year), int(month_text), int(day), int(hour), int(minute), int(second))
                return datetime(*parts, micro, tzinfo=UTC)
    except ValueError:  # a day 31 of February, an hour 25
        return None
    return None


def _month_number(name: str) -> int | None:
    lowered = name.lower()
    for number, month in enumerate(_MONTHS, 1):
        if len(lowered) >= 3 and month.lower().startswith(lowered):
            return number
    return None


def _load_line(number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ChatFormatError(
            f"Line {number} of the chat file is not valid JSON ({exc.msg} at column {exc.colno}). "
            "Each line of a SillyTavern chat must be one JSON object."
        ) from None
    except _NumberRejected as exc:
        raise ChatFormatError(f"Line {number} of the chat file cannot be read as JSON ({exc}).") from None
    except ValueError:  # Python refuses integers of thousands of digits
        raise ChatFormatError(
            f"Line {number} of the chat file holds a number with too many digits."
        ) from None
    except RecursionError:
        raise ChatFormatError(f"Line {number} of the chat file nests JSON too deeply.") from None
    if not isinstance(value, dict):
        raise ChatFormatError(
            f"Line {number} of the chat file is a JSON {_json_kind(value)}, "
            "but each line of a SillyTavern chat must be a JSON object."
        )
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise ChatFormatError(
            f"Line {number} of the chat file nests JSON deeper than {MAX_JSON_DEPTH} levels."
        )
    return value


class _NumberRejected(ValueError):
    pass


def _reject_constant(constant: str) -> None:
    raise _NumberRejected(f"{constant} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberRejected(f"the number {text[:40]} is too large")
    return value


def _json_kind(value: object) -> str:
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "null")


def _depth_exceeds(value: object, limit: int) -> bool:
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _message_from_json(number: int, obj: dict[str, Any]) -> StMessage:
    def fail(key: str, expected: str) -> ChatFormatError:
        found = _json_kind(obj[key])
        return ChatFormatError(f"Line {number}: '{key}' must be {expected}, not a JSON {found}.", param=key)

    def text_of(key: str) -> str:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise fail(key, "a string")
        return value or ""

    def flag_of(key: str) -> bool:
        value = obj.get(key)
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, int) and value in (0, 1):  # some exporters write 0/1
            return bool(value)
        raise fail(key, "true or false")

    def list_of(key: str, kind: type, expected: str) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, kind) for item in value):
            raise fail(key, expected)
        return list(value)

    send_date_raw = obj.get("send_date")
    if isinstance(send_date_raw, bool) or not isinstance(send_date_raw, str | int | float | None):
        raise fail("send_date", "a date string or a number")
    swipe_id = obj.get("swipe_id")
    if isinstance(swipe_id, float) and swipe_id.is_integer():
        swipe_id = int(swipe_id)
    if swipe_id is not None and (isinstance(swipe_id, bool) or not isinstance(swipe_id, int)):
        raise fail("swipe_id", "a whole number")
    extra = obj.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise fail("extra", "a JSON object")
    original_avatar = obj.get("original_avatar")
    if original_avatar is not None and not isinstance(original_avatar, str):
        raise fail("original_avatar", "a string")
    return StMessage(
        name=text_of("name"),
        is_user=flag_of("is_user"),
        is_system=flag_of("is_system"),
        send_date=parse_st_date(send_date_raw),
        send_date_raw=send_date_raw,
        text=text_of("mes"),
        swipes=list_of("swipes", str, "a list of strings"),
        swipe_id=swipe_id or 0,
        swipe_info=list_of("swipe_info", dict, "a list of JSON objects"),
        extra=dict(extra or {}),
        original_avatar=original_avatar,
        raw={key: value for key, value in obj.items() if key not in _KNOWN_KEYS},
    )


def _message_to_json(message: StMessage) -> dict[str, Any]:
    line: dict[str, Any] = {"name": message.name, "is_user": message.is_user, "is_system": message.is_system}
    if message.send_date_raw is not None:
        line["send_date"] = message.send_date_raw
    elif message.send_date is not None:
        line["send_date"] = format_st_date(message.send_date)
    line["mes"] = message.text
    if message.extra:
        line["extra"] = message.extra
    # ST treats a message whose swipe_id is not below len(swipes) as still generating, so an empty
    # swipes list is left out rather than written as [].
    if message.swipes or message.swipe_id:
        line["swipe_id"] = message.swipe_id
    if message.swipes:
        line["swipes"] = message.swipes
    if message.swipe_info:
        line["swipe_info"] = message.swipe_info
    if message.original_avatar is not None:
        line["original_avatar"] = message.original_avatar
    line.update((key, value) for key, value in message.raw.items() if key not in _KNOWN_KEYS)
    return line

"""SillyTavern chat JSONL: lossless round trip with swipes, dates, bad lines, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.errors import InvalidRequest
from kataribe.formats.st_chat import (
    MAX_CHAT_BYTES,
    ChatFormatError,
    StChat,
    StMessage,
    dump_st_chat,
    format_st_date,
    parse_st_chat,
    parse_st_date,
)

HEADER = {
    "user_name": "アリス",
    "character_name": "セラフィナ",
    "create_date": "2026-11-27@18h42m05s",
    "chat_metadata": {"integrity": "5b6c-4f", "note_prompt": "", "variables": {"好感度": "3"}},
}
USER_LINE = {
    "name": "アリス",
    "is_user": True,
    "is_system": False,
    "send_date": "November 27, 2026 6:42pm",
    "mes": "こんにちは、{{char}}！",
    "extra": {"isSmallSys": False},
    "force_avatar": "User Avatars/alice.png",
}
CHAR_LINE = {
    "name": "セラフィナ",
    "is_user": False,
    "is_system": False,
    "send_date": "2026-11-27T09:43:10.512Z",
    "mes": "二つ目の返事",
    "extra": {"api": "openai", "model": "smollm2", "reasoning": "考え中"},
    "swipe_id": 1,
    "swipes": ["一つ目の返事", "二つ目の返事", "三つ目の返事"],
    "swipe_info": [
        {"send_date": "2026-11-27T09:43:01.000Z", "extra": {}},
        {"send_date": "2026-11-27T09:43:10.512Z", "extra": {"api": "openai"}},
        {"send_date": "2026-11-27T09:44:00.000Z", "extra": {}},
    ],
    "gen_started": "2026-11-27T09:43:09.000Z",
    "gen_finished": "2026-11-27T09:43:10.512Z",
    "kataribe_future_key": {"nested": [1, 2.5, None, "😀"]},
}
SYSTEM_LINE = {
    "name": "SillyTavern System",
    "is_user": False,
    "is_system": True,
    "send_date": 1764236625000,
    "mes": "<script>alert(1)</script> 場面転換",
    "extra": {"type": "narrator"},
}
GROUP_LINE = {
    "name": "ミナ",
    "is_user": False,
    "send_date": "2024-6-5 @14h 56m 50s 682ms",
    "mes": "私も来たよ",
    "original_avatar": "mina.png",
    "force_avatar": "characters/mina.png",
}


def jsonl(*lines: object) -> bytes:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()


REALISTIC = jsonl(HEADER, USER_LINE, CHAR_LINE, SYSTEM_LINE, GROUP_LINE)


def test_realistic_chat_reads_every_field() -> None:
    chat = parse_st_chat(REALISTIC)
    assert chat.header == HEADER
    assert (chat.user_name, chat.character_name) == ("アリス", "セラフィナ")
    assert chat.chat_metadata["variables"] == {"好感度": "3"}
    user, char, system, member = chat.messages
    assert (user.name, user.is_user, user.text) == ("アリス", True, "こんにちは、{{char}}！")
    assert user.send_date == datetime(2026, 11, 27, 18, 42)
    assert user.send_date_raw == "November 27, 2026 6:42pm"
    assert user.raw == {"force_avatar": "User Avatars/alice.png"}
    assert char.swipes == ["一つ目の返事", "二つ目の返事", "三つ目の返事"]
    assert char.swipe_id == 1 and char.text == char.swipes[char.swipe_id]
    assert char.swipe_info == CHAR_LINE["swipe_info"]
    assert char.extra["reasoning"] == "考え中"
    assert char.send_date == datetime(2026, 11, 27, 9, 43, 10, 512000, tzinfo=UTC)
    assert set(char.raw) == {"gen_started", "gen_finished", "kataribe_future_key"}
    assert system.is_system and system.text.startswith("<script>")
    assert system.send_date == datetime(2025, 11, 27, 9, 43, 45, tzinfo=UTC)
    assert (member.name, member.original_avatar) == ("ミナ", "mina.png")
    assert member.send_date == datetime(2024, 6, 5, 14, 56, 50, 682000, tzinfo=UTC)
    assert member.is_system is False  # absent means false, as in ST


def test_round_trip_keeps_messages_swipes_order_and_unknown_keys() -> None:
    chat = parse_st_chat(REALISTIC)
    dumped = dump_st_chat(chat)
    assert parse_st_chat(dumped) == chat
    lines = [json.loads(line) for line in dumped.decode().split("\n")]
    assert lines[0] == HEADER
    assert lines[1] == USER_LINE
    assert lines[2] == CHAR_LINE
    assert lines[3] == SYSTEM_LINE
    assert lines[4] == {**GROUP_LINE, "is_system": False}
    assert list(lines[2])[:5] == ["name", "is_user", "is_system", "send_date", "mes"]


def test_dump_writes_compact_utf8_lines_like_sillytavern() -> None:
    dumped = dump_st_chat(parse_st_chat(REALISTIC))
    first_line = dumped.split(b"\n")[0]
    assert b", " not in first_line and b'": ' not in first_line
    assert "セラフィナ".encode() in dumped  # not \\u-escaped
    assert not dumped.endswith(b"\n")


def test_new_messages_get_an_st_style_date_and_no_empty_swipes() -> None:
    message = StMessage(name="アリス", is_user=True, send_date=datetime(2026, 1, 2, 0, 5), text="やあ")
    dumped = dump_st_chat(StChat(header={"user_name": "アリス"}, messages=[message]))
    line = json.loads(dumped.decode().split("\n")[1])
    assert line == {
        "name": "アリス",
        "is_user": True,
        "is_system": False,
        "send_date": "January 2, 2026 12:05am",
        "mes": "やあ",
    }
    assert parse_st_chat(dumped).messages[0].send_date == datetime(2026, 1, 2, 0, 5)


def test_bom_crlf_and_blank_lines_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + jsonl(HEADER).rstrip() + b"\r\n\r\n   \n" + jsonl(USER_LINE) + b"\r\n\n"
    chat = parse_st_chat(data)
    assert chat.header == HEADER
    assert [m.text for m in chat.messages] == ["こんにちは、{{char}}！"]


def test_a_header_only_chat_has_no_messages_and_a_headerless_one_keeps_its_first_message() -> None:
    assert parse_st_chat(jsonl(HEADER)).messages == []
    headerless = parse_st_chat(jsonl(USER_LINE, CHAR_LINE))
    assert headerless.header == {}
    assert [m.name for m in headerless.messages] == ["アリス", "セラフィナ"]
    assert parse_st_chat(dump_st_chat(headerless)) == headerless


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_file_is_refused_with_a_clear_message(data: bytes) -> None:
    with pytest.raises(ChatFormatError, match="empty"):
        parse_st_chat(data)


@pytest.mark.parametrize(
    ("data", "line", "hint"),
    [
        (jsonl(HEADER) + b"\n\n" + b'{"name": "x", "mes": }', 3, "not valid JSON"),
        (jsonl(HEADER, USER_LINE) + b"\n[1, 2]", 3, "JSON array"),
        (jsonl(HEADER) + b"\n" + "テキスト".encode("shift_jis"), 2, "UTF-8"),
        (jsonl(HEADER) + b'\n{"mes": NaN}', 2, "NaN"),
        (jsonl(HEADER) + b'\n{"mes": 1e999}', 2, "too large"),
        (jsonl(HEADER) + b'\n{"mes": ' + b"[" * 5000 + b"]" * 5000 + b"}", 2, "deep"),
        (jsonl(HEADER) + b'\n{"n": ' + b"7" * 5000 + b"}", 2, "digits"),
    ],
)
def test_a_bad_line_is_named_by_its_number(data: bytes, line: int, hint: str) -> None:
    with pytest.raises(ChatFormatError, match=f"Line {line}") as caught:
        parse_st_chat(data)
    assert hint in caught.value.message
    assert isinstance(caught.value, InvalidRequest)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mes", 5),
        ("name", ["a"]),
        ("is_user", "yes"),
        ("swipes", "one"),
        ("swipes", ["ok", 2]),
        ("swipe_id", 1.5),
        ("swipe_id", True),
        ("swipe_info", [1]),
        ("extra", []),
        ("send_date", {"when": "now"}),
        ("original_avatar", 3),
    ],
)
def test_a_field_of_the_wrong_type_is_named(field: str, value: object) -> None:
    data = jsonl(HEADER, {**USER_LINE, field: value})
    with pytest.raises(ChatFormatError, match=f"Line 2: '{field}'") as caught:
        parse_st_chat(data)
    assert caught.value.param == field


def test_files_over_the_size_limit_are_refused_before_reading() -> None:
    with pytest.raises(ChatFormatError, match="200 MB"):
        parse_st_chat(bytes(MAX_CHAT_BYTES + 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("June 19, 2023 2:20pm", datetime(2023, 6, 19, 14, 20)),
        ("June 19, 2023 12:05am", datetime(2023, 6, 19, 0, 5)),
        ("2024-07-12@01h31m37s123ms", datetime(2024, 7, 12, 1, 31, 37, 123000, tzinfo=UTC)),
        ("2024-7-12@01h31m37s", datetime(2024, 7, 12, 1, 31, 37, tzinfo=UTC)),
        ("2024-07-12T01:31:37.123Z", datetime(2024, 7, 12, 1, 31, 37, 123000, tzinfo=UTC)),
        (1700000000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("February 30, 2023 2:20pm", None),
        ("yesterday", None),
        (1e300, None),
        (-5, None),
        (True, None),
        (None, None),
    ],
)
def test_send_date_forms_sillytavern_reads(raw: object, expected: datetime | None) -> None:
    assert parse_st_date(raw) == expected


def test_format_st_date_matches_sillytavern_message_stamp() -> None:
    assert format_st_date(datetime(2026, 11, 27, 18, 42)) == "November 27, 2026 6:42pm"
    assert format_st_date(datetime(2026, 11, 27, 12, 0)) == "November 27, 2026 12:00pm"


def test_unpaired_surrogates_survive_a_round_trip_as_escapes() -> None:
    data = jsonl(HEADER) + b'\n{"name": "x", "is_user": false, "mes": "bad \\ud800 half"}'
    chat = parse_st_chat(data)
    dumped = dump_st_chat(chat)
    assert b"\\ud800" in dumped
    assert parse_st_chat(dumped) == chat


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_ever_raise_chat_format_error(data: bytes) -> None:
    with contextlib.suppress(ChatFormatError):
        parse_st_chat(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_MESSAGE_KEYS = st.sampled_from(
    ["name", "is_user", "is_system", "send_date", "mes", "swipes", "swipe_id", "swipe_info", "extra",
     "original_avatar", "user_name", "chat_metadata", "other"]
)  # fmt: skip
_LINE = st.dictionaries(_MESSAGE_KEYS | st.text(max_size=6), _JSON, max_size=6) | _JSON


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=5), st.sampled_from(["\n", "\r\n", "\n\n"]))
def test_random_json_lines_parse_or_fail_cleanly_and_round_trip(lines: list[object], newline: str) -> None:
    text = newline.join(json.dumps(line, ensure_ascii=False) for line in lines)
    data = text.encode("utf-8", "surrogatepass")
    try:
        chat = parse_st_chat(data)
    except ChatFormatError:
        return
    assert parse_st_chat(dump_st_chat(chat)) == chat


_VALID_MESSAGE = st.fixed_dictionaries(
    {"name": st.text(max_size=10), "is_user": st.booleans(), "mes": st.text(max_size=30)},
    optional={
        "is_system": st.booleans(),
        "send_date": st.text(max_size=20) | st.integers(min_value=0, max_value=2**45),
        "swipes": st.lists(st.text(max_size=10), max_size=4),
        "swipe_id": st.integers(min_value=0, max_value=3),
        "swipe_info": st.lists(st.dictionaries(st.text(max_size=5), _JSON, max_size=3), max_size=3),
        "extra": st.dictionaries(st.text(max_size=5), _JSON, max_size=3),
        "original_avatar": st.text(max_size=10),
        "unknown_key": _JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALID_MESSAGE, max_size=6))
def test_well_formed_chats_always_parse_and_round_trip(messages: list[dict[str, object]]) -> None:
    data = "\n".join(json.dumps(line, ensure_ascii=False) for line in [HEADER, *messages])
    chat = parse_st_chat(data.encode("utf-8", "surrogatepass"))
    assert len(chat.messages) == len(messages)
    assert [m.text for m in chat.messages] == [line["mes"] for line in messages]
    assert [m.raw.get("unknown_key") for m in chat.messages] == [line.get("unknown_key") for line in messages]
    assert parse_st_chat(dump_st_chat(chat)) == chat

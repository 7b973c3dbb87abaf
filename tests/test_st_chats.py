"""SillyTavern chat files (JSONL) in and out of the library, with swipes, roles, dates and chat_metadata."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from kataribe.errors import InvalidRequest
from kataribe.formats.st_chat import ChatFormatError, parse_st_chat
from kataribe.services import st_chats
from kataribe.services.context import RoleplayContext
from kataribe.services.lorebooks import LorebookService
from kataribe.services.st_chats import ROLE_MARK_KEY, ST_HEADER_KEY
from kataribe.services.transfer import export_st_chat, import_st_chat
from kataribe.store.chats import ChatRepository
from kataribe.store.errors import NotFound
from kataribe.store.models import (
    Chat,
    Group,
    GroupMember,
    Message,
    Persona,
    chat_lorebooks,
)
from tests.libraries import json_values, jsonl, new_character, open_library, row_count

# -- SillyTavern chats ----------------------------------------------------------------------------

HEADER = {
    "user_name": "アリス",
    "character_name": "セラフィナ",
    "create_date": "2026-11-27@18h42m05s",
    "chat_metadata": {
        "integrity": "5b6c-4f",
        "note_prompt": "",
        "variables": {"好感度": "3"},
        "tainted": True,
    },
    "kataribe_unknown_header": [1, {"x": None}],
}
GREETING = {
    "name": "セラフィナ",
    "is_user": False,
    "is_system": False,
    "send_date": "November 27, 2026 6:42pm",
    "mes": "二つ目の挨拶",
    "extra": {"gen_id": 1},
    "swipe_id": 1,
    "swipes": ["最初の挨拶", "二つ目の挨拶", "三つ目の挨拶"],
    "swipe_info": [
        {"send_date": "November 27, 2026 6:42pm", "extra": {}},
        {"send_date": "November 27, 2026 6:42pm", "extra": {"gen_id": 1}},
        {"send_date": "November 27, 2026 6:42pm", "extra": {}},
    ],
}
USER = {
    "name": "アリス",
    "is_user": True,
    "is_system": False,
    "send_date": "November 27, 2026 6:43pm",
    "mes": "こんにちは！<script>alert(1)</script>",
    "extra": {"isSmallSys": False},
    "force_avatar": "User Avatars/alice.png",
    "kataribe_future_key": {"nested": [1, 2.5, None, "😀"]},
}
REPLY = {
    "name": "セラフィナ",
    "is_user": False,
    "is_system": False,
    "send_date": "2026-11-27T09:43:10.512Z",
    "mes": "返事その二",
    "extra": {"api": "openai", "model": "smollm2", "reasoning": "考え中"},
    "swipe_id": 1,
    "swipes": ["返事その一", "返事その二"],
    "swipe_info": [
        {"send_date": "2026-11-27T09:43:01.000Z", "extra": {}},
        {"send_date": "2026-11-27T09:43:10.512Z", "extra": {"api": "openai"}},
    ],
    "gen_started": "2026-11-27T09:43:09.000Z",
    "gen_finished": "2026-11-27T09:43:10.512Z",
    "original_avatar": "Seraphina.png",
}
NARRATION = {
    "name": "System",
    "is_user": False,
    "is_system": False,
    "send_date": 1764236700000,
    "mes": "夜が更けていく。",
    "force_avatar": "img/five.png",
    "extra": {"type": "narrator", "bias": None, "isSmallSys": False},
}
COMMENT = {
    "name": "SillyTavern System",
    "is_user": False,
    "is_system": True,
    "send_date": "November 27, 2026 6:50pm",
    "mes": "メモ：ここで休憩",
    "force_avatar": "img/quill.png",
    "extra": {"type": "comment", "isSmallSys": False},
}
HIDDEN_REPLY = {
    "name": "セラフィナ",
    "is_user": False,
    "is_system": True,
    "send_date": "November 27, 2026 6:51pm",
    "mes": "隠された返事",
    "extra": {"api": "openai"},
    "swipe_id": 0,
    "swipes": ["隠された返事"],
    "swipe_info": [{}],
}
ST_FILE = jsonl(HEADER, GREETING, USER, REPLY, NARRATION, COMMENT, HIDDEN_REPLY)


def stored_path(ctx: RoleplayContext, chat_id: int) -> list[tuple[Message, list[str]]]:
    with ctx.db.read_session() as s:
        repo = ChatRepository(s)
        path = [(m, [w.content for w in repo.swipes(m.id)]) for m in repo.active_path(chat_id)]
        s.expunge_all()  # the rows stay readable after the read session rolls back
        return path


def test_st_chat_round_trip_keeps_every_message_field_and_the_header(ctx: RoleplayContext) -> None:
    seraphina = new_character(ctx, "セラフィナ")
    chat_id = import_st_chat(ctx, ST_FILE, character_id=seraphina)

    original, exported = parse_st_chat(ST_FILE), parse_st_chat(export_st_chat(ctx, chat_id))

    assert exported.header == original.header
    assert exported.messages == original.messages
    assert len(exported.messages) == 6


def test_st_import_maps_roles_hidden_flags_swipes_speakers_and_dates(ctx: RoleplayContext) -> None:
    seraphina = new_character(ctx, "セラフィナ")
    chat_id = import_st_chat(ctx, ST_FILE, character_id=seraphina)

    path = stored_path(ctx, chat_id)
    messages = [m for m, _ in path]
    assert [m.role for m in messages] == ["assistant", "user", "assistant", "system", "system", "assistant"]
    assert [m.hidden for m in messages] == [False, False, False, False, True, True]
    assert [m.parent_id for m in messages[1:]] == [m.id for m in messages[:-1]]
    assert [m.character_id for m in messages] == [seraphina, None, seraphina, None, None, seraphina]
    assert path[0][1] == ["最初の挨拶", "二つ目の挨拶", "三つ目の挨拶"]
    assert (messages[0].swipe_index, messages[0].content) == (1, "二つ目の挨拶")
    assert (messages[2].swipe_index, messages[2].content) == (1, "返事その二")
    assert messages[2].created_at == datetime(2026, 11, 27, 9, 43, 10, 512000, tzinfo=UTC)
    assert messages[3].created_at == datetime.fromtimestamp(1764236700, UTC)
    assert messages[1].meta["st"]["other_keys"]["kataribe_future_key"] == {"nested": [1, 2.5, None, "😀"]}
    with ctx.db.read_session() as s:
        chat = ChatRepository(s).chat(chat_id)
        assert chat.settings[ST_HEADER_KEY] == HEADER
        assert chat.title == "セラフィナ - 2026-11-27@18h42m05s"
        assert chat.created_at == datetime(2026, 11, 27, 18, 42, 5, tzinfo=UTC)


def test_st_export_of_a_chat_written_here_hides_with_is_system_and_reimports_the_same(
    ctx: RoleplayContext,
) -> None:
    seraphina = new_character(ctx, "セラフィナ")
    turns = [
        ("assistant", "ようこそ", False),
        ("user", "やあ", False),
        ("system", "雨が降り出した。", False),
        ("user", "（独り言）", True),
        ("assistant", "下書き", True),
        ("system", "隠れた指示", True),
    ]
    with ctx.db.session() as s:
        repo = ChatRepository(s)
        chat_id = repo.create_chat(title="here", character_id=seraphina).id
        for role, text, hidden in turns:
            repo.append_message(chat_id, role, text, hidden=hidden)

    exported = parse_st_chat(export_st_chat(ctx, chat_id))

    assert exported.user_name == "User" and exported.character_name == "セラフィナ"
    assert [(m.is_user, m.is_system) for m in exported.messages] == [
        (False, False), (True, False), (False, False), (True, True), (False, True), (False, True),
    ]  # fmt: skip
    assert [m.name for m in exported.messages[:2]] == ["セラフィナ", "User"]
    assert exported.messages[2].extra == {"type": "narrator"}
    assert all(m.send_date is not None for m in exported.messages)
    assert exported.messages[0].swipes == ["ようこそ"] and exported.messages[1].swipes == []
    again = import_st_chat(ctx, export_st_chat(ctx, chat_id), character_id=seraphina)
    assert [(m.role, m.content, m.hidden) for m, _ in stored_path(ctx, again)] == turns


def test_st_export_marks_a_role_st_flags_cannot_express_and_reimport_restores_it(
    ctx: RoleplayContext,
) -> None:
    chat_id = import_st_chat(ctx, ST_FILE)
    comment = stored_path(ctx, chat_id)[4][0]
    with ctx.db.session() as s:
        ChatRepository(s).set_hidden(comment.id, False)  # an ST comment, unhidden: system, yet no narrator

    line = parse_st_chat(export_st_chat(ctx, chat_id)).messages[4]
    assert (line.is_system, line.extra[ROLE_MARK_KEY]) == (False, "system")

    again = import_st_chat(ctx, export_st_chat(ctx, chat_id))
    message = stored_path(ctx, again)[4][0]
    assert (message.role, message.hidden) == ("system", False)
    assert ROLE_MARK_KEY not in message.meta["st"]["extra"]


def test_a_swipe_generated_after_import_keeps_st_data_and_swipe_info_aligned(ctx: RoleplayContext) -> None:
    chat_id = import_st_chat(ctx, ST_FILE)
    reply = stored_path(ctx, chat_id)[2][0]
    with ctx.db.session() as s:
        ChatRepository(s).add_swipe(reply.id, "ここで生成した返事", {"model": "local"})

    line = parse_st_chat(export_st_chat(ctx, chat_id)).messages[2]

    assert line.swipes == ["返事その一", "返事その二", "ここで生成した返事"]
    assert (line.swipe_id, line.text) == (2, "ここで生成した返事")
    assert line.extra == REPLY["extra"] and line.raw["gen_started"] == REPLY["gen_started"]
    assert len(line.swipe_info) == 3 and line.swipe_info[:2] == REPLY["swipe_info"]


def test_st_group_chat_import_finds_each_speaker_by_name(ctx: RoleplayContext) -> None:
    aki, beni = new_character(ctx, "Aki"), new_character(ctx, "Beni")
    with ctx.db.session() as s:
        group = Group(name="Duo")
        s.add(group)
        s.flush()
        s.add_all(
            [
                GroupMember(group_id=group.id, character_id=aki),
                GroupMember(group_id=group.id, character_id=beni, position=1),
            ]
        )
        group_id = group.id
    data = jsonl(
        {"chat_metadata": {}},
        {"name": "Aki", "is_user": False, "mes": "hi"},
        {"name": "You", "is_user": True, "mes": "hello"},
        {"name": " beni ", "is_user": False, "mes": "yo"},
        {"name": "Stranger", "is_user": False, "mes": "who?"},
    )

    chat_id = import_st_chat(ctx, data, group_id=group_id, title="Group night")

    assert [m.character_id for m, _ in stored_path(ctx, chat_id)] == [aki, None, beni, None]
    with ctx.db.read_session() as s:
        assert ChatRepository(s).chat(chat_id).title == "Group night"
    assert parse_st_chat(export_st_chat(ctx, chat_id)).character_name == "Duo"


def test_st_export_names_the_user_after_the_chats_persona(ctx: RoleplayContext) -> None:
    chat_id = import_st_chat(ctx, ST_FILE)
    with ctx.db.session() as s:
        persona = Persona(name="旅人")
        s.add(persona)
        s.flush()
        ChatRepository(s).chat(chat_id).persona_id = persona.id
    assert parse_st_chat(export_st_chat(ctx, chat_id)).user_name == "旅人"


ST_NOTE_HEADER = {
    **HEADER,
    "chat_metadata": {
        "note_prompt": "[{{char}} is tired; keep replies short.]",
        "note_depth": 2,
        "note_interval": 3,
        "note_role": 1,
        "note_position": 1,
        "variables": {"好感度": "3", "gold": 120, "bag": ["rope"]},
        "world_info": "Eldoria",
        "chat_id_hash": 1234,
    },
}


def test_st_chat_metadata_becomes_the_authors_note_variables_and_chat_lorebook(ctx: RoleplayContext) -> None:
    book = LorebookService(ctx).create("Eldoria")
    chat_id = import_st_chat(ctx, jsonl(ST_NOTE_HEADER, GREETING, USER))

    with ctx.db.read_session() as s:
        chat = ChatRepository(s).chat(chat_id)
        note = (chat.author_note, chat.author_note_depth, chat.author_note_frequency, chat.author_note_role)
        assert note == ("[{{char}} is tired; keep replies short.]", 2, 3, "user")
        assert chat.variables == {"好感度": "3", "gold": "120", "bag": '["rope"]'}
        linked = s.scalars(select(chat_lorebooks.c.lorebook_id).where(chat_lorebooks.c.chat_id == chat_id))
        assert list(linked) == [book["id"]]
    # unedited, the header goes back exactly as it came (ST's own keys and types included)
    assert parse_st_chat(export_st_chat(ctx, chat_id)).header == ST_NOTE_HEADER


def test_edits_made_here_reach_st_in_the_exported_chat_metadata(ctx: RoleplayContext) -> None:
    chat_id = import_st_chat(ctx, jsonl(ST_NOTE_HEADER, GREETING, USER))
    other = LorebookService(ctx).create("Harbour town")
    with ctx.db.session() as s:
        chat = ChatRepository(s).chat(chat_id)
        chat.author_note, chat.author_note_role, chat.author_note_depth = "新しいメモ", "assistant", 6
        chat.variables = {**chat.variables, "gold": "95"}
        s.execute(insert(chat_lorebooks).values(chat_id=chat_id, lorebook_id=other["id"]))

    meta = parse_st_chat(export_st_chat(ctx, chat_id)).chat_metadata
    assert (meta["note_prompt"], meta["note_role"], meta["note_depth"]) == ("新しいメモ", 2, 6)
    assert meta["note_interval"] == 3 and meta["note_position"] == 1 and meta["chat_id_hash"] == 1234
    assert meta["variables"] == {"好感度": "3", "gold": "95", "bag": '["rope"]'}
    assert meta["world_info"] == "Harbour town"


def test_a_note_written_here_goes_out_with_st_keys_and_defaults_stay_out(ctx: RoleplayContext) -> None:
    chat_id = import_st_chat(ctx, jsonl({"user_name": "U", "character_name": "C"}, GREETING))
    assert parse_st_chat(export_st_chat(ctx, chat_id)).chat_metadata == {}
    with ctx.db.session() as s:
        ChatRepository(s).chat(chat_id).author_note = "Rain all day."
    assert parse_st_chat(export_st_chat(ctx, chat_id)).chat_metadata == {"note_prompt": "Rain all day."}


@pytest.mark.parametrize(
    "meta",
    [
        {"note_prompt": 5, "note_depth": "deep", "note_interval": -1, "note_role": 7, "variables": [1]},
        {"note_depth": 10**9, "note_role": True, "variables": {"": "x", "ok": None}, "world_info": 3},
        {"note_prompt": ["x"], "note_interval": 2.5, "world_info": "no such book"},
    ],
)
def test_unusable_chat_metadata_is_ignored_kept_in_the_header_and_the_chat_imports(
    ctx: RoleplayContext, meta: dict[str, Any]
) -> None:
    header = {**HEADER, "chat_metadata": meta}
    chat_id = import_st_chat(ctx, jsonl(header, GREETING))
    with ctx.db.read_session() as s:
        chat = ChatRepository(s).chat(chat_id)
        assert (chat.author_note, chat.author_note_depth, chat.author_note_frequency) == ("", 4, 1)
        assert chat.author_note_role == "system" and chat.variables == {}
        assert not list(s.scalars(select(chat_lorebooks.c.lorebook_id)))
    assert parse_st_chat(export_st_chat(ctx, chat_id)).header == header


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (jsonl(HEADER, GREETING) + b"\n{not json\n" + jsonl(USER), "Line 3"),
        (jsonl(HEADER, GREETING, {**USER, "mes": "a\x00b"}), "Message 2"),
        (jsonl(HEADER, {**GREETING, "name": "n" * 5000}), "Message 1"),
        (jsonl(HEADER, {**USER, "extra": {"blob": "x" * 1_100_000}}), "Message 1"),
        (b"", "empty"),
    ],
)
def test_a_bad_st_file_is_refused_and_stores_nothing(
    ctx: RoleplayContext, data: bytes, fragment: str
) -> None:
    with pytest.raises(ChatFormatError) as refused:
        import_st_chat(ctx, data)
    assert fragment in refused.value.message
    assert row_count(ctx, Chat) == 0 and row_count(ctx, Message) == 0


def test_an_st_file_with_too_many_texts_is_refused_before_anything_is_written(
    ctx: RoleplayContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(st_chats, "MAX_IMPORT_TEXTS", 5)
    with pytest.raises(ChatFormatError, match="6 messages and swipes"):
        import_st_chat(ctx, jsonl(HEADER, GREETING, USER, REPLY))  # 3 + 1 + 2 texts
    assert row_count(ctx, Chat) == 0


def test_st_import_for_a_missing_character_stores_nothing(ctx: RoleplayContext) -> None:
    with pytest.raises(NotFound):
        import_st_chat(ctx, ST_FILE, character_id=4040)
    assert row_count(ctx, Chat) == 0


@pytest.fixture(scope="module")
def fuzz_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleplayContext]:
    library = open_library(tmp_path_factory.mktemp("fuzz"))
    yield library
    library.close()


_hostile_lines = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "is_user": json_values,
        "is_system": json_values,
        "mes": json_values | st.text(max_size=30),
        "swipes": json_values | st.lists(st.text(max_size=10), max_size=4),
        "swipe_id": json_values | st.integers(-2, 5),
        "swipe_info": json_values,
        "extra": json_values | st.dictionaries(st.sampled_from(["type", ROLE_MARK_KEY, "x"]), json_values),
        "send_date": json_values,
    },
)
# Text a database can store (no NUL, no lone surrogate); what ST writes for names and messages.
_texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
_plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _st_line(draw: st.DrawFn) -> dict[str, Any]:
    """A line SillyTavern could have written: every field well-typed, swipe_id pointing at mes."""
    line: dict[str, Any] = {
        "name": draw(_texts.filter(bool)),
        "is_user": draw(st.booleans()),
        "is_system": draw(st.booleans()),
        "mes": draw(_texts),
    }
    swipes = draw(st.lists(_texts, max_size=3))
    if swipes:
        chosen = draw(st.integers(0, len(swipes) - 1))
        line.update(swipes=swipes, swipe_id=chosen, mes=swipes[chosen])
    extra_keys = st.sampled_from(["api", "type", "reasoning", "isSmallSys"])
    extra_values = st.sampled_from(["narrator", "comment", "help", ""]) | _plain_json
    optional = {
        "send_date": _texts | st.integers(0, 2**45),
        "extra": st.dictionaries(extra_keys, extra_values, max_size=3),
        "swipe_info": st.lists(st.dictionaries(_texts, _plain_json, max_size=2), max_size=3),
        "original_avatar": _texts,
        "force_avatar": _texts,
        "gen_started": _texts,
        "an_unknown_key": _plain_json,
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            line[key] = draw(values)
    return line


@settings(max_examples=100, deadline=None)
@given(header=st.dictionaries(_texts, _plain_json, max_size=4), lines=st.lists(_st_line(), max_size=5))
def test_any_file_st_could_write_comes_back_unchanged(
    fuzz_library: RoleplayContext, header: dict[str, Any], lines: list[dict[str, Any]]
) -> None:
    # ST always writes these three; an export fills them in when a file lacked them
    header = {
        "user_name": "U",
        "character_name": "C",
        "create_date": "2024-7-1@01h02m03s",
        "chat_metadata": {},
        **header,
    }
    data = jsonl(header, *lines)

    exported = parse_st_chat(export_st_chat(fuzz_library, import_st_chat(fuzz_library, data)))

    original = parse_st_chat(data)
    assert exported.messages == original.messages
    assert exported.header == original.header


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(_hostile_lines, min_size=1, max_size=5))
def test_hostile_st_files_import_or_fail_cleanly_and_export_what_was_imported(
    fuzz_library: RoleplayContext, lines: list[dict[str, Any]]
) -> None:
    data = jsonl(HEADER, *lines)
    try:
        chat_id = import_st_chat(fuzz_library, data)
    except InvalidRequest:
        return
    exported = parse_st_chat(export_st_chat(fuzz_library, chat_id))
    stored = stored_path(fuzz_library, chat_id)
    assert [line.text for line in exported.messages] == [m.content for m, _ in stored]
    assert len(exported.messages) == len(parse_st_chat(data).messages)

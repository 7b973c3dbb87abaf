"""Moving chats and libraries in and out: SillyTavern JSONL both ways, and the full backup/restore."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.formats.st_chat import ChatFormatError, parse_st_chat
from kataribe.services import st_chats
from kataribe.services.backup import BACKUP_TABLES, BackupFormatError
from kataribe.services.characters import CharacterService
from kataribe.services.context import RoleplayContext
from kataribe.services.lorebooks import LorebookService
from kataribe.services.st_chats import ROLE_MARK_KEY, ST_HEADER_KEY
from kataribe.services.transfer import export_backup, export_st_chat, import_st_chat, restore_backup
from kataribe.store.assets import remember_asset
from kataribe.store.chats import ChatRepository
from kataribe.store.db import sqlite_url
from kataribe.store.errors import NotFound
from kataribe.store.models import (
    Asset,
    Base,
    Character,
    CharacterAsset,
    CharacterPersona,
    Chat,
    Checkpoint,
    GlobalVariable,
    Group,
    GroupMember,
    Lorebook,
    Message,
    Persona,
    Swipe,
    character_lorebooks,
    chat_lorebooks,
)

TINY_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(40))


def open_library(path: Path, database_url: str | None = None) -> RoleplayContext:
    # The transfer code never touches the engine: no model is loaded for these tests.
    return RoleplayContext.open(path, engine=None, database_url=database_url)  # type: ignore[arg-type]


@pytest.fixture
def ctx(tmp_path: Path, database_url: str) -> Iterator[RoleplayContext]:
    """A library on SQLite and on PostgreSQL (conftest.database_url)."""
    library = open_library(tmp_path / "library", database_url)
    yield library
    library.close()


@pytest.fixture
def empty(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[RoleplayContext]:
    """A second, empty library on the same kind of database as ``ctx``."""
    if database_url.startswith("sqlite"):
        url = sqlite_url(tmp_path / "restored")
    else:
        url = request.getfixturevalue("postgres").new_database()
    library = open_library(tmp_path / "restored", url)
    yield library
    library.close()


def new_character(ctx: RoleplayContext, name: str) -> int:
    return int(CharacterService(ctx).create({"name": name})["id"])


def jsonl(*lines: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode("utf-8")


def row_count(ctx: RoleplayContext, model: type[Base]) -> int:
    with ctx.db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


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


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
_hostile_lines = st.fixed_dictionaries(
    {},
    optional={
        "name": _json_values,
        "is_user": _json_values,
        "is_system": _json_values,
        "mes": _json_values | st.text(max_size=30),
        "swipes": _json_values | st.lists(st.text(max_size=10), max_size=4),
        "swipe_id": _json_values | st.integers(-2, 5),
        "swipe_info": _json_values,
        "extra": _json_values | st.dictionaries(st.sampled_from(["type", ROLE_MARK_KEY, "x"]), _json_values),
        "send_date": _json_values,
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


# -- full backup ----------------------------------------------------------------------------------


def build_library(ctx: RoleplayContext, fixtures_dir: Path) -> None:
    """Every kind of row: cards with avatars and a sprite, a persona, lore, a group, branched chats."""
    characters = CharacterService(ctx)
    seraphina = characters.import_file((fixtures_dir / "sillytavern" / "Seraphina.png").read_bytes(), "S.png")
    chan = characters.import_file((fixtures_dir / "cards" / "Default-chan-v3.png").read_bytes(), "D.png")
    sprites = fixtures_dir / "sillytavern" / "Seraphina-sprites"
    characters.add_sprite(seraphina["id"], "joy", (sprites / "joy.png").read_bytes())
    eldoria = json.loads((fixtures_dir / "sillytavern" / "Eldoria.json").read_bytes())
    with ctx.db.session() as s:
        avatar = remember_asset(s, ctx.assets, (sprites / "love.png").read_bytes())
        book = Lorebook(name="Eldoria", data=eldoria, is_global=True)
        s.add(book)
        s.flush()
        persona = Persona(
            name="アリス", description="旅の魔法使い。", avatar_sha256=avatar.sha256, position="at_depth",
            depth=3, role="user", is_default=True, lorebook_id=book.id,
        )  # fmt: skip
        group = Group(
            name="二人旅", activation_strategy="list", generation_mode="join", scenario_override="森"
        )
        s.add_all([persona, group])
        s.flush()
        s.add(CharacterPersona(character_id=seraphina["id"], persona_id=persona.id))
        s.execute(insert(character_lorebooks).values(character_id=chan["id"], lorebook_id=book.id))
        s.add_all(
            [
                GroupMember(group_id=group.id, character_id=seraphina["id"], position=0, talkativeness=0.8),
                GroupMember(group_id=group.id, character_id=chan["id"], position=1, muted=True),
                GlobalVariable(name="好感度", value=3),
                GlobalVariable(name="flags", value={"met": True, "items": ["剣", None, 1.5]}),
            ]
        )
        repo = ChatRepository(s)
        chat = repo.create_chat(
            title="森の出会い",
            character_id=seraphina["id"],
            persona_id=persona.id,
            settings={"sampler": {"top_k": 40}},
        )
        chat.author_note, chat.author_note_depth, chat.author_note_role = "雨の夜。", 2, "user"
        chat.variables, chat.lore_state = {"回数": 2}, {"sticky": {"Eldoria/3": 2}}
        s.execute(insert(chat_lorebooks).values(chat_id=chat.id, lorebook_id=book.id))
        speaker = {"name": "Seraphina", "character_id": seraphina["id"]}
        greeting = repo.append_message(chat.id, "assistant", "ようこそ", meta={"greeting": True}, **speaker)
        repo.add_swipe(greeting.id, "別の挨拶", {"greeting": True})
        repo.select_swipe(greeting.id, 0)
        question = repo.append_message(chat.id, "user", "ここはどこ？", name="アリス")
        first = repo.append_message(chat.id, "assistant", "森です。", **speaker)
        repo.add_swipe(first.id, "エルドリアの森です。", {"model": "smollm2", "usage": {"total_tokens": 9}})
        repo.checkpoint(chat.id, "最初の答え", first.id)
        repo.branch_from(chat.id, question.id)
        repo.append_message(chat.id, "assistant", "秘密です。", **speaker)
        repo.append_message(chat.id, "user", "<script>alert(1)</script>", name="アリス", hidden=True)
        group_chat = repo.create_chat(title="二人", group_id=group.id)
        repo.append_message(group_chat.id, "assistant", "やあ", name="Default-chan", character_id=chan["id"])


def snapshot(ctx: RoleplayContext) -> dict[str, Any]:
    """The library without its ids: what a restore must give back exactly."""
    with ctx.db.read_session() as s:
        character_names = {c.id: c.name for c in s.scalars(select(Character))}
        books = {b.id: b.name for b in s.scalars(select(Lorebook))}
        personas = {p.id: p.name for p in s.scalars(select(Persona))}
        groups = {g.id: g.name for g in s.scalars(select(Group))}
        files = {
            a.sha256: hashlib.sha256(ctx.assets.read(a.sha256)).hexdigest() for a in s.scalars(select(Asset))
        }
        return {
            "assets": sorted((a.sha256, a.mime, a.size, files[a.sha256]) for a in s.scalars(select(Asset))),
            "characters": sorted(
                (
                    c.name,
                    json.dumps(c.card, sort_keys=True),
                    c.avatar_sha256,
                    c.tags,
                    c.favorite,
                    str(c.created_at),
                )
                for c in s.scalars(select(Character))
            ),
            "character_assets": sorted(
                (character_names[a.character_id], a.sha256, a.kind, a.label, a.ext)
                for a in s.scalars(select(CharacterAsset))
            ),
            "personas": sorted(
                (
                    p.name,
                    p.description,
                    p.avatar_sha256,
                    p.position,
                    p.depth,
                    p.role,
                    p.is_default,
                    books.get(p.lorebook_id or 0),
                )
                for p in s.scalars(select(Persona))
            ),
            "locks": sorted(
                (character_names[lock.character_id], personas[lock.persona_id])
                for lock in s.scalars(select(CharacterPersona))
            ),
            "lorebooks": sorted(
                (b.name, json.dumps(b.data, sort_keys=True), b.is_global) for b in s.scalars(select(Lorebook))
            ),
            "book_links": sorted(
                (character_names[c], books[b]) for c, b in s.execute(select(character_lorebooks)).all()
            ),
            "groups": sorted(
                (
                    g.name,
                    g.activation_strategy,
                    g.generation_mode,
                    g.scenario_override,
                    [
                        (character_names[m.character_id], m.position, m.muted, m.talkativeness)
                        for m in g.members
                    ],
                )
                for g in s.scalars(select(Group))
            ),
            "chats": sorted(
                (json.dumps(chat_snapshot(s, chat, character_names, groups, personas, books), sort_keys=True))
                for chat in s.scalars(select(Chat))
            ),
            "globals": {v.name: v.value for v in s.scalars(select(GlobalVariable))},
        }


def chat_snapshot(
    s: Session,
    chat: Chat,
    names: dict[int, str],
    groups: dict[int, str],
    personas: dict[int, str],
    books: dict[int, str],
) -> dict[str, Any]:
    repo = ChatRepository(s)
    by_id = {m.id: m for m in s.scalars(select(Message).where(Message.chat_id == chat.id))}

    def texts_to(message_id: int) -> list[str]:
        texts: list[str] = []
        current: int | None = message_id
        while current is not None:
            texts.append(by_id[current].content)
            current = by_id[current].parent_id
        return texts[::-1]

    def view(m: Message) -> list[Any]:
        swipes = [(w.idx, w.content, w.meta, str(w.created_at)) for w in repo.swipes(m.id)]
        speaker = names.get(m.character_id or 0)
        return [
            m.role,
            m.name,
            speaker,
            m.content,
            m.swipe_index,
            m.hidden,
            m.meta,
            str(m.created_at),
            swipes,
        ]

    linked = s.execute(select(chat_lorebooks.c.lorebook_id).where(chat_lorebooks.c.chat_id == chat.id))
    return {
        "chat": [chat.title, names.get(chat.character_id or 0), groups.get(chat.group_id or 0)],
        "persona": personas.get(chat.persona_id or 0),
        "state": [
            chat.author_note,
            chat.author_note_depth,
            chat.author_note_frequency,
            chat.author_note_role,
        ],
        "json": [chat.variables, chat.lore_state, chat.settings, str(chat.created_at), str(chat.updated_at)],
        "books": sorted(books[b] for (b,) in linked),
        "path": [view(m) for m in repo.active_path(chat.id)],
        "leaves": sorted(texts_to(m.id) for m in repo.leaves(chat.id)),
        "all": sorted(json.dumps(view(m), sort_keys=True) for m in by_id.values()),
        "checkpoints": [
            (c.name, texts_to(c.message_id), str(c.created_at)) for c in repo.checkpoints(chat.id)
        ],
    }


def test_backup_restores_every_row_and_file_into_an_empty_library(
    ctx: RoleplayContext, empty: RoleplayContext, fixtures_dir: Path
) -> None:
    build_library(ctx, fixtures_dir)
    backup = export_backup(ctx)

    counts = restore_backup(empty, backup)

    assert snapshot(empty) == snapshot(ctx)
    assert counts["messages"] == row_count(ctx, Message) == 6
    assert counts["swipes"] == row_count(ctx, Swipe) == 8 and counts["checkpoints"] == 1
    with empty.db.read_session() as s:
        chat = s.scalars(select(Chat).where(Chat.title == "森の出会い")).one()
        repo = ChatRepository(s)
        assert [m.content for m in repo.active_path(chat.id)] == [
            "ようこそ",
            "ここはどこ？",
            "秘密です。",
            "<script>alert(1)</script>",
        ]
        assert sorted(m.content for m in repo.leaves(chat.id)) == [
            "<script>alert(1)</script>",
            "エルドリアの森です。",
        ]
        seraphina = s.scalars(select(Character).where(Character.name == "Seraphina")).one()
        sprite = seraphina.assets[0]
        assert sprite.label == "joy" and empty.assets.read(sprite.sha256) == ctx.assets.read(sprite.sha256)
    assert json.loads(export_backup(empty))["messages"] != []

    # the restored library keeps working: new rows get fresh ids (PostgreSQL's sequences included)
    with empty.db.session() as s:
        before = {
            model: s.scalar(select(func.max(model.id))) for model in (Character, Chat, Message, Persona)
        }
        repo = ChatRepository(s)
        character = Character(name="After restore", card={"spec": "chara_card_v3", "data": {}})
        persona = Persona(name="New persona")
        s.add_all([character, persona])
        s.flush()
        chat = repo.create_chat(title="after", character_id=character.id)
        message = repo.append_message(chat.id, "user", "still works")
        after = {Character: character.id, Chat: chat.id, Message: message.id, Persona: persona.id}
    assert all(after[model] > (before[model] or 0) for model in before), (before, after)


def test_restore_replaces_global_variables_of_the_same_name_and_keeps_the_others(
    ctx: RoleplayContext, empty: RoleplayContext
) -> None:
    with ctx.db.session() as s:
        s.add_all([GlobalVariable(name="好感度", value=3), GlobalVariable(name="flags", value=["a"])])
    with empty.db.session() as s:
        s.add_all([GlobalVariable(name="好感度", value=0), GlobalVariable(name="mine", value={"k": 1})])

    restore_backup(empty, export_backup(ctx))

    with empty.db.read_session() as s:
        found = {v.name: v.value for v in s.scalars(select(GlobalVariable))}
    assert found == {"好感度": 3, "flags": ["a"], "mine": {"k": 1}}


def test_an_asset_file_already_missing_at_export_is_restored_as_a_row_without_bytes(
    ctx: RoleplayContext, empty: RoleplayContext
) -> None:
    aki = new_character(ctx, "Aki")
    with ctx.db.session() as s:
        sha = remember_asset(s, ctx.assets, TINY_PNG).sha256
        s.get_one(Character, aki).avatar_sha256 = sha
    ctx.assets.path(sha).unlink()

    document = json.loads(export_backup(ctx))
    restore_backup(empty, encoded(document))

    assert document["assets"][0]["data"] is None
    assert row_count(empty, Asset) == 1 and not empty.assets.exists(sha)


def test_restore_into_a_library_that_has_data_is_refused(
    ctx: RoleplayContext, empty: RoleplayContext
) -> None:
    new_character(empty, "Aki")
    backup = export_backup(empty)
    new_character(ctx, "Already here")

    with pytest.raises(InvalidRequest, match="empty library") as refused:
        restore_backup(ctx, backup)

    assert refused.value.code == "library_not_empty"
    assert row_count(ctx, Character) == 1


def small_library(ctx: RoleplayContext) -> dict[str, Any]:
    """A backup document of a library made without fixture files: one character, two chats."""
    aki = new_character(ctx, "Aki")
    with ctx.db.session() as s:
        avatar = remember_asset(s, ctx.assets, TINY_PNG, "image/png")
        s.get_one(Character, aki).avatar_sha256 = avatar.sha256
        s.add(GroupMember(group_id=_new_group(s), character_id=aki, talkativeness=0.25))
        repo = ChatRepository(s)
        for title in ("one", "two"):
            chat_id = repo.create_chat(title=title, character_id=aki).id
            first = repo.append_message(chat_id, "assistant", f"{title}: hello", character_id=aki)
            repo.append_message(chat_id, "user", "hi")
            repo.checkpoint(chat_id, "start", first.id)
    document: dict[str, Any] = json.loads(export_backup(ctx))
    return document


@pytest.fixture(scope="module")
def small_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    library = open_library(tmp_path_factory.mktemp("small"))
    try:
        return small_library(library)
    finally:
        library.close()


def _new_group(s: Session) -> int:
    group = Group(name="g")
    s.add(group)
    s.flush()
    return group.id


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def assert_nothing_stored(library: RoleplayContext) -> None:
    for model in (Asset, Character, Group, GroupMember, Chat, Message, Swipe, Checkpoint):
        assert row_count(library, model) == 0, model.__tablename__
    assert not library.assets.root.exists() or not any(p.is_file() for p in library.assets.root.rglob("*"))


def test_a_tampered_asset_is_refused_and_nothing_is_written(
    ctx: RoleplayContext, empty: RoleplayContext
) -> None:
    document = small_library(ctx)
    changed = bytearray(base64.b64decode(document["assets"][0]["data"]))
    changed[-1] ^= 0xFF
    document["assets"][0]["data"] = base64.b64encode(bytes(changed)).decode()

    with pytest.raises(BackupFormatError, match="do not match its sha256"):
        restore_backup(empty, encoded(document))

    assert_nothing_stored(empty)


def test_a_dangling_parent_id_is_refused_and_nothing_is_written(
    ctx: RoleplayContext, empty: RoleplayContext
) -> None:
    document = small_library(ctx)
    document["messages"][1]["parent_id"] = 999_999

    with pytest.raises(BackupFormatError, match=r"messages\[1\]\.parent_id points to messages 999999"):
        restore_backup(empty, encoded(document))

    assert_nothing_stored(empty)


def _set(table: str, index: int, column: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document[table][index][column] = value

    return change


def _cycle(document: dict[str, Any]) -> None:
    first, second = document["messages"][0], document["messages"][1]
    first["parent_id"] = second["id"]


def _cross_chat_parent(document: dict[str, Any]) -> None:
    other_chat = [m for m in document["messages"] if m["chat_id"] != document["messages"][0]["chat_id"]]
    document["messages"][0]["parent_id"] = other_chat[0]["id"]


def _duplicate_swipe(document: dict[str, Any]) -> None:
    first, second = document["swipes"][0], document["swipes"][1]
    second.update(message_id=first["message_id"], idx=first["idx"])


def _fake_png(document: dict[str, Any]) -> None:
    script = b"<script>alert(1)</script>"
    asset = document["assets"][0]
    old = asset["sha256"]
    asset.update(
        sha256=hashlib.sha256(script).hexdigest(), size=len(script), data=base64.b64encode(script).decode()
    )
    for character in document["characters"]:
        character["avatar_sha256"] = asset["sha256"] if character["avatar_sha256"] == old else None


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(format="something-else"), "not a Kataribe backup"),
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d.update(version=True), "version True"),
        (lambda d: d.update(plugins=[]), "sections this Kataribe does not know: plugins"),
        (lambda d: d.pop("swipes"), "lacks the sections swipes"),
        (lambda d: d.update(characters={"0": {}}), "'characters' must be a list"),
        (lambda d: d["messages"].append("hello"), "must be a JSON object"),
        (lambda d: d["messages"][0].pop("role"), "lacks 'role'"),
        (_set("messages", 0, "sentiment", "+"), "does not know (sentiment)"),
        (_set("characters", 0, "name", 7), "must be a string"),
        (_set("characters", 0, "name", "A\x00"), "NUL"),
        (_set("characters", 0, "card", ["not", "an", "object"]), "must be a JSON object"),
        (_set("characters", 0, "tags", ["ok", 3]), "tags[1]' must be a string"),
        (_set("messages", 0, "role", "wizard"), "one of user, assistant, system"),
        (_set("messages", 0, "hidden", "yes"), "true or false"),
        (_set("messages", 0, "created_at", "yesterday"), "ISO 8601"),
        (_set("messages", 0, "swipe_index", 2**70), "whole number"),
        (_set("messages", 0, "chat_id", None), "whole number"),
        (_set("messages", 1, "id", 1), "repeats id"),
        (_duplicate_swipe, "repeats message_id/idx"),
        (_set("group_members", 0, "talkativeness", "loud"), "finite number"),
        (_set("chats", 0, "head_message_id", 424242), "points to messages 424242"),
        (_set("checkpoints", 0, "message_id", -1), "points to messages -1"),
        (_set("characters", 0, "avatar_sha256", "../../etc/passwd"), "sha256 of 64 hex digits"),
        (_set("assets", 0, "data", "***"), "not valid base64"),
        (_set("assets", 0, "size", 1), "size says 1 bytes"),
        (_set("assets", 0, "mime", "not a mime"), "media type"),
        (_cycle, "own ancestors"),
        (_cross_chat_parent, "not of chat"),
        (_fake_png, "claims to be image/png"),
    ],
)
def test_a_hostile_backup_is_refused_naming_the_problem(
    small_document: dict[str, Any],
    empty: RoleplayContext,
    change: Callable[[dict[str, Any]], None],
    fragment: str,
) -> None:
    document = copy.deepcopy(small_document)
    change(document)
    with pytest.raises(BackupFormatError) as refused:
        restore_backup(empty, encoded(document))
    assert fragment in refused.value.message
    assert_nothing_stored(empty)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{nope", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"format": "kataribe-backup", "version": 1, "groups": [{"talkativeness": NaN}]}', "number"),
        (b"[" * 100_000 + b"]" * 100_000, "nests JSON too deeply"),
        (b'{"format": "kataribe-backup", "version": 1, "n": 1' + b"0" * 5000 + b"}", "number"),
    ],
)
def test_bytes_that_are_not_a_backup_are_refused(empty: RoleplayContext, data: bytes, fragment: str) -> None:
    with pytest.raises(BackupFormatError) as refused:
        restore_backup(empty, data)
    assert fragment in refused.value.message
    assert_nothing_stored(empty)


def test_the_backup_covers_every_table_and_column_of_the_schema(ctx: RoleplayContext) -> None:
    document = small_library(ctx)
    assert {spec.name for spec in BACKUP_TABLES} == set(Base.metadata.tables)
    for table in Base.metadata.tables.values():
        extra = {"data"} if table.name == "assets" else set()
        assert all(set(row) == set(table.columns.keys()) | extra for row in document[table.name]), table.name


def test_a_ten_thousand_message_chat_restores_parents_first_with_its_head(
    ctx: RoleplayContext, empty: RoleplayContext
) -> None:
    with ctx.db.session() as s:
        chat_id = ChatRepository(s).create_chat(title="long").id
        rows = [
            {"id": n, "chat_id": chat_id, "parent_id": n - 1 or None, "role": "user", "content": f"m{n}"}
            for n in range(1, 10_001)
        ]
        s.execute(insert(Message), rows)
        s.get_one(Chat, chat_id).head_message_id = 10_000
    document = json.loads(export_backup(ctx))
    document["messages"].reverse()  # children before parents in the file

    assert restore_backup(empty, encoded(document))["messages"] == 10_000

    with empty.db.read_session() as s:
        repo = ChatRepository(s)
        chat = s.scalars(select(Chat)).one()
        path = repo.active_path(chat.id)
        assert len(path) == 10_000 and path[0].content == "m1" and path[-1].content == "m10000"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_backups_restore_or_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, small_document: dict[str, Any], data: st.DataObject
) -> None:
    document = copy.deepcopy(small_document)
    table = data.draw(st.sampled_from([spec.name for spec in BACKUP_TABLES if document[spec.name]]))
    index = data.draw(st.integers(0, len(document[table]) - 1))
    column = data.draw(st.sampled_from(sorted(document[table][index])))
    document[table][index][column] = data.draw(_json_values)
    target = open_library(tmp_path_factory.mktemp("dst"))
    try:
        restore_backup(target, encoded(document))
    except InvalidRequest:
        assert_nothing_stored(target)
    else:
        assert row_count(target, Chat) == 2
    finally:
        target.close()

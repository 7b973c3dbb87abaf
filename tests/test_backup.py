"""The full JSON backup of a library and its restore onto an empty one (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.services.backup import BACKUP_TABLES, BackupFormatError
from kataribe.services.characters import CharacterService
from kataribe.services.context import RoleplayContext
from kataribe.services.transfer import export_backup, restore_backup
from kataribe.store.assets import remember_asset
from kataribe.store.chats import ChatRepository
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
from tests.hostile import png
from tests.libraries import TINY_PNG, json_values, new_character, open_library, row_count

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
    # ASCII escapes: a lone surrogate put in by a test goes into the file as \ud800, as in a real one
    return json.dumps(document).encode("ascii")


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


def _huge_png(document: dict[str, Any]) -> None:
    huge = png(100_000, 100_000)
    asset = document["assets"][0]
    old = asset["sha256"]
    asset.update(
        sha256=hashlib.sha256(huge).hexdigest(), size=len(huge), data=base64.b64encode(huge).decode()
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
        (_huge_png, "declares 100,000 x 100,000 pixels"),
        (_set("characters", 0, "name", "x" * 1_000_001), "the limit is 1,000,000"),
        (_set("characters", 0, "card", {"data": {"description": "x" * 1_000_001}}), "the limit is 1,000,000"),
        (_set("groups", 0, "name", "lone \ud800"), "'groups[0].name' contains an unpaired"),
        (_set("characters", 0, "card", {"data": {"name": "\udc00"}}), "card.data.name' contains an unpaired"),
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
    document[table][index][column] = data.draw(json_values)
    target = open_library(tmp_path_factory.mktemp("dst"))
    try:
        restore_backup(target, encoded(document))
    except InvalidRequest:
        assert_nothing_stored(target)
    else:
        assert row_count(target, Chat) == 2
    finally:
        target.close()

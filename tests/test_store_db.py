"""The database layer on real SQLite files: migrations, pragmas, sessions, cascades, concurrency."""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, inspect, select, text

from kataribe.store.chats import ChatRepository
from kataribe.store.db import Database, alembic_config, sqlite_url
from kataribe.store.errors import InvalidValue
from kataribe.store.models import (
    Asset,
    Base,
    Character,
    CharacterAsset,
    CharacterPersona,
    Chat,
    Checkpoint,
    Group,
    GroupMember,
    Lorebook,
    Message,
    Persona,
    Swipe,
    character_lorebooks,
    chat_lorebooks,
)

TABLES = {
    "assets",
    "characters",
    "character_assets",
    "character_lorebooks",
    "character_personas",
    "chats",
    "chat_lorebooks",
    "checkpoints",
    "global_variables",
    "groups",
    "group_members",
    "lorebooks",
    "messages",
    "models",
    "personas",
    "swipes",
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path))
    database.migrate()
    yield database
    database.close()


def test_sqlite_url_points_at_kataribe_db_in_the_data_dir(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "データ")
    assert url == f"sqlite:///{tmp_path / 'データ' / 'kataribe.db'}"
    with Database(url) as database:  # the folder is created on first use
        database.migrate()
    assert (tmp_path / "データ" / "kataribe.db").is_file()


@pytest.mark.parametrize("folder", ["100% done", "why?", "a#b"])
def test_sqlite_url_survives_characters_that_mean_something_in_urls(tmp_path: Path, folder: str) -> None:
    with Database(sqlite_url(tmp_path / folder)) as database:
        database.migrate()
    assert (tmp_path / folder / "kataribe.db").is_file()


def test_migrate_creates_every_table_the_fts_index_and_records_the_revision(db: Database) -> None:
    names = set(inspect(db.engine).get_table_names())
    assert names >= TABLES | {"alembic_version", "messages_fts"}
    assert db.current_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    with db.engine.connect() as conn:
        fts_sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'"))
        triggers = set(conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
    assert "trigram" in fts_sql
    assert triggers == {"messages_fts_insert", "messages_fts_delete", "messages_fts_update"}


def test_migration_matches_the_models_exactly(any_db: Database) -> None:
    db = any_db
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda _o, name, type_, reflected, _c: (
                    not (type_ == "table" and reflected and (name or "").startswith("messages_fts"))
                ),
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_twice_is_a_no_op_and_keeps_data(any_db: Database) -> None:
    db = any_db
    with db.session() as s:
        chat_id = ChatRepository(s).create_chat(title="kept").id
    db.migrate()
    with db.read_session() as s:
        assert ChatRepository(s).chat(chat_id).title == "kept"


def test_every_connection_has_wal_foreign_keys_normal_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    with Database(sqlite_url(tmp_path)) as database, database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    # WAL is a property of the file: another program opening it sees it too
    raw = sqlite3.connect(tmp_path / "kataribe.db")
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


def test_postgresql_migration_renders_the_cycle_key_afterwards_and_no_fts() -> None:
    out = io.StringIO()
    cfg = alembic_config("postgresql://kataribe@localhost/kataribe")
    cfg.output_buffer = out
    command.upgrade(cfg, "head", sql=True)
    sql = out.getvalue()
    assert "CREATE TABLE messages" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "ALTER TABLE chats ADD CONSTRAINT fk_chats_head_message_id_messages" in sql
    assert "fts" not in sql.lower()


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        ChatRepository(s).create_chat(title="lost")
        raise RuntimeError("boom")
    with db.session() as s:
        ChatRepository(s).create_chat(title="kept")
    with db.read_session() as s:
        assert [c.title for c in ChatRepository(s).list_chats()] == ["kept"]


def test_read_session_never_writes(db: Database) -> None:
    with db.read_session() as s:
        ChatRepository(s).create_chat(title="not kept")
    with db.read_session() as s:
        assert ChatRepository(s).list_chats() == []


def test_a_reader_does_not_wait_for_a_writer_and_sees_the_last_commit(db: Database) -> None:
    with db.session() as s:
        repo = ChatRepository(s)
        chat_id = repo.create_chat().id
        repo.append_message(chat_id, "user", "one")
    with db.session() as writer:
        ChatRepository(writer).append_message(chat_id, "assistant", "two (not committed)")
        started = time.monotonic()
        with db.read_session() as reader:
            seen = [m.content for m in ChatRepository(reader).active_path(chat_id)]
        assert time.monotonic() - started < 1.0
        assert seen == ["one"]


def test_a_second_writer_waits_for_the_first_and_appends_after_its_message(db: Database) -> None:
    with db.session() as s:
        repo = ChatRepository(s)
        chat_id = repo.create_chat().id
        repo.append_message(chat_id, "user", "one")
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with db.session() as s:
                ChatRepository(s).append_message(chat_id, "user", "three")
        except BaseException as exc:
            errors.append(exc)

    with db.session() as first:
        ChatRepository(first).append_message(chat_id, "assistant", "two")
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # waiting on the write lock, not failing
    thread.join(10)
    assert errors == []
    with db.read_session() as s:
        assert [m.content for m in ChatRepository(s).active_path(chat_id)] == ["one", "two", "three"]


def make_character_world(db: Database) -> dict[str, int]:
    with db.session() as s:
        s.add(Asset(sha256="a" * 64, mime="image/png", size=3))
        character = Character(name="Seraphina", avatar_sha256="a" * 64)
        group = Group(name="party")
        lorebook = Lorebook(name="Eldoria", data={"entries": {}})
        persona = Persona(name="Traveller")
        s.add_all([character, group, lorebook, persona])
        s.flush()
        character.assets.append(CharacterAsset(sha256="a" * 64, kind="sprite", label="joy", ext="png"))
        group.members.append(GroupMember(character_id=character.id, position=0))
        s.add(CharacterPersona(character_id=character.id, persona_id=persona.id))
        s.execute(insert(character_lorebooks).values(character_id=character.id, lorebook_id=lorebook.id))
        repo = ChatRepository(s)
        chat = repo.create_chat(character_id=character.id, group_id=group.id, persona_id=persona.id)
        s.execute(insert(chat_lorebooks).values(chat_id=chat.id, lorebook_id=lorebook.id))
        message = repo.append_message(chat.id, "assistant", "Welcome.", character_id=character.id)
        repo.add_swipe(message.id, "Welcome, traveller.")
        repo.checkpoint(chat.id, "start", message.id)
        return {"character": character.id, "group": group.id, "chat": chat.id, "lorebook": lorebook.id}


def count(db: Database, entity: object) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(entity)) or 0)  # type: ignore[arg-type]


def test_deleting_a_character_cascades_to_its_assets_links_and_lock_but_keeps_its_chats(
    db: Database,
) -> None:
    ids = make_character_world(db)
    with db.session() as s:
        s.delete(s.get(Character, ids["character"]))
    assert count(db, CharacterAsset) == 0
    assert count(db, GroupMember) == 0
    assert count(db, CharacterPersona) == 0
    assert count(db, character_lorebooks) == 0
    assert count(db, Asset) == 1  # shared files are collected separately, never by cascade
    with db.read_session() as s:
        chat = s.get(Chat, ids["chat"])
        assert chat is not None
        assert chat.character_id is None
        assert [m.character_id for m in ChatRepository(s).active_path(chat.id)] == [None]


def test_deleting_a_chat_cascades_to_messages_swipes_checkpoints_links_and_the_index(db: Database) -> None:
    ids = make_character_world(db)
    with db.session() as s:
        ChatRepository(s).delete_chat(ids["chat"])
    for entity in (Message, Swipe, Checkpoint, chat_lorebooks):
        assert count(db, entity) == 0
    assert count(db, Lorebook) == 1
    with db.read_session() as s:
        assert s.execute(text("SELECT count(*) FROM messages_fts")).scalar() == 0


def test_deleting_a_lorebook_unlinks_it_everywhere(db: Database) -> None:
    ids = make_character_world(db)
    with db.session() as s:
        s.delete(s.get(Lorebook, ids["lorebook"]))
    assert count(db, character_lorebooks) == 0
    assert count(db, chat_lorebooks) == 0


def test_foreign_keys_are_enforced(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.session() as s:
        s.add(CharacterAsset(character_id=12345, sha256="b" * 64, kind="icon"))


def test_card_json_round_trips_with_unknown_keys_and_hostile_text(db: Database) -> None:
    card = {
        "spec": "chara_card_v3",
        "data": {"name": "<script>alert(1)</script>", "extensions": {"unknown_tool": {"x": [1, 2.5, None]}}},
        "future_field": "語り部",
    }
    with db.session() as s:
        character = Character(name="c", card=card, tags=["tsundere", "魔法"])
        s.add(character)
        s.flush()
        character_id = character.id
    with db.read_session() as s:
        loaded = s.get(Character, character_id)
        assert loaded is not None
        assert loaded.card == card
        assert loaded.tags == ["tsundere", "魔法"]


def test_in_place_changes_to_json_fields_are_saved(db: Database) -> None:
    with db.session() as s:
        chat_id = ChatRepository(s).create_chat().id
    with db.session() as s:
        chat = ChatRepository(s).chat(chat_id)
        chat.variables["hp"] = 3
        chat.settings["temperature"] = 0.7
    with db.read_session() as s:
        chat = ChatRepository(s).chat(chat_id)
        assert chat.variables == {"hp": 3}
        assert chat.settings == {"temperature": 0.7}


def test_times_come_back_as_aware_utc_whatever_zone_went_in(db: Database) -> None:
    tokyo = timezone(timedelta(hours=9))
    written = datetime(2026, 1, 2, 9, 30, tzinfo=tokyo)
    with db.session() as s:
        lorebook = Lorebook(name="l", created_at=written, updated_at=written)
        s.add(lorebook)
        s.flush()
        lorebook_id = lorebook.id
    with db.read_session() as s:
        loaded = s.get(Lorebook, lorebook_id)
        assert loaded is not None
        assert loaded.created_at == written
        assert loaded.created_at.tzinfo == UTC
        assert loaded.created_at.hour == 0


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Persona(name="p", position="top"), "position"),
        (lambda: Persona(name="p", role="narrator"), "role"),
        (lambda: Group(name="g", activation_strategy="random"), "activation_strategy"),
        (lambda: Group(name="g", generation_mode=1), "generation_mode"),
        (lambda: CharacterAsset(kind="../sprite"), "kind"),
        (lambda: Message(role="tool"), "role"),
        (lambda: Chat(author_note_role="everyone"), "author_note_role"),
    ],
)
def test_unknown_choices_are_refused_by_the_models(build: object, field: str) -> None:
    with pytest.raises(InvalidValue) as err:
        build()  # type: ignore[operator]
    assert err.value.param == field
    assert "must be one of" in err.value.message

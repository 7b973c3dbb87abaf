"""Message search: FTS5 trigram on SQLite (Japanese substrings), safe with any query, LIKE elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.dialects import postgresql

from kataribe.store.chats import ChatRepository
from kataribe.store.db import Database, sqlite_url
from kataribe.store.errors import InvalidValue
from kataribe.store.models import Character
from kataribe.store.search import parse_terms, search_statement

TEXTS = [
    "語り部は日本語で話す。",
    "魔法の森に入った。",
    "The lantern flickered in the old lighthouse.",
    "She was 100% sure the_key was here.",
    'He said "NEAR the tower" AND left * quickly.',
]


@pytest.fixture
def db(any_db: Database) -> Database:
    return any_db  # every test here runs on SQLite and on PostgreSQL


@pytest.fixture
def chat_id(db: Database) -> int:
    with db.session() as s:
        repo = ChatRepository(s)
        chat = repo.create_chat()
        for text in TEXTS:
            repo.append_message(chat.id, "user", text)
        return chat.id


def found(db: Database, query: str, **kwargs: Any) -> list[str]:
    with db.read_session() as s:
        return [m.content for m in ChatRepository(s).search_messages(query, **kwargs)]


def test_japanese_substring_inside_a_run_of_kanji_and_kana_is_found(db: Database, chat_id: int) -> None:
    # The default FTS5 tokenizer would index the whole run as one word and find none of these.
    assert found(db, "日本語") == [TEXTS[0]]
    assert found(db, "本語で話") == [TEXTS[0]]
    assert found(db, "森に入") == [TEXTS[1]]


def test_two_character_japanese_words_are_found_too(db: Database, chat_id: int) -> None:
    assert found(db, "魔法") == [TEXTS[1]]
    assert found(db, "語") == [TEXTS[0]]


def test_long_terms_use_the_fts_index_and_short_ones_like(db: Database, chat_id: int) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    assert found(db, "lantern") == [TEXTS[2]]
    if db.dialect_name == "sqlite":
        assert "messages_fts MATCH" in statements[-1]
    else:  # FTS5 is SQLite's; elsewhere every term is a case-insensitive substring match
        assert "ILIKE" in statements[-1]
    assert found(db, "魔法") == [TEXTS[1]]
    assert "MATCH" not in statements[-1]
    assert "LIKE" in statements[-1]
    event.remove(db.engine, "before_cursor_execute", record)


def test_every_word_must_match_and_quotes_keep_a_phrase_together(db: Database, chat_id: int) -> None:
    assert found(db, "lantern lighthouse") == [TEXTS[2]]
    assert found(db, "lantern 魔法") == []
    assert found(db, '"old lighthouse"') == [TEXTS[2]]
    assert found(db, '"lighthouse old"') == []


def test_english_matching_ignores_case(db: Database, chat_id: int) -> None:
    assert found(db, "LANTERN") == [TEXTS[2]]
    assert found(db, "tHe") == [TEXTS[4], TEXTS[3], TEXTS[2]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("%", [TEXTS[3]]),
        ("_", [TEXTS[3]]),
        ("100%", [TEXTS[3]]),
        ("the_key", [TEXTS[3]]),
        ("NEAR", [TEXTS[4]]),
        ("AND", [TEXTS[4]]),
        ("*", [TEXTS[4]]),
        ('"NEAR the tower"', [TEXTS[4]]),
        ("content:lantern", []),
        ("^lantern", []),
        ("lantern OR 魔法", []),
        ("'; DROP TABLE messages; --", []),
        ('"', []),
        ('""', []),
        ("", []),
        ("   ", []),
    ],
)
def test_query_syntax_in_user_text_is_matched_literally(
    db: Database, chat_id: int, query: str, expected: list[str]
) -> None:
    assert found(db, query) == expected
    assert len(found(db, "the")) == 3  # nothing was dropped


@pytest.mark.parametrize("query", ["x" * 1001, "nul\x00", "lone \ud800 surrogate", 42, None])
def test_unusable_queries_are_refused_with_a_clear_error(db: Database, query: Any) -> None:
    with pytest.raises(InvalidValue) as err:
        found(db, query)
    assert err.value.param == "query"


def test_results_follow_edits_swipes_and_deletes(db: Database, chat_id: int) -> None:
    with db.session() as s:
        repo = ChatRepository(s)
        message = repo.search_messages("lantern")[0]
        repo.edit_message(message.id, "The candle flickered.")
        assert repo.search_messages("lantern") == []
        assert [m.id for m in repo.search_messages("candle")] == [message.id]
        repo.add_swipe(message.id, "A torch burned.")
        assert repo.search_messages("candle") == []
        assert [m.id for m in repo.search_messages("torch")] == [message.id]
        repo.select_swipe(message.id, 0)
        assert [m.id for m in repo.search_messages("candle")] == [message.id]
        repo.delete_message(message.id)
        assert repo.search_messages("candle") == []
        assert repo.search_messages("語り部") != []


def test_hidden_messages_are_still_found(db: Database, chat_id: int) -> None:
    with db.session() as s:
        repo = ChatRepository(s)
        repo.set_hidden(repo.search_messages("lantern")[0].id, True)
        assert [m.hidden for m in repo.search_messages("lantern")] == [True]


def test_character_filter_covers_its_chats_and_its_lines_in_group_chats(db: Database) -> None:
    with db.session() as s:
        alice, bob = Character(name="Alice"), Character(name="Bob")
        s.add_all([alice, bob])
        s.flush()
        repo = ChatRepository(s)
        alice_chat = repo.create_chat(character_id=alice.id)
        bob_chat = repo.create_chat(character_id=bob.id)
        group_chat = repo.create_chat()
        repo.append_message(alice_chat.id, "user", "dragon in alice's chat")
        repo.append_message(bob_chat.id, "user", "dragon in bob's chat")
        repo.append_message(group_chat.id, "assistant", "dragon, said alice", character_id=alice.id)
        repo.append_message(group_chat.id, "assistant", "dragon, said bob", character_id=bob.id)
        alice_id, group_id = alice.id, group_chat.id
    assert found(db, "dragon", character_id=alice_id) == ["dragon, said alice", "dragon in alice's chat"]
    assert found(db, "dragon", chat_id=group_id) == ["dragon, said bob", "dragon, said alice"]


def test_newest_first_and_limit(db: Database) -> None:
    with db.session() as s:
        repo = ChatRepository(s)
        chat = repo.create_chat()
        for i in range(10):
            repo.append_message(chat.id, "user", f"echo number {i}")
    assert found(db, "echo", limit=3) == ["echo number 9", "echo number 8", "echo number 7"]
    with pytest.raises(InvalidValue):
        found(db, "echo", limit=-1)


def test_without_fts_postgresql_search_uses_ilike_with_escaped_wildcards() -> None:
    stmt = search_statement(parse_terms("100% 日本語"), dialect_name="postgresql", has_fts=False)
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    assert "ILIKE" in sql
    assert "ESCAPE" in sql
    assert "MATCH" not in sql
    assert "messages_fts" not in sql


def test_parse_terms_keeps_quoted_phrases_and_drops_stray_quotes() -> None:
    assert parse_terms('魔法 "old lighthouse" x"y') == ["魔法", "old lighthouse", "x", "y"]
    assert parse_terms('"unclosed phrase') == ["unclosed", "phrase"]


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path_factory.mktemp("search")))
    database.migrate()
    yield database
    database.close()


def is_storable(text: str) -> bool:
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(max_examples=60, deadline=None)
@given(query=st.text(st.characters(), max_size=30))
def test_any_query_is_safe_and_finds_a_message_that_contains_it(shared_db: Database, query: str) -> None:
    with shared_db.session() as s:
        repo = ChatRepository(s)
        if not is_storable(query):  # NUL or a lone surrogate: a clear refusal, nothing else
            with pytest.raises(InvalidValue):
                repo.search_messages(query)
            return
        assume(parse_terms(query))
        chat = repo.create_chat()
        target = repo.append_message(chat.id, "user", f"«{query}»")
        repo.append_message(chat.id, "user", "unrelated")
        results = repo.search_messages(query, chat_id=chat.id)
        assert target.id in [m.id for m in results]
        repo.search_messages(query)  # and across all chats, no FTS syntax error either

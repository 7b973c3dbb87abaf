"""Chats as message trees in a real migrated SQLite file: append, branches, swipes, deletes, checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text

from kataribe.store.chats import ChatRepository
from kataribe.store.db import Database, sqlite_url
from kataribe.store.errors import InvalidValue, NotFound
from kataribe.store.models import Character


@pytest.fixture
def db(any_db: Database) -> Database:
    return any_db  # every test here runs on SQLite and on PostgreSQL


def new_chat(db: Database, *turns: str) -> tuple[int, list[int]]:
    """A chat whose messages alternate user/assistant; returns its id and the message ids."""
    with db.session() as s:
        repo = ChatRepository(s)
        chat_id = repo.create_chat(title="t").id
        ids = [
            repo.append_message(chat_id, "user" if i % 2 == 0 else "assistant", text).id
            for i, text in enumerate(turns)
        ]
    return chat_id, ids


def path_texts(db: Database, chat_id: int, limit: int | None = None) -> list[str]:
    with db.read_session() as s:
        return [m.content for m in ChatRepository(s).active_path(chat_id, limit=limit)]


def test_append_links_each_message_to_the_previous_and_moves_the_head(db: Database) -> None:
    chat_id, ids = new_chat(db, "hello", "こんにちは", "how are you?")
    with db.read_session() as s:
        repo = ChatRepository(s)
        assert repo.chat(chat_id).head_message_id == ids[-1]
        assert [m.parent_id for m in repo.active_path(chat_id)] == [None, ids[0], ids[1]]
        assert [m.role for m in repo.active_path(chat_id)] == ["user", "assistant", "user"]
        assert repo.count_path(chat_id) == 3
    assert path_texts(db, chat_id) == ["hello", "こんにちは", "how are you?"]


def test_active_path_limit_returns_the_last_messages_in_order(db: Database) -> None:
    chat_id, _ = new_chat(db, *[f"m{i}" for i in range(12)])
    assert path_texts(db, chat_id, limit=3) == ["m9", "m10", "m11"]
    assert path_texts(db, chat_id, limit=1) == ["m11"]
    assert path_texts(db, chat_id, limit=0) == []
    assert path_texts(db, chat_id, limit=100) == [f"m{i}" for i in range(12)]


def test_empty_chat_has_an_empty_path(db: Database) -> None:
    chat_id, _ = new_chat(db)
    assert path_texts(db, chat_id) == []
    with db.read_session() as s:
        assert ChatRepository(s).count_path(chat_id) == 0
        assert ChatRepository(s).leaves(chat_id) == []


def all_message_rows(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text("SELECT * FROM messages ORDER BY id"))]


def test_append_inserts_one_message_and_one_swipe_and_never_rewrites_other_messages(db: Database) -> None:
    chat_id, _ = new_chat(db, *[f"turn {i}" for i in range(20)])
    before = all_message_rows(db)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    event.listen(db.engine, "before_cursor_execute", record)
    with db.session() as s:
        ChatRepository(s).append_message(chat_id, "assistant", "a new reply", meta={"model": "smol"})
    event.remove(db.engine, "before_cursor_execute", record)

    writes = [st for st in statements if st.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert sum(st.startswith("INSERT INTO MESSAGES") for st in writes) == 1
    assert sum(st.startswith("INSERT INTO SWIPES") for st in writes) == 1
    assert not [st for st in writes if st.startswith(("UPDATE MESSAGES", "DELETE"))]
    assert [st.split()[1] for st in writes if st.startswith("UPDATE")] == ["CHATS"]
    after = all_message_rows(db)
    assert after[: len(before)] == before  # every old row byte-identical
    assert len(after) == len(before) + 1


def test_branch_from_a_middle_message_then_append_creates_a_new_child_and_keeps_the_old_branch(
    db: Database,
) -> None:
    chat_id, ids = new_chat(db, "u1", "a1", "u2", "a2")
    with db.session() as s:
        repo = ChatRepository(s)
        repo.branch_from(chat_id, ids[1])
        assert [m.content for m in repo.active_path(chat_id)] == ["u1", "a1"]
        alt = repo.append_message(chat_id, "user", "u2 (other way)")
        assert alt.parent_id == ids[1]
        assert [m.id for m in repo.children(ids[1])] == [ids[2], alt.id]
        assert [m.id for m in repo.leaves(chat_id)] == [ids[3], alt.id]
    assert path_texts(db, chat_id) == ["u1", "a1", "u2 (other way)"]
    with db.session() as s:
        ChatRepository(s).branch_from(chat_id, ids[3])  # switch back to the first branch's tip
    assert path_texts(db, chat_id) == ["u1", "a1", "u2", "a2"]


def test_append_with_explicit_parent_and_with_none_starts_branches_and_roots(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "a1")
    with db.session() as s:
        repo = ChatRepository(s)
        sibling = repo.append_message(chat_id, "assistant", "a1 again", parent_id=ids[0])
        root = repo.append_message(chat_id, "system", "a new start", parent_id=None)
        assert sibling.parent_id == ids[0]
        assert root.parent_id is None
        assert repo.chat(chat_id).head_message_id == root.id
        assert {m.id for m in repo.leaves(chat_id)} == {ids[1], sibling.id, root.id}


def test_parent_from_another_chat_is_refused(db: Database) -> None:
    chat_a, ids_a = new_chat(db, "in a")
    chat_b, _ = new_chat(db, "in b")
    with db.session() as s, pytest.raises(InvalidValue, match=f"belongs to chat {chat_a}") as err:
        ChatRepository(s).append_message(chat_b, "user", "x", parent_id=ids_a[0])
    assert err.value.param == "parent_id"
    with db.session() as s, pytest.raises(InvalidValue):
        ChatRepository(s).branch_from(chat_b, ids_a[0])


def test_swipes_add_select_and_keep_the_original(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "first reply")
    with db.session() as s:
        repo = ChatRepository(s)
        second = repo.add_swipe(ids[1], "second reply", {"seed": 2})
        assert second.idx == 1
        message = repo.message(ids[1])
        assert (message.content, message.swipe_index, message.meta) == ("second reply", 1, {"seed": 2})
        repo.add_swipe(ids[1], "third reply")
        assert [w.content for w in repo.swipes(ids[1])] == ["first reply", "second reply", "third reply"]
        repo.select_swipe(ids[1], 0)
    assert path_texts(db, chat_id) == ["u1", "first reply"]
    with db.session() as s:
        repo = ChatRepository(s)
        assert repo.select_swipe(ids[1], 1).meta == {"seed": 2}
        with pytest.raises(NotFound, match="Swipe 7 of message"):
            repo.select_swipe(ids[1], 7)


def test_edit_changes_the_message_and_its_selected_swipe_only(db: Database) -> None:
    _chat_id, ids = new_chat(db, "u1", "first")
    with db.session() as s:
        repo = ChatRepository(s)
        repo.add_swipe(ids[1], "second")
        repo.edit_message(ids[1], "second, edited")
        assert [w.content for w in repo.swipes(ids[1])] == ["first", "second, edited"]
        repo.select_swipe(ids[1], 0)
        repo.select_swipe(ids[1], 1)
        assert repo.message(ids[1]).content == "second, edited"


def test_hidden_messages_stay_in_the_path_and_are_flagged(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "a1", "u2")
    with db.session() as s:
        ChatRepository(s).set_hidden(ids[1], True)
    with db.read_session() as s:
        path = ChatRepository(s).active_path(chat_id)
        assert [m.hidden for m in path] == [False, True, False]
    with db.session() as s:
        assert ChatRepository(s).set_hidden(ids[1], False).hidden is False


def test_delete_removes_the_subtree_and_moves_the_head_to_the_parent(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "a1", "u2", "a2")
    with db.session() as s:
        repo = ChatRepository(s)
        repo.branch_from(chat_id, ids[1])
        other = repo.append_message(chat_id, "user", "other u2")
        repo.branch_from(chat_id, ids[3])
        repo.add_swipe(ids[3], "a2 again")
        repo.checkpoint(chat_id, "before the fight", ids[2])
        assert repo.delete_message(ids[2]) == 2  # u2 and a2
        assert repo.chat(chat_id).head_message_id == ids[1]
        assert repo.checkpoints(chat_id) == []
    with db.read_session() as s:
        repo = ChatRepository(s)
        assert [m.id for m in repo.leaves(chat_id)] == [other.id]
        with pytest.raises(NotFound):
            repo.message(ids[3])
        with pytest.raises(NotFound):
            repo.swipes(ids[3])


def test_delete_outside_the_active_branch_leaves_the_head_alone(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "a1", "u2")
    with db.session() as s:
        repo = ChatRepository(s)
        side = repo.append_message(chat_id, "user", "side", parent_id=ids[1])
        repo.branch_from(chat_id, ids[2])
        assert repo.delete_message(side.id) == 1
        assert repo.chat(chat_id).head_message_id == ids[2]


def test_deleting_the_root_of_a_long_chat_empties_it(db: Database) -> None:
    # Deep enough that a per-level cascade would hit SQLite's trigger recursion limit (1000).
    chat_id, ids = new_chat(db, *[f"m{i}" for i in range(1500)])
    with db.session() as s:
        assert ChatRepository(s).delete_message(ids[0]) == 1500
        assert ChatRepository(s).chat(chat_id).head_message_id is None
    assert path_texts(db, chat_id) == []


def test_checkpoints_name_messages_and_lead_back_to_their_branch(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "a1", "u2", "a2")
    with db.session() as s:
        repo = ChatRepository(s)
        mark = repo.checkpoint(chat_id, "城に着いた", ids[1])
        repo.branch_from(chat_id, ids[0])
        repo.append_message(chat_id, "assistant", "a different a1")
        assert [(c.name, c.message_id) for c in repo.checkpoints(chat_id)] == [("城に着いた", ids[1])]
        repo.branch_from(chat_id, mark.message_id)
    assert path_texts(db, chat_id) == ["u1", "a1"]


def test_delete_chat_forgets_its_messages_in_the_same_session(db: Database) -> None:
    chat_id, ids = new_chat(db, "u1", "a1")
    with db.session() as s:
        repo = ChatRepository(s)
        assert repo.active_path(chat_id)  # loads the messages into the session
        repo.delete_chat(chat_id)
        for message_id in ids:
            with pytest.raises(NotFound):
                repo.message(message_id)
        with pytest.raises(NotFound):
            repo.chat(chat_id)


def test_list_chats_counts_messages_and_orders_by_activity(db: Database) -> None:
    with db.session() as s:
        character = Character(name="Seraphina", card={"spec": "chara_card_v2"})
        s.add(character)
        s.flush()
        repo = ChatRepository(s)
        older = repo.create_chat(title="older", character_id=character.id)
        repo.append_message(older.id, "user", "hi")
        newer = repo.create_chat(title="newer")
        for text in ("a", "b", "c"):
            repo.append_message(newer.id, "user", text)
        character_id = character.id
    with db.read_session() as s:
        repo = ChatRepository(s)
        listed = repo.list_chats()
        assert [(c.title, c.message_count) for c in listed] == [("newer", 3), ("older", 1)]
        assert listed[0].last_message_at is not None
        assert listed[0].last_message_at.tzinfo is not None
        assert [c.title for c in repo.list_chats(character_id=character_id)] == ["older"]


def test_missing_ids_raise_not_found_with_a_404(db: Database) -> None:
    chat_id, _ = new_chat(db, "u1")
    with db.session() as s:
        repo = ChatRepository(s)
        calls = [
            lambda: repo.chat(999),
            lambda: repo.message(999),
            lambda: repo.active_path(999),
            lambda: repo.append_message(999, "user", "x"),
            lambda: repo.append_message(chat_id, "user", "x", parent_id=999),
            lambda: repo.append_message(chat_id, "user", "x", character_id=999),
            lambda: repo.create_chat(character_id=999),
            lambda: repo.add_swipe(999, "x"),
            lambda: repo.delete_message(999),
            lambda: repo.branch_from(chat_id, 999),
            lambda: repo.leaves(999),
            lambda: repo.checkpoint(chat_id, "x", 999),
        ]
        for call in calls:
            with pytest.raises(NotFound) as err:
                call()
            assert err.value.status_code == 404
            assert "does not exist" in err.value.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role": "narrator"}, "role"),
        ({"content": 42}, "content"),
        ({"content": "broken \ud800 text"}, "content"),
        ({"content": "nul \x00 byte"}, "content"),
        ({"content": "x" * 101}, "content"),
        ({"name": ["not", "a", "name"]}, "name"),
        ({"meta": ["not", "an", "object"]}, "meta"),
        ({"meta": {"t": float("nan")}}, "meta"),
        ({"meta": {"f": object()}}, "meta"),
    ],
)
def test_hostile_message_fields_are_refused_with_the_field_named(
    db: Database, kwargs: dict[str, Any], field: str
) -> None:
    chat_id, _ = new_chat(db)
    args: dict[str, Any] = {"role": "user", "content": "ok", **kwargs}
    with db.session() as s:
        repo = ChatRepository(s, max_message_chars=100)
        with pytest.raises(InvalidValue) as err:
            repo.append_message(chat_id, args.pop("role"), args.pop("content"), **args)
        assert err.value.param == field
        assert err.value.status_code == 400


def test_deeply_nested_meta_is_refused_not_a_crash(db: Database) -> None:
    chat_id, _ = new_chat(db)
    nested: dict[str, Any] = {}
    for _ in range(100_000):
        nested = {"n": nested}
    with db.session() as s, pytest.raises(InvalidValue, match="cannot be stored as JSON"):
        ChatRepository(s).append_message(chat_id, "user", "x", meta=nested)


# -- the tree against a model in plain Python ------------------------------------------------------


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path_factory.mktemp("tree")))
    database.migrate()
    yield database
    database.close()


OPS = st.lists(
    st.tuples(st.sampled_from(["append", "append_to", "branch", "delete", "swipe"]), st.integers(0, 99)),
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_any_sequence_of_tree_operations_matches_a_plain_model(
    shared_db: Database, ops: list[tuple[str, int]]
) -> None:
    parents: dict[int, int | None] = {}
    head: int | None = None
    with shared_db.session() as s:
        repo = ChatRepository(s)
        chat_id = repo.create_chat().id
        for op, pick in ops:
            existing = sorted(parents)
            target = existing[pick % len(existing)] if existing else None
            if op == "append" or target is None:
                head_before = head
                head = repo.append_message(chat_id, "user", f"{op} {pick}").id
                parents[head] = head_before
            elif op == "append_to":
                head = repo.append_message(chat_id, "assistant", "reply", parent_id=target).id
                parents[head] = target
            elif op == "branch":
                repo.branch_from(chat_id, target)
                head = target
            elif op == "delete":
                doomed = {target}
                while grown := {m for m, p in parents.items() if p in doomed} - doomed:
                    doomed |= grown
                assert repo.delete_message(target) == len(doomed)
                if head in doomed:
                    head = parents[target]
                for m in doomed:
                    del parents[m]
            else:
                repo.add_swipe(target, f"swipe {pick}")

            expected_path: list[int] = []
            node = head
            while node is not None:
                expected_path.insert(0, node)
                node = parents[node]
            assert [m.id for m in repo.active_path(chat_id)] == expected_path
            assert repo.count_path(chat_id) == len(expected_path)
            assert [m.id for m in repo.active_path(chat_id, limit=2)] == expected_path[-2:]
            with_children = {p for p in parents.values() if p is not None}
            assert [m.id for m in repo.leaves(chat_id)] == sorted(set(parents) - with_children)

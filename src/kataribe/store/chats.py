"""Chats as message trees over a Session: append-only growth, branches, swipes, checkpoints, search."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import CTE, Select, delete, exists, func, literal, select, text
from sqlalchemy.orm import Session, aliased

from kataribe.store.errors import InvalidValue, NotFound
from kataribe.store.fields import (
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    checked_count,
    checked_id,
    checked_json_object,
    checked_text,
)
from kataribe.store.models import (
    Character,
    Chat,
    Checkpoint,
    Group,
    Message,
    Persona,
    Swipe,
    utcnow,
)
from kataribe.store.search import parse_terms, search_statement

MAX_SEARCH_RESULTS = 1_000


class _Head(enum.Enum):
    HEAD = "head"


HEAD = _Head.HEAD
"""``append_message(parent_id=HEAD)``: attach to the chat's current head (the default)."""


@dataclass(frozen=True)
class ChatSummary:
    """A chat in a list: ``message_count`` counts every branch; times are UTC."""

    id: int
    title: str
    character_id: int | None
    group_id: int | None
    message_count: int
    last_message_at: datetime | None
    updated_at: datetime


class ChatRepository:
    """Reads and writes chats in the caller's session; the caller commits (``Database.session()``)."""

    def __init__(self, session: Session, *, max_message_chars: int = MAX_TEXT_CHARS) -> None:
        self.session = session
        self.max_message_chars = max_message_chars

    # -- lookups --------------------------------------------------------------------------------

    def chat(self, chat_id: int) -> Chat:
        found = self.session.get(Chat, checked_id("chat_id", chat_id))
        if found is None:
            raise NotFound("chat", chat_id)
        return found

    def message(self, message_id: int) -> Message:
        found = self.session.get(Message, checked_id("message_id", message_id))
        if found is None:
            raise NotFound("message", message_id)
        return found

    def _message_in(self, chat: Chat, message_id: int, field: str) -> Message:
        message = self.message(message_id)
        if message.chat_id != chat.id:
            raise InvalidValue(
                field, f"Message {message_id} belongs to chat {message.chat_id}, not to chat {chat.id}."
            )
        return message

    def _require(self, model: type[Character | Group | Persona], kind: str, ident: int | None) -> None:
        if ident is not None and self.session.get(model, checked_id(f"{kind}_id", ident)) is None:
            raise NotFound(kind, ident)

    # -- chats ----------------------------------------------------------------------------------

    def create_chat(
        self,
        *,
        title: str = "",
        character_id: int | None = None,
        group_id: int | None = None,
        persona_id: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Chat:
        self._require(Character, "character", character_id)
        self._require(Group, "group", group_id)
        self._require(Persona, "persona", persona_id)
        chat = Chat(
            title=checked_text("title", title, max_chars=MAX_NAME_CHARS),
            character_id=character_id,
            group_id=group_id,
            persona_id=persona_id,
            settings=checked_json_object("settings", settings),
        )
        self.session.add(chat)
        self.session.flush()
        return chat

    def delete_chat(self, chat_id: int) -> None:
        """Deletes the chat with its messages, swipes and checkpoints (the database cascades)."""
        chat = self.chat(chat_id)
        doomed = set(self.session.scalars(select(Message.id).where(Message.chat_id == chat.id)))
        self.session.delete(chat)
        self.session.flush()
        self._forget(doomed)

    def list_chats(self, character_id: int | None = None) -> list[ChatSummary]:
        """Chats, most recently active first; only one character's when ``character_id`` is given."""
        count = select(func.count(Message.id)).where(Message.chat_id == Chat.id).scalar_subquery()
        last = select(func.max(Message.created_at)).where(Message.chat_id == Chat.id).scalar_subquery()
        stmt = select(Chat, count, last).order_by(Chat.updated_at.desc(), Chat.id.desc())
        if character_id is not None:
            stmt = stmt.where(Chat.character_id == checked_id("character_id", character_id))
        return [
            ChatSummary(
                id=chat.id,
                title=chat.title,
                character_id=chat.character_id,
                group_id=chat.group_id,
                message_count=int(n),
                last_message_at=last_at,
                updated_at=chat.updated_at,
            )
            for chat, n, last_at in self.session.execute(stmt).all()
        ]

    # -- growing the tree -----------------------------------------------------------------------

    def append_message(
        self,
        chat_id: int,
        role: str,
        content: str,
        *,
        name: str = "",
        character_id: int | None = None,
        parent_id: int | Literal[_Head.HEAD] | None = HEAD,
        meta: dict[str, Any] | None = None,
        hidden: bool = False,
    ) -> Message:
        """Add a message under ``parent_id`` (the head by default; None starts a new root) and make
        it the head. Inserts the message and its first swipe and updates the chat; no other message
        row is rewritten."""
        chat = self.chat(chat_id)
        text_ = checked_text("content", content, max_chars=self.max_message_chars)
        meta_ = checked_json_object("meta", meta)
        self._require(Character, "character", character_id)
        if parent_id is HEAD:
            parent = chat.head_message_id
        elif parent_id is None:
            parent = None
        else:
            parent = self._message_in(chat, parent_id, "parent_id").id
        message = Message(
            chat_id=chat.id,
            parent_id=parent,
            role=role,
            name=checked_text("name", name, max_chars=MAX_NAME_CHARS),
            character_id=character_id,
            content=text_,
            swipe_index=0,
            hidden=bool(hidden),
            meta=dict(meta_),
        )
        self.session.add(message)
        self.session.flush()  # the swipe row needs the message id
        self.session.add(Swipe(message_id=message.id, idx=0, content=text_, meta=dict(meta_)))
        chat.head_message_id = message.id
        chat.updated_at = message.created_at
        self.session.flush()
        return message

    def branch_from(self, chat_id: int, message_id: int) -> Chat:
        """Make ``message_id`` the head: the path ends there and the next append is a new child of
        it. The branch that went on from it stays, and can be taken again with its leaf."""
        chat = self.chat(chat_id)
        chat.head_message_id = self._message_in(chat, message_id, "message_id").id
        chat.updated_at = utcnow()
        self.session.flush()
        return chat

    # -- reading the tree -----------------------------------------------------------------------

    def _path_up(self, head_id: int, limit: int | None) -> CTE:
        anchor = select(Message.id, Message.parent_id, literal(0).label("depth")).where(Message.id == head_id)
        path = anchor.cte("path", recursive=True)
        step = select(Message.id, Message.parent_id, (path.c.depth + 1).label("depth")).join(
            path, Message.id == path.c.parent_id
        )
        if limit is not None:
            # Stops the walk itself (portable; PostgreSQL allows no LIMIT inside a recursive term).
            step = step.where(path.c.depth < limit - 1)
        return path.union_all(step)

    def active_path(self, chat_id: int, *, limit: int | None = None) -> list[Message]:
        """The active branch from root to head; only its last ``limit`` messages when given."""
        chat = self.chat(chat_id)
        if limit is not None and checked_count("limit", limit, maximum=10**9) == 0:
            return []
        if chat.head_message_id is None:
            return []
        path = self._path_up(chat.head_message_id, limit)
        stmt = select(Message).join(path, Message.id == path.c.id).order_by(path.c.depth.desc())
        return list(self.session.scalars(stmt))

    def count_path(self, chat_id: int) -> int:
        chat = self.chat(chat_id)
        if chat.head_message_id is None:
            return 0
        path = self._path_up(chat.head_message_id, None)
        return int(self.session.scalar(select(func.count()).select_from(path)) or 0)

    def children(self, message_id: int) -> list[Message]:
        parent = self.message(message_id)
        stmt = select(Message).where(Message.parent_id == parent.id).order_by(Message.id)
        return list(self.session.scalars(stmt))

    def leaves(self, chat_id: int) -> list[Message]:
        """Every branch tip of the chat, oldest first: the places ``branch_from`` can go back to."""
        chat = self.chat(chat_id)
        child = aliased(Message)
        stmt: Select[Message] = (
            select(Message)
            .where(Message.chat_id == chat.id, ~exists().where(child.parent_id == Message.id))
            .order_by(Message.id)
        )
        return list(self.session.scalars(stmt))

    # -- swipes and edits -----------------------------------------------------------------------

    def swipes(self, message_id: int) -> list[Swipe]:
        message = self.message(message_id)
        return list(
            self.session.scalars(select(Swipe).where(Swipe.message_id == message.id).order_by(Swipe.idx))
        )

    def add_swipe(self, message_id: int, content: str, meta: dict[str, Any] | None = None) -> Swipe:
        """Add an alternative text (a regeneration) and select it."""
        message = self.message(message_id)
        text_ = checked_text("content", content, max_chars=self.max_message_chars)
        meta_ = checked_json_object("meta", meta)
        last = self.session.scalar(select(func.max(Swipe.idx)).where(Swipe.message_id == message.id))
        swipe = Swipe(
            message_id=message.id, idx=(-1 if last is None else last) + 1, content=text_, meta=meta_
        )
        self.session.add(swipe)
        message.content, message.meta, message.swipe_index = text_, dict(meta_), swipe.idx
        self.session.flush()
        return swipe

    def select_swipe(self, message_id: int, idx: int) -> Message:
        message = self.message(message_id)
        swipe = self.session.scalar(
            select(Swipe).where(Swipe.message_id == message.id, Swipe.idx == checked_id("idx", idx))
        )
        if swipe is None:
            raise NotFound(
                "swipe", f"{idx} of message {message_id}", hint="List the message's swipes and pick one."
            )
        message.content, message.meta, message.swipe_index = swipe.content, dict(swipe.meta), swipe.idx
        self.session.flush()
        return message

    def edit_message(self, message_id: int, content: str) -> Message:
        """Change the text of a message and of its selected swipe."""
        message = self.message(message_id)
        text_ = checked_text("content", content, max_chars=self.max_message_chars)
        swipe = self.session.scalar(
            select(Swipe).where(Swipe.message_id == message.id, Swipe.idx == message.swipe_index)
        )
        if swipe is None:  # a row written by other code without its swipe
            self.session.add(Swipe(message_id=message.id, idx=message.swipe_index, content=text_, meta={}))
        else:
            swipe.content = text_
        message.content = text_
        self.session.flush()
        return message

    def set_hidden(self, message_id: int, hidden: bool) -> Message:
        message = self.message(message_id)
        message.hidden = bool(hidden)
        self.session.flush()
        return message

    def delete_message(self, message_id: int) -> int:
        """Delete a message and everything below it; returns how many messages went. When the head
        was among them, the head moves to the deleted message's parent."""
        message = self.message(message_id)
        chat = self.chat(message.chat_id)
        anchor = select(Message.id).where(Message.id == message.id)
        subtree = anchor.cte("subtree", recursive=True)
        subtree = subtree.union_all(select(Message.id).join(subtree, Message.parent_id == subtree.c.id))
        doomed = set(self.session.scalars(select(subtree.c.id)))
        if chat.head_message_id in doomed:
            chat.head_message_id = message.parent_id
        chat.updated_at = utcnow()
        self.session.flush()
        # One statement, so the parent key is checked once at its end, whatever the depth.
        self.session.execute(
            delete(Message).where(Message.id.in_(select(subtree.c.id))),
            execution_options={"synchronize_session": False},
        )
        self._forget(doomed)
        return len(doomed)

    def _forget(self, message_ids: set[int]) -> None:
        # The database cascaded to swipes and checkpoints; drop the stale objects the session holds.
        for obj in list(self.session.identity_map.values()):
            if (
                (isinstance(obj, Message) and obj.id in message_ids)
                or (isinstance(obj, Swipe) and obj.message_id in message_ids)
                or (isinstance(obj, Checkpoint) and obj.message_id in message_ids)
            ):
                self.session.expunge(obj)

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint(self, chat_id: int, name: str, message_id: int) -> Checkpoint:
        """Name a message of the chat, to return to its branch later (``branch_from``)."""
        chat = self.chat(chat_id)
        message = self._message_in(chat, message_id, "message_id")
        mark = Checkpoint(
            chat_id=chat.id, name=checked_text("name", name, max_chars=MAX_NAME_CHARS), message_id=message.id
        )
        self.session.add(mark)
        self.session.flush()
        return mark

    def checkpoints(self, chat_id: int) -> list[Checkpoint]:
        chat = self.chat(chat_id)
        stmt = select(Checkpoint).where(Checkpoint.chat_id == chat.id).order_by(Checkpoint.id)
        return list(self.session.scalars(stmt))

    # -- search ---------------------------------------------------------------------------------

    def search_messages(
        self,
        query: str,
        *,
        character_id: int | None = None,
        chat_id: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages containing every word of ``query`` ("quoted phrases" as one), newest first.

        Matching is by substring, so Japanese works without word boundaries. With ``character_id``:
        that character's chats and its lines in group chats.
        """
        terms = parse_terms(query)
        checked_count("limit", limit, maximum=MAX_SEARCH_RESULTS)
        if not terms or limit == 0:
            return []
        dialect_name = self.session.get_bind().dialect.name
        stmt = search_statement(
            terms,
            dialect_name=dialect_name,
            has_fts=dialect_name == "sqlite" and self._has_fts(),
            character_id=None if character_id is None else checked_id("character_id", character_id),
            chat_id=None if chat_id is None else checked_id("chat_id", chat_id),
            limit=limit,
        )
        return list(self.session.scalars(stmt))

    def _has_fts(self) -> bool:
        found = self.session.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_fts'")
        ).first()
        return found is not None

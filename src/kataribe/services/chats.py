"""Chats: start from a character, send, stream replies, swipe, continue, impersonate, edit, branch."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from kataribe.engine.base import (
    GenerationStream,
)
from kataribe.errors import InvalidRequest
from kataribe.lore.results import Generation
from kataribe.prompt.macros import MacroContext, MacroVariables, expand_macros
from kataribe.services.characters import card_of
from kataribe.services.chat_prompt import (
    chat_persona,
    parse_prompt_settings,
    parse_reply_tokens,
    plan_turn,
)
from kataribe.services.chat_replies import ChatReplies
from kataribe.services.chat_views import chat_view, message_view
from kataribe.services.context import RoleplayContext
from kataribe.services.sampler_settings import sampling_of_settings
from kataribe.store.chats import ChatRepository
from kataribe.store.models import Character, Chat


class ChatService(ChatReplies):
    """A chat's messages, branches and settings (this module); its replies (chat_replies.py)."""

    def __init__(self, ctx: RoleplayContext) -> None:
        self.ctx = ctx
        self._running: dict[int, GenerationStream] = {}

    # -- starting and reading -----------------------------------------------------------------
    def start(
        self, character_id: int, *, persona_id: int | None = None, title: str | None = None
    ) -> dict[str, Any]:
        """A new chat whose first message is the greeting, with alternate greetings as swipes."""
        with self.ctx.db.session() as session:
            character = session.get(Character, character_id)
            if character is None:
                from kataribe.store.errors import NotFound

                raise NotFound("character", character_id)
            repo = ChatRepository(session)
            chat = repo.create_chat(
                title=title or character.name, character_id=character.id, persona_id=persona_id
            )
            card = card_of(character)
            greetings = [g for g in [card.first_mes, *card.alternate_greetings] if g.strip()]
            self.add_greetings(session, repo, chat, character, greetings)
            return chat_view(chat)

    def add_greetings(
        self, session: Session, repo: ChatRepository, chat: Chat, character: Character, greetings: list[str]
    ) -> None:
        """The first message of ``character`` in ``chat``: greetings as swipes, macros expanded."""
        if not greetings:
            return
        persona = chat_persona(session, chat)
        ctx = MacroContext(
            user=persona.name if persona else "User",
            char=character.name,
            persona=persona.description if persona else "",
            description="",
            personality="",
            scenario="",
            mes_examples="",
            last_message="",
            last_user_message="",
            last_char_message="",
            now=datetime.now(UTC),
            last_user_time=None,
            chat_id=str(chat.id),
            variables=MacroVariables(),
            rng=random.Random(chat.id),
        )
        texts = [expand_macros(g, ctx) for g in greetings]
        first = repo.append_message(
            chat.id,
            "assistant",
            texts[0],
            name=character.name,
            character_id=character.id,
            meta={"greeting": True},
        )
        for text in texts[1:]:
            repo.add_swipe(first.id, text, {"greeting": True})
        repo.select_swipe(first.id, 0)

    def view(self, chat_id: int, *, limit: int | None = None) -> dict[str, Any]:
        with self.ctx.db.read_session() as session:
            repo = ChatRepository(session)
            chat = repo.chat(chat_id)
            path = repo.active_path(chat_id, limit=limit)
            out = chat_view(chat)
            out["messages"] = [message_view(m, swipes=[s.content for s in repo.swipes(m.id)]) for m in path]
            out["message_count"] = repo.count_path(chat_id)
            return out

    def list_all(self, character_id: int | None = None) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            return [
                {
                    "id": c.id,
                    "title": c.title,
                    "character_id": c.character_id,
                    "group_id": c.group_id,
                    "message_count": c.message_count,
                    "last_message_at": c.last_message_at.isoformat() if c.last_message_at else None,
                }
                for c in ChatRepository(session).list_chats(character_id)
            ]

    # -- simple edits ---------------------------------------------------------------------------
    def edit(self, message_id: int, content: str) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            return message_view(ChatRepository(session).edit_message(message_id, content))

    def set_hidden(self, message_id: int, hidden: bool) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            return message_view(ChatRepository(session).set_hidden(message_id, hidden))

    def delete_message(self, message_id: int) -> int:
        with self.ctx.db.session() as session:
            return ChatRepository(session).delete_message(message_id)

    def select_swipe(self, message_id: int, index: int) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            repo = ChatRepository(session)
            msg = repo.select_swipe(message_id, index)
            return message_view(msg, swipes=[s.content for s in repo.swipes(msg.id)])

    def branch(self, chat_id: int, message_id: int) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            return chat_view(ChatRepository(session).branch_from(chat_id, message_id))

    def tree(self, chat_id: int) -> dict[str, Any]:
        """Every branch tip, with the path length to it, for navigating between branches."""
        with self.ctx.db.read_session() as session:
            repo = ChatRepository(session)
            chat = repo.chat(chat_id)
            return {
                "head_message_id": chat.head_message_id,
                "leaves": [message_view(m) for m in repo.leaves(chat_id)],
                "checkpoints": [
                    {"name": c.name, "message_id": c.message_id} for c in repo.checkpoints(chat_id)
                ],
            }

    def children(self, message_id: int) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            return [message_view(m) for m in ChatRepository(session).children(message_id)]

    def checkpoint(self, chat_id: int, name: str, message_id: int | None) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            repo = ChatRepository(session)
            target = message_id if message_id is not None else repo.chat(chat_id).head_message_id
            if target is None:
                raise InvalidRequest("The chat has no messages to mark.", param="message_id")
            cp = repo.checkpoint(chat_id, name, target)
            return {"name": cp.name, "message_id": cp.message_id}

    def update_settings(self, chat_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Author's note, persona lock, title and per-chat settings (sampler, prompt, max_tokens)."""
        with self.ctx.db.session() as session:
            chat = ChatRepository(session).chat(chat_id)
            note = changes.get("author_note")
            if isinstance(note, dict):
                chat.author_note = str(note.get("text", chat.author_note))
                chat.author_note_depth = int(note.get("depth", chat.author_note_depth))
                chat.author_note_frequency = int(note.get("frequency", chat.author_note_frequency))
                role = note.get("role", chat.author_note_role)
                if role not in ("system", "user", "assistant"):
                    raise InvalidRequest("author_note.role must be system, user or assistant.", param="role")
                chat.author_note_role = role
            if "persona_id" in changes:
                chat.persona_id = changes["persona_id"]
            if isinstance(changes.get("title"), str):
                chat.title = changes["title"]
            if isinstance(changes.get("settings"), dict):
                merged = {**chat.settings, **changes["settings"]}
                parse_prompt_settings(merged.get("prompt"))  # refuse bad values before storing them
                parse_reply_tokens(merged.get("max_tokens"))
                sampling_of_settings(merged)
                chat.settings = merged
            session.flush()
            return chat_view(chat)

    def search(self, query: str, character_id: int | None = None) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            hits = ChatRepository(session).search_messages(query, character_id=character_id)
            return [message_view(m) | {"chat_id": m.chat_id} for m in hits]

    def dry_run(
        self, chat_id: int, *, speaker_id: int | None = None, generation: Generation = Generation.NORMAL
    ) -> dict[str, Any]:
        """The prompt the next reply would get, per-section token counts, and the lore that fired."""
        with self.ctx.db.read_session() as session:
            chat = ChatRepository(session).chat(chat_id)
            plan = plan_turn(
                self.ctx, session, chat, speaker_id=speaker_id, generation=generation, rng=random.Random(0)
            )
        p = plan.prompt
        return {
            "messages": [{"role": m.role, "content": m.content} for m in p.prompt.messages],
            "text": p.prompt.text,
            "sections": [{"section": r.section, "tokens": r.tokens} for r in p.prompt.report],
            "total_tokens": p.prompt.total_tokens,
            "budget_tokens": p.prompt.budget_tokens,
            "history_kept": p.prompt.history_kept,
            "history_dropped": p.prompt.history_dropped,
            "lore": [
                {
                    "book": e.book,
                    "uid": e.entry.uid,
                    "comment": e.entry.comment,
                    "reason": e.reason,
                    "placed": where,
                    "tokens": self.ctx.count_tokens(e.content),
                }
                for e, where in p.placements
            ],
            "lore_skipped": [
                {"book": s.book, "uid": s.entry.uid, "reason": str(s.reason), "detail": s.detail}
                for s in p.lore.skipped
            ],
        }

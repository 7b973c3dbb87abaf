"""Chats: start from a character, send, stream replies, swipe, continue, impersonate, edit, branch."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.engine.base import (
    ChatMessage,
    GenerationDone,
    GenerationRequest,
    GenerationStream,
    SamplingParams,
    TextDelta,
)
from kataribe.errors import InvalidRequest
from kataribe.lore.results import Generation
from kataribe.prompt.macros import MacroContext, MacroVariables, expand_macros
from kataribe.services.characters import card_of
from kataribe.services.chat_prompt import (
    TurnPlan,
    chat_persona,
    lore_state_to_store,
    parse_prompt_settings,
    parse_reply_tokens,
    plan_turn,
)
from kataribe.services.context import RoleplayContext
from kataribe.services.sampler_settings import SAMPLER_FIELDS, sampling_of_settings
from kataribe.store.chats import ChatRepository
from kataribe.store.models import Character, Chat, GlobalVariable, Message


def message_view(m: Message, *, swipes: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "parent_id": m.parent_id,
        "role": m.role,
        "name": m.name,
        "character_id": m.character_id,
        "content": m.content,
        "swipe_index": m.swipe_index,
        "hidden": m.hidden,
        "meta": dict(m.meta),
        "created_at": m.created_at.isoformat(),
    }
    if swipes is not None:
        out["swipes"] = swipes
        out["swipe_count"] = len(swipes)
    return out


def chat_view(chat: Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "title": chat.title,
        "character_id": chat.character_id,
        "group_id": chat.group_id,
        "persona_id": chat.persona_id,
        "head_message_id": chat.head_message_id,
        "author_note": {
            "text": chat.author_note,
            "depth": chat.author_note_depth,
            "frequency": chat.author_note_frequency,
            "role": chat.author_note_role,
        },
        "settings": dict(chat.settings),
        "created_at": chat.created_at.isoformat(),
        "updated_at": chat.updated_at.isoformat(),
    }


def sampling_of(chat: Chat) -> SamplingParams:
    return sampling_of_settings(dict(chat.settings))


@dataclass
class ReplyEvent:
    """What a generation endpoint streams: text as it comes, then the stored message (or an error)."""

    kind: str  # "token" | "message" | "error"
    data: dict[str, Any]


class ChatService:
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

    # -- generation -----------------------------------------------------------------------------
    def stop(self, chat_id: int) -> bool:
        stream = self._running.get(chat_id)
        if stream is None:
            return False
        stream.cancel()
        return True

    def send(
        self, chat_id: int, text: str, *, generate: bool = True
    ) -> tuple[dict[str, Any], AsyncIterator[ReplyEvent] | None]:
        """Append the user's message; return it and (unless ``generate`` is off) the reply stream."""
        with self.ctx.db.session() as session:
            repo = ChatRepository(session)
            chat = repo.chat(chat_id)
            persona = chat_persona(session, chat)
            msg = repo.append_message(chat.id, "user", text, name=persona.name if persona else "User")
            view = message_view(msg)
        return view, (self.reply(chat_id) if generate else None)

    def reply(self, chat_id: int, *, speaker_id: int | None = None) -> AsyncIterator[ReplyEvent]:
        """Generate the next assistant message at the head of the chat."""
        with self.ctx.db.read_session() as session:
            chat = ChatRepository(session).chat(chat_id)
            plan = plan_turn(self.ctx, session, chat, speaker_id=speaker_id)
            request = self._request(chat, plan)
        return self._generate(chat_id, plan, request, mode="new")

    def regenerate(self, message_id: int) -> AsyncIterator[ReplyEvent]:
        """A new swipe for an assistant message, from the history before it."""
        with self.ctx.db.read_session() as session:
            repo = ChatRepository(session)
            msg = repo.message(message_id)
            if msg.role != "assistant":
                raise InvalidRequest(
                    "Only assistant messages can be regenerated or swiped.", param="message_id"
                )
            chat = repo.chat(msg.chat_id)
            parent = repo.message(msg.parent_id) if msg.parent_id is not None else None
            plan = plan_turn(
                self.ctx, session, chat, upto=parent, speaker_id=msg.character_id, generation=Generation.SWIPE
            )
            if parent is None:
                plan.prompt.prompt.messages = [m for m in plan.prompt.prompt.messages if m.role == "system"]
            request = self._request(chat, plan)
            chat_id = chat.id
        return self._generate(chat_id, plan, request, mode="swipe", target=message_id)

    def continue_message(self, message_id: int) -> AsyncIterator[ReplyEvent]:
        """Make an assistant message longer, in place."""
        with self.ctx.db.read_session() as session:
            repo = ChatRepository(session)
            msg = repo.message(message_id)
            if msg.role != "assistant":
                raise InvalidRequest("Only assistant messages can be continued.", param="message_id")
            chat = repo.chat(msg.chat_id)
            parent = repo.message(msg.parent_id) if msg.parent_id is not None else None
            continuing = Generation.CONTINUE
            plan = plan_turn(
                self.ctx, session, chat, upto=parent, speaker_id=msg.character_id, generation=continuing
            )
            messages = [*plan.prompt.prompt.messages, ChatMessage("assistant", msg.content)]
            request = self._request(chat, plan, messages=messages)
            request.continue_last = True
            chat_id = chat.id
        return self._generate(chat_id, plan, request, mode="continue", target=message_id)

    def impersonate(self, chat_id: int) -> AsyncIterator[ReplyEvent]:
        """Write the user's next line (returned, not stored: it goes to the input box)."""
        with self.ctx.db.read_session() as session:
            chat = ChatRepository(session).chat(chat_id)
            plan = plan_turn(self.ctx, session, chat, impersonate=True)
            request = self._request(chat, plan)
        return self._generate(chat_id, plan, request, mode="impersonate")

    def _request(
        self, chat: Chat, plan: TurnPlan, messages: list[ChatMessage] | None = None
    ) -> GenerationRequest:
        stops = [f"\n{plan.user_name}:"]
        if plan.prompt.prompt.text is None:
            return GenerationRequest(
                messages=messages or plan.prompt.prompt.messages,
                max_tokens=plan.max_tokens,
                sampling=sampling_of(chat),
                stop=stops,
            )
        return GenerationRequest(
            prompt=plan.prompt.prompt.text, max_tokens=plan.max_tokens, sampling=sampling_of(chat), stop=stops
        )

    def _generate(
        self,
        chat_id: int,
        plan: TurnPlan,
        request: GenerationRequest,
        *,
        mode: str,
        target: int | None = None,
    ) -> AsyncIterator[ReplyEvent]:
        """Start generating now (so a bad request fails before any byte is streamed)."""
        if chat_id in self._running:
            raise InvalidRequest(
                "A reply is already being written in this chat; stop it first.", param="chat_id"
            )
        stream = self.ctx.engine.generate(request)
        self._running[chat_id] = stream
        return self._follow(chat_id, stream, plan, request, mode=mode, target=target)

    async def _follow(
        self,
        chat_id: int,
        stream: GenerationStream,
        plan: TurnPlan,
        request: GenerationRequest,
        *,
        mode: str,
        target: int | None,
    ) -> AsyncIterator[ReplyEvent]:
        done: GenerationDone | None = None
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if event.text:
                        yield ReplyEvent("token", {"text": event.text})
                else:
                    done = event
        finally:
            self._running.pop(chat_id, None)
            if done is None:
                stream.cancel()
        if done is None:
            return
        if done.finish_reason == "error":
            yield ReplyEvent("error", {"message": str(done.error)})
            return
        text = done.text.strip() if mode != "continue" else done.text
        if done.finish_reason == "cancelled" and not text.strip():
            return  # stopped before it wrote anything: nothing to keep
        meta = {
            "model": self.ctx.engine.model_name,
            "finish_reason": done.finish_reason,
            "usage": done.usage.as_openai(),
            "timings": done.timings.as_dict(),
            "sampler": {k: getattr(request.sampling, k) for k in SAMPLER_FIELDS},
            "lore": [f"{e.book}/{e.entry.uid}" for e in plan.prompt.lore.entries],
        }
        if mode == "impersonate":
            yield ReplyEvent("message", {"role": "user", "content": text, "meta": meta, "stored": False})
            return
        with self.ctx.db.session() as session:
            repo = ChatRepository(session)
            if mode == "new":
                msg = repo.append_message(
                    chat_id,
                    "assistant",
                    text,
                    name=plan.speaker_name,
                    character_id=plan.speaker_id,
                    meta=meta,
                )
            elif mode == "swipe":
                assert target is not None
                repo.add_swipe(target, text, meta)
                msg = repo.message(target)
            else:
                assert target is not None
                old = repo.message(target)
                msg = repo.edit_message(target, old.content + text)
                msg.meta = {**msg.meta, "continued": meta}
            self._record_state(session, chat_id, plan)
            swipes = [s.content for s in repo.swipes(msg.id)]
            yield ReplyEvent("message", message_view(msg, swipes=swipes))

    @staticmethod
    def _record_state(session: Session, chat_id: int, plan: TurnPlan) -> None:
        chat = ChatRepository(session).chat(chat_id)
        chat.lore_state = lore_state_to_store(plan.prompt)
        chat.variables = dict(plan.variables.local)
        existing = {g.name: g for g in session.scalars(select(GlobalVariable))}
        for name, value in plan.variables.global_.items():
            row = existing.get(name)
            if row is None:
                session.add(GlobalVariable(name=name, value=value))
            elif row.value != value:
                row.value = value
        session.flush()

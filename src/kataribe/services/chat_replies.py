"""A chat's replies: send, generate and stream, regenerate as a new swipe, continue, impersonate, stop.

ChatService (chats.py) is a ChatReplies: the two halves share the context and the running streams.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from kataribe.services.chat_prompt import (
    TurnPlan,
    chat_persona,
    lore_state_to_store,
    plan_turn,
)
from kataribe.services.chat_views import message_view
from kataribe.services.context import RoleplayContext
from kataribe.services.sampler_settings import SAMPLER_FIELDS, sampling_of_settings
from kataribe.store.chats import ChatRepository
from kataribe.store.models import Chat, GlobalVariable


def sampling_of(chat: Chat) -> SamplingParams:
    return sampling_of_settings(dict(chat.settings))


@dataclass
class ReplyEvent:
    """What a generation endpoint streams: text as it comes, then the stored message (or an error)."""

    kind: str  # "token" | "message" | "error"
    data: dict[str, Any]


class ChatReplies:
    """Its public methods block (they plan the turn and tokenize): call them with run_off_loop."""

    ctx: RoleplayContext
    _running: dict[int, GenerationStream]
    _starting = threading.Lock()  # replies start in worker threads: one check-and-start at a time

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
        with self._starting:
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

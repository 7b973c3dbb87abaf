"""Group chats: members, speaker selection per turn, force-talk and auto-mode."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.engine.off_loop import run_off_loop
from kataribe.errors import InvalidRequest
from kataribe.services.characters import card_of
from kataribe.services.chat_replies import ReplyEvent
from kataribe.services.chat_views import chat_view
from kataribe.services.chats import ChatService
from kataribe.services.context import RoleplayContext
from kataribe.services.group_order import Member, Strategy, TurnContext, choose_speakers
from kataribe.store.chats import ChatRepository
from kataribe.store.errors import NotFound
from kataribe.store.models import Character, Group, GroupMember

MAX_AUTO_DELAY_S = 3600
log = logging.getLogger(__name__)


def group_view(g: Group) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "activation_strategy": g.activation_strategy,
        "allow_self_responses": g.allow_self_responses,
        "generation_mode": g.generation_mode,
        "auto_mode_delay_s": g.auto_mode_delay_s,
        "scenario_override": g.scenario_override,
        "members": [
            {
                "character_id": m.character_id,
                "position": m.position,
                "muted": m.muted,
                "talkativeness": m.talkativeness,
            }
            for m in sorted(g.members, key=lambda m: m.position)
        ],
    }


class GroupService:
    def __init__(self, ctx: RoleplayContext, chats: ChatService) -> None:
        self.ctx = ctx
        self.chats = chats
        self._auto: dict[int, asyncio.Task[None]] = {}

    @staticmethod
    def _get(session: Session, group_id: int) -> Group:
        g = session.get(Group, group_id)
        if g is None:
            raise NotFound("group", group_id)
        return g

    def _apply(self, session: Session, g: Group, data: dict[str, Any]) -> None:
        if "name" in data:
            if not isinstance(data["name"], str) or not data["name"].strip():
                raise InvalidRequest("A group needs a name.", param="name")
            g.name = data["name"].strip()
        if "activation_strategy" in data:
            try:
                g.activation_strategy = Strategy(data["activation_strategy"]).value
            except ValueError:
                raise InvalidRequest(
                    "activation_strategy must be natural, list, manual or pooled.",
                    param="activation_strategy",
                ) from None
        if "generation_mode" in data:
            if data["generation_mode"] not in ("swap", "join"):
                raise InvalidRequest("generation_mode must be swap or join.", param="generation_mode")
            g.generation_mode = data["generation_mode"]
        if "allow_self_responses" in data:
            g.allow_self_responses = bool(data["allow_self_responses"])
        if "auto_mode_delay_s" in data:
            delay = data["auto_mode_delay_s"]
            if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_AUTO_DELAY_S:
                raise InvalidRequest(
                    f"auto_mode_delay_s must be 0..{MAX_AUTO_DELAY_S} seconds.", param="auto_mode_delay_s"
                )
            g.auto_mode_delay_s = delay
        if "scenario_override" in data:
            g.scenario_override = data["scenario_override"] or None
        if "members" in data:
            members = data["members"]
            if not isinstance(members, list) or not members:
                raise InvalidRequest("members must be a non-empty list.", param="members")
            for old in list(g.members):
                session.delete(old)
            session.flush()
            for pos, raw in enumerate(members):
                entry = raw if isinstance(raw, dict) else {"character_id": raw}
                cid = entry.get("character_id")
                if not isinstance(cid, int) or session.get(Character, cid) is None:
                    raise NotFound("character", cid if isinstance(cid, int) else 0)
                talk = entry.get("talkativeness", 0.5)
                if not isinstance(talk, int | float) or not 0 <= talk <= 1:
                    raise InvalidRequest("talkativeness must be between 0 and 1.", param="talkativeness")
                session.add(
                    GroupMember(
                        group_id=g.id,
                        character_id=cid,
                        position=pos,
                        muted=bool(entry.get("muted", False)),
                        talkativeness=float(talk),
                    )
                )
            session.flush()
            session.refresh(g)

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            g = Group(name="")
            session.add(g)
            session.flush()
            self._apply(session, g, {"name": data.get("name"), **data})
            return group_view(g)

    def update(self, group_id: int, data: dict[str, Any]) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            g = self._get(session, group_id)
            self._apply(session, g, data)
            session.flush()
            return group_view(g)

    def view(self, group_id: int) -> dict[str, Any]:
        with self.ctx.db.read_session() as session:
            return group_view(self._get(session, group_id))

    def list_all(self) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            return [group_view(g) for g in session.scalars(select(Group).order_by(Group.name))]

    def delete(self, group_id: int) -> None:
        with self.ctx.db.session() as session:
            session.delete(self._get(session, group_id))

    def start_chat(self, group_id: int, *, title: str | None = None) -> dict[str, Any]:
        """A group chat opening with each unmuted member's greeting (group-only greetings as swipes)."""
        with self.ctx.db.session() as session:
            g = self._get(session, group_id)
            repo = ChatRepository(session)
            chat = repo.create_chat(title=title or g.name, group_id=g.id)
            for m in sorted(g.members, key=lambda m: m.position):
                character = session.get(Character, m.character_id)
                if m.muted or character is None:
                    continue
                card = card_of(character)
                greetings = [
                    x
                    for x in [card.first_mes, *card.alternate_greetings, *card.group_only_greetings]
                    if x.strip()
                ]
                self.chats.add_greetings(session, repo, chat, character, greetings)
            return chat_view(chat)

    def _speakers(self, chat_id: int, rng: random.Random) -> list[int]:
        with self.ctx.db.read_session() as session:
            repo = ChatRepository(session)
            chat = repo.chat(chat_id)
            if chat.group_id is None:
                raise InvalidRequest("This is not a group chat.", param="chat_id")
            g = self._get(session, chat.group_id)
            path = repo.active_path(chat_id, limit=200)
            last = path[-1] if path else None
            spoken: set[int] = set()
            for m in reversed(path):
                if m.role == "user":
                    break
                if m.character_id is not None:
                    spoken.add(m.character_id)
            names = {
                c.id: c.name
                for c in session.scalars(
                    select(Character).where(Character.id.in_([m.character_id for m in g.members]))
                )
            }
            members = [
                Member(m.character_id, names.get(m.character_id, ""), m.muted, m.talkativeness)
                for m in sorted(g.members, key=lambda m: m.position)
            ]
            turn = TurnContext(
                last.content if last else "", last.character_id if last else None, frozenset(spoken)
            )
            return choose_speakers(
                members,
                Strategy(g.activation_strategy),
                turn,
                allow_self_responses=g.allow_self_responses,
                rng=rng,
            )

    async def next_turn(
        self, chat_id: int, *, force_character_id: int | None = None, rng: random.Random | None = None
    ) -> AsyncIterator[ReplyEvent]:
        """Replies from whoever speaks now (or the forced member), one after another."""
        speakers = (
            [force_character_id]
            if force_character_id is not None
            else self._speakers(chat_id, rng or random.Random())
        )
        for speaker in speakers:
            yield ReplyEvent("speaker", {"character_id": speaker})
            # planning the turn (lore scan, prompt, tokenizing) happens off the event loop
            async for event in await run_off_loop(self.chats.reply, chat_id, speaker_id=speaker):
                yield event

    # -- auto-mode --
    def auto_mode(self, chat_id: int, enabled: bool) -> bool:
        task = self._auto.pop(chat_id, None)
        if task is not None:
            task.cancel()
        if enabled:
            self._auto[chat_id] = asyncio.get_running_loop().create_task(self._auto_loop(chat_id))
        return enabled

    def auto_running(self, chat_id: int) -> bool:
        task = self._auto.get(chat_id)
        return task is not None and not task.done()

    async def _auto_loop(self, chat_id: int) -> None:
        while True:
            with self.ctx.db.read_session() as session:
                chat = ChatRepository(session).chat(chat_id)
                delay = self._get(session, chat.group_id).auto_mode_delay_s if chat.group_id else 5
            await asyncio.sleep(max(delay, 0.05))
            try:
                async for _event in self.next_turn(chat_id):
                    pass
            except InvalidRequest:  # a reply is already running (the user's, say): try next time
                continue
            except Exception:  # keep the loop alive; the next turn may well work
                log.exception("auto-mode turn failed in chat %s", chat_id)

    def stop_all(self) -> None:
        for task in self._auto.values():
            task.cancel()
        self._auto.clear()

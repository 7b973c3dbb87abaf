"""Gathers a chat's stored pieces (cards, persona, lore, note, history) into a prompt for one turn."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.formats.cards import CharacterCard
from kataribe.lore.model import Lorebook as LoreBook
from kataribe.lore.model import WorldInfoSettings
from kataribe.lore.results import Generation
from kataribe.lore.timed import LoreTimedState
from kataribe.prompt.assemble import Budget, HistoryItem, Section
from kataribe.prompt.chat import (
    AuthorNote,
    CharacterSheet,
    ChatPrompt,
    ChatPromptSettings,
    ChatTurnInput,
    LoreAnchor,
    PersonaSheet,
    build_chat_prompt,
)
from kataribe.prompt.instruct import PRESETS
from kataribe.prompt.macros import MacroVariables
from kataribe.services.characters import card_of
from kataribe.services.context import RoleplayContext
from kataribe.services.lorebooks import book_from_card, book_of
from kataribe.store.chats import ChatRepository
from kataribe.store.models import (
    Character,
    CharacterPersona,
    Chat,
    GlobalVariable,
    Group,
    Lorebook,
    Message,
    Persona,
    character_lorebooks,
    chat_lorebooks,
)

DEFAULT_REPLY_TOKENS = 300


@dataclass
class TurnPlan:
    """One turn's prompt and what the turn needs to record afterwards."""

    prompt: ChatPrompt
    speaker_id: int
    speaker_name: str
    user_name: str
    variables: MacroVariables
    max_tokens: int


def sheet_of(card: CharacterCard) -> CharacterSheet:
    depth_prompt = card.extensions.get("depth_prompt")
    note = depth_prompt if isinstance(depth_prompt, dict) else {}
    return CharacterSheet(
        name=card.name,
        description=card.description,
        personality=card.personality,
        scenario=card.scenario,
        mes_example=card.mes_example,
        system_prompt=card.system_prompt,
        post_history_instructions=card.post_history_instructions,
        depth_prompt=str(note.get("prompt") or ""),
        depth_prompt_depth=int(note.get("depth") or 4) if str(note.get("depth", "4")).isdigit() else 4,
        depth_prompt_role=str(note.get("role") or "system"),
        creator_notes=card.creator_notes,
        tags=list(card.tags),
    )


def chat_persona(session: Session, chat: Chat) -> Persona | None:
    """The chat's locked persona, else the character's locked one, else the default persona."""
    if chat.persona_id is not None:
        return session.get(Persona, chat.persona_id)
    if chat.character_id is not None:
        lock = session.get(CharacterPersona, chat.character_id)
        if lock is not None:
            return session.get(Persona, lock.persona_id)
    return session.scalars(select(Persona).where(Persona.is_default.is_(True))).first()


def timed_state_of(stored: dict[str, Any]) -> LoreTimedState:
    timed = stored.get("timed")
    return LoreTimedState.from_dict(timed) if isinstance(timed, dict) and timed else LoreTimedState()


def anchor_of(stored: dict[str, Any]) -> LoreAnchor | None:
    raw = stored.get("anchor")
    if isinstance(raw, dict) and isinstance(raw.get("digest"), str):
        after = raw.get("after_message_id")
        return LoreAnchor(raw["digest"], after if isinstance(after, int) else None)
    return None


def lore_state_to_store(prompt: ChatPrompt) -> dict[str, Any]:
    """What a chat keeps between turns: the lore timers and where the lore block was put."""
    anchor = prompt.lore_anchor
    return {
        "timed": prompt.lore.state.to_dict(),
        "anchor": {"digest": anchor.digest, "after_message_id": anchor.after_message_id} if anchor else None,
    }


def history_of(path: list[Message]) -> list[HistoryItem]:
    return [HistoryItem(m.role, m.content, m.name or None, m.id) for m in path if not m.hidden]


def books_for(
    ctx: RoleplayContext, session: Session, chat: Chat, speakers: list[Character], persona: Persona | None
) -> list[LoreBook]:
    """Global books, the characters' own (embedded and linked), the persona's and the chat's.

    Parsed books are kept between turns (ctx.parsed) and only re-read when a book changes: the
    queries read ids and change times, not the books' JSON.
    """
    stamp = select(Lorebook.id, Lorebook.updated_at)
    queries = [stamp.where(Lorebook.is_global.is_(True))]
    ids = [c.id for c in speakers]
    if ids:
        queries.append(stamp.join(character_lorebooks).where(character_lorebooks.c.character_id.in_(ids)))
    if persona is not None and persona.lorebook_id is not None:
        queries.append(stamp.where(Lorebook.id == persona.lorebook_id))
    queries.append(stamp.join(chat_lorebooks).where(chat_lorebooks.c.chat_id == chat.id))
    books: list[LoreBook] = []
    for character in speakers:
        embedded = ctx.parsed(
            ("card book", character.id, character.updated_at), partial(_card_book, ctx, character)
        )
        if embedded is not None:
            books.append(embedded)
    seen: set[int] = set()
    for query in queries:
        for book_id, changed in session.execute(query):
            if book_id not in seen:
                seen.add(book_id)
                books.append(
                    ctx.parsed(("lorebook", book_id, changed), partial(_load_book, session, book_id))
                )
    return books


def _card_book(ctx: RoleplayContext, character: Character) -> LoreBook | None:
    return book_from_card(parsed_card(ctx, character))


def _load_book(session: Session, book_id: int) -> LoreBook:
    row = session.get(Lorebook, book_id)
    assert row is not None  # its id was just read in this session
    return book_of(row)


def parsed_card(ctx: RoleplayContext, character: Character) -> CharacterCard:
    """The character's card, parsed once per change (shared: read-only)."""
    return ctx.parsed(("card", character.id, character.updated_at), partial(card_of, character))


def parse_prompt_settings(raw: object) -> ChatPromptSettings:
    """A chat's ``settings.prompt`` as ChatPromptSettings; a bad value is a 400 naming the key."""
    settings = ChatPromptSettings()
    if raw is None:
        return settings
    if not isinstance(raw, dict):
        raise InvalidRequest("settings.prompt must be an object.", param="prompt")
    known = {
        "main_prompt",
        "post_history",
        "impersonate_prompt",
        "cache_friendly_lore",
        "world_info",
        "order",
        "disabled",
        "instruct",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidRequest(f"Unknown prompt settings: {', '.join(unknown)}.", param=unknown[0])
    for key in ("main_prompt", "post_history", "impersonate_prompt"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise InvalidRequest(f"settings.prompt.{key} must be text.", param=key)
            setattr(settings, key, raw[key])
    if "cache_friendly_lore" in raw:
        if not isinstance(raw["cache_friendly_lore"], bool):
            raise InvalidRequest(
                "settings.prompt.cache_friendly_lore must be true or false.", param="cache_friendly_lore"
            )
        settings.cache_friendly_lore = raw["cache_friendly_lore"]
    if "world_info" in raw:
        settings.lore = WorldInfoSettings.from_dict(raw["world_info"])
    names = [s.value for s in Section]
    for key in ("order", "disabled"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, list) or any(v not in names for v in value):
                raise InvalidRequest(
                    f"settings.prompt.{key} must list sections from: {', '.join(names)}.", param=key
                )
    if "order" in raw:
        settings.order = tuple(Section(v) for v in raw["order"])
    if "disabled" in raw:
        settings.disabled = frozenset(Section(v) for v in raw["disabled"])
    if raw.get("instruct") is not None:
        if raw["instruct"] not in PRESETS:
            raise InvalidRequest(
                f"settings.prompt.instruct must be one of: {', '.join(PRESETS)}.", param="instruct"
            )
        settings.instruct = PRESETS[raw["instruct"]]
    return settings


def parse_reply_tokens(value: object) -> int:
    if value is None:
        return DEFAULT_REPLY_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 8192:
        raise InvalidRequest("settings.max_tokens must be a whole number from 1 to 8192.", param="max_tokens")
    return value


def prompt_settings(chat: Chat) -> tuple[ChatPromptSettings, int]:
    return parse_prompt_settings(chat.settings.get("prompt")), parse_reply_tokens(
        chat.settings.get("max_tokens")
    )


def plan_turn(
    ctx: RoleplayContext,
    session: Session,
    chat: Chat,
    *,
    upto: Message | None = None,
    speaker_id: int | None = None,
    impersonate: bool = False,
    generation: Generation = Generation.NORMAL,
    rng: random.Random | None = None,
) -> TurnPlan:
    """The prompt for the next message of ``chat`` (or for a new reply under ``upto``);
    ``generation`` says what kind of turn it is, for lore entries' triggers."""
    repo = ChatRepository(session)
    path = repo.active_path(chat.id)
    if upto is not None:
        cut = next((i for i, m in enumerate(path) if m.id == upto.id), None)
        path = path[: cut + 1] if cut is not None else path
    group = session.get(Group, chat.group_id) if chat.group_id is not None else None
    members = [session.get(Character, m.character_id) for m in group.members] if group else []
    cast = [c for c in members if c is not None]
    if group is None:
        character = session.get(Character, chat.character_id) if chat.character_id is not None else None
        if character is None:
            raise InvalidRequest("This chat has no character to speak; it was deleted.", param="chat_id")
        speaker = character
        cast = [character]
    else:
        chosen = session.get(Character, speaker_id) if speaker_id is not None else None
        speaker = chosen if chosen is not None and chosen in cast else (cast[0] if cast else None)  # type: ignore[assignment]
        if speaker is None:
            raise InvalidRequest("This group has no members to speak.", param="chat_id")
    persona = chat_persona(session, chat)
    user_name = persona.name if persona else "User"
    sheets = {c.id: sheet_of(parsed_card(ctx, c)) for c in cast}
    join = group is not None and group.generation_mode == "join"
    settings, reply_tokens = prompt_settings(chat)
    variables = MacroVariables(
        local={k: str(v) for k, v in chat.variables.items()},
        global_={g.name: g.value for g in session.scalars(select(GlobalVariable))},
    )
    last_user = next((m.created_at for m in reversed(path) if m.role == "user"), None)
    turn = ChatTurnInput(
        speaker=sheets[speaker.id],
        user_name=user_name,
        history=history_of(path),
        chat_id=str(chat.id),
        characters=[sheets[c.id] for c in cast] if join else [],
        persona=PersonaSheet(persona.name, persona.description, persona.position, persona.depth, persona.role)
        if persona
        else None,
        books=books_for(ctx, session, chat, cast if join else [speaker], persona),
        lore_state=timed_state_of(chat.lore_state),
        lore_anchor=anchor_of(chat.lore_state),
        author_note=AuthorNote(
            chat.author_note, chat.author_note_depth, chat.author_note_frequency, chat.author_note_role
        )
        if chat.author_note.strip()
        else None,
        variables=variables,
        scenario_override=group.scenario_override if group and group.scenario_override else None,
        now=datetime.now(UTC),
        last_user_time=last_user,
        group_names=[c.name for c in cast] if group else [],
        impersonate=impersonate,
        generation=generation,
    )
    caps = ctx.engine.capabilities()
    prompt = build_chat_prompt(
        turn,
        settings,
        Budget(max_context=caps.n_ctx, reply_reserve=reply_tokens),
        ctx.count_tokens,
        rng=rng or random.Random(),
    )
    return TurnPlan(
        prompt=prompt,
        speaker_id=speaker.id,
        speaker_name=speaker.name,
        user_name=user_name,
        variables=variables,
        max_tokens=reply_tokens,
    )

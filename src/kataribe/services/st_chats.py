"""SillyTavern chat files in and out of the store: one JSONL chat is one branch of a chat tree."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kataribe.formats.st_chat import (
    ChatFormatError,
    StChat,
    StMessage,
    dump_st_chat,
    format_st_date,
    parse_st_chat,
    parse_st_date,
)
from kataribe.services.chat_prompt import chat_persona
from kataribe.services.context import RoleplayContext
from kataribe.services.st_chat_metadata import (
    apply_chat_metadata,
    chat_metadata_for_export,
    read_chat_metadata,
)
from kataribe.store.chats import ChatRepository
from kataribe.store.errors import InvalidValue
from kataribe.store.fields import MAX_NAME_CHARS, MAX_TEXT_CHARS, checked_json_object, checked_text
from kataribe.store.models import MESSAGE_ROLES, Character, Chat, Group, GroupMember, Message, Swipe

ST_META_KEY = "st"
"""Message.meta key holding what ST keeps per message (extra, send_date, swipe_info, unknown keys)."""
ST_HEADER_KEY = "st_header"
"""Chat.settings key holding the file's header line (chat_metadata, user_name, create_date, ...)."""
ROLE_MARK_KEY = "kataribe_role"
"""Key in ST's ``extra``, written only when ST's own flags would make a re-import guess our role wrong."""
NARRATOR = "narrator"  # ST's extra.type for /sys messages, which reach the prompt as system messages
MAX_IMPORT_TEXTS = 200_000  # messages plus swipes: a 200 MB file of empty lines must not run for hours
_NARRATOR_NAME = "System"  # the name ST gives narrator lines when the chat sets none
_IN_CHUNK = 500  # ids per IN (...) query, well under every database's parameter limit
_T = TypeVar("_T")


@dataclass
class _PlannedMessage:
    """One ST line, checked and converted, waiting for the write transaction."""

    role: str
    name: str
    hidden: bool
    swipes: list[str]
    selected: int
    st: dict[str, Any]
    created_at: datetime | None


def role_from_st(is_user: bool, is_system: bool, extra: dict[str, Any]) -> str:
    """The role ST gives a line: narrator and ST's own notices (help, comments) are system messages.

    ``is_system`` on anything else is how ST hides a message from the prompt, not a role.
    """
    kind = extra.get("type")
    if is_user:
        return "user"
    if kind == NARRATOR or (is_system and isinstance(kind, str) and kind):
        return "system"
    return "assistant"


# -- import ---------------------------------------------------------------------------------------


def import_st_chat(
    ctx: RoleplayContext,
    data: bytes,
    *,
    character_id: int | None = None,
    group_id: int | None = None,
    title: str | None = None,
) -> int:
    """Store a SillyTavern ``.jsonl`` chat as a new chat with one branch; returns the chat id.

    Everything is parsed and checked first and written in one transaction: a bad file stores nothing.
    """
    parsed = parse_st_chat(data)
    planned = [_plan_message(number, message) for number, message in enumerate(parsed.messages, 1)]
    rows = sum(len(plan.swipes) for plan in planned)
    if rows > MAX_IMPORT_TEXTS:
        raise ChatFormatError(
            f"The chat holds {rows:,} messages and swipes; Kataribe imports up to {MAX_IMPORT_TEXTS:,} "
            "at once. Branch or trim the chat in SillyTavern first."
        )
    header = _checked(lambda: checked_json_object(ST_HEADER_KEY, parsed.header), "The header line")
    chat_title = _checked(
        lambda: checked_text(
            "title",
            title if title is not None else _default_title(parsed)[:MAX_NAME_CHARS],
            max_chars=MAX_NAME_CHARS,
        ),
        "The title",
    )
    started = parse_st_date(parsed.header.get("create_date"))
    with ctx.db.session() as session:
        repo = ChatRepository(session)
        chat = repo.create_chat(
            title=chat_title,
            character_id=character_id,
            group_id=group_id,
            settings={ST_HEADER_KEY: header},
        )
        apply_chat_metadata(session, chat, read_chat_metadata(parsed.chat_metadata))
        speakers = _member_ids_by_name(session, group_id) if group_id is not None else {}
        for plan in planned:
            _store_message(repo, chat.id, plan, _speaker_of(plan, speakers, character_id))
        session.flush()
        # Swipes take their message's time (from send_date) in one statement, not a query per message.
        session.execute(
            update(Swipe)
            .where(Swipe.message_id.in_(select(Message.id).where(Message.chat_id == chat.id)))
            .values(
                created_at=select(Message.created_at).where(Message.id == Swipe.message_id).scalar_subquery()
            ),
            execution_options={"synchronize_session": False},
        )
        created = _as_utc(started) or (planned[0].created_at if planned else None)
        if created is not None:
            chat.created_at = created
        session.flush()
        return chat.id


def _checked(build: Callable[[], _T], where: str) -> _T:
    try:
        return build()
    except InvalidValue as exc:
        raise ChatFormatError(f"{where}: {exc.message}", param=exc.field) from None


def _default_title(parsed: StChat) -> str:
    created = parsed.header.get("create_date")
    parts = [parsed.character_name.strip(), created.strip() if isinstance(created, str) else ""]
    return " - ".join(part for part in parts if part) or "Imported chat"


def _plan_message(number: int, message: StMessage) -> _PlannedMessage:
    where = f"Message {number} of the chat file"
    extra = dict(message.extra)
    mark = extra.pop(ROLE_MARK_KEY, None)
    role = mark if isinstance(mark, str) and mark in MESSAGE_ROLES else None
    role = role or role_from_st(message.is_user, message.is_system, extra)
    swipes, selected = _swipes_of(message)
    st: dict[str, Any] = {"extra": extra, "had_swipes": bool(message.swipes), "swipe_count": len(swipes)}
    if message.send_date_raw is not None:
        st["send_date"] = message.send_date_raw
    if message.swipe_info:
        st["swipe_info"] = message.swipe_info
    if message.original_avatar is not None:
        st["original_avatar"] = message.original_avatar
    if message.raw:
        st["other_keys"] = message.raw

    def check() -> _PlannedMessage:
        for text in swipes:
            checked_text("mes", text, max_chars=MAX_TEXT_CHARS)
        return _PlannedMessage(
            role=role,
            name=checked_text("name", message.name, max_chars=MAX_NAME_CHARS),
            hidden=message.is_system,
            swipes=swipes,
            selected=selected,
            st=checked_json_object("extra", st),
            created_at=_as_utc(message.send_date),
        )

    return _checked(check, where)


def _swipes_of(message: StMessage) -> tuple[list[str], int]:
    """The swipe texts and the selected index; the selected text is ``mes``, which ST shows and sends."""
    swipes = list(message.swipes) or [message.text]
    selected = message.swipe_id
    if not 0 <= selected < len(swipes):
        # ST writes swipe_id == len(swipes) while a swipe is still generating: keep what it shows.
        if message.text in swipes:
            selected = swipes.index(message.text)
        else:
            swipes.append(message.text)
            selected = len(swipes) - 1
    swipes[selected] = message.text
    return swipes, selected


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        # A naive stamp ("June 19, 2023 2:20pm") is the local time of the machine that wrote it.
        return moment.astimezone(UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _member_ids_by_name(session: Session, group_id: int) -> dict[str, int]:
    group = session.get(Group, group_id)
    if group is None:
        return {}  # create_chat has already refused a missing group
    rows = session.execute(
        select(Character.name, Character.id)
        .join(GroupMember, GroupMember.character_id == Character.id)
        .where(GroupMember.group_id == group.id)
        .order_by(GroupMember.position, Character.id)
    ).all()
    names: dict[str, int] = {}
    for name, ident in rows:
        names.setdefault(name, ident)
        names.setdefault(name.strip().casefold(), ident)
    return names


def _speaker_of(plan: _PlannedMessage, members: dict[str, int], character_id: int | None) -> int | None:
    if plan.role != "assistant":
        return None
    if members:
        found = members.get(plan.name, members.get(plan.name.strip().casefold()))
        if found is not None:
            return found
    return character_id


def _store_message(repo: ChatRepository, chat_id: int, plan: _PlannedMessage, speaker: int | None) -> None:
    # ST's per-message data rides on the selected swipe, so select_swipe copies it to the message; the
    # other swipes stay light (a hostile file must not multiply a large `extra` by its swipe count).
    carried = {ST_META_KEY: plan.st}
    first = repo.append_message(
        chat_id,
        plan.role,
        plan.swipes[0],
        name=plan.name,
        character_id=speaker,
        meta=carried if plan.selected == 0 else None,
        hidden=plan.hidden,
    )
    for idx, text in enumerate(plan.swipes[1:], 1):
        repo.add_swipe(first.id, text, carried if idx == plan.selected else None)
    if plan.selected != len(plan.swipes) - 1:  # add_swipe has already selected the last one
        repo.select_swipe(first.id, plan.selected)
    if plan.created_at is not None:
        first.created_at = plan.created_at


# -- export ---------------------------------------------------------------------------------------


def export_st_chat(ctx: RoleplayContext, chat_id: int) -> bytes:
    """The chat's active branch as a SillyTavern ``.jsonl`` file (UTF-8)."""
    with ctx.db.read_session() as session:
        repo = ChatRepository(session)
        chat = repo.chat(chat_id)
        path = repo.active_path(chat.id)
        swipes = _swipes_by_message(session, [message.id for message in path])
        user_name, character_name = _names(session, chat)
        header = _header(chat, user_name, character_name)
        header["chat_metadata"] = chat_metadata_for_export(session, chat, header.get("chat_metadata"))
        messages = [
            _st_message(message, swipes.get(message.id, []), user_name, character_name) for message in path
        ]
    return dump_st_chat(StChat(header=header, messages=messages))


def _swipes_by_message(session: Session, ids: list[int]) -> dict[int, list[Swipe]]:
    found: dict[int, list[Swipe]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        stmt = select(Swipe).where(Swipe.message_id.in_(chunk)).order_by(Swipe.message_id, Swipe.idx)
        for swipe in session.scalars(stmt):
            found.setdefault(swipe.message_id, []).append(swipe)
    return found


def _stored_header(chat: Chat) -> dict[str, Any]:
    stored = chat.settings.get(ST_HEADER_KEY)
    return dict(stored) if isinstance(stored, dict) else {}


def _names(session: Session, chat: Chat) -> tuple[str, str]:
    stored = _stored_header(chat)
    persona = chat_persona(session, chat)
    user_name = persona.name if persona is not None else _text_or(stored.get("user_name"), "User")
    character = session.get(Character, chat.character_id) if chat.character_id is not None else None
    group = session.get(Group, chat.group_id) if chat.group_id is not None else None
    fallback = group.name if group is not None else ""
    character_name = (
        character.name if character is not None else _text_or(stored.get("character_name"), fallback)
    )
    return user_name, character_name


def _text_or(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def _header(chat: Chat, user_name: str, character_name: str) -> dict[str, Any]:
    header = _stored_header(chat) or {"user_name": "", "character_name": ""}
    header["user_name"] = user_name
    header["character_name"] = character_name
    header.setdefault("create_date", _humanized(chat.created_at))
    return header


def _humanized(moment: datetime) -> str:
    """ST's file-name style stamp, in UTC as ST reads it back."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%d}@{utc.hour:02d}h{utc.minute:02d}m{utc.second:02d}s"


def _st_message(message: Message, swipes: list[Swipe], user_name: str, character_name: str) -> StMessage:
    st = _st_data(message, swipes)
    extra = dict(st["extra"]) if isinstance(st.get("extra"), dict) else {}
    is_user = message.role == "user"
    if message.role == "system" and not isinstance(extra.get("type"), str):
        extra["type"] = NARRATOR
    if role_from_st(is_user, message.hidden, extra) != message.role:
        extra[ROLE_MARK_KEY] = message.role
    texts = [swipe.content for swipe in swipes] or [message.content]
    selected = next((pos for pos, swipe in enumerate(swipes) if swipe.idx == message.swipe_index), 0)
    texts[selected] = message.content
    with_swipes = len(texts) > 1 or (st.get("had_swipes") is True if st else message.role == "assistant")
    send_date = st.get("send_date") if st else format_st_date(message.created_at.astimezone())
    other = st.get("other_keys")
    avatar = st.get("original_avatar")
    return StMessage(
        name=message.name
        or (user_name if is_user else _NARRATOR_NAME if message.role == "system" else character_name),
        is_user=is_user,
        is_system=message.hidden,
        send_date_raw=send_date if isinstance(send_date, str | int | float) else None,
        text=message.content,
        swipes=texts if with_swipes else [],
        swipe_id=selected if with_swipes else 0,
        swipe_info=_swipe_info(st.get("swipe_info"), swipes if with_swipes else [], st.get("swipe_count")),
        extra=extra,
        original_avatar=avatar if isinstance(avatar, str) else None,
        raw=dict(other) if isinstance(other, dict) else {},
    )


def _st_data(message: Message, swipes: Iterable[Swipe]) -> dict[str, Any]:
    """What ST kept for the message: on the message, or on the swipe it came with if the user has
    since selected a swipe generated here."""
    for meta in (message.meta, *(swipe.meta for swipe in swipes)):
        found = meta.get(ST_META_KEY) if isinstance(meta, dict) else None
        if isinstance(found, dict):
            return found
    return {}


def _swipe_info(stored: object, swipes: list[Swipe], imported: object) -> list[dict[str, Any]]:
    info = [item for item in stored if isinstance(item, dict)] if isinstance(stored, list) else []
    if not info or not isinstance(imported, int) or len(info) != imported:
        return info
    # Swipes generated here after the import get an entry too, so ST's swipe_info stays aligned.
    for swipe in swipes[len(info) :]:
        info.append({"send_date": format_st_date(swipe.created_at.astimezone()), "extra": {}})
    return info

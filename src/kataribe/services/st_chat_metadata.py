"""SillyTavern's ``chat_metadata`` (a chat file's header) mapped onto a stored chat, both ways.

What ST keeps there and Kataribe has its own place for: the Author's Note (``note_prompt``,
``note_depth``, ``note_interval``, ``note_role``), the chat's local variables (``variables``) and the
chat lorebook (``world_info``, a World Info file name). Everything else in the header stays as it
was, in the chat's settings, and goes back out on export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from kataribe.prompt.macro_variables import MAX_VARIABLE_CHARS, format_js_number
from kataribe.store.fields import MAX_NAME_CHARS, MAX_TEXT_CHARS
from kataribe.store.models import Chat, Lorebook, chat_lorebooks

ROLES = ("system", "user", "assistant")  # ST's extension_prompt_roles: 0, 1, 2
NOTE_LIMIT = 1000  # the API's bound for depth and frequency
DEFAULT_DEPTH, DEFAULT_INTERVAL = 4, 1  # ST's defaults for a note the file does not set
MAX_VARIABLES = 10_000


@dataclass
class StChatMetadata:
    """What a chat file's ``chat_metadata`` says, checked; None where the file says nothing usable."""

    note_text: str | None = None
    note_depth: int | None = None
    note_frequency: int | None = None
    note_role: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    world_info: str | None = None


def read_chat_metadata(meta: dict[str, Any]) -> StChatMetadata:
    """Reads the keys Kataribe maps; a value of the wrong type or out of range is ignored, not fatal
    (the header is kept whole anyway, so nothing is lost)."""
    out = StChatMetadata()
    text = meta.get("note_prompt")
    if isinstance(text, str) and len(text) <= MAX_TEXT_CHARS:
        out.note_text = text
    out.note_depth = _whole(meta.get("note_depth"))
    out.note_frequency = _whole(meta.get("note_interval"))
    role = _whole(meta.get("note_role"), high=len(ROLES) - 1)
    out.note_role = ROLES[role] if role is not None else None
    variables = meta.get("variables")
    if isinstance(variables, dict):
        for name, value in list(variables.items())[:MAX_VARIABLES]:
            as_text = _variable_text(value)
            if isinstance(name, str) and name and as_text is not None:
                out.variables[name] = as_text
    book = meta.get("world_info")
    if isinstance(book, str) and book.strip() and len(book) <= MAX_NAME_CHARS:
        out.world_info = book
    return out


def apply_chat_metadata(session: Session, chat: Chat, meta: StChatMetadata) -> None:
    """Puts the Author's Note and variables on ``chat`` and links the named lorebook if the library
    has one by that name (ST links by file name; an unknown name is kept in the header only)."""
    if meta.note_text is not None:
        chat.author_note = meta.note_text
    if meta.note_depth is not None:
        chat.author_note_depth = meta.note_depth
    if meta.note_frequency is not None:
        chat.author_note_frequency = meta.note_frequency
    if meta.note_role is not None:
        chat.author_note_role = meta.note_role
    if meta.variables:
        chat.variables = dict(meta.variables)
    if meta.world_info is not None:
        book_id = session.scalars(
            select(Lorebook.id).where(Lorebook.name == meta.world_info).order_by(Lorebook.id).limit(1)
        ).first()
        if book_id is not None:
            session.execute(insert(chat_lorebooks).values(chat_id=chat.id, lorebook_id=book_id))


def chat_metadata_for_export(session: Session, chat: Chat, stored: object) -> dict[str, Any]:
    """The header's ``chat_metadata`` with the chat's current note, variables and lorebook.

    A key is rewritten only where the chat now says something other than what the file said (or,
    for a key the file lacked, something other than ST's default), so an unedited chat goes back
    byte for byte and an edit made here reaches ST.
    """
    meta = dict(stored) if isinstance(stored, dict) else {}
    was = read_chat_metadata(meta)
    role = ROLES.index(chat.author_note_role) if chat.author_note_role in ROLES else 0
    now: list[tuple[str, object, object, object]] = [  # key, value now, value read, ST's default
        ("note_prompt", chat.author_note, was.note_text, ""),
        ("note_depth", chat.author_note_depth, was.note_depth, DEFAULT_DEPTH),
        ("note_interval", chat.author_note_frequency, was.note_frequency, DEFAULT_INTERVAL),
        ("note_role", role, ROLES.index(was.note_role) if was.note_role else None, 0),
    ]
    for key, value, read, default in now:
        if value != (read if read is not None else default):
            meta[key] = value
    variables = {name: str(value) for name, value in chat.variables.items()}
    if variables != was.variables:
        meta["variables"] = variables
    book = session.scalars(
        select(Lorebook.name)
        .join(chat_lorebooks, chat_lorebooks.c.lorebook_id == Lorebook.id)
        .where(chat_lorebooks.c.chat_id == chat.id)
        .order_by(Lorebook.id)
        .limit(1)
    ).first()
    if book is not None and book != was.world_info:
        meta["world_info"] = book
    return meta


def _whole(value: object, *, high: int = NOTE_LIMIT) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and 0 <= value <= high else None


def _variable_text(value: object) -> str | None:
    """ST keeps variables as strings or numbers; objects (from /setvar with JSON) as their JSON."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = format_js_number(float(value))
    elif isinstance(value, str):
        text = value
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        return None
    return text if len(text) <= MAX_VARIABLE_CHARS else None

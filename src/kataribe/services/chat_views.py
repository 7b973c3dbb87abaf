"""How messages and chats look in API answers."""

from __future__ import annotations

from typing import Any

from kataribe.store.models import Chat, Message


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

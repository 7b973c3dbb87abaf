"""Request bodies of the role-play API (responses are the services' plain views)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kataribe.store.fields import MAX_TEXT_CHARS


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CharacterFields(BaseModel):
    """Any card fields to set (name, description, first_mes, alternate_greetings, tags, ...)."""

    model_config = ConfigDict(extra="allow")


class FavoriteBody(_Body):
    favorite: bool


class PersonaBody(_Body):
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    position: Literal["story_string", "at_depth", "none"] | None = None
    depth: int | None = Field(default=None, ge=0, le=1000)
    role: Literal["system", "user", "assistant"] | None = None
    is_default: bool | None = None
    lorebook_id: int | None = None


class PersonaLock(_Body):
    persona_id: int | None


class LorebookBody(_Body):
    name: str | None = Field(default=None, max_length=200)
    data: dict[str, Any] | None = None
    is_global: bool | None = None


class LorebookLink(_Body):
    character_id: int | None = None
    chat_id: int | None = None
    linked: bool = True


class LoreTest(_Body):
    text: str = Field(max_length=200_000)
    settings: dict[str, Any] | None = None


class LoreKeysCheck(_Body):
    keys: list[str] = Field(max_length=1_000)
    use_regex: bool = False
    case_sensitive: bool = False


class NewChat(_Body):
    character_id: int
    persona_id: int | None = None
    title: str | None = Field(default=None, max_length=200)


class AuthorNoteBody(_Body):
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    depth: int | None = Field(default=None, ge=0, le=1000)
    frequency: int | None = Field(default=None, ge=0, le=1000)
    role: Literal["system", "user", "assistant"] | None = None


class ChatPatch(_Body):
    title: str | None = Field(default=None, max_length=200)
    persona_id: int | None = None
    author_note: AuthorNoteBody | None = None
    settings: dict[str, Any] | None = None
    """Per-chat settings: {"sampler": {...}, "max_tokens": 300, "prompt": {...}}."""


class SendBody(_Body):
    text: str = Field(max_length=MAX_TEXT_CHARS)
    generate: bool = True


class MessagePatch(_Body):
    content: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    hidden: bool | None = None
    swipe_index: int | None = Field(default=None, ge=0)


class BranchBody(_Body):
    message_id: int


class CheckpointBody(_Body):
    name: str = Field(min_length=1, max_length=200)
    message_id: int | None = None


class ReplyBody(_Body):
    character_id: int | None = None
    """Group chats: who should speak (force-talk)."""


class GroupBody(_Body):
    name: str | None = Field(default=None, max_length=200)
    members: list[int | dict[str, Any]] | None = None
    activation_strategy: Literal["natural", "list", "manual", "pooled"] | None = None
    allow_self_responses: bool | None = None
    generation_mode: Literal["swap", "join"] | None = None
    auto_mode_delay_s: int | None = Field(default=None, ge=0, le=3600)
    scenario_override: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class AutoModeBody(_Body):
    enabled: bool

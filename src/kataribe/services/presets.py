"""Presets: named sampler settings and system prompts, kept in the library and applied to chats."""

from __future__ import annotations

from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.services.chats import ChatService
from kataribe.services.context import RoleplayContext
from kataribe.services.sampler_settings import checked_sampler
from kataribe.store.errors import NotFound
from kataribe.store.models import PRESET_KINDS, Preset

PresetKind = Literal["sampler", "system_prompt"]
PROMPT_FIELDS = ("main_prompt", "post_history")
MAX_NAME_CHARS = 200
MAX_PROMPT_CHARS = 100_000


def check_kind(kind: object) -> PresetKind:
    if kind not in PRESET_KINDS:
        raise InvalidRequest(
            f"A preset's kind must be one of {', '.join(PRESET_KINDS)}; got {kind!r:.40}.", param="kind"
        )
    return cast(PresetKind, kind)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("A preset needs a name.", param="name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(f"A preset's name may be at most {MAX_NAME_CHARS} characters.", param="name")
    return name.strip()


def check_sampler_data(data: object) -> dict[str, Any]:
    """Only the chat sampler's fields, each of its type and range (seed may be null for a random seed)."""
    return checked_sampler(data, "A sampler preset's data")


def check_prompt_data(data: object) -> dict[str, str]:
    if not isinstance(data, dict):
        raise InvalidRequest(
            "A system prompt preset's data must be an object with main_prompt and post_history.", param="data"
        )
    unknown = sorted(str(k)[:40] for k in data if k not in PROMPT_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown system prompt fields: {', '.join(unknown)}. Use: {', '.join(PROMPT_FIELDS)}.",
            param=unknown[0],
        )
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise InvalidRequest(f"The system prompt field {key} must be text.", param=key)
        if len(value) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"{key} may be at most {MAX_PROMPT_CHARS:,} characters.", param=key)
        out[key] = value
    return out


def check_data(kind: PresetKind, data: object) -> dict[str, Any]:
    return dict(check_sampler_data(data)) if kind == "sampler" else dict(check_prompt_data(data))


def preset_view(preset: Preset) -> dict[str, Any]:
    return {
        "id": preset.id,
        "kind": preset.kind,
        "name": preset.name,
        "data": dict(preset.data),
        "created_at": preset.created_at.isoformat(),
    }


class PresetService:
    def __init__(self, ctx: RoleplayContext, chats: ChatService) -> None:
        self.ctx = ctx
        self.chats = chats

    def list_all(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(Preset).order_by(Preset.kind, Preset.name, Preset.id)
        if kind is not None:
            query = query.where(Preset.kind == check_kind(kind))
        with self.ctx.db.read_session() as session:
            return [preset_view(p) for p in session.scalars(query).all()]

    def get(self, preset_id: int) -> dict[str, Any]:
        with self.ctx.db.read_session() as session:
            return preset_view(self._row(session, preset_id))

    @staticmethod
    def _row(session: Session, preset_id: int) -> Preset:
        found = session.get(Preset, preset_id)
        if found is None:
            raise NotFound("preset", preset_id)
        return found

    def create(self, kind: object, name: object, data: object) -> dict[str, Any]:
        checked_kind = check_kind(kind)
        preset = Preset(kind=checked_kind, name=check_name(name), data=check_data(checked_kind, data))
        with self.ctx.db.session() as session:
            session.add(preset)
            session.flush()
            return preset_view(preset)

    def update(self, preset_id: int, *, name: object = None, data: object = None) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            preset = self._row(session, preset_id)
            if name is not None:
                preset.name = check_name(name)
            if data is not None:
                preset.data = check_data(check_kind(preset.kind), data)
            session.flush()
            return preset_view(preset)

    def delete(self, preset_id: int) -> None:
        with self.ctx.db.session() as session:
            session.delete(self._row(session, preset_id))

    def apply(self, preset_id: int, chat_id: int) -> dict[str, Any]:
        """Merge the preset into the chat's settings.sampler (or settings.prompt); keys it lacks stay."""
        preset = self.get(preset_id)
        chat = self.chats.view(chat_id, limit=1)
        settings = chat.get("settings") or {}
        key = "sampler" if preset["kind"] == "sampler" else "prompt"
        current = settings.get(key)
        merged = {**(current if isinstance(current, dict) else {}), **preset["data"]}
        updated = self.chats.update_settings(chat_id, {"settings": {key: merged}})
        return {"preset": preset, "chat": updated}

"""Personas: who the user is in a chat — many of them, one default, locks per chat and per character."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.services.context import RoleplayContext
from kataribe.store.assets import remember_asset
from kataribe.store.errors import NotFound
from kataribe.store.models import Character, CharacterPersona, Lorebook, Persona

POSITIONS = ("story_string", "at_depth", "none")
ROLES = ("system", "user", "assistant")


def persona_view(p: Persona, locked_character_ids: list[int]) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "avatar": p.avatar_sha256,
        "position": p.position,
        "depth": p.depth,
        "role": p.role,
        "is_default": p.is_default,
        "lorebook_id": p.lorebook_id,
        # Characters whose new chats always start as this persona.
        "locked_character_ids": locked_character_ids,
    }


def locks_by_persona(session: Session, persona_id: int | None = None) -> dict[int, list[int]]:
    """Persona id -> ids of the characters locked to it, in one query (all personas, or one)."""
    query = select(CharacterPersona.persona_id, CharacterPersona.character_id).order_by(
        CharacterPersona.character_id
    )
    if persona_id is not None:
        query = query.where(CharacterPersona.persona_id == persona_id)
    out: dict[int, list[int]] = {}
    for owner, character_id in session.execute(query):
        out.setdefault(owner, []).append(character_id)
    return out


class PersonaService:
    def __init__(self, ctx: RoleplayContext) -> None:
        self.ctx = ctx

    @staticmethod
    def _get(session: Session, persona_id: int) -> Persona:
        found = session.get(Persona, persona_id)
        if found is None:
            raise NotFound("persona", persona_id)
        return found

    @staticmethod
    def _view(session: Session, p: Persona) -> dict[str, Any]:
        return persona_view(p, locks_by_persona(session, p.id).get(p.id, []))

    @staticmethod
    def _apply(session: Session, p: Persona, data: dict[str, Any]) -> None:
        if "name" in data:
            if not isinstance(data["name"], str) or not data["name"].strip():
                raise InvalidRequest("A persona needs a name.", param="name")
            p.name = data["name"].strip()
        if "description" in data:
            if not isinstance(data["description"], str):
                raise InvalidRequest("description must be text.", param="description")
            p.description = data["description"]
        if "position" in data:
            if data["position"] not in POSITIONS:
                raise InvalidRequest(f"position must be one of {', '.join(POSITIONS)}.", param="position")
            p.position = data["position"]
        if "depth" in data:
            depth = data["depth"]
            if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= 1000:
                raise InvalidRequest("depth must be a whole number from 0 to 1000.", param="depth")
            p.depth = depth
        if "role" in data:
            if data["role"] not in ROLES:
                raise InvalidRequest(f"role must be one of {', '.join(ROLES)}.", param="role")
            p.role = data["role"]
        if "lorebook_id" in data:
            book = data["lorebook_id"]
            if book is not None and session.get(Lorebook, book) is None:
                raise NotFound("lorebook", book)
            p.lorebook_id = book
        if data.get("is_default") is True:
            for other in session.scalars(select(Persona).where(Persona.is_default.is_(True))):
                other.is_default = False
            p.is_default = True
        elif data.get("is_default") is False:
            p.is_default = False

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise InvalidRequest("A persona needs a name.", param="name")
        with self.ctx.db.session() as session:
            p = Persona(name=data["name"].strip())
            session.add(p)
            self._apply(session, p, data)
            if session.scalars(select(Persona).where(Persona.is_default.is_(True))).first() is None:
                p.is_default = True  # the first persona becomes the default
            session.flush()
            return self._view(session, p)

    def update(self, persona_id: int, data: dict[str, Any]) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            p = self._get(session, persona_id)
            self._apply(session, p, data)
            session.flush()
            return self._view(session, p)

    def list_all(self) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            locks = locks_by_persona(session)
            return [
                persona_view(p, locks.get(p.id, []))
                for p in session.scalars(select(Persona).order_by(Persona.name))
            ]

    def view(self, persona_id: int) -> dict[str, Any]:
        with self.ctx.db.read_session() as session:
            return self._view(session, self._get(session, persona_id))

    def delete(self, persona_id: int) -> None:
        with self.ctx.db.session() as session:
            session.delete(self._get(session, persona_id))

    def set_avatar(self, persona_id: int, image: bytes) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            p = self._get(session, persona_id)
            stored = remember_asset(session, self.ctx.assets, image)
            if not stored.mime.startswith("image/"):
                raise InvalidRequest("An avatar must be an image (PNG, JPEG, WebP or GIF).", param="file")
            p.avatar_sha256 = stored.sha256
            session.flush()
            return self._view(session, p)

    def lock_to_character(self, character_id: int, persona_id: int | None) -> None:
        """Always use this persona with this character (None removes the lock)."""
        with self.ctx.db.session() as session:
            if session.get(Character, character_id) is None:
                raise NotFound("character", character_id)
            lock = session.get(CharacterPersona, character_id)
            if persona_id is None:
                if lock is not None:
                    session.delete(lock)
                return
            self._get(session, persona_id)
            if lock is None:
                session.add(CharacterPersona(character_id=character_id, persona_id=persona_id))
            else:
                lock.persona_id = persona_id

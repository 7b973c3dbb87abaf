"""Characters: import cards (PNG/JSON/CHARX) into the library, edit, list, export, sprites."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.formats.cards import (
    CharacterCard,
    card_from_json,
    card_to_v3,
    export_card_charx,
    export_card_json,
    export_card_png,
    import_card,
)
from kataribe.formats.charx import CardAsset
from kataribe.services.context import RoleplayContext
from kataribe.store.assets import remember_asset
from kataribe.store.errors import NotFound
from kataribe.store.models import Character, CharacterAsset

EDITABLE_TEXT = frozenset(
    f.name
    for f in fields(CharacterCard)
    if f.name not in ("extra_data", "extra_top_level", "missing_fields", "assets", "character_book")
)
ExportFormat = Literal["png", "json", "charx", "json_v2"]
_SPRITE_KINDS = {"emotion": "sprite", "background": "background", "icon": "icon"}


def card_of(character: Character) -> CharacterCard:
    card, _spec = card_from_json(character.card, "The stored card")
    return card


def card_favorite(card: CharacterCard) -> bool:
    """SillyTavern's favorite flag, ``extensions.fav``: it has written both ``true`` and ``"true"``."""
    fav = card.extensions.get("fav")
    return fav is True or (isinstance(fav, str) and fav.strip().lower() == "true")


def character_view(character: Character, *, with_card: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": character.id,
        "name": character.name,
        "avatar": character.avatar_sha256,
        "tags": list(character.tags),
        "favorite": character.favorite,
        "created_at": character.created_at.isoformat(),
        "updated_at": character.updated_at.isoformat(),
        "sprites": [
            {"label": a.label, "asset": a.sha256, "kind": a.kind}
            for a in character.assets
            if a.kind == "sprite"
        ],
    }
    if with_card:
        view["card"] = character.card
    return view


class CharacterService:
    def __init__(self, ctx: RoleplayContext) -> None:
        self.ctx = ctx

    def get(self, session: Session, character_id: int) -> Character:
        found = session.get(Character, character_id)
        if found is None:
            raise NotFound("character", character_id)
        return found

    def import_file(self, data: bytes, filename: str | None) -> dict[str, Any]:
        """Parse first (nothing is stored if the file is bad), then store card, avatar and assets."""
        imported = import_card(data, filename)
        card = imported.card
        with self.ctx.db.session() as session:
            avatar = remember_asset(session, self.ctx.assets, imported.avatar) if imported.avatar else None
            character = Character(
                name=card.name or "Unnamed",
                card=card_to_v3(card),
                avatar_sha256=avatar.sha256 if avatar else None,
                tags=list(card.tags),
                favorite=card_favorite(card),
            )
            session.add(character)
            session.flush()
            for asset in imported.assets:
                if asset.data is None:
                    continue
                stored = remember_asset(session, self.ctx.assets, asset.data)
                session.add(
                    CharacterAsset(
                        character_id=character.id,
                        sha256=stored.sha256,
                        kind=_SPRITE_KINDS.get(asset.type, "other"),
                        label=asset.name,
                        ext=asset.ext[:16],  # the column holds 16 (PostgreSQL enforces it)
                    )
                )
            session.flush()
            session.refresh(character)
            return character_view(character)

    def create(self, fields_: dict[str, Any]) -> dict[str, Any]:
        card = self._apply(CharacterCard(), fields_)
        if not card.name.strip():
            raise InvalidRequest("A character needs a name.", param="name")
        with self.ctx.db.session() as session:
            character = Character(
                name=card.name, card=card_to_v3(card), tags=list(card.tags), favorite=card_favorite(card)
            )
            session.add(character)
            session.flush()
            return character_view(character)

    def update(self, character_id: int, fields_: dict[str, Any]) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            character = self.get(session, character_id)
            card = self._apply(card_of(character), fields_)
            character.card = card_to_v3(card)
            character.name = card.name or character.name
            character.tags = list(card.tags)
            character.favorite = card_favorite(card)
            session.flush()
            return character_view(character)

    def set_favorite(self, character_id: int, favorite: bool) -> dict[str, Any]:
        """Set the flag and write it into the card (``extensions.fav``), so exports keep it."""
        with self.ctx.db.session() as session:
            character = self.get(session, character_id)
            card = card_of(character)
            card.extensions = {**card.extensions, "fav": favorite}
            character.card = card_to_v3(card)
            character.favorite = favorite
            session.flush()
            return character_view(character, with_card=False)

    @staticmethod
    def _apply(card: CharacterCard, changes: dict[str, Any]) -> CharacterCard:
        unknown = set(changes) - EDITABLE_TEXT - {"character_book"}
        if unknown:
            raise InvalidRequest(
                f"Unknown card fields: {', '.join(sorted(unknown))}.", param=sorted(unknown)[0]
            )
        merged = {**card_to_v3(card)["data"], **changes}
        new, _spec = card_from_json(
            {"spec": "chara_card_v3", "spec_version": "3.0", "data": merged}, "The card"
        )
        return replace(new, extra_top_level=card.extra_top_level)

    def list_all(
        self, query: str | None = None, tag: str | None = None, favorite: bool | None = None
    ) -> list[dict[str, Any]]:
        """Favorites first, then by name; ``favorite`` keeps only (un)favorited characters."""
        stmt = select(Character).order_by(Character.favorite.desc(), Character.name)
        if favorite is not None:
            stmt = stmt.where(Character.favorite.is_(favorite))
        with self.ctx.db.read_session() as session:
            rows = session.scalars(stmt).all()
            out = []
            for c in rows:
                if query and query.lower() not in c.name.lower():
                    continue
                if tag and tag not in c.tags:
                    continue
                out.append(character_view(c, with_card=False))
            return out

    def view(self, character_id: int) -> dict[str, Any]:
        with self.ctx.db.read_session() as session:
            return character_view(self.get(session, character_id))

    def delete(self, character_id: int) -> None:
        with self.ctx.db.session() as session:
            session.delete(self.get(session, character_id))

    def export(self, character_id: int, fmt: ExportFormat) -> tuple[bytes, str, str]:
        """(bytes, media type, file name)."""
        with self.ctx.db.read_session() as session:
            character = self.get(session, character_id)
            card = card_of(character)
            avatar = self.ctx.assets.read(character.avatar_sha256) if character.avatar_sha256 else None
            assets = [
                CardAsset(
                    type="emotion" if a.kind == "sprite" else a.kind,
                    name=a.label,
                    ext=a.ext,
                    uri="",
                    data=self.ctx.assets.read(a.sha256),
                )
                for a in character.assets
            ]
        stem = "".join(ch for ch in card.name if ch.isalnum() or ch in " _-").strip() or "character"
        if fmt == "png":
            image = avatar if avatar and avatar[:8] == b"\x89PNG\r\n\x1a\n" else None
            return export_card_png(card, image), "image/png", f"{stem}.png"
        if fmt == "charx":
            return export_card_charx(card, assets, avatar), "application/zip", f"{stem}.charx"
        spec: Literal["v2", "v3"] = "v2" if fmt == "json_v2" else "v3"
        return export_card_json(card, spec), "application/json", f"{stem}.json"

    def add_sprite(self, character_id: int, label: str, data: bytes) -> dict[str, Any]:
        label = label.strip().lower()
        if not label or len(label) > 64:
            raise InvalidRequest(
                "A sprite needs a label (an emotion name) of at most 64 characters.", param="label"
            )
        with self.ctx.db.session() as session:
            character = self.get(session, character_id)
            stored = remember_asset(session, self.ctx.assets, data)
            if not stored.mime.startswith("image/"):
                raise InvalidRequest("A sprite must be an image (PNG, JPEG, WebP or GIF).", param="file")
            for old in [a for a in character.assets if a.kind == "sprite" and a.label == label]:
                session.delete(old)
            session.add(
                CharacterAsset(
                    character_id=character.id,
                    sha256=stored.sha256,
                    kind="sprite",
                    label=label,
                    ext=stored.mime.split("/")[-1],
                )
            )
            session.flush()
            session.refresh(character)
            return character_view(character, with_card=False)

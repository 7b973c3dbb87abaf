"""Lorebooks: import/export in other programs' formats, edit, scope (global, character, chat), test."""

from __future__ import annotations

import json
import random
from typing import Any, Literal

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from kataribe.errors import InvalidRequest
from kataribe.formats.cards import CharacterCard
from kataribe.formats.lorebooks import (
    import_character_book,
    import_lorebook,
    to_character_book,
    to_novelai,
    to_risu,
    to_st_world,
)
from kataribe.lore.engine import ScanInput, activate_entries
from kataribe.lore.matching import check_key
from kataribe.lore.model import Lorebook as LoreBook
from kataribe.lore.model import WorldInfoSettings
from kataribe.lore.timed import LoreTimedState
from kataribe.services.context import RoleplayContext
from kataribe.store.errors import NotFound
from kataribe.store.models import Character, Chat, Lorebook, Persona, character_lorebooks, chat_lorebooks

LoreExport = Literal["sillytavern", "character_book", "lorebook_v3", "risu", "novelai"]


def book_of(row: Lorebook) -> LoreBook:
    book = LoreBook.from_dict(row.data)
    book.name = row.name
    return book


def book_from_card(card: CharacterCard) -> LoreBook | None:
    """The lorebook embedded in a card (character_book), or None."""
    if not card.character_book:
        return None
    return import_character_book(card.character_book, name=f"{card.name} (card)")


def lorebook_view(row: Lorebook, *, with_entries: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "is_global": row.is_global,
        "entry_count": len(row.data.get("entries") or []),
        "updated_at": row.updated_at.isoformat(),
    }
    if with_entries:
        out["data"] = row.data
    return out


class LorebookService:
    def __init__(self, ctx: RoleplayContext) -> None:
        self.ctx = ctx

    @staticmethod
    def _get(session: Session, book_id: int) -> Lorebook:
        row = session.get(Lorebook, book_id)
        if row is None:
            raise NotFound("lorebook", book_id)
        return row

    def import_file(self, data: bytes, filename: str | None, *, name: str | None = None) -> dict[str, Any]:
        book = import_lorebook(data, filename)  # raises before anything is stored
        title = name or book.name or (filename or "Lorebook").rsplit(".", 1)[0]
        with self.ctx.db.session() as session:
            row = Lorebook(name=title, data=book.to_dict())
            session.add(row)
            session.flush()
            return lorebook_view(row)

    def create(
        self, name: str, data: dict[str, Any] | None = None, *, is_global: bool = False
    ) -> dict[str, Any]:
        if not name.strip():
            raise InvalidRequest("A lorebook needs a name.", param="name")
        book = LoreBook.from_dict(data or {"name": name, "entries": []})
        with self.ctx.db.session() as session:
            row = Lorebook(name=name.strip(), data=book.to_dict(), is_global=is_global)
            session.add(row)
            session.flush()
            return lorebook_view(row)

    def update(
        self,
        book_id: int,
        *,
        name: str | None = None,
        data: dict[str, Any] | None = None,
        is_global: bool | None = None,
    ) -> dict[str, Any]:
        with self.ctx.db.session() as session:
            row = self._get(session, book_id)
            if data is not None:
                row.data = LoreBook.from_dict(data).to_dict()  # validates every entry
            if name is not None:
                if not name.strip():
                    raise InvalidRequest("A lorebook needs a name.", param="name")
                row.name = name.strip()
            if is_global is not None:
                row.is_global = is_global
            session.flush()
            return lorebook_view(row)

    def list_all(self) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            return [
                lorebook_view(r, with_entries=False)
                for r in session.scalars(select(Lorebook).order_by(Lorebook.name))
            ]

    def view(self, book_id: int) -> dict[str, Any]:
        with self.ctx.db.read_session() as session:
            return lorebook_view(self._get(session, book_id))

    def delete(self, book_id: int) -> None:
        with self.ctx.db.session() as session:
            session.delete(self._get(session, book_id))

    def export(self, book_id: int, fmt: LoreExport) -> tuple[bytes, str]:
        with self.ctx.db.read_session() as session:
            row = self._get(session, book_id)
            book, name = book_of(row), row.name  # the row is expired once the read session ends
        converters = {
            "sillytavern": to_st_world,
            "character_book": lambda b: to_character_book(b, v3=False),
            "lorebook_v3": lambda b: to_character_book(b, v3=True),
            "risu": to_risu,
            "novelai": to_novelai,
        }
        payload = converters[fmt](book)
        stem = "".join(ch for ch in name if ch.isalnum() or ch in " _-").strip() or "lorebook"
        return json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8"), f"{stem}.json"

    def link(
        self,
        book_id: int,
        *,
        character_id: int | None = None,
        chat_id: int | None = None,
        linked: bool = True,
    ) -> None:
        with self.ctx.db.session() as session:
            self._get(session, book_id)
            if character_id is not None:
                if session.get(Character, character_id) is None:
                    raise NotFound("character", character_id)
                table, key, ident = character_lorebooks, character_lorebooks.c.character_id, character_id
                col = "character_id"
            elif chat_id is not None:
                if session.get(Chat, chat_id) is None:
                    raise NotFound("chat", chat_id)
                table, key, ident, col = chat_lorebooks, chat_lorebooks.c.chat_id, chat_id, "chat_id"
            else:
                raise InvalidRequest("Say which character_id or chat_id to link.", param="character_id")
            session.execute(delete(table).where(key == ident, table.c.lorebook_id == book_id))
            if linked:
                session.execute(insert(table).values({col: ident, "lorebook_id": book_id}))

    def links(self, book_id: int) -> dict[str, Any]:
        """Where the book applies: everywhere (global) and the characters, chats and personas linked to it."""
        cl, hl = character_lorebooks, chat_lorebooks
        with self.ctx.db.read_session() as session:
            row = self._get(session, book_id)
            characters = session.execute(
                select(Character.id, Character.name)
                .join(cl, cl.c.character_id == Character.id)
                .where(cl.c.lorebook_id == book_id)
                .order_by(Character.name, Character.id)
            ).all()
            chats = session.execute(
                select(Chat.id, Chat.title)
                .join(hl, hl.c.chat_id == Chat.id)
                .where(hl.c.lorebook_id == book_id)
                .order_by(Chat.title, Chat.id)
            ).all()
            personas = session.execute(
                select(Persona.id, Persona.name)
                .where(Persona.lorebook_id == book_id)
                .order_by(Persona.name, Persona.id)
            ).all()
            return {
                "is_global": row.is_global,
                "characters": [{"id": i, "name": name} for i, name in characters],
                "chats": [{"id": i, "title": title} for i, title in chats],
                "personas": [{"id": i, "name": name} for i, name in personas],
            }

    @staticmethod
    def check_keys(keys: list[str], *, use_regex: bool, case_sensitive: bool) -> dict[str, Any]:
        """Which keys will not run (regexes refused, with the reason) and which run time-limited."""
        checks = [check_key(k, use_regex=use_regex, case_sensitive=case_sensitive) for k in keys]
        return {
            "keys": [{"key": c.key, "refused": c.refused, "time_limited": c.time_limited} for c in checks]
        }

    def test(self, book_id: int, text: str, *, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """Which entries fire for ``text`` and why (the lorebook editor's test box)."""
        with self.ctx.db.read_session() as session:
            book = book_of(self._get(session, book_id))
        wi = WorldInfoSettings.from_dict(settings) if settings else WorldInfoSettings()
        result = activate_entries(
            [book],
            ScanInput(messages=[text], turn=1),
            wi,
            state=LoreTimedState(),
            count_tokens=self.ctx.count_tokens,
            max_context=self.ctx.engine.capabilities().n_ctx,
            rng=random.Random(0),
        )
        return {
            "activated": [
                {
                    "uid": e.entry.uid,
                    "comment": e.entry.comment,
                    "reason": e.reason,
                    "position": str(e.position),
                    "content": e.content,
                }
                for e in result.entries
            ],
            "skipped": [
                {"uid": s.entry.uid, "reason": str(s.reason), "detail": s.detail} for s in result.skipped
            ],
            "tokens_used": result.tokens_used,
            "budget": result.budget,
        }

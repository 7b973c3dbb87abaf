"""Routes for characters, personas, lorebooks and assets (imports run in a worker thread)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kataribe.api.roleplay.schemas import (
    CharacterFields,
    FavoriteBody,
    LorebookBody,
    LorebookLink,
    LoreKeysCheck,
    LoreTest,
    PersonaBody,
    PersonaLock,
)
from kataribe.api.roleplay.services import RoleplayServices
from kataribe.api.roleplay.uploads import attachment, read_upload
from kataribe.errors import InvalidRequest
from kataribe.store.assets import check_sha256
from kataribe.store.errors import NotFound
from kataribe.store.models import Asset


def library_router(rp: RoleplayServices) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Library"])

    # -- characters --
    @router.get("/characters")
    def list_characters(
        q: str | None = None, tag: str | None = None, favorite: bool | None = None
    ) -> list[dict[str, Any]]:
        return rp.characters.list_all(q, tag, favorite)

    @router.post("/characters/import", status_code=201)
    async def import_character(file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        return await run_in_threadpool(rp.characters.import_file, await read_upload(file), file.filename)

    @router.post("/characters", status_code=201)
    def create_character(body: CharacterFields) -> dict[str, Any]:
        return rp.characters.create(body.model_dump())

    @router.get("/characters/{character_id}")
    def get_character(character_id: int) -> dict[str, Any]:
        return rp.characters.view(character_id)

    @router.patch("/characters/{character_id}")
    def update_character(character_id: int, body: CharacterFields) -> dict[str, Any]:
        return rp.characters.update(character_id, body.model_dump())

    @router.delete("/characters/{character_id}", status_code=204)
    def delete_character(character_id: int) -> Response:
        rp.characters.delete(character_id)
        return Response(status_code=204)

    @router.get("/characters/{character_id}/export")
    def export_character(
        character_id: int, format: Literal["png", "json", "json_v2", "charx"] = "png"
    ) -> Response:
        data, media, name = rp.characters.export(character_id, format)
        return Response(data, media_type=media, headers=attachment(name))

    @router.post("/characters/{character_id}/sprites", status_code=201)
    async def add_sprite(
        character_id: int, label: Annotated[str, Form()], file: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        data = await read_upload(file, 16 * 1024 * 1024)
        return await run_in_threadpool(rp.characters.add_sprite, character_id, label, data)

    @router.put("/characters/{character_id}/favorite")
    def set_favorite(character_id: int, body: FavoriteBody) -> dict[str, Any]:
        return rp.characters.set_favorite(character_id, body.favorite)

    @router.put("/characters/{character_id}/persona")
    def lock_persona(character_id: int, body: PersonaLock) -> dict[str, Any]:
        rp.personas.lock_to_character(character_id, body.persona_id)
        return {"character_id": character_id, "persona_id": body.persona_id}

    # -- assets (content-addressed; names never come from users) --
    @router.get("/assets/{sha256}")
    def get_asset(sha256: str) -> Response:
        digest = check_sha256(sha256)
        with rp.ctx.db.read_session() as session:
            asset = session.get(Asset, digest)
            if asset is None:
                raise NotFound("asset", 0, hint=f"No asset {digest[:12]}…")
            mime = asset.mime
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        return Response(rp.ctx.assets.read(digest), media_type=mime, headers=headers)

    # -- personas --
    @router.get("/personas")
    def list_personas() -> list[dict[str, Any]]:
        return rp.personas.list_all()

    @router.post("/personas", status_code=201)
    def create_persona(body: PersonaBody) -> dict[str, Any]:
        return rp.personas.create(body.model_dump(exclude_unset=True))

    @router.get("/personas/{persona_id}")
    def get_persona(persona_id: int) -> dict[str, Any]:
        return rp.personas.view(persona_id)

    @router.patch("/personas/{persona_id}")
    def update_persona(persona_id: int, body: PersonaBody) -> dict[str, Any]:
        return rp.personas.update(persona_id, body.model_dump(exclude_unset=True))

    @router.delete("/personas/{persona_id}", status_code=204)
    def delete_persona(persona_id: int) -> Response:
        rp.personas.delete(persona_id)
        return Response(status_code=204)

    @router.put("/personas/{persona_id}/avatar")
    async def persona_avatar(persona_id: int, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        data = await read_upload(file, 16 * 1024 * 1024)
        return await run_in_threadpool(rp.personas.set_avatar, persona_id, data)

    # -- lorebooks --
    @router.get("/lorebooks")
    def list_lorebooks() -> list[dict[str, Any]]:
        return rp.lorebooks.list_all()

    @router.post("/lorebooks/import", status_code=201)
    async def import_lorebook(
        file: Annotated[UploadFile, File()], name: Annotated[str | None, Form()] = None
    ) -> dict[str, Any]:
        data = await read_upload(file)
        return await run_in_threadpool(partial(rp.lorebooks.import_file, data, file.filename, name=name))

    @router.post("/lorebooks", status_code=201)
    def create_lorebook(body: LorebookBody) -> dict[str, Any]:
        if not body.name:
            raise InvalidRequest("A lorebook needs a name.", param="name")
        return rp.lorebooks.create(body.name, body.data, is_global=bool(body.is_global))

    @router.get("/lorebooks/{book_id}")
    def get_lorebook(book_id: int) -> dict[str, Any]:
        return rp.lorebooks.view(book_id)

    @router.patch("/lorebooks/{book_id}")
    def update_lorebook(book_id: int, body: LorebookBody) -> dict[str, Any]:
        return rp.lorebooks.update(book_id, name=body.name, data=body.data, is_global=body.is_global)

    @router.delete("/lorebooks/{book_id}", status_code=204)
    def delete_lorebook(book_id: int) -> Response:
        rp.lorebooks.delete(book_id)
        return Response(status_code=204)

    @router.get("/lorebooks/{book_id}/export")
    def export_lorebook(
        book_id: int,
        format: Literal["sillytavern", "character_book", "lorebook_v3", "risu", "novelai"] = "sillytavern",
    ) -> Response:
        data, name = rp.lorebooks.export(book_id, format)
        return Response(data, media_type="application/json", headers=attachment(name))

    @router.post("/lorebooks/{book_id}/links")
    def link_lorebook(book_id: int, body: LorebookLink) -> dict[str, Any]:
        rp.lorebooks.link(book_id, character_id=body.character_id, chat_id=body.chat_id, linked=body.linked)
        return {"lorebook_id": book_id, **body.model_dump()}

    @router.get("/lorebooks/{book_id}/links")
    def lorebook_links(book_id: int) -> dict[str, Any]:
        return rp.lorebooks.links(book_id)

    @router.post("/lorebooks/check-keys")
    def check_lore_keys(body: LoreKeysCheck) -> dict[str, Any]:
        """How each key will run: refused regexes with the reason, time-limited ones (the entry form)."""
        return rp.lorebooks.check_keys(
            body.keys, use_regex=body.use_regex, case_sensitive=body.case_sensitive
        )

    @router.post("/lorebooks/{book_id}/test")
    def test_lorebook(book_id: int, body: LoreTest) -> dict[str, Any]:
        return rp.lorebooks.test(book_id, body.text, settings=body.settings)

    return router

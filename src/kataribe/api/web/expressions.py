"""Routes for expression sprites (zip import, list, delete) and a message's classified expression."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kataribe.api.roleplay.services import RoleplayServices
from kataribe.api.roleplay.uploads import read_upload
from kataribe.services.expressions import EXPRESSION_LABELS, MAX_SPRITE_ZIP_BYTES, ExpressionService


def expressions_router(rp: RoleplayServices) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Expressions"])
    expressions = ExpressionService(rp.ctx)

    @router.get("/expressions/labels")
    def default_labels() -> list[str]:
        """SillyTavern's default expression labels (a character's own sprite labels may add more)."""
        return list(EXPRESSION_LABELS)

    @router.get("/characters/{character_id}/sprites")
    def list_sprites(character_id: int) -> list[dict[str, Any]]:
        return expressions.sprites(character_id)

    @router.get("/characters/{character_id}/stage")
    def stage(character_id: int) -> dict[str, Any]:
        """Sprites, background and avatar of a character, for the visual-novel stage."""
        return expressions.stage(character_id)

    @router.post("/characters/{character_id}/sprites/zip", status_code=201)
    async def import_sprite_zip(
        character_id: int, file: Annotated[UploadFile, File()]
    ) -> list[dict[str, Any]]:
        """A zip of ``<label>.png|webp|gif|jpg`` files; sprites with the same labels are replaced."""
        data = await read_upload(file, MAX_SPRITE_ZIP_BYTES)
        return await run_in_threadpool(expressions.import_zip, character_id, data)

    @router.delete("/characters/{character_id}/sprites/{label}", status_code=204)
    def delete_sprite(character_id: int, label: str) -> Response:
        expressions.delete_sprite(character_id, label)
        return Response(status_code=204)

    @router.post("/messages/{message_id}/expression")
    def message_expression(message_id: int) -> dict[str, Any]:
        """The loaded model picks the message's emotion among its speaker's sprite labels."""
        return expressions.expression_for_message(message_id)

    return router

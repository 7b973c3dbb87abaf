"""Routes for sampler and system-prompt presets, and applying one to a chat."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from kataribe.api.roleplay.services import RoleplayServices
from kataribe.services.presets import PresetService


class PresetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["sampler", "system_prompt"]
    name: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]


class PresetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    data: dict[str, Any] | None = None


class ApplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chat_id: int


def presets_router(rp: RoleplayServices) -> APIRouter:
    router = APIRouter(prefix="/api/presets", tags=["Presets"])
    presets = PresetService(rp.ctx, rp.chats)

    @router.get("")
    def list_presets(kind: Literal["sampler", "system_prompt"] | None = None) -> list[dict[str, Any]]:
        return presets.list_all(kind)

    @router.post("", status_code=201)
    def create_preset(body: PresetBody) -> dict[str, Any]:
        return presets.create(body.kind, body.name, body.data)

    @router.get("/{preset_id}")
    def get_preset(preset_id: int) -> dict[str, Any]:
        return presets.get(preset_id)

    @router.patch("/{preset_id}")
    def update_preset(preset_id: int, body: PresetPatch) -> dict[str, Any]:
        return presets.update(preset_id, name=body.name, data=body.data)

    @router.delete("/{preset_id}", status_code=204)
    def delete_preset(preset_id: int) -> Response:
        presets.delete(preset_id)
        return Response(status_code=204)

    @router.post("/{preset_id}/apply")
    def apply_preset(preset_id: int, body: ApplyBody) -> dict[str, Any]:
        """Merge into the chat's settings.sampler or settings.prompt; keys the preset lacks stay."""
        return presets.apply(preset_id, body.chat_id)

    return router
